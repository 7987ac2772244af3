// The proxy's request pipeline: the phases of DESIGN.md §5 run in order on one
// RequestContext, each a small function with one job that either lets the request go on
// or answers it (a Reject): parse+limits -> authenticate (config keys, then the KeyStore)
// -> session load and budget check -> route -> cache key -> rate limit + cache lookup ->
// upstream (shared per cache key: flight.h) -> cache store -> settle tokens, record spend,
// append the session turn -> log + metrics.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <vector>

#include "auth/authenticator.h"
#include "auth/key_store.h"
#include "budget/budget.h"
#include "cache/cache_store.h"
#include "config/config.h"
#include "http/server.h"
#include "proxy/access_log.h"
#include "proxy/context.h"
#include "proxy/flight.h"
#include "proxy/forwarder.h"
#include "proxy/router.h"
#include "ratelimit/limiter.h"
#include "responses/store.h"
#include "session/session_store.h"

namespace redline::proxy {

// Redis latency as the request path saw it (redline_redis_command_duration_seconds, labelled
// by operation): redis_waited() for a wait the client's answer depended on (also counted in
// ctx.redis_round_trips), redis_timed() for work after the answer.
void redis_timed(std::string_view operation, Clock::time_point start);
void redis_waited(RequestContext& ctx, std::string_view operation, Clock::time_point start);

// The state the gateway keeps in Redis besides the cache and the limits, owned by the app
// (the admin API uses them too). Null members are off.
struct StateServices {
  auth::KeyStore* keys = nullptr;
  budget::Budgets* budgets = nullptr;
  session::SessionStore* sessions = nullptr;
  responses::ResponsesStore* responses = nullptr;  // stored Responses API answers
};

class ProxyHandler : public http::Handler {
 public:
  static constexpr std::string_view kSessionsPath = "/v1/sessions/";
  static constexpr std::string_view kResponsesPath = "/v1/responses/";

  // `contexts`: the io_context of each server thread, by thread index.
  // `cache`: null when the cache is off.
  ProxyHandler(const config::Config& config, std::vector<asio::io_context*> contexts,
               AccessLog& access_log, cache::CacheStore* cache = nullptr,
               StateServices state = {});
  ~ProxyHandler() override;

  asio::awaitable<void> handle(http::Exchange& exchange) override;

  const Router& router() const { return router_; }
  // Drops pooled upstream connections; call before the io_contexts are destroyed.
  void shutdown();
  // Each thread's rate-limiter counters (empty when no policy is configured).
  std::vector<ratelimit::LimiterStats> limiter_stats() const;
  // Rate-limit settlements not yet acknowledged by Redis: settle calls started after an
  // answer went out, plus those the limiters hold for rate_limit_options.settle_delay (a
  // graceful stop waits for them like for queued cache writes).
  std::size_t pending_settles() const;

 private:
  struct Worker;  // per-thread state: upstream client and forwarder, state Redis, limiter
  redis::Client& state_redis(const RequestContext& ctx);
  Forwarder& forwarder(std::size_t thread);

  std::optional<Reject> parse_phase(RequestContext& ctx);
  // Authentication: the config's keys without I/O; a key the config does not know is looked
  // up among the issued ones (Redis) only when there is a key store. auth_phase does all.
  auth::AuthResult authenticate(const RequestContext& ctx) const;
  bool needs_key_lookup(const auth::AuthResult& who) const;
  asio::awaitable<std::optional<Reject>> look_up_key(RequestContext& ctx, auth::AuthResult& who);
  std::optional<Reject> accept_identity(RequestContext& ctx, auth::AuthResult& who);
  asio::awaitable<std::optional<Reject>> auth_phase(RequestContext& ctx);
  // Sets the budget subject; true when state_phase has Redis work (a session to load, a
  // budget to check).
  bool state_prepare(RequestContext& ctx);
  // Loads the session and merges its history into the body; checks the budgets.
  asio::awaitable<std::optional<Reject>> state_phase(RequestContext& ctx);
  asio::awaitable<std::optional<Reject>> session_load(RequestContext& ctx);
  asio::awaitable<std::optional<Reject>> budget_check(RequestContext& ctx);
  // After the answer: the spend (or the saving of a cache hit) and the session turn. A
  // request's spend is counted at spend_model(ctx); empty = nothing to count (no spender, not
  // a 200, no price and no budget limiting the spender), checked before the answer's usage is
  // read and before a coroutine is started.
  std::string_view spend_model(const RequestContext& ctx) const;
  asio::awaitable<void> record_spend(RequestContext& ctx, std::string_view model);
  asio::awaitable<void> session_append(RequestContext& ctx);
  // GET / DELETE /v1/sessions/{id} with the client's own key.
  asio::awaitable<void> sessions_api(RequestContext& ctx, std::string_view id);
  // POST /v1/responses for every provider (responses_api.cpp).
  asio::awaitable<void> responses_phase(RequestContext& ctx);
  // GET / DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items.
  asio::awaitable<void> responses_api(RequestContext& ctx, std::string_view rest);
  std::optional<Reject> route_phase(RequestContext& ctx);
  // Request, latency and cache metrics (metrics/standard.h), after the answer.
  void record_metrics(const RequestContext& ctx);
  // Decides whether the request uses the cache (`wanted`: its key is to be computed once the
  // namespace generation is known); may reject (400).
  std::optional<Reject> cache_key_prepare(RequestContext& ctx, bool& wanted);
  // Computes the key with the generation (nullopt: Redis could not tell, no cache).
  std::optional<Reject> cache_key_finish(RequestContext& ctx, std::optional<uint64_t> generation);
  // Serves the request: from the cache, or through a (possibly shared) provider call.
  asio::awaitable<void> cached_upstream_phase(RequestContext& ctx,
                                              std::optional<cache::Lookup> prefetched);
  // Decides the rate limits (sharing the round trip with the cache lookup when both apply).
  asio::awaitable<std::optional<Reject>> rate_limit_phase(RequestContext& ctx,
                                                          std::optional<cache::Lookup>& prefetched);
  // Settles reserved tokens with the provider's usage once the answer is out: started here
  // (its script call reaches this thread's Redis connection before the client connection's
  // next request is handled, so one thread's settle and next check reach Redis in order),
  // not waited for (the next request on the connection does not wait a round trip).
  void settle_phase(RequestContext& ctx, const asio::any_io_executor& executor);
  asio::awaitable<void> settle(std::size_t thread, ratelimit::Reservation reservation,
                               bool from_cache, uint64_t used);
  // Embeddings are cached per input (embeddings.cpp).
  asio::awaitable<void> embeddings_phase(RequestContext& ctx);
  struct FlightJob;
  asio::awaitable<void> run_flight(std::shared_ptr<Flight> flight, std::shared_ptr<FlightJob> job);
  std::shared_ptr<FlightJob> make_job(const RequestContext& ctx, bool registered);

  const config::Config& config_;
  Router router_;
  auth::Authenticator auth_;
  AccessLog& access_log_;
  cache::CacheStore* cache_;
  StateServices state_;
  std::shared_ptr<ratelimit::SharedLimiterState> limiter_shared_;
  FlightTable flights_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<std::size_t> pending_settles_{0};
};

}  // namespace redline::proxy
