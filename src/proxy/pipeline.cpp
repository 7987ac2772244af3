// The proxy pipeline (see pipeline.h). Parsing uses simdjson's validating DOM parser (one
// per thread, reused) to reject malformed JSON and read `model` and `stream` without
// building a Boost.JSON tree on the hot path.
#include "proxy/pipeline.h"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <charconv>

#include "common/random_ids.h"
#include "common/started.h"
#include "metrics/registry.h"
#include "metrics/standard.h"
#include "redis/config_options.h"

namespace redline::proxy {

namespace {
// A client-supplied request id is kept when it is short and printable; else a new one.
std::string pick_request_id(std::string_view given) {
  if (!given.empty() && given.size() <= 128 &&
      std::all_of(given.begin(), given.end(), [](char c) { return c > 32 && c < 127; })) {
    return std::string(given);
  }
  return common::new_request_id();
}
}  // namespace

struct ProxyHandler::Worker {
  explicit Worker(asio::io_context& ioc) : client(ioc), forwarder(ioc, client) {}
  upstream::HttpClient client;
  Forwarder forwarder;
  // Rate limiting (absent when no policy is configured): the state Redis of this thread.
  // Shared with the response cache when both use the same Redis (`own_state` empty then):
  // the lookup and the rate-limit check go out in one write on one connection and come back
  // in one read, and so do the store and the settle.
  redis::Client* state = nullptr;
  std::unique_ptr<redis::Client> own_state;
  std::unique_ptr<ratelimit::RateLimiter> limiter;
};

namespace {
bool any_rate_limits(const config::Config& c) {
  if (!c.rate_limits.empty()) return true;
  return std::any_of(c.keys.begin(), c.keys.end(),
                     [](const config::KeyConfig& k) { return !k.rate_limits.empty(); });
}

// Passes the answer to the client and reads the provider's usage on the way (for settling
// token limits and recording spend on answers that do not go through the cache). With
// `capture`, the whole answer is kept in the context (a session turn needs the reply).
class UsageSink final : public Sink {
 public:
  // `before_end` (with `capture`) is awaited before the end of a 200 answer goes out.
  explicit UsageSink(http::Exchange& ex, RequestContext* capture = nullptr,
                     std::function<asio::awaitable<void>()> before_end = {})
      : ex_(ex), capture_(capture), before_end_(std::move(before_end)) {}
  // Usage is read after the bytes went out (off the client's wait), unless the answer is
  // captured for a session, which must be appended before the end of the answer.
  asio::awaitable<bool> respond(http::Response& response) override {
    const bool ok200 = response.result_int() == 200;
    if (ok200 && capture_ != nullptr) {
      capture_->answer_body = response.body();
      if (before_end_) co_await before_end_();
    }
    const bool ok = co_await ex_.respond(response);
    if (ok200) usage_ = usage_from_body(response.body());
    co_return ok;
  }
  asio::awaitable<bool> respond_error(int status, std::string_view message, std::string_view code,
                                      std::string_view retry_after = {}) override {
    return ex_.respond_error(status, message, code, retry_after);
  }
  asio::awaitable<bool> begin_stream(http::ResponseHeader& header) override {
    return ex_.begin_stream(header);
  }
  asio::awaitable<bool> begin_stream_with(http::ResponseHeader& header,
                                          std::string_view first) override {
    bool ok = false;
    if (capture_ != nullptr) {  // before_end_ may have to run between the two
      ok = co_await ex_.begin_stream(header);
      if (ok) ok = co_await write_chunk(first);
    } else {
      ok = co_await ex_.begin_stream(header, first);
      keep_usage_events(first);  // after the write: the bytes are still ours
    }
    co_return ok;
  }
  asio::awaitable<bool> write_chunk(std::string_view data) override {
    if (capture_ != nullptr) return write_captured(data);
    // Not a coroutine of its own on this path (one frame fewer per event); the usage events
    // are picked out first, which copies only those.
    keep_usage_events(data);
    return ex_.write_chunk(data);
  }
  asio::awaitable<bool> write_captured(std::string_view data) {
    const std::size_t before = events_.size();
    splitter_.feed(data, events_);
    capture_->answer_streamed = true;
    // All of them: the reply is assembled from them.
    capture_->answer_events.insert(capture_->answer_events.end(), events_.begin() + before,
                                   events_.end());
    bool terminal = false;
    for (std::size_t i = before; i < events_.size(); ++i) {
      terminal = terminal || is_terminal_event(capture_->endpoint, events_[i]);
    }
    if (terminal && before_end_) {
      co_await before_end_();
      before_end_ = nullptr;
    }
    co_return co_await ex_.write_chunk(data);
  }
  asio::awaitable<bool> end_stream() override { return ex_.end_stream(); }
  bool gone() const override { return ex_.client_gone(); }
  common::WatchGuard watch_gone(common::Interrupt& stop) override {
    return ex_.watch_client(stop);
  }

  // Splits `data` into events and keeps only those that mention usage (the usage chunk,
  // message_start/_delta).
  void keep_usage_events(std::string_view data) {
    splitter_.feed_each(data, [this](std::string_view event) {
      if (event.find("usage") != std::string_view::npos) events_.emplace_back(event);
    });
  }

  std::optional<Usage> usage() const {
    if (usage_) return usage_;
    return usage_from_events(events_);
  }

 private:
  http::Exchange& ex_;
  RequestContext* capture_;
  std::function<asio::awaitable<void>()> before_end_;
  std::optional<Usage> usage_;
  cache::SseSplitter splitter_;
  std::vector<std::string> events_;
};
}  // namespace

void redis_timed(std::string_view operation, Clock::time_point start) {
  metrics::standard::redis_command_duration().labels(operation).observe(Clock::now() - start);
}

void redis_waited(RequestContext& ctx, std::string_view operation, Clock::time_point start) {
  ++ctx.redis_round_trips;
  redis_timed(operation, start);
}

ProxyHandler::ProxyHandler(const config::Config& config, std::vector<asio::io_context*> contexts,
                           AccessLog& access_log, cache::CacheStore* cache, StateServices state)
    : config_(config),
      router_(config),
      auth_(config.keys),
      access_log_(access_log),
      cache_(cache),
      state_(state) {
  for (auto* c : contexts) workers_.push_back(std::make_unique<Worker>(*c));
  if (cache_ != nullptr) {
    cache_->set_local_answers([this](const cache::KeyDigest& key) { return flights_.answered(key); });
  }
  const bool limits = any_rate_limits(config);
  if (limits || state_.keys || state_.budgets || state_.sessions || state_.responses) {
    // One state Redis client per thread (connected on first use): the cache's when the cache
    // lives in the same Redis (cache.redis unset), else one of its own.
    const bool share = cache_ != nullptr && !config.cache.redis;
    const auto client_options = redis::client_options(config.redis, "redline-state");
    for (std::size_t i = 0; i < contexts.size(); ++i) {
      if (share) {
        workers_[i]->state = &cache_->client(i);
        continue;
      }
      auto made = redis::make_client(contexts[i]->get_executor(), client_options);
      if (!made.ok()) throw std::runtime_error("state redis: " + made.error().to_string());
      workers_[i]->own_state = std::move(*made);
      workers_[i]->state = workers_[i]->own_state.get();
    }
  }
  if (limits) {
    limiter_shared_ = std::make_shared<ratelimit::SharedLimiterState>();
    const auto options = ratelimit::LimiterOptions::from_config(config.rate_limit_options);
    for (auto& w : workers_) {
      w->limiter = std::make_unique<ratelimit::RateLimiter>(*w->state, config.rate_limits, options,
                                                            limiter_shared_);
    }
  }
}

redis::Client& ProxyHandler::state_redis(const RequestContext& ctx) {
  return *workers_[ctx.exchange.thread_index()]->state;
}

ProxyHandler::~ProxyHandler() = default;

Forwarder& ProxyHandler::forwarder(std::size_t thread) {
  return workers_[thread]->forwarder;
}

void ProxyHandler::shutdown() {
  for (auto& w : workers_) {
    w->client.shutdown();
    // The Redis clients' timers and sockets must go while their io_contexts still exist.
    w->limiter.reset();
    if (w->own_state) w->own_state->stop();  // a shared one is the cache's to stop
    w->state = nullptr;
    w->own_state.reset();
  }
}

std::size_t ProxyHandler::pending_settles() const {
  std::size_t n = pending_settles_.load();
  for (const auto& w : workers_) {
    if (w->limiter) n += w->limiter->pending_settlements();
  }
  return n;
}

std::vector<ratelimit::LimiterStats> ProxyHandler::limiter_stats() const {
  std::vector<ratelimit::LimiterStats> out;
  for (const auto& w : workers_) {
    if (w->limiter) out.push_back(w->limiter->stats());
  }
  return out;
}

std::optional<Reject> ProxyHandler::parse_phase(RequestContext& ctx) {
  auto& req = ctx.exchange.request();
  ctx.endpoint = classify_path(req.target());
  if (ctx.endpoint == Endpoint::kNotFound) {
    return Reject{404, "unknown path " + std::string(req.target()) + " (the API lives under /v1/)",
                  "not_found"};
  }
  if (ctx.endpoint == Endpoint::kModels) {
    if (req.method() != bhttp::verb::get)
      return Reject{405, "use GET /v1/models", "method_not_allowed"};
    return std::nullopt;
  }
  const bool needs_model = endpoint_has_model(ctx.endpoint);
  if (needs_model && req.method() != bhttp::verb::post) {
    return Reject{405, "use POST " + std::string(req.target()), "method_not_allowed"};
  }
  if (!needs_model && req.body().empty()) return std::nullopt;

  thread_local simdjson::dom::parser parser;
  const auto& body = req.body();
  simdjson::dom::element doc;
  if (auto err = parser.parse(body.data(), body.size()).get(doc); err) {
    if (!needs_model) return std::nullopt;  // passthrough bodies need not be JSON
    return Reject{400, std::string("malformed JSON body: ") + simdjson::error_message(err),
                  "invalid_json"};
  }
  simdjson::dom::object obj;
  if (doc.get_object().get(obj)) {
    if (!needs_model) return std::nullopt;
    return Reject{400, "the request body must be a JSON object", "invalid_json"};
  }
  // The fields read here, found in one pass over the top level (a lookup by name per field
  // walked every key each time). A repeated name counts once, its first time, as a lookup
  // would find it.
  enum Key {
    kModel,
    kStream,
    kStreamOptions,
    kTemperature,
    kMaxTokens,
    kMaxCompletion,
    kMaxOutput
  };
  static constexpr std::string_view kNames[] = {"model",
                                                "stream",
                                                "stream_options",
                                                "temperature",
                                                "max_tokens",
                                                "max_completion_tokens",
                                                "max_output_tokens"};
  constexpr int kKeys = std::size(kNames);  // in the order of Key
  static_assert(kKeys == kMaxOutput + 1);
  simdjson::dom::element found[kKeys];
  bool seen[kKeys] = {};
  for (const auto field : obj) {
    for (int key = 0; key < kKeys; ++key) {
      if (field.key != kNames[key]) continue;
      if (!seen[key]) {
        seen[key] = true;
        found[key] = field.value;
      }
      break;
    }
  }
  std::string_view model;
  if (!seen[kModel] || found[kModel].get_string().get(model)) {
    if (!needs_model) return std::nullopt;
    return Reject{400, "missing or non-string field: model", "missing_model"};
  }
  ctx.model = std::string(model);
  bool stream = false;
  if (seen[kStream] && !found[kStream].get_bool().get(stream)) ctx.stream = stream;
  // (Not at_pointer: it trips a g++ 12 -Wstringop-overflow false positive.)
  simdjson::dom::object stream_options;
  bool include_usage = false;
  ctx.has_stream_options = seen[kStreamOptions];
  if (seen[kStreamOptions] && !found[kStreamOptions].get_object().get(stream_options) &&
      !stream_options["include_usage"].get_bool().get(include_usage)) {
    ctx.include_usage = include_usage;
  }
  double temperature = 0;
  if (seen[kTemperature] && !found[kTemperature].get_double().get(temperature)) {
    ctx.temperature = temperature;
  }
  // max_tokens first, then the newer names, whichever is an unsigned integer.
  for (const int key : {kMaxTokens, kMaxCompletion, kMaxOutput}) {
    uint64_t max_tokens = 0;
    if (seen[key] && !found[key].get_uint64().get(max_tokens)) {
      ctx.max_tokens = max_tokens;
      break;
    }
  }
  return std::nullopt;
}

auth::AuthResult ProxyHandler::authenticate(const RequestContext& ctx) const {
  auto& req = ctx.exchange.request();
  return auth_.authenticate(req[bhttp::field::authorization], req["x-api-key"],
                            state_.keys != nullptr);
}

bool ProxyHandler::needs_key_lookup(const auth::AuthResult& who) const {
  return who.outcome != auth::AuthOutcome::kMissing && !who.presented_sha256.empty() &&
         state_.keys != nullptr;
}

asio::awaitable<std::optional<Reject>> ProxyHandler::look_up_key(RequestContext& ctx,
                                                                 auth::AuthResult& who) {
  // Not a key of the config: maybe one issued through the admin API.
  auto found = co_await state_.keys->find(state_redis(ctx), who.presented_sha256);
  switch (found.status) {
    case auth::KeyStatus::kActive:
      who.outcome = auth::AuthOutcome::kOk;
      who.identity = auth::identity_of(std::move(found.record));
      break;
    case auth::KeyStatus::kRevoked:
      co_return Reject{401, "this API key has been revoked", "invalid_api_key"};
    case auth::KeyStatus::kExpired:
      co_return Reject{401, "this API key has expired", "invalid_api_key"};
    case auth::KeyStatus::kUnavailable:
      // Only an open gateway may serve a key it cannot check (as the open tenant).
      if (who.outcome != auth::AuthOutcome::kOk) {
        co_return Reject{503,
                         "cannot verify the API key right now (the key store is unreachable); "
                         "retry shortly",
                         "key_store_unavailable", "1"};
      }
      break;
    case auth::KeyStatus::kUnknown:
      break;  // open gateway: the open tenant; otherwise invalid below
  }
  co_return std::nullopt;
}

std::optional<Reject> ProxyHandler::accept_identity(RequestContext& ctx, auth::AuthResult& who) {
  if (who.outcome == auth::AuthOutcome::kMissing) {
    return Reject{401, "missing API key: send Authorization: Bearer <key> or x-api-key",
                  "missing_api_key"};
  }
  if (who.outcome != auth::AuthOutcome::kOk) {
    return Reject{401, "invalid API key", "invalid_api_key"};
  }
  ctx.identity = std::move(who.identity);
  if (!ctx.model.empty() && !ctx.identity.model_allowed(ctx.model)) {
    return Reject{403, "this key may not use model " + ctx.model, "model_not_allowed"};
  }
  return std::nullopt;
}

asio::awaitable<std::optional<Reject>> ProxyHandler::auth_phase(RequestContext& ctx) {
  auto who = authenticate(ctx);
  std::optional<Reject> reject;
  if (needs_key_lookup(who)) reject = co_await look_up_key(ctx, who);
  if (!reject) reject = accept_identity(ctx, who);
  co_return reject;
}

std::optional<Reject> ProxyHandler::route_phase(RequestContext& ctx) {
  if (ctx.model.empty()) {
    // GET /v1/models and model-less passthrough go to the default provider of the API.
    const auto* p = router_.default_provider(endpoint_api(ctx.endpoint));
    if (p == nullptr) p = router_.default_provider(config::ProviderType::kAnthropic);
    if (p != nullptr) ctx.hops.push_back(Hop{p, ""});
    return std::nullopt;
  }
  const Provider* mismatch = nullptr;
  ctx.hops = router_.resolve(ctx.endpoint, ctx.model, &mismatch);
  if (ctx.hops.empty() && mismatch != nullptr) {
    return Reject{400,
                  "model " + ctx.model + " is served by provider " + mismatch->config->name +
                      ", which speaks a different API than " +
                      std::string(endpoint_name(ctx.endpoint)) + "; call it through its own API",
                  "api_mismatch"};
  }
  return std::nullopt;
}

asio::awaitable<void> ProxyHandler::handle(http::Exchange& exchange) {
  RequestContext ctx(exchange);
  ctx.request_id = pick_request_id(exchange.request()["x-request-id"]);
  exchange.add_response_header("x-request-id", ctx.request_id);

  const auto target = exchange.request().target();
  const bool sessions = target.starts_with(kSessionsPath);
  if (sessions || (state_.responses != nullptr && target.starts_with(kResponsesPath))) {
    // The client's own sessions and stored responses: GET / DELETE /v1/sessions/{id},
    // /v1/responses/{id}.
    auto denied = co_await auth_phase(ctx);
    if (denied) {
      ctx.error_code = denied->code;
      co_await exchange.respond_error(denied->status, denied->message, denied->code,
                                      denied->retry_after);
    } else if (sessions) {
      co_await sessions_api(ctx, target.substr(kSessionsPath.size()));
    } else {
      co_await responses_api(ctx, target.substr(kResponsesPath.size()));
    }
    access_log_.write(ctx);
    co_return;
  }
  // Each phase that may need Redis is entered as a coroutine only when it does (a coroutine
  // frame and its resumption cost more than the checks): see the *_prepare/_local parts.
  std::optional<Reject> reject = parse_phase(ctx);
  if (!reject) {
    auto who = authenticate(ctx);
    if (needs_key_lookup(who)) reject = co_await look_up_key(ctx, who);
    if (!reject) reject = accept_identity(ctx, who);
  }
  if (!reject && state_prepare(ctx)) reject = co_await state_phase(ctx);
  if (!reject) reject = route_phase(ctx);
  if (!reject) {
    bool wanted = false;
    reject = cache_key_prepare(ctx, wanted);
    if (!reject && wanted) {
      const std::size_t thread = exchange.thread_index();
      const std::string_view ns = exchange.request()["x-redline-cache-namespace"];
      auto generation = cache_->known_generation(thread, ctx.identity.tenant, ns);
      if (!generation) {
        generation = co_await cache_->load_generation(thread, ctx.identity.tenant, ns);
      }
      reject = cache_key_finish(ctx, generation);
    }
  }
  std::optional<cache::Lookup> prefetched;
  if (!reject && workers_[exchange.thread_index()]->limiter) {
    reject = co_await rate_limit_phase(ctx, prefetched);
  }
  if (reject && !reject->body.empty()) {
    ctx.error_code = reject->code;
    http::Response res{static_cast<bhttp::status>(reject->status), 11};
    res.set(bhttp::field::content_type, "application/json");
    res.body() = std::move(reject->body);
    co_await exchange.respond(res);
  } else if (reject) {
    ctx.error_code = reject->code;
    co_await exchange.respond_error(reject->status, reject->message, reject->code,
                                    reject->retry_after);
  } else if (ctx.endpoint == Endpoint::kResponses) {
    co_await responses_phase(ctx);
  } else if (ctx.cacheable) {
    co_await cached_upstream_phase(ctx, std::move(prefetched));
  } else if (!ctx.reservation.empty() || ctx.spender || ctx.capture_answer) {
    std::function<asio::awaitable<void>()> before_end;
    if (ctx.capture_answer) before_end = [this, &ctx] { return session_append(ctx); };
    UsageSink sink(exchange, ctx.capture_answer ? &ctx : nullptr, std::move(before_end));
    const ForwardInput in{exchange.request(), ctx.request_id, ctx.endpoint,
                          ctx.model,          ctx.hops,       ctx.body(),
                          ctx.include_usage};
    co_await workers_[exchange.thread_index()]->forwarder.forward(in, ctx, sink);
    ctx.usage = sink.usage();
  } else {
    ExchangeSink sink(exchange);
    const ForwardInput in{exchange.request(), ctx.request_id, ctx.endpoint,
                          ctx.model,          ctx.hops,       ctx.body(),
                          ctx.include_usage};
    co_await workers_[exchange.thread_index()]->forwarder.forward(in, ctx, sink);
  }
  if (!ctx.reservation.empty() && !ctx.reservation.settled) {
    const auto executor = co_await asio::this_coro::executor;
    settle_phase(ctx, executor);
  }
  if (!reject) {
    if (const auto model = spend_model(ctx); !model.empty() && ctx.usage) {
      co_await record_spend(ctx, model);
    }
    // Normally appended before the end of the answer went out; this catches the rest.
    if (exchange.status() == 200 && !ctx.session_id.empty() && !ctx.session_appended) {
      co_await session_append(ctx);
    }
  }
  access_log_.write(ctx);
  record_metrics(ctx);
}

// --- rate limits ---------------------------------------------------------------------------

asio::awaitable<std::optional<Reject>> ProxyHandler::rate_limit_phase(
    RequestContext& ctx, std::optional<cache::Lookup>& prefetched) {
  auto& worker = *workers_[ctx.exchange.thread_index()];
  if (!worker.limiter) co_return std::nullopt;
  auto& limiter = *worker.limiter;
  ratelimit::RequestFacts facts;
  facts.key_id = ctx.identity.key_id;
  facts.tenant = ctx.identity.tenant;
  facts.model = ctx.model;
  facts.ip = ctx.exchange.client_ip();
  facts.estimated_tokens = ratelimit::estimate_tokens(ctx.body(), ctx.max_tokens,
                                                      limiter.options().output_cap(ctx.model));
  static const std::vector<config::RateLimitPolicy> kNone;
  const std::span<const config::RateLimitPolicy> own(
      ctx.identity.rate_limits ? *ctx.identity.rate_limits : kNone);
  ratelimit::Decision decision;
  const bool lookup_too =
      ctx.cacheable && !ctx.cache_refresh && ctx.endpoint != Endpoint::kEmbeddings;
  if (lookup_too) {
    // The decision and the cache lookup (which also takes the coalescing lock on a miss) share
    // one round trip of latency.
    const auto mode = cache_->config().coalesce ? cache::LookupMode::kReadOrLock
                                                : cache::LookupMode::kRead;
    const auto t0 = Clock::now();
    const auto executor = co_await asio::this_coro::executor;
    common::Started<cache::Lookup> lookup(
        executor, cache_->lookup(ctx.exchange.thread_index(), ctx.cache_key, mode));
    decision = co_await limiter.check(facts, own);
    if (!lookup.done()) co_await lookup.wait();
    redis_waited(ctx, "ratelimit_check+cache_lookup", t0);
    prefetched = lookup.take();
    // Replica reads and two-step locking take a second round trip for the lock.
    if (prefetched->round_trips > 1) ctx.redis_round_trips += prefetched->round_trips - 1;
  } else {
    const auto t0 = Clock::now();
    decision = co_await limiter.check(facts, own);
    redis_waited(ctx, "ratelimit_check", t0);
  }
  for (auto& h : decision.headers) ctx.exchange.add_response_header(h.name, std::move(h.value));
  ctx.ratelimit_outcome = ratelimit::outcome_name(decision.outcome);
  ctx.ratelimit_policy = decision.policy_id;
  if (!decision.admitted()) {
    if (prefetched && !prefetched->lock_marker.empty()) {
      // Refused: let go of the coalescing lock the lookup took (others may be waiting on it).
      auto exec = co_await asio::this_coro::executor;
      asio::co_spawn(exec,
                     cache_->release_lock(ctx.exchange.thread_index(), ctx.cache_key,
                                          std::move(prefetched->lock_marker)),
                     asio::detached);
    }
    prefetched.reset();
    Reject r{decision.status(), decision.message,
             decision.status() == 429 ? "rate_limit_exceeded" : "rate_limiter_unavailable"};
    r.body = decision.error_body();
    co_return r;
  }
  ctx.reservation = std::move(decision.reservation);
  co_return std::nullopt;
}

void ProxyHandler::settle_phase(RequestContext& ctx, const asio::any_io_executor& executor) {
  if (ctx.reservation.empty() || ctx.reservation.settled) return;
  const bool from_cache = ctx.cache_status == cache::CacheStatus::kHit ||
                          ctx.cache_status == cache::CacheStatus::kCoalesced;
  uint64_t used = ctx.usage ? ctx.usage->total() : 0;
  if (!from_cache && ctx.exchange.status() != 200) {
    used = 0;  // no answer, no tokens
  } else if (!from_cache && !ctx.usage) {
    return;  // a stream cut short, usage unknown: the estimate stands
  }
  auto& limiter = *workers_[ctx.exchange.thread_index()]->limiter;
  // Held for the thread's next check of the same slot (rate_limit_options.settle_delay).
  if (limiter.settle_held(ctx.reservation, from_cache ? limiter.cache_hit_charge(used) : used,
                          executor)) {
    return;
  }
  pending_settles_.fetch_add(1);
  // co_spawn queues the coroutine's start now; it runs (and queues its script call on this
  // thread's Redis connection) when the caller next suspends, ahead of the completion of the
  // client connection's next read, hence before that next request's check.
  asio::co_spawn(executor,
                 settle(ctx.exchange.thread_index(), std::move(ctx.reservation), from_cache, used),
                 asio::detached);
}

asio::awaitable<void> ProxyHandler::settle(std::size_t thread, ratelimit::Reservation reservation,
                                           bool from_cache, uint64_t used) {
  struct Done {
    std::atomic<std::size_t>& pending;
    ~Done() { pending.fetch_sub(1); }
  } done{pending_settles_};
  auto& limiter = *workers_[thread]->limiter;
  const auto t0 = Clock::now();
  if (from_cache) {
    co_await limiter.settle_cache_hit(reservation, used);
  } else {
    co_await limiter.settle(reservation, used);
  }
  redis_timed("ratelimit_settle", t0);
}

namespace {
// The request metrics' series for one combination of route, model, status and provider,
// remembered per thread: consecutive requests usually share it, and resolving the label
// values of eight families costs ~2k instructions per request.
struct RequestSeries {
  bool valid = false;
  Endpoint endpoint{};
  int status = 0;
  std::string model;
  const Provider* provider = nullptr;
  metrics::Counter requests, round_trips, tokens_prompt, tokens_completion;
  metrics::Histogram duration, overhead, upstream, ttfb;
};
}  // namespace

void ProxyHandler::record_metrics(const RequestContext& ctx) {
  namespace standard = metrics::standard;
  const auto now = Clock::now();
  const std::string_view route = endpoint_name(ctx.endpoint);
  const std::string_view model = ctx.model.empty() ? std::string_view("none") : ctx.model;
  const std::string_view provider_name =
      ctx.provider ? std::string_view(ctx.provider->config->name) : std::string_view("none");
  static auto& round_trips = metrics::counter(
      "redline_redis_round_trips_total",
      "Redis round trips of latency requests waited for before their answer (concurrent "
      "operations count once); per request: divide by redline_requests_total.",
      {"route"});
  thread_local RequestSeries m;
  const int status_code = ctx.exchange.status();
  if (!m.valid || m.endpoint != ctx.endpoint || m.status != status_code || m.model != model ||
      m.provider != ctx.provider) {
    const std::string status = std::to_string(status_code);
    m.requests = standard::requests().labels(route, model, status);
    m.round_trips = round_trips.labels(route);
    m.duration = standard::request_duration().labels(route);
    m.overhead = standard::gateway_overhead().labels(route);
    m.upstream = standard::upstream_duration().labels(provider_name);
    m.ttfb = standard::upstream_ttfb().labels(provider_name);
    m.tokens_prompt = standard::tokens().labels(model, "prompt");
    m.tokens_completion = standard::tokens().labels(model, "completion");
    m.endpoint = ctx.endpoint;
    m.status = status_code;
    m.model.assign(model);
    m.provider = ctx.provider;
    m.valid = true;
  }
  m.requests.inc();
  if (ctx.redis_round_trips > 0) m.round_trips.inc(ctx.redis_round_trips);
  m.duration.observe(now - ctx.start);
  Clock::duration upstream{};
  if (ctx.upstream_start != Clock::time_point{} && ctx.upstream_end >= ctx.upstream_start) {
    upstream = ctx.upstream_end - ctx.upstream_start;
    m.upstream.observe(upstream);
    if (ctx.upstream_first_byte >= ctx.upstream_start) {
      m.ttfb.observe(ctx.upstream_first_byte - ctx.upstream_start);
    }
  }
  if (ctx.attempts > 0) {
    static auto& retries = metrics::counter(
        "redline_upstream_retries_total",
        "Provider attempts beyond the first (same provider or fallbacks).", {"provider"});
    static auto& failures =
        metrics::counter("redline_upstream_failures_total",
                         "Requests whose last provider attempt failed at the transport level.",
                         {"provider", "failure"});
    static auto& fallbacks = metrics::counter(
        "redline_upstream_fallbacks_total",
        "Requests answered by a fallback rather than the model's own provider.", {"provider"});
    if (ctx.attempts > 1) {
      retries.labels(provider_name).inc(static_cast<uint64_t>(ctx.attempts - 1));
    }
    if (!ctx.upstream_failure.empty()) failures.labels(provider_name, ctx.upstream_failure).inc();
    if (ctx.provider && !ctx.hops.empty() && ctx.provider != ctx.hops.front().provider) {
      fallbacks.labels(provider_name).inc();
    }
  }
  if (now - ctx.start >= upstream) m.overhead.observe(now - ctx.start - upstream);
  if (!ctx.ratelimit_outcome.empty() && ctx.ratelimit_outcome != "unlimited") {
    // policy: the one that refused (or that was decided without Redis); "all" when admitted.
    standard::ratelimit_decisions()
        .labels(ctx.ratelimit_policy.empty() ? std::string_view("all")
                                             : std::string_view(ctx.ratelimit_policy),
                ctx.ratelimit_outcome)
        .inc();
  }
  // Tokens the provider counted for this request (cache hits and coalesced followers cost
  // nothing; spend and savings in dollars come with the price table).
  const bool provider_answered = ctx.cache_status != cache::CacheStatus::kHit &&
                                 ctx.cache_status != cache::CacheStatus::kCoalesced;
  if (provider_answered && ctx.usage) {  // in this order: a hit's usage is parsed on demand
    m.tokens_prompt.inc(ctx.usage->input_tokens);
    m.tokens_completion.inc(ctx.usage->output_tokens);
  }
  if (ctx.cacheable || ctx.cache_bypassed || ctx.cache_status != cache::CacheStatus::kBypass) {
    standard::cache_results()
        .labels(cache::cache_status_name(ctx.cache_status), cache::tier_name(ctx.cache_tier))
        .inc();
  }
}

// --- cache ---------------------------------------------------------------------------------

namespace {
bool cacheable_endpoint(Endpoint e) {
  return e == Endpoint::kChatCompletions || e == Endpoint::kCompletions ||
         e == Endpoint::kMessages || e == Endpoint::kEmbeddings;
}

// cache-control directives we honour: no-store (neither read nor write), no-cache (do not
// read, store the fresh answer).
void parse_cache_control(std::string_view v, bool& no_store, bool& no_cache) {
  while (!v.empty()) {
    auto comma = v.find(',');
    auto item = v.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (boost::beast::iequals(item, "no-store")) no_store = true;
    if (boost::beast::iequals(item, "no-cache")) no_cache = true;
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
}

bool valid_namespace(std::string_view ns) {
  if (ns.empty() || ns.size() > 64) return false;
  return std::all_of(ns.begin(), ns.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.' ||
           c == ':';
  });
}

// OpenAI streams carry usage only when asked; the gateway always asks (the cache entry then
// serves clients that want usage, and limits can settle) and strips it for clients that did not.
// A body without stream_options (the usual case) gets the member put in front of its own
// bytes, which go upstream as the client sent them: no parse, and no respelling of numbers
// (a parse and serialize through Boost.JSON writes 0.0 as 0E0 and 0.50 as 5E-1). A body that
// has stream_options (without include_usage) is rewritten through Boost.JSON.
std::string with_stream_usage(const std::string& body, bool has_stream_options) {
  constexpr std::string_view kSpace = " \t\r\n";
  const auto open = body.find_first_not_of(kSpace);
  if (!has_stream_options && open != std::string::npos && body[open] == '{') {
    const auto next = body.find_first_not_of(kSpace, open + 1);
    if (next != std::string::npos) {
      constexpr std::string_view kMember = R"("stream_options":{"include_usage":true})";
      std::string out;
      out.reserve(body.size() + kMember.size() + 1);
      out.append(body, 0, open + 1).append(kMember);
      if (body[next] != '}') out.push_back(',');
      out.append(body, open + 1);
      return out;
    }
  }
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return body;
  auto& o = v.as_object();
  auto* so = o.if_contains("stream_options");
  if (so != nullptr && so->is_object()) {
    so->as_object()["include_usage"] = true;
  } else {
    o["stream_options"] = boost::json::object{{"include_usage", true}};
  }
  return boost::json::serialize(v);
}
}  // namespace

struct ProxyHandler::FlightJob {
  http::Request request;  // a copy: the call may outlive the client that started it
  std::string request_id;
  Endpoint endpoint = Endpoint::kNotFound;
  std::string model;
  std::vector<Hop> hops;
  std::string body;  // sent upstream
  cache::CacheKey key;
  uint32_t ttl_seconds = 0;
  std::size_t thread = 0;
  bool registered = false;  // in flights_ (coalescing); refresh and no-cache calls are not
  // The cross-instance coalescing lock, as the lookup left it (kHeldByOther: wait for the
  // other instance's entry first), and our marker in c:<hex> (also one the lookup may have
  // written before Redis failed), deleted when no answer is stored over it.
  cache::LockState lock = cache::LockState::kNone;
  std::string lock_marker;
  // Redis round trips the flight waited for on the leader's behalf (polls for the entry).
  std::shared_ptr<std::atomic<uint32_t>> waited_round_trips;
  bool refresh_ahead = false;
  int64_t trigger_created_ms = 0;  // refresh-ahead: the entry that was found due
  bool refresh = false;            // cache-control: no-cache
  std::string refresh_token;
};

std::optional<Reject> ProxyHandler::cache_key_prepare(RequestContext& ctx, bool& wanted) {
  wanted = false;
  if (cache_ == nullptr || !cacheable_endpoint(ctx.endpoint) || ctx.hops.empty()) {
    return std::nullopt;
  }
  auto& req = ctx.exchange.request();
  bool no_store = false, no_cache = false;
  parse_cache_control(req[bhttp::field::cache_control], no_store, no_cache);
  const auto& cfg = cache_->config();
  if (no_store || !ctx.identity.cache ||
      (!cfg.cache_nonzero_temperature && ctx.temperature && *ctx.temperature > 0)) {
    // A cacheable request the cache was told to leave alone.
    ctx.exchange.add_response_header("x-redline-cache", "bypass");
    ctx.cache_bypassed = true;
    return std::nullopt;
  }
  ctx.cache_ttl = static_cast<uint32_t>(cfg.ttl.count());
  if (auto ttl_header = req["x-redline-cache-ttl"]; !ttl_header.empty()) {
    uint64_t ttl = 0;
    auto [p, ec] = std::from_chars(ttl_header.data(), ttl_header.data() + ttl_header.size(), ttl);
    if (ec != std::errc() || p != ttl_header.data() + ttl_header.size() || ttl == 0 ||
        ttl > static_cast<uint64_t>(cfg.max_ttl.count())) {
      return Reject{400,
                       "x-redline-cache-ttl must be whole seconds from 1 to " +
                           std::to_string(cfg.max_ttl.count()),
                       "invalid_cache_ttl"};
    }
    ctx.cache_ttl = static_cast<uint32_t>(ttl);
  }
  std::string_view ns = req["x-redline-cache-namespace"];
  if (!ns.empty() && !valid_namespace(ns)) {
    return Reject{400,
                     "x-redline-cache-namespace must be 1-64 characters of letters, digits and "
                     "- _ . :",
                     "invalid_cache_namespace"};
  }
  ctx.cache_refresh = no_cache;
  wanted = true;
  return std::nullopt;
}

std::optional<Reject> ProxyHandler::cache_key_finish(RequestContext& ctx,
                                                     std::optional<uint64_t> generation) {
  auto& req = ctx.exchange.request();
  const std::string_view ns = req["x-redline-cache-namespace"];
  if (!generation) {
    // Redis cannot say which generation is current: answer without the cache.
    ctx.cache_status = cache::CacheStatus::kMiss;
    ctx.exchange.add_response_header("x-redline-cache", "miss");
    return std::nullopt;
  }
  const Hop& hop = ctx.hops.front();
  cache::KeyRequest kr;
  kr.tenant = ctx.identity.tenant;
  kr.cache_namespace = ns;
  kr.generation = *generation;
  kr.endpoint = endpoint_name(ctx.endpoint);
  kr.provider = hop.provider->config->name;
  kr.model = hop.model;
  kr.anthropic_version = req["anthropic-version"];
  kr.anthropic_beta = req["anthropic-beta"];
  kr.openai_beta = req["openai-beta"];
  kr.body = ctx.body();
  auto key = cache::compute_cache_key(kr);
  if (key.error != cache::KeyError::kNone) {
    return Reject{
        400,
        std::string(cache::key_error_message(key.error)) +
            (key.detail.empty() ? "" : ": " + key.detail),
        key.error == cache::KeyError::kDuplicateKey ? "duplicate_key" : "invalid_json"};
  }
  ctx.cache_key = key.key;
  ctx.cache_namespace = std::string(ns);
  ctx.cache_generation = *generation;
  ctx.cacheable = true;
  ctx.exchange.add_response_header("x-redline-cache-key", key.key.hex());
  return std::nullopt;
}

std::shared_ptr<ProxyHandler::FlightJob> ProxyHandler::make_job(const RequestContext& ctx,
                                                                bool registered) {
  auto job = std::make_shared<FlightJob>();
  job->request = ctx.exchange.request();
  job->request.body().clear();
  job->request_id = ctx.request_id;
  job->endpoint = ctx.endpoint;
  job->model = ctx.model;
  job->hops = ctx.hops;
  const auto& body = ctx.body();
  const bool openai_stream = ctx.stream && (ctx.endpoint == Endpoint::kChatCompletions ||
                                            ctx.endpoint == Endpoint::kCompletions);
  job->body =
      openai_stream && !ctx.include_usage ? with_stream_usage(body, ctx.has_stream_options) : body;
  job->key = ctx.cache_key;
  job->ttl_seconds = ctx.cache_ttl;
  job->thread = ctx.exchange.thread_index();
  job->registered = registered;
  job->waited_round_trips = std::make_shared<std::atomic<uint32_t>>(0);
  job->refresh = ctx.cache_refresh;
  return job;
}

asio::awaitable<void> ProxyHandler::cached_upstream_phase(RequestContext& ctx,
                                                          std::optional<cache::Lookup> prefetched) {
  if (ctx.endpoint == Endpoint::kEmbeddings) {
    co_await embeddings_phase(ctx);
    co_return;
  }
  auto& ex = ctx.exchange;
  const std::size_t thread = ex.thread_index();
  const bool coalesce = !ctx.cache_refresh && cache_->config().coalesce;
  cache::Lookup found;  // the coalescing lock state of a miss, too
  if (!ctx.cache_refresh) {
    // (No co_await inside a conditional expression: g++ 12 miscompiles it.)
    if (prefetched) {
      found = std::move(*prefetched);
    } else {
      const auto mode = coalesce ? cache::LookupMode::kReadOrLock : cache::LookupMode::kRead;
      const auto t0 = Clock::now();
      found = co_await cache_->lookup(thread, ctx.cache_key, mode);
      if (found.round_trips > 0) {  // an L1 hit costs none
        redis_waited(ctx, "cache_lookup", t0);
        ctx.redis_round_trips += found.round_trips - 1u;
      }
    }
    if (found.entry) {
      if (ctx.capture_answer) {
        ctx.answer_streamed = found.entry->streamed;
        ctx.answer_body = found.entry->body;
        ctx.answer_events = found.entry->events;
        co_await session_append(ctx);  // before the answer goes out
      }
      ex.add_response_header("x-redline-cache", "hit");
      const int64_t now = cache::now_unix_ms();
      const int64_t age_s = std::max<int64_t>(0, (now - found.entry->created_unix_ms) / 1000);
      ex.add_response_header("age", std::to_string(age_s));
      if (co_await serve_entry(ex, ctx.endpoint, *found.entry, ctx.stream, ctx.include_usage)) {
        ctx.cache_status = cache::CacheStatus::kHit;
        ctx.cache_tier = found.tier;
        if (cache_->config().mode == config::CacheMode::kRefreshAhead &&
            cache_->should_refresh(thread, ctx.cache_key, *found.entry, now)) {
          auto job = make_job(ctx, false);
          job->refresh_ahead = true;
          job->trigger_created_ms = found.entry->created_unix_ms;
          auto flight = std::make_shared<Flight>(ctx.endpoint, false);
          auto exec = co_await asio::this_coro::executor;
          asio::co_spawn(exec, run_flight(flight, job), asio::detached);
        }
        ctx.usage.defer(std::move(*found.entry));
        co_return;
      }
      // An entry that cannot be served in this form (e.g. embeddings asked as a stream):
      // answer from the provider and store the fresh answer.
    }
  }
  std::shared_ptr<Flight> flight;
  bool leader = true;
  if (coalesce) {
    std::tie(flight, leader) = flights_.join_or_create(ctx.cache_key.digest, ctx.endpoint);
  } else {
    flight = std::make_shared<Flight>(ctx.endpoint, true);
  }
  if (!leader && !found.lock_marker.empty()) {
    // Our lookup took the lock, but this instance already has a call (or a wait for another
    // instance's answer) for the key: give the lock up at once, so a leader waiting on the
    // key sees it gone and calls the provider instead of waiting out coalesce_wait.
    auto exec = co_await asio::this_coro::executor;
    asio::co_spawn(exec, cache_->release_lock(thread, ctx.cache_key, std::move(found.lock_marker)),
                   asio::detached);
  }
  ctx.cache_status = !leader             ? cache::CacheStatus::kCoalesced
                     : ctx.cache_refresh ? cache::CacheStatus::kRefresh
                                         : cache::CacheStatus::kMiss;
  ex.add_response_header("x-redline-cache",
                         std::string(cache::cache_status_name(ctx.cache_status)));
  Flight::ServeOptions serve_options{ctx.stream, ctx.include_usage, {}};  // named: g++ 12
  if (ctx.capture_answer) {
    // The session turn is stored before the end of the answer reaches the client.
    serve_options.before_end = [this, &ctx, f = flight.get()] {
      if (f->complete()) {
        auto answer = f->to_entry(0, 0);
        ctx.answer_streamed = answer.streamed;
        ctx.answer_body = std::move(answer.body);
        ctx.answer_events = std::move(answer.events);
      }
      return session_append(ctx);
    };
  }
  if (leader) {
    auto job = make_job(ctx, coalesce);
    if (coalesce) {
      job->lock = found.lock;
      job->lock_marker = std::move(found.lock_marker);
    }
    // Attach before the call starts, so it is not cancelled for want of listeners.
    flight->attach();
    auto exec = co_await asio::this_coro::executor;
    asio::co_spawn(exec, run_flight(flight, job), asio::detached);
    co_await flight->serve(ex, serve_options, ctx);
    flight->detach();
    ctx.redis_round_trips += job->waited_round_trips->load();
  } else {
    cache_->stats().coalesced_local.fetch_add(1, std::memory_order_relaxed);
    co_await flight->serve(ex, serve_options, ctx);
  }
  ctx.usage = flight->usage();
}

asio::awaitable<void> ProxyHandler::run_flight(std::shared_ptr<Flight> flight,
                                               std::shared_ptr<FlightJob> job) {
  auto& stats = cache_->stats();
  const auto& cfg = cache_->config();
  struct Cleanup {  // whatever happens, consumers are released and the flight unlisted
    ProxyHandler* self;
    Flight* flight;
    FlightJob* job;
    ~Cleanup() {
      flight->release();
      if (job->registered) self->flights_.remove(job->key.digest, flight);
    }
  } cleanup{this, flight.get(), job.get()};
  flight->set_producer(co_await asio::this_coro::executor);

  if (job->refresh_ahead) {
    auto token = co_await cache_->try_lock(job->thread, cache::CacheStore::LockKind::kRefresh,
                                           job->key, cfg.coalesce_lock_ttl);
    if (!token) co_return;  // another instance refreshes it
    job->refresh_token = *token;
    // Another instance may have refreshed it between our hit and our lock.
    auto created = co_await cache_->redis_created_ms(job->thread, job->key);
    if (created && *created > job->trigger_created_ms) {
      co_await cache_->unlock(job->thread, cache::CacheStore::LockKind::kRefresh, job->key,
                              job->refresh_token);
      job->refresh_token.clear();
      co_return;
    }
    stats.refreshes.fetch_add(1, std::memory_order_relaxed);
  } else if (job->lock == cache::LockState::kHeldByOther) {
    // Another instance is asking the provider the same question: wait for its answer (or
    // for the lock, should it give up).
    auto waited = co_await cache_->wait_for_entry(job->thread, job->key, cfg.coalesce_wait);
    job->waited_round_trips->fetch_add(waited.round_trips);
    if (waited.entry) {
      flight->publish_entry(*waited.entry);
      co_return;
    }
    job->lock_marker = std::move(waited.lock_marker);
  }

  // A shared call keeps usage in its stream (the flight strips it for clients that did not ask).
  const ForwardInput in{job->request, job->request_id, job->endpoint, job->model,
                        job->hops,    job->body,       true};
  co_await workers_[job->thread]->forwarder.forward(in, flight->outcome(), *flight);

  // An answer that will not be stored must not be shared with requests that arrive after it
  // finished: unlist the flight before its clients are let go.
  const bool complete = flight->complete();
  const bool too_large = complete && flight->payload_bytes() > cfg.max_entry_bytes;
  bool stored = false;  // the answer went over our lock marker (or is queued to)
  if (!complete || too_large) {
    if (job->registered) flights_.remove(job->key.digest, flight.get());
    (complete ? stats.not_stored_too_large : stats.not_stored_incomplete)
        .fetch_add(1, std::memory_order_relaxed);
  } else {
    const cache::Entry entry = flight->to_entry(cache::now_unix_ms(), job->ttl_seconds);
    // An explicit refresh (no-cache) is stored before its answer goes out, so the caller's
    // next request sees the fresh answer whatever the mode.
    const auto mode = job->refresh ? config::CacheMode::kWriteThrough : cfg.mode;
    switch (mode) {
      case config::CacheMode::kWriteThrough: {
        const auto t0 = Clock::now();
        // A failed store is counted; the answer goes out regardless.
        stored = co_await cache_->store(job->thread, job->key, entry);
        redis_timed("cache_store", t0);
        flight->release();
        break;
      }
      case config::CacheMode::kWriteBehind:
        // Our marker goes along: a SET that fails later releases it.
        stored = cache_->enqueue_store(job->thread, job->key, entry, job->lock_marker);
        flight->release();
        break;
      case config::CacheMode::kCacheAside:
      case config::CacheMode::kRefreshAhead: {
        // The entry goes into this thread's L1 before the clients are released (a client's
        // next request is a hit here; on other threads the listed, answered flight serves it
        // until Redis has it: FlightTable::answered), its SET to Redis after their answers
        // went out, in the same write as their rate-limit settle.
        std::string staged = cache_->stage_local(job->thread, job->key, entry);
        flight->release();
        const auto executor = co_await asio::this_coro::executor;
        co_await asio::post(executor, asio::use_awaitable);
        // Encoded for Redis (compressed when large) once the clients' writes went out.
        const redis::Command set = cache_->stage_remote(job->key, entry, std::move(staged));
        const auto t0 = Clock::now();
        stored = co_await cache_->send_store(job->thread, job->key, set);
        redis_timed("cache_store", t0);
        break;
      }
    }
  }
  flight->release();
  // A stored answer replaced our lock marker; otherwise the marker goes (compare-and-delete),
  // so instances waiting on it call the provider now rather than after coalesce_wait.
  if (!stored && !job->lock_marker.empty()) {
    co_await cache_->release_lock(job->thread, job->key, job->lock_marker);
  }
  if (!job->refresh_token.empty()) {
    co_await cache_->unlock(job->thread, cache::CacheStore::LockKind::kRefresh, job->key,
                            job->refresh_token);
  }
}

}  // namespace redline::proxy
