// Test support for end-to-end tests of an in-process Gateway in front of in-process mock
// providers: the config from YAML text (no environment), the gateway started on free ports,
// and what a mock saw (its last model request, its request count). Header-only: only test
// binaries that link redline_app and redline_mock include it.
#pragma once

#include <boost/json.hpp>
#include <optional>
#include <string>

#include "app/gateway.h"
#include "config/config_loader.h"
#include "mock/mock_server.h"
#include "support/http_client.h"

namespace redline::test {

// YAML text -> Config; `${VAR}` never expands (tests spell their values out).
inline config::Config load_config(const std::string& yaml) {
  auto env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  return config::load_config_string(yaml, "test.yaml", env).config;
}

// A started Gateway; stopped by its destructor.
struct TestGateway {
  explicit TestGateway(const std::string& yaml) : gw(load_config(yaml)) { gw.start(); }
  int port() const { return gw.port(); }
  int admin() const { return gw.admin_port(); }
  app::Gateway gw;
};

inline std::string mock_url(const mock::MockServer& m) {
  return "http://127.0.0.1:" + std::to_string(m.port());
}

// GET /mock/last-request: {method, target, headers, body} of the last model request.
inline boost::json::value last_request(const mock::MockServer& m) {
  return boost::json::parse(http_request(m.port(), "GET", "/mock/last-request").body);
}

// Model requests the mock has answered so far.
inline int64_t mock_total(const mock::MockServer& m) {
  return boost::json::parse(http_request(m.port(), "GET", "/mock/stats").body)
      .at("total")
      .to_number<int64_t>();
}

}  // namespace redline::test
