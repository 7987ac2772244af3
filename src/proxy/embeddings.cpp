// Embeddings through the cache, per input: each input of a batch has its own cache entry
// (the request with `input` set to that one item), so a batch whose inputs were seen before,
// alone or in other batches, is answered from the cache, and a partly known batch sends only
// the unknown inputs to the provider. The answer is put together in the caller's order.
#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include "proxy/pipeline.h"

namespace redline::proxy {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

// Captures the provider's answer instead of sending it to the client.
class CaptureSink final : public Sink {
 public:
  explicit CaptureSink(http::Exchange& ex) : ex_(ex) {}
  asio::awaitable<bool> respond(http::Response& response) override {
    response_ = std::move(response);
    captured_ = true;
    co_return true;
  }
  asio::awaitable<bool> respond_error(int status, std::string_view message, std::string_view code,
                                      std::string_view retry_after = {}) override {
    error_ = true;
    co_return co_await ex_.respond_error(status, message, code, retry_after);
  }
  // Embeddings never stream; a provider that does is relayed as it is.
  asio::awaitable<bool> begin_stream(http::ResponseHeader& header) override {
    error_ = true;
    return ex_.begin_stream(header);
  }
  asio::awaitable<bool> write_chunk(std::string_view data) override {
    return ex_.write_chunk(data);
  }
  asio::awaitable<bool> end_stream() override { return ex_.end_stream(); }
  bool gone() const override { return ex_.client_gone(); }
  common::WatchGuard watch_gone(common::Interrupt& stop) override {
    return ex_.watch_client(stop);
  }

  bool captured() const { return captured_; }
  bool answered_client() const { return error_; }
  http::Response& response() { return response_; }

 private:
  http::Exchange& ex_;
  http::Response response_;
  bool captured_ = false;
  bool error_ = false;
};

// The inputs of an embeddings request, each as it would be sent alone.
std::optional<std::vector<json::value>> split_inputs(const json::value& input) {
  std::vector<json::value> items;
  if (input.is_string()) {
    items.push_back(input);
    return items;
  }
  const auto* arr = input.if_array();
  if (arr == nullptr || arr->empty()) return std::nullopt;
  bool all_numbers = true;
  for (const auto& v : *arr) all_numbers = all_numbers && v.is_number();
  if (all_numbers) {  // one token array
    items.push_back(input);
    return items;
  }
  for (const auto& v : *arr) {
    if (!v.is_string() && !v.is_array()) return std::nullopt;
    items.push_back(v);
  }
  return items;
}

// One stored input: {"model":..., "tokens":N, "item":{embedding object}}.
std::string entry_body(std::string_view model, uint64_t tokens, const json::value& item) {
  json::object o;
  o["model"] = model;
  o["tokens"] = tokens;
  o["item"] = item;
  return json::serialize(o);
}

asio::awaitable<void> respond_embeddings(RequestContext& ctx, json::array& data,
                                         const std::string& model, uint64_t tokens) {
  ctx.usage = Usage{tokens, 0};
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (data[i].is_object()) data[i].as_object()["index"] = i;
  }
  json::object out;
  out["object"] = "list";
  out["data"] = std::move(data);
  out["model"] = model;
  out["usage"] = json::object{{"prompt_tokens", tokens}, {"total_tokens", tokens}};
  http::Response res{boost::beast::http::status::ok, 11};
  res.set(boost::beast::http::field::content_type, "application/json");
  res.body() = json::serialize(out);
  ctx.exchange.add_response_header("x-redline-cache",
                                   std::string(cache::cache_status_name(ctx.cache_status)));
  co_await ctx.exchange.respond(res);
}

}  // namespace

asio::awaitable<void> ProxyHandler::embeddings_phase(RequestContext& ctx) {
  auto& ex = ctx.exchange;
  const std::size_t thread = ex.thread_index();
  const auto& body = ex.request().body();
  boost::system::error_code ec;
  json::value request = json::parse(body, ec);
  const json::value* input =
      ec || !request.is_object() ? nullptr : request.as_object().if_contains("input");
  auto items = input ? split_inputs(*input) : std::nullopt;
  if (!items) {
    // Not something we can split: let the provider judge it, uncached.
    ExchangeSink sink(ex);
    const ForwardInput in{ex.request(), ctx.request_id, ctx.endpoint, ctx.model, ctx.hops, body};
    co_await forwarder(thread).forward(in, ctx, sink);
    co_return;
  }

  // One key per input: the request with `input` set to that item alone.
  const Hop& hop = ctx.hops.front();
  std::vector<cache::CacheKey> keys;
  keys.reserve(items->size());
  json::object single = request.as_object();
  for (const auto& item : *items) {
    single["input"] = item;
    const std::string single_body = json::serialize(single);
    cache::KeyRequest kr;
    kr.tenant = ctx.identity.tenant;
    kr.cache_namespace = ctx.cache_namespace;
    kr.generation = ctx.cache_generation;
    kr.endpoint = endpoint_name(ctx.endpoint);
    kr.provider = hop.provider->config->name;
    kr.model = hop.model;
    kr.body = single_body;
    keys.push_back(cache::compute_cache_key(kr).key);
  }

  // Look every input up (L1, then one pipelined round trip for the rest).
  std::vector<std::optional<cache::Entry>> found(items->size());
  if (!ctx.cache_refresh) found = co_await cache_->lookup_many(thread, keys);
  std::vector<std::size_t> missing;
  for (std::size_t i = 0; i < found.size(); ++i) {
    if (!found[i]) missing.push_back(i);
  }

  json::array data(items->size());
  uint64_t tokens = 0;
  std::string model(hop.model);
  for (std::size_t i = 0; i < found.size(); ++i) {
    if (!found[i]) continue;
    auto v = json::parse(found[i]->body, ec);
    if (ec || !v.is_object() || !v.as_object().contains("item")) {
      missing.push_back(i);  // unreadable entry: ask again
      continue;
    }
    auto& o = v.as_object();
    if (auto* t = o.if_contains("tokens"); t && t->is_number()) tokens += t->to_number<uint64_t>();
    if (auto* m = o.if_contains("model"); m && m->is_string()) model = m->as_string();
    data[i] = std::move(o["item"]);
  }
  std::sort(missing.begin(), missing.end());

  if (!missing.empty()) {
    // Ask the provider for the unknown inputs only, in one call.
    json::object partial = request.as_object();
    json::array subset;
    for (std::size_t i : missing) subset.push_back((*items)[i]);
    partial["input"] = std::move(subset);
    const std::string partial_body = json::serialize(partial);
    CaptureSink sink(ex);
    const ForwardInput in{ex.request(), ctx.request_id, ctx.endpoint,
                          ctx.model,    ctx.hops,       partial_body};
    co_await forwarder(thread).forward(in, ctx, sink);
    if (!sink.captured()) co_return;  // an error already went to the client
    auto& res = sink.response();
    auto answer = res.result_int() == 200 ? json::parse(res.body(), ec) : json::value();
    const json::array* got = !ec && answer.is_object() && answer.as_object().contains("data") &&
                                     answer.at("data").is_array()
                                 ? &answer.at("data").as_array()
                                 : nullptr;
    if (got == nullptr || got->size() != missing.size()) {
      // An error, or an answer we cannot take apart: the client gets it as it came.
      co_await ex.respond(res);
      co_return;
    }
    uint64_t fresh_tokens = 0;
    if (auto* u = answer.as_object().if_contains("usage"); u && u->is_object()) {
      if (auto* p = u->as_object().if_contains("prompt_tokens"); p && p->is_number()) {
        fresh_tokens = p->to_number<uint64_t>();
      }
    }
    if (auto* m = answer.as_object().if_contains("model"); m && m->is_string()) {
      model = m->as_string();
    }
    // Per-input token counts: exact for one input, shared by input size for a batch.
    std::vector<std::size_t> sizes;
    std::size_t total_size = 0;
    for (std::size_t i : missing) {
      sizes.push_back(json::serialize((*items)[i]).size());
      total_size += sizes.back();
    }
    const int64_t now = cache::now_unix_ms();
    std::vector<std::pair<cache::CacheKey, cache::Entry>> to_store;
    for (std::size_t j = 0; j < got->size(); ++j) {
      const auto& item = (*got)[j];
      std::size_t index = j;
      if (auto* ix = item.is_object() ? item.as_object().if_contains("index") : nullptr;
          ix && ix->is_number()) {
        index = ix->to_number<std::size_t>();
      }
      if (index >= missing.size()) index = j;
      const std::size_t i = missing[index];
      json::value stored = item;
      const uint64_t share = total_size == 0 ? 0 : fresh_tokens * sizes[index] / total_size;
      cache::Entry e;
      e.status = 200;
      e.content_type = "application/json";
      e.created_unix_ms = now;
      e.ttl_seconds = ctx.cache_ttl;
      e.body = entry_body(model, missing.size() == 1 ? fresh_tokens : share, stored);
      to_store.emplace_back(keys[i], std::move(e));
      data[i] = std::move(stored);
    }
    tokens += fresh_tokens;
    // Stored before answering (write-behind: queued), so the caller's next batch finds every
    // input on any instance; embeddings are not coalesced, so nothing else would cover the gap.
    if (cache_->config().mode == config::CacheMode::kWriteBehind) {
      for (const auto& [k, e] : to_store) cache_->enqueue_store(thread, k, e);
    } else {
      const std::span<const std::pair<cache::CacheKey, cache::Entry>> batch(to_store);
      auto stored = co_await cache_->store_many(thread, batch);
      (void)stored;  // failures are counted; the answer goes out regardless
    }
    ctx.cache_status =
        missing.size() == items->size()
            ? (ctx.cache_refresh ? cache::CacheStatus::kRefresh : cache::CacheStatus::kMiss)
            : cache::CacheStatus::kPartial;
    co_await respond_embeddings(ctx, data, model, tokens);
    co_return;
  }
  ctx.cache_status = cache::CacheStatus::kHit;
  co_await respond_embeddings(ctx, data, model, tokens);
}

}  // namespace redline::proxy
