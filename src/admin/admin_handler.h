// The admin port's handler. Open (no token), read-only: GET /healthz (process up), GET /readyz
// (serving, and every Redis the gateway uses answered the health poller's latest round),
// GET /metrics (Prometheus
// text format), GET /admin/stats (JSON: latency percentiles over the last minute and since
// start, counters, gauges, the HTTP servers and every polled Redis node) and the dashboard at
// /. Everything else under /admin/ needs "Authorization: Bearer <admin.token>" (an empty
// token refuses them all with 403): GET /admin/slowlog, GET /admin/cache/stats and
// POST /admin/cache/purge. Unknown paths are 404.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/json/array.hpp>
#include <functional>
#include <string>

#include "cache/cache_store.h"
#include "config/config.h"
#include "http/server.h"
#include "metrics/registry.h"

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

 private:
  // nullopt when the request carries the admin token; else the status to answer (401/403).
  std::optional<int> refuse(const http::Request& req) const;

  std::string token_;
  metrics::Registry& registry_;
  boost::asio::awaitable<void> cache_admin(http::Exchange& ex, std::string_view path);

  // The /readyz answer: {"status":"ready"|"not_ready","config":"loaded",
  // "gateway":"serving"|"not_serving","redis":{"state":"up"|"down"|"pending",...}}.
  std::pair<bool, std::string> readiness() const;

  RedisNodes redis_nodes_;
  RedisReachability redis_reachability_;
  cache::CacheStore* cache_ = nullptr;
  std::atomic<bool> ready_{false};
};

// Exports an HTTP server's ServerStats as redline_http_* series labelled server=<name>, read
// at scrape time, while the returned registrations live.
std::vector<metrics::Registration> export_server_stats(const std::string& name,
                                                       const http::ServerStats& stats,
                                                       metrics::Registry& registry);

}  // namespace redline::admin
