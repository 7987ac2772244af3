// Admin port handler (see admin_handler.h).
#include "admin/admin_handler.h"

#include <boost/json.hpp>

#include "admin/dashboard.h"

namespace redline::admin {

namespace bhttp = boost::beast::http;

namespace {

// Compares without stopping at the first difference (the token is a secret).
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

}  // namespace

AdminHandler::AdminHandler(std::string token, metrics::Registry& registry)
    : token_(std::move(token)), registry_(registry) {}

std::optional<int> AdminHandler::refuse(const http::Request& req) const {
  if (token_.empty()) return 403;
  std::string_view auth = req[bhttp::field::authorization];
  constexpr std::string_view kBearer = "Bearer ";
  if (auth.size() <= kBearer.size() || !boost::beast::iequals(auth.substr(0, 7), kBearer)) {
    return 401;
  }
  if (!same_secret(auth.substr(kBearer.size()), token_)) return 401;
  return std::nullopt;
}

boost::asio::awaitable<void> AdminHandler::handle(http::Exchange& ex) {
  auto& req = ex.request();
  std::string_view path = req.target();
  if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  const bool purge = path == "/admin/cache/purge";
  if (purge && req.method() != bhttp::verb::post) {
    co_await ex.respond_error(405, "purge with POST /admin/cache/purge", "method_not_allowed");
    co_return;
  }
  // The state API checks its methods per endpoint, after the token.
  const bool state_api = path == "/admin/config" || path == "/admin/keys" ||
                         path.starts_with("/admin/keys/") || path == "/admin/sessions" ||
                         path.starts_with("/admin/sessions/") || path == "/admin/spend" ||
                         path == "/admin/ratelimits";
  if (!purge && !state_api && req.method() != bhttp::verb::get &&
      req.method() != bhttp::verb::head) {
    co_await ex.respond_error(405, "admin endpoints are read with GET", "method_not_allowed");
    co_return;
  }
  http::Response res{bhttp::status::ok, 11};
  res.set(bhttp::field::content_type, "application/json");
  res.set(bhttp::field::cache_control, "no-store");
  if (path == "/healthz") {
    res.body() = R"({"status":"ok"})";
  } else if (path == "/readyz") {
    auto [ready, body] = readiness();
    res.result(ready ? bhttp::status::ok : bhttp::status::service_unavailable);
    res.body() = std::move(body);
  } else if (path == "/" || path == "/index.html") {
    res.set(bhttp::field::content_type, "text/html; charset=utf-8");
    res.body() = std::string(dashboard_html());
  } else if (path == "/metrics") {
    res.set(bhttp::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res.body() = registry_.render();
  } else if (path == "/admin/stats") {
    auto stats = registry_.stats_object();
    stats["redis"] = redis_nodes_ ? redis_nodes_(false) : boost::json::array();
    res.body() = boost::json::serialize(stats);
  } else if (path.starts_with("/admin/")) {
    if (auto status = refuse(req)) {
      co_await ex.respond_error(*status,
                                *status == 403 ? "admin API disabled: admin.token is not set"
                                               : "admin API needs Authorization: Bearer <token>",
                                *status == 403 ? "admin_disabled" : "unauthorized");
      co_return;
    }
    if (path.starts_with("/admin/cache/")) {
      co_await cache_admin(ex, path);
      co_return;
    }
    if (state_api) {
      co_await state_admin(ex, path);
      co_return;
    }
    if (path == "/admin/slowlog") {
      boost::json::object o;
      o["nodes"] = redis_nodes_ ? redis_nodes_(true) : boost::json::array();
      res.body() = boost::json::serialize(o);
    } else {
      {
        const std::string message = "unknown admin path " + std::string(path);  // named: g++ 12
        co_await ex.respond_error(404, message, "not_found");
      }
      co_return;
    }
  } else {
    {
      const std::string message = "unknown admin path " + std::string(path);  // named: g++ 12
      co_await ex.respond_error(404, message, "not_found");
    }
    co_return;
  }
  co_await ex.respond(res);
}

std::pair<bool, std::string> AdminHandler::readiness() const {
  const bool serving = ready_.load(std::memory_order_relaxed);
  bool ready = serving;
  boost::json::object redis;
  if (redis_reachability_) {
    for (const auto& [name, reachable] : redis_reachability_()) {
      ready = ready && reachable.value_or(false);
      redis[name] = !reachable ? "pending" : *reachable ? "up" : "down";
    }
  }
  boost::json::object o;
  o["status"] = ready ? "ready" : "not_ready";
  o["config"] = "loaded";  // the gateway does not start with a config that fails to load
  o["gateway"] = serving ? "serving" : "not_serving";  // starting or draining
  o["redis"] = std::move(redis);
  return {ready, boost::json::serialize(o)};
}

boost::asio::awaitable<void> AdminHandler::cache_admin(http::Exchange& ex, std::string_view path) {
  if (cache_ == nullptr) {
    co_await ex.respond_error(404, "the response cache is off (cache.enabled: false)",
                              "cache_disabled");
    co_return;
  }
  http::Response res{bhttp::status::ok, 11};
  res.set(bhttp::field::content_type, "application/json");
  res.set(bhttp::field::cache_control, "no-store");
  if (path == "/admin/cache/stats") {
    auto& s = cache_->stats();
    boost::json::object o;
    auto put = [&](const char* name, const std::atomic<uint64_t>& v) {
      o[name] = v.load(std::memory_order_relaxed);
    };
    put("hits_l1", s.hits_l1);
    put("hits_l2", s.hits_l2);
    put("misses", s.misses);
    put("lookup_errors", s.lookup_errors);
    put("stores", s.stores);
    put("store_errors", s.store_errors);
    put("not_stored_too_large", s.not_stored_too_large);
    put("not_stored_incomplete", s.not_stored_incomplete);
    put("coalesced_local", s.coalesced_local);
    put("coalesced_remote", s.coalesced_remote);
    put("refreshes", s.refreshes);
    put("invalidations", s.invalidations);
    put("tracking_resets", s.tracking_resets);
    put("write_behind_dropped", s.write_behind_dropped);
    put("bytes_raw", s.bytes_raw);
    put("bytes_stored", s.bytes_stored);
    o["write_behind_pending"] = cache_->pending_writes();
    const double lookups =
        static_cast<double>(s.hits_l1.load() + s.hits_l2.load() + s.misses.load());
    o["hit_ratio"] =
        lookups > 0 ? static_cast<double>(s.hits_l1.load() + s.hits_l2.load()) / lookups : 0.0;
    res.body() = boost::json::serialize(o);
    co_await ex.respond(res);
    co_return;
  }
  if (path != "/admin/cache/purge") {
    {
      const std::string message = "unknown admin path " + std::string(path);  // named: g++ 12
      co_await ex.respond_error(404, message, "not_found");
    }
    co_return;
  }
  // {"key":"<32 hex>"} | {"tenant":"t"} | {"tenant":"t","namespace":"n"}
  boost::system::error_code ec;
  auto body = boost::json::parse(ex.request().body(), ec);
  const boost::json::object* o = ec ? nullptr : body.if_object();
  auto str = [&](const char* name) -> std::optional<std::string> {
    if (o == nullptr) return std::nullopt;
    const auto* v = o->if_contains(name);
    if (v == nullptr || !v->is_string()) return std::nullopt;
    return std::string(v->as_string());
  };
  auto key = str("key"), tenant = str("tenant"), ns = str("namespace");
  boost::json::object out;
  if (key && !tenant && !ns) {
    if (key->size() != 32) {
      co_await ex.respond_error(400, "key must be the 32 hex digits of x-redline-cache-key",
                                "invalid_request");
      co_return;
    }
    // deleted: false for an absent key and for one that holds only a coalescing lock marker
    // (a provider call in flight, left alone).
    const std::optional<bool> deleted = co_await cache_->purge_key(0, *key);
    if (!deleted) {
      co_await ex.respond_error(503, "the cache Redis did not answer; nothing was purged",
                                "redis_unavailable");
      co_return;
    }
    out["purged"] = "key";
    out["key"] = *key;
    out["deleted"] = *deleted;
  } else if (tenant && !key && !tenant->empty()) {
    std::optional<uint64_t> generation;  // (no co_await in a conditional: g++ 12)
    if (ns) {
      generation = co_await cache_->purge_namespace(0, *tenant, *ns);
    } else {
      generation = co_await cache_->purge_tenant(0, *tenant);
    }
    if (!generation) {
      co_await ex.respond_error(503, "the cache Redis did not answer; nothing was purged",
                                "redis_unavailable");
      co_return;
    }
    out["purged"] = ns ? "namespace" : "tenant";
    out["tenant"] = *tenant;
    if (ns) out["namespace"] = *ns;
    out["generation"] = *generation;
  } else {
    co_await ex.respond_error(
        400,
        R"(send {"key":"<32 hex>"}, {"tenant":"<tenant>"} or {"tenant":"<tenant>","namespace":"<name>"})",
        "invalid_request");
    co_return;
  }
  res.body() = boost::json::serialize(out);
  co_await ex.respond(res);
}

std::vector<metrics::Registration> export_server_stats(const std::string& name,
                                                       const http::ServerStats& stats,
                                                       metrics::Registry& registry) {
  std::vector<metrics::Registration> out;
  const auto* s = &stats;
  auto load = [](const auto& atomic) {
    return [&atomic] { return static_cast<double>(atomic.load(std::memory_order_relaxed)); };
  };
  auto gauge = [&](const char* metric, const char* help, auto fn) {
    out.push_back(registry.gauge(metric, help, {"server"}).labels(name).track(fn));
  };
  auto counter = [&](const char* metric, const char* help, auto fn) {
    out.push_back(registry.counter(metric, help, {"server"}).labels(name).track(fn));
  };
  gauge("redline_http_connections", "Open client connections.", load(s->connections));
  gauge("redline_http_requests_in_flight", "Requests being handled.", load(s->requests_in_flight));
  counter("redline_http_connections_accepted_total", "Client connections accepted.",
          load(s->connections_total));
  counter("redline_http_connections_rejected_total",
          "Connections refused with 503 at the connection limit.", load(s->connections_rejected));
  counter("redline_http_requests_total", "Requests read (every route, every status).",
          load(s->requests_total));
  counter("redline_http_limit_rejections_total",
          "Requests answered 400/408/413/431 by an HTTP limit.", load(s->limit_rejections));
  return out;
}

}  // namespace redline::admin
