// The upstream phase (see forwarder.h). Retry decisions are made only before the first
// byte reaches the client; once a stream has started, an upstream failure becomes an SSE
// error event in the caller's API shape, and the stream is closed cleanly.
#include "proxy/forwarder.h"

#include "cache/sse.h"
#include "translate/translate.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <charconv>

#include "common/error_body.h"

namespace redline::proxy {

using namespace std::string_view_literals;  // "..."sv appends: no strlen at run time

namespace {
constexpr std::size_t kMaxResponseBody = 64 * 1024 * 1024;

bool iequal(std::string_view a, std::string_view b) {
  return boost::beast::iequals(a, b);
}

bool retryable_status(int status) {
  return status == 429 || status >= 500;
}

// Transport failures worth another attempt at the same provider.
bool retryable_failure(upstream::Failure f) {
  using upstream::Failure;
  return f == Failure::kConnect || f == Failure::kResolve || f == Failure::kConnectionLost ||
         f == Failure::kConnectTimeout;
}

bool is_timeout(upstream::Failure f) {
  using upstream::Failure;
  return f == Failure::kFirstByteTimeout || f == Failure::kIdleTimeout || f == Failure::kDeadline ||
         f == Failure::kConnectTimeout;
}

// retry-after as seconds (integer form only; an HTTP date counts as absent).
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view v) {
  int secs = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), secs);
  if (ec != std::errc() || p != v.data() + v.size() || secs < 0) return std::nullopt;
  return std::chrono::milliseconds(secs * 1000LL);
}

std::string rewrite_model(const std::string& body, const std::string& model) {
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return body;
  v.as_object()["model"] = model;
  return boost::json::serialize(v);
}

// An SSE event carrying an error, in the shape the caller's API uses mid-stream.
std::string stream_error_event(Endpoint e, std::string_view message) {
  if (e == Endpoint::kMessages) {
    boost::json::object err{{"type", "api_error"}, {"message", message}};
    boost::json::object root{{"type", "error"}, {"error", std::move(err)}};
    return "event: error\ndata: " + boost::json::serialize(root) + "\n\n";
  }
  return "data: " + openai_error_body(message, "api_error", "upstream_stream_error") + "\n\n";
}
}  // namespace

bool is_dropped_request_header(std::string_view n) {
  // Hop-by-hop headers, the client's credentials and addresses (they stay with us), and what
  // the gateway sets itself. Grouped by length, so a name is compared with at most three
  // of them (a loop over all twenty cost ~250 instructions per header).
  bool listed = false;
  switch (n.size()) {
    case 2:
      listed = iequal(n, "te");
      break;
    case 4:
      listed = iequal(n, "host");
      break;
    case 6:
      listed = iequal(n, "cookie") || iequal(n, "expect");
      break;
    case 7:
      listed = iequal(n, "trailer") || iequal(n, "upgrade");
      break;
    case 9:
      listed = iequal(n, "x-api-key") || iequal(n, "forwarded") || iequal(n, "x-real-ip");
      break;
    case 10:
      listed = iequal(n, "connection") || iequal(n, "keep-alive");
      break;
    case 13:
      listed = iequal(n, "authorization");
      break;
    case 14:
      listed = iequal(n, "content-length");
      break;
    case 15:
      listed = iequal(n, "accept-encoding") || iequal(n, "x-forwarded-for");
      break;
    case 16:
      listed = iequal(n, "proxy-connection") || iequal(n, "x-forwarded-host");
      break;
    case 17:
      listed = iequal(n, "transfer-encoding") || iequal(n, "x-forwarded-proto");
      break;
    case 19:
      listed = iequal(n, "proxy-authorization");
      break;
    default:
      break;
  }
  if (listed) return true;
  // Underscore names (x_api_key) could pass for dashed ones upstream; the server drops
  // them already (http/request_guard.h), this is the second line.
  if (n.find('_') != std::string_view::npos) return true;
  return n.size() >= 10 && iequal(n.substr(0, 10), "x-redline-");
}

bool is_dropped_response_header(std::string_view n) {
  // Hop-by-hop headers, the body's framing (ours is set when written), the provider's
  // cookies and request id (the client gets ours). Grouped by length like the above.
  switch (n.size()) {
    case 2:
      return iequal(n, "te");
    case 7:
      return iequal(n, "trailer") || iequal(n, "upgrade");
    case 10:
      return iequal(n, "connection") || iequal(n, "keep-alive") || iequal(n, "set-cookie");
    case 12:
      return iequal(n, "x-request-id");
    case 14:
      return iequal(n, "content-length");
    case 16:
      return iequal(n, "proxy-connection");
    case 17:
      return iequal(n, "transfer-encoding");
    default:
      return false;
  }
}

translate::Api api_of(config::ProviderType t) {
  return t == config::ProviderType::kAnthropic ? translate::Api::kMessages : translate::Api::kChat;
}

bool needs_translation(const ForwardInput& in, const Hop& hop) {
  return translatable(in.endpoint) && hop.provider->config->type != endpoint_api(in.endpoint);
}

upstream::UpstreamRequest Forwarder::build_request(const ForwardInput& in, const Hop& hop,
                                                   const std::string* translated) const {
  const auto& cfg = *hop.provider->config;
  const auto& client_req = in.request;
  upstream::UpstreamRequest req;
  req.method = client_req.method();
  std::string_view path = client_req.target();
  if (translated != nullptr) {
    // The other API's endpoint; its own query string would not apply.
    path = cfg.type == config::ProviderType::kAnthropic ? "/v1/messages" : "/v1/chat/completions";
  }
  // OpenAI base URLs include /v1; Anthropic base URLs are the root.
  if (cfg.type == config::ProviderType::kOpenAI && path.substr(0, 3) == "/v1")
    path.remove_prefix(3);
  req.target = hop.provider->target.endpoint.base_path;
  req.target += path;

  // One flat block of header lines. A header the gateway sets below replaces the client's
  // of the same name, so the client's is left out here.
  const auto replaced = [&](std::string_view name) {
    if (iequal(name, "x-request-id")) return true;
    if (translated != nullptr && iequal(name, "content-type")) return true;
    for (const auto& [k, v] : cfg.headers) {
      if (iequal(name, k)) return true;
    }
    return false;
  };
  req.header_lines.reserve(512);
  bool has_anthropic_version = false;
  for (const auto& f : client_req) {
    const auto name = f.name_string();
    const std::string_view n(name.data(), name.size());
    if (is_dropped_request_header(n) || replaced(n)) continue;
    // Headers of the caller's API mean nothing to the other one.
    if (translated != nullptr && (iequal(n.substr(0, 10), "anthropic-") ||
                                  iequal(n.substr(0, 7), "openai-"))) {
      continue;
    }
    if (iequal(n, "anthropic-version")) has_anthropic_version = true;
    const auto value = f.value();
    req.add_header(n, std::string_view(value.data(), value.size()));
  }
  req.add_header("x-request-id", in.request_id);
  if (cfg.type == config::ProviderType::kAnthropic) {
    if (!cfg.api_key.empty()) req.add_header("x-api-key", cfg.api_key);
    if (!has_anthropic_version) req.add_header("anthropic-version", cfg.anthropic_version);
  } else if (!cfg.api_key.empty()) {
    req.header_lines += "Authorization: Bearer "sv;
    req.header_lines += cfg.api_key;
    req.header_lines += "\r\n"sv;
  }
  for (const auto& [k, v] : cfg.headers) req.add_header(k, v);
  if (translated != nullptr) {
    req.body = *translated;  // lives in forward() for every attempt
    req.add_header("Content-Type", "application/json");
  } else if (!in.model.empty() && hop.model != in.model) {
    req.own_body(rewrite_model(in.body, hop.model));
  } else {
    req.body = in.body;  // the request's, alive for the whole exchange
  }
  return req;
}

std::chrono::milliseconds Forwarder::backoff(const config::RetryPolicy& p, int attempt) {
  // Full jitter: uniform in [0, min(max, base * 2^(attempt-1))].
  const auto cap = std::min<long long>(p.max_backoff.count(), p.base_backoff.count()
                                                                  << std::min(attempt - 1, 20));
  std::uniform_int_distribution<long long> dist(0, std::max<long long>(cap, 1));
  return std::chrono::milliseconds(dist(rng_));
}

asio::awaitable<void> Forwarder::sleep(std::chrono::milliseconds d) {
  asio::steady_timer t(ioc_, d);
  co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<void> Forwarder::forward(const ForwardInput& in, UpstreamOutcome& out, Sink& sink) {
  if (in.hops.empty()) {
    out.error_code = "no_provider";
    co_await sink.respond_error(503, "no enabled provider serves this request", "no_provider");
    co_return;
  }
  const auto deadline = Clock::now() + in.hops.front().provider->config->timeouts.total;
  out.upstream_start = Clock::now();

  std::unique_ptr<upstream::Exchange> last;  // last retryable HTTP answer, kept to relay
  const Hop* last_translated = nullptr;        // its hop, when it spoke the other API
  upstream::Failure last_failure = upstream::Failure::kNone;
  std::string last_detail;

  std::optional<Clock::time_point> circuit_open_until;  // every hop skipped: until when
  for (const auto& hop : in.hops) {
    const auto& retry = hop.provider->config->retry;
    std::optional<std::string> translated;
    if (needs_translation(in, hop)) {
      translate::RequestOptions options;
      options.upstream_model = hop.model;
      options.default_max_tokens = default_max_tokens_;
      auto t = translate::translate_request(api_of(endpoint_api(in.endpoint)),
                                            api_of(hop.provider->config->type), in.body, options);
      if (auto* refused = std::get_if<translate::Untranslatable>(&t)) {
        if (&hop != &in.hops.front()) continue;  // a fallback it cannot reach: try the next
        out.error_code = "untranslatable";
        const std::string message = refused->message + " (model " + std::string(in.model) +
                                    " is served by provider " + hop.provider->config->name +
                                    ", which speaks the other API)";
        co_await sink.respond_error(400, message, "untranslatable_field");
        co_return;
      }
      translated = std::get<std::string>(std::move(t));
    }
    auto& breaker = *hop.provider->breaker;
    for (int attempt = 1; attempt <= retry.max_attempts; ++attempt) {
      if (Clock::now() >= deadline || sink.gone()) break;
      if (!breaker.allow()) {
        // Open: the provider is failing; the fallbacks (or a 503) answer instead.
        const auto until = breaker.open_until();
        if (!circuit_open_until || until < *circuit_open_until) circuit_open_until = until;
        break;
      }
      auto req = build_request(in, hop, translated ? &*translated : nullptr);
      ++out.attempts;
      // The client leaving cancels the provider's request (see common/interrupt.h).
      common::Interrupt client_left;
      upstream::SendResult result;
      {
        // The watch for the client leaving starts when send() first waits (after the
        // request went out on a pooled connection): its set-up, an epoll registration, is
        // not on the way to the provider.
        std::optional<common::WatchGuard> watch;
        struct WatchStart {
          Sink* sink;
          common::Interrupt* stop;
          std::optional<common::WatchGuard>* guard;
        } start{&sink, &client_left, &watch};
        upstream::BeforeWait before_wait{[](void* c) {
                                           auto* s = static_cast<WatchStart*>(c);
                                           s->guard->emplace(s->sink->watch_gone(*s->stop));
                                         },
                                         &start};
        result = co_await client_.send(hop.provider->target, req, deadline, &client_left,
                                       &before_wait);
      }
      if (client_left.fired()) {
        breaker.release_probe();  // no verdict on the provider
        out.upstream_failure = "client_gone";
        co_return;  // the provider's request was cancelled with the client's
      }
      if (!result.exchange) {
        breaker.on_failure();
        last_failure = result.failure;
        last_detail = std::move(result.detail);
        out.upstream_failure = std::string(upstream::failure_name(last_failure));
        spdlog::debug("request {}: provider {} attempt {} failed: {}", in.request_id,
                      hop.provider->config->name, attempt, last_detail);
        if (!retryable_failure(last_failure)) break;  // timeouts: next hop, not again
        if (attempt < retry.max_attempts) co_await sleep(backoff(retry, attempt));
        continue;
      }
      auto& up = *result.exchange;
      out.upstream_first_byte = Clock::now();
      if (up.status() >= 500) {
        breaker.on_failure();
      } else {
        breaker.on_success();  // 2xx, 4xx and 429 are the provider working
      }
      if (!retryable_status(up.status())) {
        out.provider = hop.provider;
        co_await relay(in, out, sink, up, translated ? &hop : nullptr);
        co_return;
      }
      last_failure = upstream::Failure::kNone;
      auto wait = backoff(retry, attempt);
      auto ra = parse_retry_after(up.headers()[boost::beast::http::field::retry_after]);
      last = std::move(result.exchange);
      last_translated = translated ? &hop : nullptr;
      out.provider = hop.provider;
      if (ra && *ra > retry.max_retry_after) break;  // too long: move on to the fallback
      if (ra) wait = std::max(wait, *ra);
      if (attempt < retry.max_attempts) {
        // Read the small error body now so the connection can be reused.
        std::string discard;
        co_await last->read_all(discard, 64 * 1024);
        last.reset();
        co_await sleep(wait);
      }
    }
  }

  if (last) {  // every hop answered 429/5xx: the client sees the last answer as it was
    co_await relay(in, out, sink, *last, last_translated);
    co_return;
  }
  out.upstream_end = Clock::now();
  if (sink.gone()) co_return;
  if (circuit_open_until && last_failure == upstream::Failure::kNone) {
    // Nothing was tried: every provider's circuit is open.
    const auto wait = std::chrono::duration_cast<std::chrono::seconds>(*circuit_open_until -
                                                                       Clock::now());
    out.error_code = "provider_circuit_open";
    co_await sink.respond_error(503,
                                "the provider is failing and its circuit breaker is open; retry "
                                "shortly",
                                out.error_code, std::to_string(std::max<int64_t>(1, wait.count() + 1)));
    co_return;
  }
  const int status = is_timeout(last_failure) ? 504 : 502;
  out.error_code = status == 504 ? "upstream_timeout" : "upstream_unavailable";
  std::string message =
      status == 504 ? "the provider did not answer in time" : "the provider could not be reached";
  if (!last_detail.empty()) message += " (" + last_detail + ")";
  co_await sink.respond_error(status, message, out.error_code);
}

asio::awaitable<void> Forwarder::relay(const ForwardInput& in, UpstreamOutcome& out, Sink& sink,
                                       upstream::Exchange& up, const Hop* translated) {
  http::ResponseHeader header;
  header.result(static_cast<unsigned>(up.status()));
  std::optional<bool> event_stream;  // from the first content-type
  for (const auto& f : up.headers()) {
    // The parser has classified each name already: inserted with it, no lookup again.
    if (f.name() == boost::beast::http::field::content_type && !event_stream) {
      event_stream = f.value().substr(0, 17) == "text/event-stream";
    }
    if (!is_dropped_response_header(f.name_string())) {
      header.insert(f.name(), f.name_string(), f.value());
    }
  }
  const auto client_api = api_of(endpoint_api(in.endpoint));
  const auto provider_api = translated ? api_of(translated->provider->config->type) : client_api;

  if (!event_stream.value_or(false)) {
    http::Response res(std::move(header));
    // The body often arrived with the header: what is buffered is taken without I/O, and
    // only a body still on its way is read under the watch for the client leaving.
    std::optional<bool> complete;
    bool too_large = false;
    for (auto c = up.buffered_chunk(); !c.empty(); c = up.buffered_chunk()) {
      if (res.body().size() + c.size() > kMaxResponseBody) {
        up.abort();
        too_large = true;
        break;
      }
      res.body().append(c);
    }
    if (too_large || up.failure() != upstream::Failure::kNone) {
      complete = false;
    } else if (up.done()) {
      complete = true;
    } else {
      common::Interrupt client_left;
      bool read = false;
      {
        const auto watch = sink.watch_gone(client_left);
        read = co_await up.read_all(res.body(), kMaxResponseBody, &client_left);
      }
      if (!client_left.fired()) complete = read;
    }
    if (!complete) {
      up.abort();
      out.upstream_end = Clock::now();
      out.upstream_failure = "client_gone";
      co_return;
    }
    if (!*complete) {
      out.upstream_end = Clock::now();
      out.upstream_failure = std::string(upstream::failure_name(up.failure()));
      const bool timeout = is_timeout(up.failure());
      out.error_code = timeout ? "upstream_timeout" : "upstream_bad_response";
      co_await sink.respond_error(
          timeout ? 504 : 502, "the provider's answer was cut short or too large", out.error_code);
      co_return;
    }
    out.upstream_end = Clock::now();
    if (translated != nullptr) {
      // The answer in the caller's API: a success translated, an error in its error shape.
      std::optional<std::string> body;
      if (up.status() == 200) {
        body = translate::translate_response(provider_api, client_api, res.body(), in.model);
      } else {
        body = translate::translate_error(client_api, up.status(), res.body());
      }
      if (!body) {
        out.error_code = "upstream_bad_response";
        co_await sink.respond_error(502, "the provider's answer could not be translated",
                                    out.error_code);
        co_return;
      }
      res.body() = std::move(*body);
      res.set(boost::beast::http::field::content_type, "application/json");
    }
    co_await sink.respond(res);
    co_return;
  }

  std::optional<translate::StreamTranslator> translator;
  cache::SseSplitter splitter;
  std::vector<std::string> events, translated_events;
  if (translated != nullptr) {
    translator.emplace(provider_api, client_api, std::string(in.model), in.include_usage);
    header.set(boost::beast::http::field::content_type, "text/event-stream");
  }
  // Chunks the provider sent together (one read holds several events: a burst of tokens, or
  // a provider that sends a whole stream at once) go to the client in one write instead of
  // one write each: every chunk already received (no I/O) is appended to the one in hand. The
  // view a chunk comes in is overwritten by the next one, so it is copied only when another
  // is there.
  std::string burst;
  auto with_buffered = [&](std::string_view chunk) -> std::string_view {
    if (!up.has_buffered()) return chunk;
    burst.assign(chunk.data(), chunk.size());
    for (auto more = up.buffered_chunk(); !more.empty(); more = up.buffered_chunk()) {
      burst.append(more.data(), more.size());
    }
    return burst;
  };
  // When the provider's first bytes came with its header (the usual case), the client's
  // header and first event go out in one write.
  const std::string_view first =
      translator ? std::string_view{} : with_buffered(up.buffered_chunk());
  bool started = false;
  if (first.empty()) {
    started = co_await sink.begin_stream(header);
  } else {
    started = co_await sink.begin_stream_with(header, first);
  }
  if (!started) {
    up.abort();
    co_return;
  }
  while (!up.done()) {
    auto chunk = co_await up.next_chunk();
    if (up.failure() != upstream::Failure::kNone) break;
    std::string_view data = translator ? chunk : with_buffered(chunk);
    std::string out_data;
    if (translator) {
      // Event by event: whatever whole events this chunk completed, in the caller's API.
      events.clear();
      splitter.feed(chunk, events);
      translated_events.clear();
      for (const auto& e : events) translator->feed(e, translated_events);
      for (const auto& e : translated_events) {
        out_data += e;
        out_data += "\n\n";
      }
      if (out_data.empty()) continue;
      data = out_data;
    }
    if (!co_await sink.write_chunk(data)) {
      up.abort();  // the client left: stop the provider's work too
      out.upstream_end = Clock::now();
      co_return;
    }
  }
  out.upstream_end = Clock::now();
  if (up.failure() != upstream::Failure::kNone) {
    out.upstream_failure = std::string(upstream::failure_name(up.failure()));
    out.error_code = "upstream_stream_error";
    auto event =
        stream_error_event(in.endpoint, "the provider's stream failed: " + out.upstream_failure);
    co_await sink.write_chunk(event);
  }
  co_await sink.end_stream();
}

}  // namespace redline::proxy
