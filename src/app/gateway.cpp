// Gateway lifecycle (see gateway.h). Shutdown order matters: servers stop accepting,
// in-flight requests finish (bounded), threads stop, and only then are the io_contexts
// destroyed (which frees any coroutine still parked on them) before the servers.
#include "app/gateway.h"

#include "cache/cache_metrics.h"

#include <spdlog/spdlog.h>

#include "metrics/process.h"
#include "metrics/standard.h"
#include "redis/config_options.h"
#include "redis/connection.h"

namespace redline::app {

namespace {

// Keeps the last-minute latency windows rotating even when nobody reads /admin/stats.
constexpr auto kNoThrow = boost::asio::as_tuple(boost::asio::use_awaitable);

boost::asio::awaitable<void> tick_metrics() {
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
  while (true) {
    timer.expires_after(metrics::HistogramFamily::kSlot);
    auto [ec] = co_await timer.async_wait(kNoThrow);
    if (ec) co_return;
    metrics::registry().tick();
  }
}

// The model label of every metric takes the configured model names (routes, fallbacks and
// the price table); others read "other".
void restrict_model_label(const config::Config& config) {
  std::vector<std::string> models;
  for (const auto& m : config.models) {
    models.push_back(m.name);
    if (!m.upstream_model.empty()) models.push_back(m.upstream_model);
    models.insert(models.end(), m.fallbacks.begin(), m.fallbacks.end());
  }
  for (const auto& [model, price] : config.prices) models.push_back(model);  // priced = known
  if (!models.empty()) metrics::registry().restrict_label("model", std::move(models));
}

// Every Redis the gateway uses, for the health poller: the state Redis, and the cache Redis
// when it is a separate deployment.
metrics::RedisHealthOptions redis_health_options(const config::Config& config) {
  metrics::RedisHealthOptions o;
  o.interval = config.admin.redis_poll_interval;
  o.timeout = config.admin.redis_poll_timeout;
  auto add = [&](const char* name, const config::RedisConfig& rc) {
    metrics::RedisTarget t;
    t.name = name;
    t.cluster = rc.mode == config::RedisMode::kCluster;
    t.urls = rc.urls;
    t.connection.ca_file = rc.ca_file;
    o.targets.push_back(std::move(t));
  };
  add("state", config.redis);
  if (config.cache.redis) add("cache", *config.cache.redis);
  return o;
}

// A host that only this machine can reach: 127.0.0.0/8, ::1, localhost, a Unix socket path.
bool loopback_host(const std::string& host) {
  if (host == "localhost" || host == "::1" || host == "[::1]" || host.starts_with("/")) {
    return true;
  }
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(host, ec);
  return !ec && addr.is_loopback();
}

// Start-up warnings that need no Redis round trip: a Redis URL without a password on an
// address other machines can reach (anyone on that network can read keys and sessions).
void warn_about_redis_urls(const config::Config& config) {
  auto check = [](const char* role, const config::RedisConfig& rc) {
    for (const auto& url : rc.urls) {
      auto parsed = redis::parse_url(url);
      if (!parsed.ok()) continue;  // the config validator already refused it
      if (parsed->password.empty() && !loopback_host(parsed->host)) {
        spdlog::warn(
            "SECURITY: the {} Redis {}:{} is not on a loopback address and its URL carries no "
            "password: anyone who can reach it can read and change keys, sessions and spend. "
            "Use an ACL user (redis://user:password@host) and TLS (rediss://); see "
            "docs/security.md",
            role, parsed->host, parsed->port);
      }
    }
  };
  check("state", config.redis);
  if (config.cache.enabled && config.cache.redis) check("cache", *config.cache.redis);
}

// Start-up check against the state Redis: a maxmemory-policy other than noeviction lets
// Redis silently drop rate-limit counters, issued keys, sessions and spend under memory
// pressure. Logged loudly; the gateway still starts (the operator may be mid-migration).
boost::asio::awaitable<void> check_state_eviction_policy(redis::Client* client,
                                                         bool shared_with_cache) {
  const redis::Command cmd("CONFIG", "GET", "maxmemory-policy");
  auto r = co_await client->execute(cmd, std::chrono::milliseconds(3000));
  std::string policy;
  if (r.ok() && r->elements().size() >= 2) policy = r->elements()[1].str();
  if (policy.empty()) {
    // CONFIG may be denied to the gateway's ACL user: INFO memory says the same.
    const redis::Command info("INFO", "memory");
    auto i = co_await client->execute(info, std::chrono::milliseconds(3000));
    if (i.ok()) {
      const std::string& text = i->str();
      const std::string field = "maxmemory_policy:";
      auto pos = text.find(field);
      if (pos != std::string::npos) {
        auto end = text.find_first_of("\r\n", pos);
        policy = text.substr(pos + field.size(), end - pos - field.size());
      }
    }
  }
  if (policy.empty()) {
    spdlog::info("could not read the state Redis' maxmemory-policy at start-up ({})",
                 r.ok() ? std::string("no answer") : r.error().to_string());
    co_return;
  }
  if (policy == "noeviction") co_return;
  if (shared_with_cache) {
    spdlog::warn(
        "DATA LOSS RISK: one Redis holds both the cache and the gateway's state (rate limits, "
        "issued keys, sessions, spend) and its maxmemory-policy is '{}': when memory fills, "
        "Redis evicts state keys too. Give the cache its own Redis (cache.redis) or set "
        "maxmemory-policy noeviction; see deploy/redis/README.md",
        policy);
  } else {
    spdlog::warn(
        "DATA LOSS RISK: the state Redis (rate limits, issued keys, sessions, spend) has "
        "maxmemory-policy '{}': when memory fills, Redis evicts state keys. Set "
        "maxmemory-policy noeviction (deploy/redis/state.conf)",
        policy);
  }
}

}  // namespace

Gateway::Gateway(config::Config config) : config_(std::move(config)) {
  std::size_t n = config_.threads > 0 ? static_cast<std::size_t>(config_.threads)
                                      : std::max(1u, std::thread::hardware_concurrency());
  std::vector<boost::asio::io_context*> raw;
  for (std::size_t i = 0; i < n; ++i) {
    contexts_.push_back(std::make_unique<boost::asio::io_context>(1));
    raw.push_back(contexts_.back().get());
  }
  access_log_ = std::make_unique<proxy::AccessLog>(config_.logging.access_log,
                                                   config_.logging.access_log_path);
  if (config_.cache.enabled) {
    cache_ = std::make_unique<cache::CacheStore>(config_.cache, config_.redis, raw);
  }
  if (config_.key_store.enabled) {
    keys_ = std::make_unique<auth::KeyStore>(config_.key_store, config_.redis);
  }
  budgets_ = std::make_unique<budget::Budgets>(config_);
  if (config_.sessions.enabled) {
    sessions_ = std::make_unique<session::SessionStore>(config_.sessions);
  }
  {
    auto made = redis::make_client(raw.front()->get_executor(),
                                   redis::client_options(config_.redis, "redline-admin"));
    if (!made.ok()) throw std::runtime_error("state redis: " + made.error().to_string());
    admin_redis_ = std::move(*made);
  }
  if (config_.responses.enabled) {
    responses_ = std::make_unique<responses::ResponsesStore>(config_.responses.ttl,
                                                             config_.responses.max_chain_bytes);
  }
  const proxy::StateServices state{keys_.get(), budgets_.get(), sessions_.get(),
                                   responses_.get()};
  proxy_handler_ =
      std::make_unique<proxy::ProxyHandler>(config_, raw, *access_log_, cache_.get(), state);
  metrics::standard::declare_all();
  metrics::export_process_metrics();
  restrict_model_label(config_);
  admin_handler_ = std::make_unique<admin::AdminHandler>(config_.admin.token);
  proxy_server_ =
      std::make_unique<http::Server>("proxy", config_.listen, config_.limits, *proxy_handler_, raw);
  admin_server_ =
      std::make_unique<http::Server>("admin", config_.admin.listen, config_.limits, *admin_handler_,
                                     std::vector<boost::asio::io_context*>{raw.front()});
  metric_sources_ =
      admin::export_server_stats("proxy", proxy_server_->stats(), metrics::registry());
  for (auto& r : admin::export_server_stats("admin", admin_server_->stats(), metrics::registry())) {
    metric_sources_.push_back(std::move(r));
  }
  if (cache_) {
    for (auto& r : cache::export_cache_metrics(*cache_)) metric_sources_.push_back(std::move(r));
  }
  if (keys_) export_key_store_metrics();
  for (const auto& p : proxy_handler_->router().providers()) {
    const auto* breaker = p->breaker.get();
    metric_sources_.push_back(
        metrics::gauge("redline_upstream_circuit_state",
                       "Provider circuit breaker: 0 closed, 1 open (skipped), 2 half-open (one "
                       "probe out).",
                       {"provider"})
            .labels(p->config->name)
            .track([breaker] { return static_cast<double>(breaker->state()); }));
    metric_sources_.push_back(
        metrics::counter("redline_upstream_circuit_opens_total",
                         "Times a provider's circuit breaker opened.", {"provider"})
            .labels(p->config->name)
            .track([breaker] { return static_cast<double>(breaker->opened_count()); }));
  }
  redis_health_ = std::make_unique<metrics::RedisHealth>(raw.front()->get_executor(),
                                                         redis_health_options(config_));
  admin_handler_->set_cache(cache_.get());
  admin_handler_->set_state({&config_, admin_redis_.get(), keys_.get(), budgets_.get(),
                             sessions_.get()});
  admin_handler_->set_redis_nodes([health = redis_health_.get()](bool with_slowlog) {
    return health->nodes_json(with_slowlog);
  });
  admin_handler_->set_redis_reachability(
      [health = redis_health_.get()] { return health->reachability(); });
}

void Gateway::export_key_store_metrics() {
  auto& lookups = metrics::counter(
      "redline_keystore_lookups_total",
      "Lookups of keys issued through the admin API: answered from the in-process cache "
      "(cached), read from Redis (redis), refused because Redis could not be asked "
      "(unavailable), served from the cache past a Redis outage (grace).",
      {"result"});
  auto* keys = keys_.get();
  auto track = [&](const char* result, uint64_t auth::KeyStoreStats::*field) {
    metric_sources_.push_back(lookups.labels(result).track(
        [keys, field] { return static_cast<double>(keys->stats().*field); }));
  };
  track("cached", &auth::KeyStoreStats::hits);
  track("redis", &auth::KeyStoreStats::misses);
  track("unavailable", &auth::KeyStoreStats::unavailable);
  track("grace", &auth::KeyStoreStats::grace_served);
  metric_sources_.push_back(
      metrics::counter("redline_keystore_invalidations_total",
                       "CLIENT TRACKING invalidations applied to the key cache.")
          .labels()
          .track([keys] { return static_cast<double>(keys->stats().invalidations); }));
  metric_sources_.push_back(
      metrics::gauge("redline_keystore_tracking", "1 while the key store's tracking link is up.")
          .labels()
          .track([keys] { return keys->tracking() ? 1.0 : 0.0; }));
}

Gateway::~Gateway() {
  drain_and_stop(std::chrono::milliseconds(0));
  // I/O objects owned outside coroutines go first; then destroying the io_contexts frees
  // the parked coroutines (and their sockets) while servers and handlers still live.
  proxy_server_->close_io();
  admin_server_->close_io();
  proxy_handler_->shutdown();
  redis_health_->stop();
  if (cache_) cache_->stop();
  if (keys_) keys_->stop();
  admin_redis_->stop();
  metric_sources_.clear();  // some read the cache's and the key store's stats
  // The Redis clients' timers and sockets must go while their io_contexts still exist.
  cache_.reset();
  keys_.reset();
  admin_redis_.reset();
  contexts_.clear();
}

void Gateway::start() {
  if (cache_) cache_->start();
  if (keys_) keys_->start(*contexts_.front());
  proxy_server_->start();
  admin_server_->start();
  for (auto& c : contexts_) guards_.emplace_back(c->get_executor());
  boost::asio::co_spawn(*contexts_.front(), tick_metrics(), boost::asio::detached);
  warn_about_redis_urls(config_);
  boost::asio::co_spawn(*contexts_.front(),
                        check_state_eviction_policy(admin_redis_.get(),
                                                    config_.cache.enabled && !config_.cache.redis),
                        boost::asio::detached);
  redis_health_->start();
  for (auto& c : contexts_) {
    auto* ioc = c.get();
    threads_.emplace_back([ioc] { ioc->run(); });
  }
  admin_handler_->set_ready(true);
  spdlog::info("redline listening on {}:{} (admin {}:{}), {} threads", config_.listen.host, port(),
               config_.admin.listen.host, admin_port(), contexts_.size());
}

bool Gateway::drain_and_stop(std::chrono::milliseconds deadline) {
  {
    std::lock_guard lock(stop_mutex_);
    if (stopped_) return true;
  }
  bool clean = true;
  if (!threads_.empty()) {
    admin_handler_->set_ready(false);
    proxy_server_->drain();
    admin_server_->drain();
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (proxy_server_->stats().requests_in_flight.load() > 0 &&
           std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    clean = proxy_server_->stats().requests_in_flight.load() == 0;
    if (!clean) spdlog::warn("drain deadline passed with requests in flight; closing them");
    // Write-behind entries still queued and rate-limit settlements still unanswered go to
    // Redis before the threads stop.
    auto pending = [this] {
      return (cache_ ? cache_->pending_writes() : 0) + proxy_handler_->pending_settles();
    };
    while (pending() > 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (proxy_handler_->pending_settles() > 0) {
      spdlog::warn("drain deadline passed with {} rate-limit settlements unanswered",
                   proxy_handler_->pending_settles());
    }
    if (cache_ && cache_->pending_writes() > 0) {
      spdlog::warn("drain deadline passed with {} cache writes queued; dropping them",
                   cache_->pending_writes());
    }
    for (auto& c : contexts_) c->stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
    guards_.clear();
  }
  {
    std::lock_guard lock(stop_mutex_);
    stopped_ = true;
  }
  stopped_cv_.notify_all();
  return clean;
}

void Gateway::wait() {
  std::unique_lock lock(stop_mutex_);
  stopped_cv_.wait(lock, [this] { return stopped_; });
}

}  // namespace redline::app
