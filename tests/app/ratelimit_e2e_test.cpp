// Rate limits end to end: real `redline` processes sharing one real redis-server (and a real
// 3+3 cluster) in front of the mock provider. The flagship check: two gateway processes get
// 200 concurrent requests for a key limited to 50 per window, and every algorithm admits
// exactly 50. Also headers, refusals, token settlement, cache hits and fail modes.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <future>
#include <map>
#include <thread>

#include "support/http_client.h"
#include "support/process.h"
#include "support/redis_server.h"

namespace redline {
namespace {

using namespace std::chrono_literals;

const std::string kChat =
    R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"Limit me"}]})";

struct Mock {
  explicit Mock(const test::TempDir& dir) : port(test::free_port()) {
    proc.emplace(std::vector<std::string>{test::built_binary("redline-mock"), "--listen",
                                          "127.0.0.1:" + std::to_string(port), "--no-record"},
                 dir.path() / "mock.log");
    if (!test::wait_for_port(port)) throw std::runtime_error("mock did not start");
  }
  int port;
  std::optional<test::Process> proc;
};

// One gateway process; `policies` is the YAML list under rate_limits.
struct Gateway {
  Gateway(const test::TempDir& dir, const std::string& name, int mock_port,
          const std::string& redis_yaml, const std::string& extra, int threads = 2)
      : port(test::free_port()) {
    const std::string yaml =
        "listen: \"127.0.0.1:" + std::to_string(port) + "\"\nthreads: " +
        std::to_string(threads) + "\n" +
        "admin: {listen: \"127.0.0.1:" + std::to_string(test::free_port()) + "\"}\n" +
        "logging: {access_log: false, level: warn}\n" + redis_yaml +
        "providers:\n  - {name: openai, type: openai, base_url: \"http://127.0.0.1:" +
        std::to_string(mock_port) + "/v1\", api_key: sk-up}\n" +
        "keys:\n  - {key: sk-one, tenant: t1}\n  - {key: sk-two, tenant: t2}\n" + extra;
    auto cfg = dir.write(name + ".yaml", yaml);
    proc.emplace(std::vector<std::string>{test::built_binary("redline"), "--config", cfg.string()},
                 dir.path() / (name + ".log"));
    if (!test::wait_for_port(port))
      throw std::runtime_error("gateway did not start: " + proc->log());
  }
  int port;
  std::optional<test::Process> proc;
};

std::string redis_block(const test::RedisServer& r) {
  return "redis: {urls: [\"" + r.url() + "\"]}\n";
}

test::HttpResponse post(int port, const std::string& key, const std::string& body = kChat,
                        test::Headers h = {}) {
  h.emplace_back("authorization", "Bearer " + key);
  return test::http_request(port, "POST", "/v1/chat/completions", body, h);
}

// 200 concurrent requests, alternating between the two gateways; status -> count.
std::map<int, int> burst(int port_a, int port_b, int n = 200) {
  std::vector<std::future<int>> all;
  for (int i = 0; i < n; ++i) {
    const int p = i % 2 ? port_a : port_b;
    all.push_back(std::async(std::launch::async, [p] { return post(p, "sk-one").status; }));
  }
  std::map<int, int> out;
  for (auto& f : all) ++out[f.get()];
  return out;
}

class RateLimitE2E : public ::testing::TestWithParam<std::string> {};

TEST_P(RateLimitE2E, TwoProcessesAdmitExactlyTheLimit) {
  test::TempDir dir;
  test::RedisServer redis;
  Mock mock(dir);
  const std::string policy = "rate_limits:\n  - {scope: key, algorithm: " + GetParam() +
                             ", requests: 50, window: 3600}\n"
                             "cache: {enabled: false}\n";
  Gateway a(dir, "a", mock.port, redis_block(redis), policy);
  Gateway b(dir, "b", mock.port, redis_block(redis), policy);
  auto counts = burst(a.port, b.port);
  EXPECT_EQ(counts[200], 50) << GetParam();
  EXPECT_EQ(counts[429], 150) << GetParam();
  EXPECT_EQ(counts.size(), 2u);
  // Another key has its own budget.
  EXPECT_EQ(post(a.port, "sk-two").status, 200);
}

INSTANTIATE_TEST_SUITE_P(Algorithms, RateLimitE2E,
                         ::testing::Values("sliding-window-log", "sliding-window-counter",
                                           "token-bucket", "fixed-window"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

TEST(RateLimitE2ECluster, TwoProcessesOnAClusterAdmitExactlyTheLimit) {
  test::TempDir dir;
  test::RedisCluster cluster;
  Mock mock(dir);
  std::string block = "redis: {mode: cluster, urls: [";
  for (const auto& u : cluster.urls()) block += "\"" + u + "\",";
  block.back() = ']';
  block += "}\n";
  const std::string policy =
      "rate_limits:\n"
      "  - {scope: key, algorithm: sliding-window-log, requests: 50, window: 3600}\n"
      "  - {scope: global, algorithm: fixed-window, requests: 1000, window: 3600}\n"
      "cache: {enabled: false}\n";
  Gateway a(dir, "a", mock.port, block, policy);
  Gateway b(dir, "b", mock.port, block, policy);
  auto counts = burst(a.port, b.port);
  EXPECT_EQ(counts[200], 50);
  EXPECT_EQ(counts[429], 150);
}

TEST(RateLimitE2EHeaders, HeadersRefusalBodyAndTokenSettlement) {
  test::TempDir dir;
  test::RedisServer redis;
  Mock mock(dir);
  Gateway gw(
      dir, "gw", mock.port, redis_block(redis),
      "cache: {lookup_timeout: 500ms}\n"  // sanitizer build on a busy machine
      "rate_limits:\n"
      "  - {scope: key, algorithm: fixed-window, requests: 4, tokens: 100000, window: 60}\n",
      // One thread: a settle is sent after its answer and not waited for, but on the thread's
      // Redis connection ahead of the next request's check, so each request below sees the
      // previous one settled. (With two threads, sequential requests could be handled on
      // different connections and the next check could overtake the settle by microseconds.)
      1);
  auto r =
      post(gw.port, "sk-one",
           R"({"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"a"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-ratelimit-limit-requests"), "4");
  EXPECT_EQ(r.header("x-ratelimit-remaining-requests"), "3");
  EXPECT_FALSE(r.header("x-ratelimit-reset-requests").empty());
  EXPECT_EQ(r.header("x-ratelimit-limit-tokens"), "100000");
  EXPECT_FALSE(r.header("ratelimit-policy").empty());
  EXPECT_FALSE(r.header("ratelimit").empty());
  const auto reserved_left = std::stoull(r.header("x-ratelimit-remaining-tokens"));
  // The estimate (prompt/4 + max_tokens) was reserved; the provider's usage settled it, so the
  // next request sees what the first one really used (the mock's total_tokens), not the estimate.
  auto usage = boost::json::parse(r.body).at("usage").at("total_tokens").to_number<uint64_t>();
  auto r2 =
      post(gw.port, "sk-one",
           R"({"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"b"}]})");
  ASSERT_EQ(r2.status, 200);
  const auto left2 = std::stoull(r2.header("x-ratelimit-remaining-tokens"));
  EXPECT_EQ(left2, 100000 - usage - (100000 - reserved_left));  // first settled, second reserved
  // The third request is a cache hit of the first: it costs a request but no tokens.
  auto r3 =
      post(gw.port, "sk-one",
           R"({"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"a"}]})");
  ASSERT_EQ(r3.status, 200);
  EXPECT_EQ(r3.header("x-redline-cache"), "hit");
  // The hit gave its reservation back: the fourth request (same prompt size, so the same
  // estimate) sees only the first two requests' real usage and its own estimate.
  const uint64_t estimate = 100000 - reserved_left;
  const auto usage2 =
      boost::json::parse(r2.body).at("usage").at("total_tokens").to_number<uint64_t>();
  auto r4 =
      post(gw.port, "sk-one",
           R"({"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"c"}]})");
  ASSERT_EQ(r4.status, 200);
  EXPECT_EQ(std::stoull(r4.header("x-ratelimit-remaining-tokens")),
            100000 - usage - usage2 - estimate);
  // Fifth: over the request limit.
  auto refused = post(gw.port, "sk-one");
  EXPECT_EQ(refused.status, 429);
  EXPECT_FALSE(refused.header("retry-after").empty());
  auto err = boost::json::parse(refused.body).at("error");
  EXPECT_EQ(err.at("code").as_string(), "rate_limit_exceeded");
  EXPECT_NE(std::string(err.at("message").as_string()).find("key"), std::string::npos)
      << refused.body;
  EXPECT_EQ(refused.header("x-ratelimit-remaining-requests"), "0");
  // Another key has its own budget.
  EXPECT_EQ(post(gw.port, "sk-two").status, 200);
}

// The token estimate (prompt bytes / 4 + the request's output cap) reads the cap from
// max_tokens, else max_completion_tokens, else max_output_tokens, whichever is an unsigned
// integer; a repeated name counts its first time. Each request's reservation shows in its
// remaining-tokens header (the earlier ones are settled by then: one thread, see above).
TEST(RateLimitE2EHeaders, TheTokenEstimateTakesTheRequestsOutputCap) {
  test::TempDir dir;
  test::RedisServer redis;
  Mock mock(dir);
  Gateway gw(dir, "gw", mock.port, redis_block(redis),
             "cache: {enabled: false}\n"
             "rate_limits:\n"
             "  - {scope: key, algorithm: fixed-window, requests: 100, tokens: 100000, window: "
             "60}\n",
             1);
  struct Case {
    std::string caps;  // the body's fields before "messages"
    uint64_t cap;      // the output cap the estimate should use
  };
  const std::vector<Case> cases = {
      {R"("max_completion_tokens":700,)", 700},
      {R"("max_output_tokens":900,)", 900},
      {R"("max_completion_tokens":700,"max_tokens":300,)", 300},
      {R"("max_tokens":"many","max_completion_tokens":500,)", 500},
      {R"("max_tokens":-1,"max_output_tokens":650,)", 650},
      {R"("max_tokens":120,"max_tokens":9000,)", 120},
      {R"("max_output_tokens":800,"max_completion_tokens":400,)", 400},
  };
  uint64_t used = 0;  // the settled usage of the requests before
  for (const auto& c : cases) {
    const std::string body =
        R"({"model":"gpt-4o-mini",)" + c.caps + R"("messages":[{"role":"user","content":"cap"}]})";
    auto r = post(gw.port, "sk-one", body);
    ASSERT_EQ(r.status, 200) << c.caps << r.body;
    const uint64_t estimate = (body.size() + 3) / 4 + c.cap;
    EXPECT_EQ(std::stoull(r.header("x-ratelimit-remaining-tokens")), 100000 - used - estimate)
        << c.caps;
    used += boost::json::parse(r.body).at("usage").at("total_tokens").to_number<uint64_t>();
  }
}

TEST(RateLimitE2EFailModes, RedisDownOpenAdmitsClosedRefuses) {
  test::TempDir dir;
  test::RedisServer redis;
  Mock mock(dir);
  Gateway open(dir, "open", mock.port, redis_block(redis),
               "cache: {enabled: false}\nrate_limits:\n"
               "  - {scope: key, requests: 10, window: 60, fail_mode: open}\n");
  Gateway closed(dir, "closed", mock.port, redis_block(redis),
                 "cache: {enabled: false}\nrate_limits:\n"
                 "  - {scope: key, requests: 10, window: 60, fail_mode: closed}\n");
  ASSERT_EQ(post(open.port, "sk-one").status, 200);
  ASSERT_EQ(post(closed.port, "sk-one").status, 200);
  redis.stop();
  auto o = post(open.port, "sk-one");
  EXPECT_EQ(o.status, 200) << o.body;
  EXPECT_EQ(o.header("x-redline-ratelimit"), "degraded");
  auto c = post(closed.port, "sk-one");
  EXPECT_EQ(c.status, 503) << c.body;
  EXPECT_EQ(boost::json::parse(c.body).at("error").at("code").as_string(),
            "rate_limiter_unavailable");
}

}  // namespace
}  // namespace redline
