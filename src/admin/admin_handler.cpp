// Admin port handler (see admin_handler.h).
#include "admin/admin_handler.h"

namespace redline::admin {

namespace bhttp = boost::beast::http;

boost::asio::awaitable<void> AdminHandler::handle(http::Exchange& ex) {
  auto& req = ex.request();
  std::string_view path = req.target();
  if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head) {
    co_await ex.respond_error(405, "admin endpoints are read with GET", "method_not_allowed");
    co_return;
  }
  http::Response res{bhttp::status::ok, 11};
  res.set(bhttp::field::content_type, "application/json");
  if (path == "/healthz") {
    res.body() = R"({"status":"ok"})";
  } else if (path == "/readyz") {
    const bool ready = ready_.load(std::memory_order_relaxed);
    res.result(ready ? bhttp::status::ok : bhttp::status::service_unavailable);
    res.body() = ready ? R"({"status":"ready","config":"loaded"})"
                       : R"({"status":"not_ready","config":"loaded"})";
  } else {
    co_await ex.respond_error(404, "unknown admin path " + std::string(path), "not_found");
    co_return;
  }
  co_await ex.respond(res);
}

}  // namespace redline::admin
