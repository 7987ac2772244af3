// The admin port's handler: GET /healthz (process up), GET /readyz (config loaded and,
// once the Redis layer lands, Redis reachable). Metrics, stats, the dashboard and the
// token-protected /admin/* API are added by their issues; unknown paths are 404.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>

#include "config/config.h"
#include "http/server.h"

namespace redline::admin {

class AdminHandler : public http::Handler {
 public:
  AdminHandler() = default;
  boost::asio::awaitable<void> handle(http::Exchange& exchange) override;
  void set_ready(bool ready) { ready_.store(ready, std::memory_order_relaxed); }

 private:
  std::atomic<bool> ready_{false};
};

}  // namespace redline::admin
