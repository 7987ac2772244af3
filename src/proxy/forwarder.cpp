// The upstream phase (see forwarder.h). Retry decisions are made only before the first
// byte reaches the client; once a stream has started, an upstream failure becomes an SSE
// error event in the caller's API shape, and the stream is closed cleanly.
#include "proxy/forwarder.h"

#include <spdlog/spdlog.h>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/json.hpp>
#include <charconv>

#include "common/error_body.h"

namespace redline::proxy {

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
// Runs `op` unless the client leaves first; then `op` is cancelled and nullopt returned.
template <class T>
asio::awaitable<std::optional<T>> unless_client_leaves(Sink& sink, asio::awaitable<T> op) {
  using namespace boost::asio::experimental::awaitable_operators;
  auto r = co_await (std::move(op) || sink.wait_gone());
  if (r.index() == 0) co_return std::get<0>(std::move(r));
  co_return std::nullopt;
}
}  // namespace

bool is_dropped_request_header(std::string_view n) {
  static constexpr std::string_view kDropped[] = {"host",
                                                  "connection",
                                                  "keep-alive",
                                                  "proxy-connection",
                                                  "proxy-authorization",
                                                  "te",
                                                  "trailer",
                                                  "transfer-encoding",
                                                  "upgrade",
                                                  "content-length",
                                                  "authorization",
                                                  "x-api-key",
                                                  "accept-encoding",
                                                  "expect",
                                                  "cookie"};
  for (auto d : kDropped) {
    if (iequal(n, d)) return true;
  }
  return n.size() >= 10 && iequal(n.substr(0, 10), "x-redline-");
}

bool is_dropped_response_header(std::string_view n) {
  static constexpr std::string_view kDropped[] = {
      "connection",        "keep-alive", "proxy-connection", "te",         "trailer",
      "transfer-encoding", "upgrade",    "content-length",   "set-cookie", "x-request-id"};
  for (auto d : kDropped) {
    if (iequal(n, d)) return true;
  }
  return false;
}

upstream::UpstreamRequest Forwarder::build_request(const ForwardInput& in, const Hop& hop) const {
  const auto& cfg = *hop.provider->config;
  const auto& client_req = in.request;
  upstream::UpstreamRequest req;
  req.method = client_req.method();
  std::string_view path = client_req.target();
  // OpenAI base URLs include /v1; Anthropic base URLs are the root.
  if (cfg.type == config::ProviderType::kOpenAI && path.substr(0, 3) == "/v1")
    path.remove_prefix(3);
  req.target = hop.provider->target.endpoint.base_path;
  req.target += path;

  for (const auto& f : client_req) {
    if (!is_dropped_request_header(f.name_string())) req.headers.insert(f.name_string(), f.value());
  }
  req.headers.set("x-request-id", in.request_id);
  if (cfg.type == config::ProviderType::kAnthropic) {
    if (!cfg.api_key.empty()) req.headers.set("x-api-key", cfg.api_key);
    if (req.headers["anthropic-version"].empty()) {
      req.headers.set("anthropic-version", cfg.anthropic_version);
    }
  } else if (!cfg.api_key.empty()) {
    req.headers.set(boost::beast::http::field::authorization, "Bearer " + cfg.api_key);
  }
  for (const auto& [k, v] : cfg.headers) req.headers.set(k, v);
  req.body =
      (!in.model.empty() && hop.model != in.model) ? rewrite_model(in.body, hop.model) : in.body;
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
  upstream::Failure last_failure = upstream::Failure::kNone;
  std::string last_detail;

  std::optional<Clock::time_point> circuit_open_until;  // every hop skipped: until when
  for (const auto& hop : in.hops) {
    const auto& retry = hop.provider->config->retry;
    auto& breaker = *hop.provider->breaker;
    for (int attempt = 1; attempt <= retry.max_attempts; ++attempt) {
      if (Clock::now() >= deadline || sink.gone()) break;
      if (!breaker.allow()) {
        // Open: the provider is failing; the fallbacks (or a 503) answer instead.
        const auto until = breaker.open_until();
        if (!circuit_open_until || until < *circuit_open_until) circuit_open_until = until;
        break;
      }
      auto req = build_request(in, hop);
      ++out.attempts;
      auto sent =
          co_await unless_client_leaves(sink, client_.send(hop.provider->target, req, deadline));
      if (!sent) {
        breaker.release_probe();  // no verdict on the provider
        out.upstream_failure = "client_gone";
        co_return;  // the provider's request was cancelled with the client's
      }
      auto result = std::move(*sent);
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
        co_await relay(in, out, sink, up);
        co_return;
      }
      last_failure = upstream::Failure::kNone;
      auto wait = backoff(retry, attempt);
      auto ra = parse_retry_after(up.headers()[boost::beast::http::field::retry_after]);
      last = std::move(result.exchange);
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
    co_await relay(in, out, sink, *last);
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
                                       upstream::Exchange& up) {
  http::ResponseHeader header;
  header.result(static_cast<unsigned>(up.status()));
  for (const auto& f : up.headers()) {
    if (!is_dropped_response_header(f.name_string())) header.insert(f.name_string(), f.value());
  }

  if (!up.is_event_stream()) {
    http::Response res(std::move(header));
    auto complete = co_await unless_client_leaves(sink, up.read_all(res.body(), kMaxResponseBody));
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
    co_await sink.respond(res);
    co_return;
  }

  if (!co_await sink.begin_stream(header)) {
    up.abort();
    co_return;
  }
  while (!up.done()) {
    auto chunk = co_await up.next_chunk();
    if (up.failure() != upstream::Failure::kNone) break;
    if (!co_await sink.write_chunk(chunk)) {
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
