// What an edge proxy must not pass on, end to end: a real Gateway (in-process) in front of
// the mock provider, which records the last request it received (GET /mock/last-request).
// Underscore headers, hop-by-hop headers (fixed and named in Connection:) and the client's
// forwarding headers never reach the provider; `x_api_key` never authenticates.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "app/gateway.h"
#include "config/config_loader.h"
#include "mock/mock_server.h"
#include "support/http_client.h"

namespace redline {
namespace {

const std::string kChat =
    R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello there"}]})";

config::Config load(const std::string& yaml) {
  auto env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  return config::load_config_string(yaml, "test.yaml", env).config;
}

std::string yaml_for(int mock_port, const std::string& extra = "") {
  return "listen: \"127.0.0.1:0\"\n"
         "threads: 1\n"
         "admin: {listen: \"127.0.0.1:0\"}\n"
         "logging: {access_log: false, level: warn}\n"
         "cache: {enabled: false}\n"
         "key_store: {enabled: false}\n"
         "providers:\n"
         "  - name: openai\n"
         "    type: openai\n"
         "    base_url: \"http://127.0.0.1:" +
         std::to_string(mock_port) +
         "/v1\"\n"
         "    api_key: \"sk-provider-openai\"\n" +
         extra;
}

class EdgeForwardingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mock_ = std::make_unique<mock::MockServer>(mock::MockOptions{});
    mock_->start();
  }
  void start(const std::string& extra = "") {
    gw_ = std::make_unique<app::Gateway>(load(yaml_for(mock_->port(), extra)));
    gw_->start();
  }
  boost::json::object last_headers() {
    auto r = test::http_request(mock_->port(), "GET", "/mock/last-request");
    return boost::json::parse(r.body).at("headers").as_object();
  }
  std::unique_ptr<mock::MockServer> mock_;
  std::unique_ptr<app::Gateway> gw_;
};

TEST_F(EdgeForwardingTest, UnderscoreHopByHopAndForwardingHeadersStayHere) {
  start();
  auto r = test::http_request(gw_->port(), "POST", "/v1/chat/completions", kChat,
                              {{"x_api_key", "sk-smuggled"},
                               {"openai_beta", "x"},
                               {"connection", "keep-alive, x-hop-secret"},
                               {"x-hop-secret", "hop"},
                               {"keep-alive", "timeout=5"},
                               {"te", "trailers"},
                               {"trailer", "x-t"},
                               {"upgrade", "h2c"},
                               {"proxy-authorization", "Basic abc"},
                               {"proxy-connection", "keep-alive"},
                               {"x-forwarded-for", "6.6.6.6"},
                               {"x-forwarded-proto", "https"},
                               {"x-real-ip", "6.6.6.6"},
                               {"forwarded", "for=6.6.6.6"},
                               {"x-end-to-end", "kept"}});
  ASSERT_EQ(r.status, 200) << r.body;
  const auto h = last_headers();
  for (const char* gone : {"x_api_key", "openai_beta", "connection", "x-hop-secret", "keep-alive",
                           "te", "trailer", "upgrade", "proxy-authorization", "proxy-connection",
                           "x-forwarded-for", "x-forwarded-proto", "x-real-ip", "forwarded"}) {
    EXPECT_FALSE(h.contains(gone)) << gone;
  }
  EXPECT_EQ(h.at("x-end-to-end").as_string(), "kept");
  for (const auto& [k, v] : h) {
    EXPECT_EQ(std::string(v.as_string()).find("sk-smuggled"), std::string::npos) << k;
    EXPECT_EQ(std::string(v.as_string()).find("6.6.6.6"), std::string::npos) << k;
  }
}

TEST_F(EdgeForwardingTest, UnderscoreKeyNeverAuthenticates) {
  // A gateway with one client key: x-api-key works, x_api_key with the same key does not.
  start("keys:\n  - {name: app, key: \"sk-client-1\"}\n");
  auto ok = test::http_request(gw_->port(), "POST", "/v1/chat/completions", kChat,
                               {{"x-api-key", "sk-client-1"}});
  EXPECT_EQ(ok.status, 200) << ok.body;
  auto bad = test::http_request(gw_->port(), "POST", "/v1/chat/completions", kChat,
                                {{"x_api_key", "sk-client-1"}});
  EXPECT_EQ(bad.status, 401) << bad.body;
}

}  // namespace
}  // namespace redline
