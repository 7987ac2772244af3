// The Responses API through the gateway (src/responses/README.md has the semantics):
// POST /v1/responses for every provider, and GET / DELETE /v1/responses/{id} (and
// GET /v1/responses/{id}/input_items) with the client's own key.
//
// Two routes, chosen by the model's first hop:
//  - native: an OpenAI-type provider gets the request on its own /v1/responses, with the whole
//    input chain the gateway kept, store:false and no previous_response_id; its answer goes
//    back with the echo fields the client sent (previous_response_id, store). Fallbacks are
//    the model's other OpenAI-type hops.
//  - chat: any other provider gets the request as a Chat Completion (responses::to_chat_request);
//    the forwarder takes it on to Anthropic Messages per hop; the answer (JSON or stream, event
//    by event) comes back as a Response object / Responses streaming events.
// Unless the request says store:false, the response is saved (tenant-scoped, with its input
// chain) before the end of the answer reaches the client, so a next turn sent on another
// connection the moment the answer ends finds it.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <charconv>
#include <chrono>
#include <span>
#include <unordered_set>
#include <variant>

#include "cache/sse.h"
#include "common/error_body.h"
#include "common/json_text.h"
#include "metrics/registry.h"
#include "proxy/pipeline.h"
#include "responses/responses.h"
#include "responses/store.h"

namespace redline::proxy {

namespace {

namespace json = boost::json;

metrics::CounterFamily& responses_counter() {
  static auto& c = metrics::counter(
      "redline_responses_operations_total",
      "Stored Responses API records (load: found | not_found | error; save: ok | error; get, "
      "delete: found | not_found | error).",
      {"operation", "outcome"});
  return c;
}

// {"error":{"message","type","param","code"}} as OpenAI answers a bad parameter.
std::string error_with_param(std::string_view message, std::string_view type,
                             std::string_view param, std::string_view code) {
  json::object err{{"message", message}, {"type", type}};
  if (param.empty()) {
    err["param"] = nullptr;
  } else {
    err["param"] = param;
  }
  if (code.empty()) {
    err["code"] = nullptr;
  } else {
    err["code"] = code;
  }
  json::object root{{"error", std::move(err)}};
  return json_text(root);
}

asio::awaitable<void> respond_json(http::Exchange& ex, int status, std::string body) {
  http::Response res{static_cast<bhttp::status>(status), 11};
  res.set(bhttp::field::content_type, "application/json");
  res.body() = std::move(body);
  co_await ex.respond(res);
}

// The client's echo fields on a Response object the provider made: the provider got
// store:false and no previous_response_id, the client expects what it sent.
void set_echo(json::object& response, const responses::ResponsesRequest& req) {
  if (req.previous_response_id) {
    response["previous_response_id"] = *req.previous_response_id;
  } else {
    response["previous_response_id"] = nullptr;
  }
  response["store"] = req.store.value_or(true);
}

// The event types whose data carries the whole Response object.
bool lifecycle_event(std::string_view type) {
  return type == "response.created" || type == "response.in_progress" ||
         type == "response.completed" || type == "response.incomplete" ||
         type == "response.failed" || type == "response.queued";
}

std::string id_of(std::string_view response_json) {
  JsonReader reader;
  auto o = reader.parse_object(response_json);
  if (!o) return {};
  const auto* id = o->if_contains("id");
  return id != nullptr && id->is_string() ? std::string(id->get_string()) : std::string();
}

// Writes the answer of a Responses request to the client: the provider's own (native route,
// echo fields set) or a converted chat answer (chat route). `on_final` is awaited with the
// final Response object before the end of the answer goes out (it saves the record).
class ResponsesSink final : public Sink {
 public:
  using OnFinal = std::function<asio::awaitable<void>(const std::string&)>;

  // `echo`: set the client's echo fields on the provider's Response (native route).
  ResponsesSink(http::Exchange& ex, bool chat, bool echo, const responses::ResponsesRequest& req,
                std::string response_id, OnFinal on_final)
      : ex_(ex), chat_(chat), echo_(echo), req_(req), id_(std::move(response_id)),
        on_final_(std::move(on_final)) {
    if (chat_) conv_ = std::make_unique<responses::ChatToResponsesStream>(id_, req_);
  }

  asio::awaitable<bool> respond(http::Response& response) override {
    if (response.result_int() != 200) co_return co_await ex_.respond(response);
    std::optional<std::string> final;
    if (chat_) {
      final = responses::from_chat_response(response.body(), id_, req_);
    } else if (!echo_) {
      final = response.body();
    } else if (auto o = reader_.parse_object(response.body())) {
      set_echo(*o, req_);
      final = json_text(*o);
    }
    if (!final) {
      co_return co_await ex_.respond_error(502, "the provider's answer could not be read",
                                           "bad_upstream_response");
    }
    final_ = std::move(*final);
    co_await on_final_(*final_);
    http::Response out{bhttp::status::ok, 11};
    out.set(bhttp::field::content_type, "application/json");
    out.body() = *final_;
    co_return co_await ex_.respond(out);
  }
  asio::awaitable<bool> respond_error(int status, std::string_view message, std::string_view code,
                                      std::string_view retry_after = {}) override {
    return ex_.respond_error(status, message, code, retry_after);
  }
  asio::awaitable<bool> begin_stream(http::ResponseHeader& header) override {
    return ex_.begin_stream(header);
  }
  asio::awaitable<bool> write_chunk(std::string_view data) override {
    in_.clear();
    splitter_.feed(data, in_);
    out_.clear();
    std::string wire;
    for (const auto& event : in_) {
      if (chat_) {
        conv_->feed(event, out_);
      } else {
        out_.push_back(native_event(event));
      }
    }
    for (const auto& event : out_) {
      if (!final_seen_ && terminal(event)) {
        final_seen_ = true;
        if (final_) {
          // Saved before the terminal event reaches the client.
          co_await on_final_(*final_);
        }
      }
      wire += cache::frame_event(event);
    }
    if (wire.empty()) co_return !ex_.client_gone();
    co_return co_await ex_.write_chunk(wire);
  }
  asio::awaitable<bool> end_stream() override {
    if (chat_ && !conv_->done()) {
      out_.clear();
      conv_->finish(out_);  // a cut stream ends with response.failed
      std::string wire;
      for (const auto& event : out_) wire += cache::frame_event(event);
      if (!wire.empty()) co_await ex_.write_chunk(wire);
    }
    co_return co_await ex_.end_stream();
  }
  bool gone() const override { return ex_.client_gone(); }
  common::WatchGuard watch_gone(common::Interrupt& stop) override {
    return ex_.watch_client(stop);
  }

  // The final Response object (JSON), once the answer completed.
  const std::optional<std::string>& final_response() const { return final_; }

 private:
  // A provider's event with the echo fields set; the final Response kept. The type is the
  // event's `event:` field, or the `type` of its data when a provider leaves the field out.
  std::string native_event(const std::string& event) {
    const std::string_view field = cache::event_type(event);
    if (field.empty() ? event.find("\"response\"") == std::string::npos : !lifecycle_event(field)) {
      return event;
    }
    auto data = reader_.parse_object(cache::event_data(event));
    if (!data) return event;
    std::string type(field);
    if (type.empty()) {
      const auto* t = data->if_contains("type");
      if (t == nullptr || !t->is_string() || !lifecycle_event(t->get_string())) return event;
      type = t->get_string();
    }
    auto* response = data->if_contains("response");
    if (response == nullptr || !response->is_object()) return event;
    if (echo_) set_echo(response->get_object(), req_);
    if (type == "response.completed" || type == "response.incomplete") {
      final_ = json_text(*response);
    }
    if (type == "response.completed" || type == "response.incomplete" ||
        type == "response.failed") {
      native_end_ = true;
    }
    if (!echo_) return event;
    // Re-framed as it came: with an `event:` line only if the provider sent one.
    return sse_event(field.empty() ? std::string_view{} : std::string_view(type), *data);
  }

  // True for the event that ends the answer (the Response is final then).
  bool terminal(const std::string& event) {
    if (!chat_) return native_end_;
    const auto type = cache::event_type(event);
    const bool end = type == "response.completed" || type == "response.incomplete" ||
                     type == "response.failed";
    if (end && conv_->final_response()) final_ = conv_->final_response();
    return end;
  }

  http::Exchange& ex_;
  bool chat_;
  bool echo_;
  const responses::ResponsesRequest& req_;
  std::string id_;
  OnFinal on_final_;
  std::unique_ptr<responses::ChatToResponsesStream> conv_;
  JsonReader reader_;
  cache::SseSplitter splitter_;
  std::vector<std::string> in_, out_;
  std::optional<std::string> final_;
  bool final_seen_ = false;
  bool native_end_ = false;  // the provider's terminal event went through native_event()
};

// GET /v1/responses/{id}/input_items, as OpenAI lists them: `limit` (1..100, default 20),
// `order` (asc | desc, default desc: newest first), `after` / `before` (an item id of this
// response: the items after / before it in that order); `include` is accepted and changes
// nothing (the gateway keeps image URLs and file data inside the items). An empty value is as
// if the parameter were absent; other parameters are ignored.
struct ItemsQuery {
  std::size_t limit = 20;
  bool ascending = false;
  std::optional<std::string> after;
  std::optional<std::string> before;
};

// A refused parameter: 400 invalid_request_error naming it (`param` empty: the query string).
struct BadParam {
  std::string param;
  std::string message;
};

std::variant<ItemsQuery, BadParam> parse_items_query(std::string_view target) {
  ItemsQuery q;
  auto url = boost::urls::parse_origin_form(target);
  if (!url) return BadParam{{}, "The query string could not be read."};
  for (auto p : url->params()) {  // keys and values percent-decoded
    if (p.value.empty()) continue;
    if (p.key == "limit") {
      std::size_t n = 0;
      const char* end = p.value.data() + p.value.size();
      auto [ptr, ec] = std::from_chars(p.value.data(), end, n);
      if (ec != std::errc() || ptr != end || n < 1 || n > 100) {
        return BadParam{"limit", fmt::format("Invalid 'limit': expected an integer from 1 to "
                                             "100, got '{}'.",
                                             p.value)};
      }
      q.limit = n;
    } else if (p.key == "order") {
      if (p.value != "asc" && p.value != "desc") {
        return BadParam{"order", fmt::format("Invalid 'order': expected 'asc' or 'desc', got "
                                             "'{}'.",
                                             p.value)};
      }
      q.ascending = p.value == "asc";
    } else if (p.key == "after") {
      q.after = p.value;
    } else if (p.key == "before") {
      q.before = p.value;
    }
  }
  return q;
}

// The prefix of an id the gateway gives an input item, after OpenAI's names for its items.
std::string_view item_id_prefix(const json::object& item) {
  const auto* t = item.if_contains("type");
  const std::string_view type =
      t != nullptr && t->is_string() ? std::string_view(t->get_string()) : "message";
  if (type == "message") return "msg_";
  if (type == "function_call") return "fc_";
  if (type == "function_call_output") return "fco_";
  if (type == "reasoning") return "rs_";
  return "item_";
}

// A message item as OpenAI lists it: `"type":"message"` (the short form has only role and
// content), `"status":"completed"`, and string content as one content part, input_text for
// what the caller wrote (output_text, with no annotations, for an assistant turn it passed
// back), so typed SDK models see the parts they expect.
void as_listed_message(json::object& item) {
  const auto* t = item.if_contains("type");
  if (t != nullptr && !(t->is_string() && t->get_string() == "message")) return;
  if (t == nullptr) item["type"] = "message";
  if (!item.contains("status")) item["status"] = "completed";
  auto* content = item.if_contains("content");
  if (content == nullptr || !content->is_string()) return;
  const auto* role = item.if_contains("role");
  const bool assistant = role != nullptr && role->is_string() && role->get_string() == "assistant";
  json::object part = assistant
                          ? responses::output_text_part(content->get_string())
                          : json::object{{"type", "input_text"}, {"text", content->get_string()}};
  *content = json::array{std::move(part)};
}

// The stored input of a turn (JSON array text, oldest first), each item with its `id` first.
// An item keeps its own id; one without (a string input, the items of a previous turn:
// responses::expand drops their ids) or whose id an earlier item already has gets an id
// derived from the response id and its position, "<prefix><response id without resp_>_<i>",
// with "_" appended while some other item of the list carries it. A stored record never
// changes, so these ids are the same on every read and unique within the response, without
// storing anything more (records saved before ids were listed get them the same way).
json::array items_with_ids(std::string_view input_json, std::string_view response_id) {
  JsonReader reader;
  auto parsed = reader.parse(input_json);
  json::array items;
  if (!parsed || !parsed->is_array()) return items;
  for (auto& v : parsed->as_array()) {
    if (v.is_object()) items.push_back(std::move(v));
  }
  auto own_id = [](const json::object& item) -> std::string_view {
    const auto* id = item.if_contains("id");
    return id != nullptr && id->is_string() ? std::string_view(id->get_string())
                                            : std::string_view();
  };
  std::unordered_set<std::string> taken;  // every id in the list
  std::vector<bool> keeps(items.size(), false);
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto id = own_id(items[i].as_object());
    keeps[i] = !id.empty() && taken.emplace(id).second;
  }
  std::string_view suffix = response_id;
  if (suffix.starts_with("resp_")) suffix.remove_prefix(5);
  json::array out;
  out.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    auto& item = items[i].as_object();
    std::string id;
    if (keeps[i]) {
      id = own_id(item);
    } else {
      id = fmt::format("{}{}_{}", item_id_prefix(item), suffix, i);
      while (!taken.emplace(id).second) id += '_';
    }
    json::object listed;
    listed.reserve(item.size() + 3);
    listed.emplace("id", id);
    for (auto& kv : item) {
      if (kv.key() != "id") listed.emplace(kv.key(), std::move(kv.value()));
    }
    as_listed_message(listed);
    out.emplace_back(std::move(listed));
  }
  return out;
}

// One page of the input items of a stored turn: {"object":"list","data","first_id","last_id",
// "has_more"}. In the asked order, `after` starts the page right after that item and `before`
// ends it right before that one; with `before` alone the page is the `limit` items closest to
// it (has_more: there are earlier ones), otherwise the first `limit` items (has_more: there are
// later ones before the end or `before`). An id that is not one of the response's items is
// refused, naming the parameter.
std::variant<json::object, BadParam> input_items_page(const ItemsQuery& q,
                                                      std::string_view input_json,
                                                      std::string_view response_id) {
  json::array items = items_with_ids(input_json, response_id);
  if (!q.ascending) std::reverse(items.begin(), items.end());
  auto position = [&](const std::string& id) -> std::optional<std::size_t> {
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (items[i].as_object().at("id").as_string() == id) return i;
    }
    return std::nullopt;
  };
  std::size_t begin = 0, end = items.size();
  if (q.after) {
    const auto at = position(*q.after);
    if (!at) {
      return BadParam{"after", fmt::format("Invalid 'after': '{}' is not an input item of "
                                           "response '{}'.",
                                           *q.after, response_id)};
    }
    begin = *at + 1;
  }
  if (q.before) {
    const auto at = position(*q.before);
    if (!at) {
      return BadParam{"before", fmt::format("Invalid 'before': '{}' is not an input item of "
                                            "response '{}'.",
                                            *q.before, response_id)};
    }
    end = *at;
  }
  if (end < begin) end = begin;
  const std::size_t n = std::min(q.limit, end - begin);
  const bool from_end = q.before && !q.after;
  const std::size_t first = from_end ? end - n : begin;
  const bool has_more = from_end ? first > begin : first + n < end;
  json::array data;
  data.reserve(n);
  for (std::size_t i = first; i < first + n; ++i) data.push_back(std::move(items[i]));
  json::value first_id = nullptr, last_id = nullptr;
  if (!data.empty()) {
    first_id = data.front().as_object().at("id");
    last_id = data.back().as_object().at("id");
  }
  json::object out;
  out["object"] = "list";
  out["data"] = std::move(data);
  out["first_id"] = std::move(first_id);
  out["last_id"] = std::move(last_id);
  out["has_more"] = has_more;
  return out;
}

}  // namespace

asio::awaitable<void> ProxyHandler::responses_phase(RequestContext& ctx) {
  auto& ex = ctx.exchange;
  auto* store = state_.responses;
  if (ctx.hops.empty()) {
    ExchangeSink sink(ex);
    const ForwardInput in{ex.request(), ctx.request_id, ctx.endpoint, ctx.model,
                          ctx.hops,     ctx.body(),     false};
    co_await forwarder(ex.thread_index()).forward(in, ctx, sink);  // 503 no_provider
    co_return;
  }
  const bool native = ctx.hops.front().provider->config->type == config::ProviderType::kOpenAI;
  std::vector<Hop> hops;
  for (const auto& h : ctx.hops) {
    if (!native || h.provider->config->type == config::ProviderType::kOpenAI) hops.push_back(h);
  }
  if (native && store == nullptr) {
    // responses.enabled: false: the provider keeps the state; the request passes through.
    const responses::ResponsesRequest unread;
    auto nothing = [](const std::string&) -> asio::awaitable<void> { co_return; };
    ResponsesSink sink(ex, false, false, unread, {}, nothing);
    const ForwardInput in{ex.request(), ctx.request_id, ctx.endpoint, ctx.model,
                          hops,         ctx.body(),     false};
    co_await forwarder(ex.thread_index()).forward(in, ctx, sink);
    if (sink.final_response()) ctx.usage = usage_from_body(*sink.final_response());
    co_return;
  }

  auto parsed = responses::parse_request(ctx.body());
  if (auto* bad = std::get_if<responses::RequestError>(&parsed)) {
    ctx.error_code = "invalid_request";
    co_await respond_json(
        ex, 400, error_with_param(bad->message, "invalid_request_error", bad->param, {}));
    co_return;
  }
  auto& request = std::get<responses::ResponsesRequest>(parsed);
  responses::ResponsesRequest expanded;
  if (request.previous_response_id) {
    const std::string& prev_id = *request.previous_response_id;
    if (store == nullptr) {
      ctx.error_code = "previous_response_unsupported";
      co_await respond_json(
          ex, 400,
          error_with_param("previous_response_id needs the gateway's response store "
                           "(responses.enabled) for a model not served by an OpenAI-type provider",
                           "invalid_request_error", "previous_response_id",
                           "previous_response_unsupported"));
      co_return;
    }
    const auto t0 = Clock::now();
    auto loaded = co_await store->load(state_redis(ctx), ctx.identity.tenant, prev_id);
    redis_waited(ctx, "responses_load", t0);
    if (!loaded.ok()) {
      responses_counter().labels("load", "error").inc();
      ctx.error_code = "response_store_unavailable";
      co_await ex.respond_error(503, "the response store is unreachable; retry shortly",
                                "response_store_unavailable", "1");
      co_return;
    }
    std::optional<std::string> chain;
    if (*loaded) chain = (*loaded)->chain();
    if (!chain) {
      responses_counter().labels("load", "not_found").inc();
      ctx.error_code = "previous_response_not_found";
      co_await respond_json(ex, 404,
                            error_with_param("Previous response with id '" + prev_id +
                                                 "' not found.",
                                             "invalid_request_error", "previous_response_id",
                                             "previous_response_not_found"));
      co_return;
    }
    responses_counter().labels("load", "found").inc();
    auto e = responses::expand(request, *chain);
    if (!e) {
      ctx.error_code = "previous_response_not_found";
      co_await ex.respond_error(500, "the stored response " + prev_id + " is unreadable",
                                "response_store_corrupt");
      co_return;
    }
    expanded = std::move(*e);
  } else {
    expanded = responses::expand(request, json::array());
  }

  std::string body;
  std::string response_id;
  http::Request chat_request;  // the chat route's request line and headers
  if (native) {
    body = responses::to_openai_body(expanded);
  } else {
    auto chat = responses::to_chat_request(expanded, ctx.model);
    if (auto* bad = std::get_if<responses::RequestError>(&chat)) {
      ctx.error_code = "untranslatable_field";
      co_await respond_json(ex, 400,
                            error_with_param(bad->message, "invalid_request_error", bad->param,
                                             "untranslatable_field"));
      co_return;
    }
    body = std::move(std::get<std::string>(chat));
    response_id = responses::new_response_id();
    chat_request = http::Request(http::Request::header_type(ex.request().base()));
    chat_request.target("/v1/chat/completions");
  }

  const bool keep = store != nullptr && expanded.store.value_or(true);
  std::string input_json;
  if (keep) input_json = json_text(expanded.input);
  auto save = [&](const std::string& response) -> asio::awaitable<void> {
    if (!keep) co_return;
    auto items = responses::output_items_of(response);
    if (!items) co_return;
    responses::StoredResponse record;
    record.id = native ? id_of(response) : response_id;
    if (record.id.empty()) co_return;
    record.model = expanded.model;
    record.created_at = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    record.input = input_json;
    record.output = std::move(*items);
    record.response = response;
    const auto t0 = Clock::now();
    auto saved = co_await store->save(state_redis(ctx), ctx.identity.tenant, record);
    redis_waited(ctx, "responses_save", t0);
    if (!saved.ok()) {
      // The answer still goes out; only its continuation is lost.
      responses_counter().labels("save", "error").inc();
      spdlog::warn("request {}: response {} not stored: {}", ctx.request_id, record.id,
                   saved.error().to_string());
    } else {
      responses_counter().labels("save", "ok").inc();
    }
  };

  ResponsesSink sink(ex, !native, native, expanded, response_id, save);
  const http::Request& upstream_request = native ? ex.request() : chat_request;
  const ForwardInput in{upstream_request,
                        ctx.request_id,
                        native ? Endpoint::kResponses : Endpoint::kChatCompletions,
                        ctx.model,
                        hops,
                        body,
                        true};
  co_await forwarder(ex.thread_index()).forward(in, ctx, sink);
  if (sink.final_response()) ctx.usage = usage_from_body(*sink.final_response());
}

asio::awaitable<void> ProxyHandler::responses_api(RequestContext& ctx, std::string_view rest) {
  auto& ex = ctx.exchange;
  const auto method = ex.request().method();
  if (auto q = rest.find('?'); q != std::string_view::npos) rest = rest.substr(0, q);
  bool input_items = false;
  std::string_view id = rest;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (rest.substr(slash) != "/input_items") {
      ctx.error_code = "not_found";
      co_await ex.respond_error(404, "unknown path " + std::string(ex.request().target()),
                                "not_found");
      co_return;
    }
    input_items = true;
    id = rest.substr(0, slash);
  }
  if (method != bhttp::verb::get && (input_items || method != bhttp::verb::delete_)) {
    ctx.error_code = "method_not_allowed";
    co_await ex.respond_error(405, input_items ? "use GET /v1/responses/{id}/input_items"
                                               : "use GET or DELETE /v1/responses/{id}",
                              "method_not_allowed");
    co_return;
  }
  ItemsQuery query;
  if (input_items) {
    auto parsed = parse_items_query(ex.request().target());
    if (auto* bad = std::get_if<BadParam>(&parsed)) {
      ctx.error_code = "invalid_request";
      co_await respond_json(
          ex, 400, error_with_param(bad->message, "invalid_request_error", bad->param, {}));
      co_return;
    }
    query = std::move(std::get<ItemsQuery>(parsed));
  }
  const std::string_view operation = method == bhttp::verb::delete_ ? "delete" : "get";
  auto not_found = [&]() -> asio::awaitable<void> {
    responses_counter().labels(operation, "not_found").inc();
    ctx.error_code = "response_not_found";
    co_await respond_json(ex, 404,
                          error_with_param("Response with id '" + std::string(id) + "' not found.",
                                           "invalid_request_error", {}, "response_not_found"));
  };
  auto unavailable = [&]() -> asio::awaitable<void> {
    responses_counter().labels(operation, "error").inc();
    ctx.error_code = "response_store_unavailable";
    co_await ex.respond_error(503, "the response store is unreachable; retry shortly",
                              "response_store_unavailable", "1");
  };
  if (id.empty() || id.size() > 256) {
    co_await not_found();
    co_return;
  }
  auto& store = *state_.responses;
  if (method == bhttp::verb::delete_) {
    auto removed = co_await store.remove(state_redis(ctx), ctx.identity.tenant, id);
    if (!removed.ok()) {
      co_await unavailable();
    } else if (!*removed) {
      co_await not_found();
    } else {
      responses_counter().labels(operation, "found").inc();
      json::object out{{"id", id}, {"object", "response"}, {"deleted", true}};
      co_await respond_json(ex, 200, json_text(out));
    }
    co_return;
  }
  auto loaded = co_await store.load(state_redis(ctx), ctx.identity.tenant, id);
  if (!loaded.ok()) {
    co_await unavailable();
    co_return;
  }
  if (!*loaded) {
    co_await not_found();
    co_return;
  }
  responses_counter().labels(operation, "found").inc();
  if (!input_items) {
    co_await respond_json(ex, 200, std::move((*loaded)->response));
    co_return;
  }
  // The input of that turn as one page of a list (see input_items_page).
  auto page = input_items_page(query, (*loaded)->input, id);
  if (auto* bad = std::get_if<BadParam>(&page)) {
    ctx.error_code = "invalid_request";
    co_await respond_json(ex, 400,
                          error_with_param(bad->message, "invalid_request_error", bad->param, {}));
    co_return;
  }
  co_await respond_json(ex, 200, json_text(std::get<json::object>(page)));
}

}  // namespace redline::proxy
