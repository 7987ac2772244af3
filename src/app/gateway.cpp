// Gateway lifecycle (see gateway.h). Shutdown order matters: servers stop accepting,
// in-flight requests finish (bounded), threads stop, and only then are the io_contexts
// destroyed (which frees any coroutine still parked on them) before the servers.
#include "app/gateway.h"

#include "cache/cache_metrics.h"

#include <spdlog/spdlog.h>

#include "metrics/process.h"
#include "redis/config_options.h"
#include "metrics/standard.h"

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
    // Write-behind entries still queued go to Redis before the threads stop.
    while (cache_ && cache_->pending_writes() > 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
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
