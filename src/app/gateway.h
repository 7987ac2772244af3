// The gateway process as an object: worker threads with one io_context each, the proxy
// server, the admin server, and an orderly drain. main() wraps it with the CLI and
// signals; integration tests run it in-process on ephemeral ports.
#pragma once

#include <boost/asio.hpp>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "admin/admin_handler.h"
#include "cache/cache_store.h"
#include "config/config.h"
#include "http/server.h"
#include "metrics/redis_health.h"
#include "metrics/registry.h"
#include "proxy/access_log.h"
#include "proxy/pipeline.h"

namespace redline::app {

class Gateway {
 public:
  explicit Gateway(config::Config config);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Binds both ports (throws std::system_error naming the address) and starts threads.
  void start();
  uint16_t port() const { return proxy_server_->port(); }
  uint16_t admin_port() const { return admin_server_->port(); }
  const config::Config& config() const { return config_; }
  std::size_t threads() const { return contexts_.size(); }

  // Stops accepting, lets requests in flight finish for up to `deadline`, then stops the
  // threads. Returns true when everything finished in time. Idempotent.
  bool drain_and_stop(std::chrono::milliseconds deadline);
  // Blocks until drain_and_stop() has completed (from a signal or another thread).
  void wait();

  const http::ServerStats& proxy_stats() const { return proxy_server_->stats(); }
  const metrics::RedisHealth& redis_health() const { return *redis_health_; }

 private:
  config::Config config_;
  void export_key_store_metrics();

  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
  std::unique_ptr<proxy::AccessLog> access_log_;
  std::unique_ptr<cache::CacheStore> cache_;
  // State in the state Redis besides limits: keys issued at run time, spend, sessions.
  std::unique_ptr<auth::KeyStore> keys_;
  std::unique_ptr<budget::Budgets> budgets_;
  std::unique_ptr<session::SessionStore> sessions_;
  std::unique_ptr<responses::ResponsesStore> responses_;
  std::unique_ptr<redis::Client> admin_redis_;  // the admin API's state client (thread 0)
  std::unique_ptr<proxy::ProxyHandler> proxy_handler_;
  std::unique_ptr<admin::AdminHandler> admin_handler_;
  std::unique_ptr<http::Server> proxy_server_;
  std::unique_ptr<http::Server> admin_server_;
  std::unique_ptr<metrics::RedisHealth> redis_health_;  // polls on the admin thread
  std::vector<metrics::Registration> metric_sources_;   // read the servers' stats: dies first
  std::mutex stop_mutex_;
  std::condition_variable stopped_cv_;
  bool stopped_ = false;
};

}  // namespace redline::app
