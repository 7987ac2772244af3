// The admin port's handler. Open (no token), read-only: GET /healthz (process up), GET /readyz
// (serving, and every Redis the gateway uses answered the health poller's latest round),
// GET /metrics (Prometheus
// text format), GET /admin/stats (JSON: latency percentiles over the last minute and since
// start, counters, gauges, the HTTP servers and every polled Redis node) and the dashboard at
// /. Everything else under /admin/ needs "Authorization: Bearer <admin.token>" (an empty
// token refuses them all with 403): GET /admin/slowlog, GET /admin/cache/stats,
// POST /admin/cache/purge, and the state API (state_admin.cpp, docs/admin-api.md): keys
// (create, list, show, revoke, rotate), sessions, spend, rate-limit state, the running config
// with secrets redacted. Unknown paths are 404.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/json/array.hpp>
#include <functional>
#include <string>

#include "auth/key_store.h"
#include "budget/budget.h"
#include "cache/cache_store.h"
#include "config/config.h"
#include "http/server.h"
#include "metrics/registry.h"
#include "redis/client.h"
#include "session/session_store.h"

namespace redline::admin {

class AdminHandler : public http::Handler {
 public:
  explicit AdminHandler(std::string token = {}, metrics::Registry& registry = metrics::registry());
  boost::asio::awaitable<void> handle(http::Exchange& exchange) override;
  // false while the gateway is not serving (before start(), while draining): /readyz is 503.
  void set_ready(bool ready) { ready_.store(ready, std::memory_order_relaxed); }
  // Which Redis targets /readyz waits for and whether each answered the latest health poll
  // (nullopt: no round completed yet). Called on the admin thread for every /readyz. Unset:
  // readiness does not depend on Redis.
  using RedisReachability =
      std::function<std::vector<std::pair<std::string, std::optional<bool>>>()>;
  void set_redis_reachability(RedisReachability fn) { redis_reachability_ = std::move(fn); }
  // Where /admin/stats and /admin/slowlog get the Redis nodes from (the health poller);
  // called on the admin thread with true for /admin/slowlog (entries included). Set before
  // start(). Unset: no nodes.
  using RedisNodes = std::function<boost::json::array(bool with_slowlog)>;
  void set_redis_nodes(RedisNodes nodes) { redis_nodes_ = std::move(nodes); }
  // The response cache, for GET /admin/cache/stats and POST /admin/cache/purge (null: off).
  // The admin server runs on gateway thread 0, so the cache is used as thread 0.
  void set_cache(cache::CacheStore* cache) { cache_ = cache; }
  // The state the admin API manages. `redis` is a state Redis client on the admin thread
  // (gateway thread 0). Null members answer 404 for their endpoints.
  struct State {
    const config::Config* config = nullptr;
    redis::Client* redis = nullptr;
    auth::KeyStore* keys = nullptr;
    budget::Budgets* budgets = nullptr;
    session::SessionStore* sessions = nullptr;
  };
  void set_state(State state) {
    state_ = state;
    config_ = state.config;
  }

 private:
  // nullopt when the request carries the admin token; else the status to answer (401/403).
  std::optional<int> refuse(const http::Request& req) const;

  std::string token_;
  metrics::Registry& registry_;
  boost::asio::awaitable<void> cache_admin(http::Exchange& ex, std::string_view path);
  boost::asio::awaitable<void> state_admin(http::Exchange& ex, std::string_view path);

  // The /readyz answer: {"status":"ready"|"not_ready","config":"loaded",
  // "gateway":"serving"|"not_serving","redis":{"state":"up"|"down"|"pending",...}}.
  std::pair<bool, std::string> readiness() const;

  RedisNodes redis_nodes_;
  RedisReachability redis_reachability_;
  cache::CacheStore* cache_ = nullptr;
  State state_;
  const config::Config* config_ = nullptr;
  std::atomic<bool> ready_{false};
};

// The configuration as JSON with every secret (provider keys, admin token, Redis passwords,
// provider header values, key hashes beyond their 12-digit id) left out or redacted.
boost::json::object redacted_config(const config::Config& config);

// Exports an HTTP server's ServerStats as redline_http_* series labelled server=<name>, read
// at scrape time, while the returned registrations live.
std::vector<metrics::Registration> export_server_stats(const std::string& name,
                                                       const http::ServerStats& stats,
                                                       metrics::Registry& registry);

}  // namespace redline::admin
