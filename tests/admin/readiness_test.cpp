// GET /readyz follows the Redis health poller: ready while every Redis the gateway uses
// answered the latest poll, 503 naming the Redis that did not once a poll found it down, and
// ready again after it is back. GET /healthz stays 200 throughout. Real redis-server
// processes, an in-process Gateway on ephemeral ports, a fast poll interval; waits are
// bounded polls of /readyz, not timing assertions.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <thread>

#include "app/gateway.h"
#include "config/config_loader.h"
#include "mock/mock_server.h"
#include "support/http_client.h"
#include "support/redis_server.h"

namespace redline {
namespace {

config::Config load(const std::string& yaml) {
  auto env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  return config::load_config_string(yaml, "test.yaml", env).config;
}

std::string yaml(int mock_port, const std::string& state_url, const std::string& cache_url) {
  std::string y =
      "listen: \"127.0.0.1:0\"\n"
      "threads: 1\n"
      "admin: {listen: \"127.0.0.1:0\", redis_poll_interval: 100ms, redis_poll_timeout: 500ms}\n"
      "logging: {access_log: false, level: error}\n"
      "redis: {urls: [\"" +
      state_url + "\"]}\n";
  if (!cache_url.empty()) {
    y += "cache: {enabled: true, redis: {urls: [\"" + cache_url + "\"]}}\n";
  } else {
    y += "cache: {enabled: false}\n";
  }
  y += "providers:\n  - {name: openai, type: openai, base_url: \"http://127.0.0.1:" +
       std::to_string(mock_port) + "/v1\", api_key: sk-p}\n";
  return y;
}

class ReadinessTest : public ::testing::Test {
 protected:
  void start(const std::string& state_url, const std::string& cache_url = "") {
    mock_ = std::make_unique<mock::MockServer>(mock::MockOptions{});
    mock_->start();
    gw_ = std::make_unique<app::Gateway>(load(yaml(mock_->port(), state_url, cache_url)));
    gw_->start();
  }
  test::HttpResponse get(const std::string& path) {
    return test::http_request(gw_->admin_port(), "GET", path);
  }
  // Polls /readyz until it answers `status` and, when given, the state Redis reads `state`
  // (bounded: 20 s, many poll intervals).
  test::HttpResponse wait_readyz(int status, const std::string& state = "") {
    test::HttpResponse r;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    do {
      r = get("/readyz");
      if (r.status == status &&
          (state.empty() || body(r).at("redis").at("state").as_string() == state)) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } while (std::chrono::steady_clock::now() < until);
    return r;
  }
  static boost::json::object body(const test::HttpResponse& r) {
    return boost::json::parse(r.body).as_object();
  }
  std::unique_ptr<mock::MockServer> mock_;
  std::unique_ptr<app::Gateway> gw_;
};

TEST_F(ReadinessTest, FollowsTheStateRedis) {
  test::RedisServer redis;
  start(redis.url());
  auto r = wait_readyz(200);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/json");
  auto b = body(r);
  EXPECT_EQ(b.at("status").as_string(), "ready");
  EXPECT_EQ(b.at("config").as_string(), "loaded");
  EXPECT_EQ(b.at("redis").at("state").as_string(), "up");
  EXPECT_FALSE(b.at("redis").as_object().contains("cache"));

  redis.stop();
  r = wait_readyz(503);
  ASSERT_EQ(r.status, 503) << r.body;
  b = body(r);
  EXPECT_EQ(b.at("status").as_string(), "not_ready");
  EXPECT_EQ(b.at("redis").at("state").as_string(), "down");
  EXPECT_EQ(b.at("gateway").as_string(), "serving");
  EXPECT_EQ(get("/healthz").status, 200);  // liveness does not follow Redis

  redis.restart();
  r = wait_readyz(200);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r).at("redis").at("state").as_string(), "up");
}

TEST_F(ReadinessTest, FollowsTheCacheRedisWhenSeparate) {
  test::RedisServer state;
  test::RedisServer cache;
  start(state.url(), cache.url());
  auto r = wait_readyz(200);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r).at("redis").at("cache").as_string(), "up");

  cache.stop();
  r = wait_readyz(503);
  ASSERT_EQ(r.status, 503) << r.body;
  auto b = body(r);
  EXPECT_EQ(b.at("redis").at("state").as_string(), "up");
  EXPECT_EQ(b.at("redis").at("cache").as_string(), "down");
  EXPECT_EQ(get("/healthz").status, 200);

  cache.restart();
  r = wait_readyz(200);
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(ReadinessTest, NotReadyWhenRedisNeverAnswered) {
  // Port 1 refuses connections: the first poll finds the state Redis down.
  start("redis://127.0.0.1:1");
  auto r = get("/readyz");
  ASSERT_EQ(r.status, 503) << r.body;
  const auto state = body(r).at("redis").at("state").as_string();
  EXPECT_TRUE(state == "pending" || state == "down") << state;
  r = wait_readyz(503, "down");  // once polled: still not ready, and says why
  ASSERT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(body(r).at("redis").at("state").as_string(), "down");
  EXPECT_EQ(get("/healthz").status, 200);
}

}  // namespace
}  // namespace redline
