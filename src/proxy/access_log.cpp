// JSON access log (see access_log.h). Lines go through an spdlog logger with a bare
// "%v" pattern so each line is exactly one JSON object.
#include "proxy/access_log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/json.hpp>

namespace redline::proxy {

namespace {
double ms_between(Clock::time_point a, Clock::time_point b) {
  if (a == Clock::time_point{} || b == Clock::time_point{}) return -1;
  return std::chrono::duration<double, std::milli>(b - a).count();
}
}  // namespace

AccessLog::AccessLog(bool enabled, const std::string& path) : enabled_(enabled) {
  if (!enabled_) return;
  if (path.empty()) {
    logger_ = std::make_shared<spdlog::logger>("access",
                                               std::make_shared<spdlog::sinks::stdout_sink_mt>());
  } else {
    // Throws spdlog::spdlog_ex naming the path when it cannot be opened.
    logger_ = std::make_shared<spdlog::logger>(
        "access", std::make_shared<spdlog::sinks::basic_file_sink_mt>(path));
  }
  logger_->set_pattern("%v");
  logger_->set_level(spdlog::level::info);
  logger_->flush_on(spdlog::level::info);
}

std::string AccessLog::format(const RequestContext& ctx) {
  boost::json::object o;
  const auto now = Clock::now();
  o["ts"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  o["request_id"] = ctx.request_id;
  o["tenant"] = ctx.identity.tenant;
  if (!ctx.identity.key_id.empty()) o["key_id"] = ctx.identity.key_id;
  auto& req = ctx.exchange.request();
  o["method"] = std::string_view(req.method_string());
  o["path"] = std::string_view(req.target());
  o["route"] = endpoint_name(ctx.endpoint);
  if (!ctx.model.empty()) o["model"] = ctx.model;
  if (ctx.provider) o["provider"] = ctx.provider->config->name;
  o["stream"] = ctx.stream;
  o["status"] = ctx.exchange.status();
  o["attempts"] = ctx.attempts;
  o["bytes_in"] = req.body().size();
  o["bytes_out"] = ctx.exchange.body_bytes_sent();
  o["duration_ms"] = ms_between(ctx.start, now);
  if (ctx.upstream_start != Clock::time_point{}) {
    o["upstream_ttfb_ms"] = ms_between(ctx.upstream_start, ctx.upstream_first_byte);
    o["upstream_ms"] = ms_between(ctx.upstream_start, ctx.upstream_end);
  }
  if (!ctx.error_code.empty()) o["error"] = ctx.error_code;
  if (!ctx.upstream_failure.empty()) o["upstream_failure"] = ctx.upstream_failure;
  if (ctx.exchange.client_gone()) o["client_gone"] = true;
  return boost::json::serialize(o);
}

void AccessLog::write(const RequestContext& ctx) {
  if (!enabled_) return;
  logger_->info(format(ctx));
}

}  // namespace redline::proxy
