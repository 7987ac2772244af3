// The JSON access log: one line per request with request id, tenant, route, model,
// provider, status, attempts and durations. Never a key, never a body.
#pragma once

#include <memory>
#include <string>

#include "proxy/context.h"

namespace spdlog {
class logger;
}

namespace redline::proxy {

class AccessLog {
 public:
  // path empty: stdout. enabled=false: write nothing.
  AccessLog(bool enabled, const std::string& path);
  void write(const RequestContext& ctx);
  // Formats the line without writing it (tests).
  static std::string format(const RequestContext& ctx);

 private:
  bool enabled_;
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace redline::proxy
