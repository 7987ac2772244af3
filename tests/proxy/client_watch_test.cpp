// The client watch (http::Exchange::watch_client, common/interrupt.h): a client that hangs
// up while the provider is still answering cancels the provider's request, on the plain
// proxy path and on the cached path (a flight with no other listener); a client that hangs
// up right after sending is caught too; a client that pipelines its next request is still
// answered, in order.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "support/gateway_harness.h"
#include "support/redis_server.h"

namespace redline {
namespace {

using namespace std::chrono_literals;

const std::string kChat =
    R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"watch me"}]})";

std::unique_ptr<mock::MockServer> start_mock(int latency_ms) {
  mock::MockOptions o;
  o.latency_ms = latency_ms;
  auto m = std::make_unique<mock::MockServer>(std::move(o));
  m->start();
  return m;
}

std::string yaml(const mock::MockServer& m, const std::string& cache) {
  return "listen: \"127.0.0.1:0\"\n"
         "threads: 1\n"
         "admin: {listen: \"127.0.0.1:0\"}\n"
         "logging: {access_log: false, level: warn}\n" +
         cache +
         "providers:\n"
         "  - {name: openai, type: openai, base_url: \"" +
         test::mock_url(m) +
         "/v1\", api_key: sk-p, retry: {max_attempts: 1}}\n";
}

std::string request(const std::string& body) {
  return "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         "Content-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Polls `pred` every 10 ms up to `limit`.
template <class Pred>
bool within(std::chrono::milliseconds limit, Pred pred) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

TEST(ClientWatchTest, HangingUpCancelsTheProviderCallOnTheCachedPath) {
  test::RedisServer redis;
  auto mock = start_mock(5000);
  test::TestGateway gw(yaml(*mock, "redis: {urls: [\"" + redis.url() + "\"]}\ncache: {enabled: true}\n"));
  const auto& stats = gw.gw.proxy_stats();
  {
    test::RawConn c(gw.port());
    c.send(request(kChat));
    ASSERT_TRUE(within(3s, [&] { return stats.requests_in_flight.load() == 1; }));
    std::this_thread::sleep_for(200ms);  // the flight is waiting for the provider
  }  // hang up
  // The provider had about 5 s to go: the flight must be cancelled long before.
  EXPECT_TRUE(within(2s, [&] { return stats.requests_in_flight.load() == 0; }))
      << "the cached path kept the provider call without its client";
  // Nothing half-done was stored: the same question is a miss again (answered fast by a
  // second mock, the first one still sleeps on its cancelled request).
  auto fast = start_mock(0);
  test::TestGateway gw2(
      yaml(*fast, "redis: {urls: [\"" + redis.url() + "\"]}\ncache: {enabled: true}\n"));
  auto r = test::http_request(gw2.port(), "POST", "/v1/chat/completions", kChat,
                              {{"content-type", "application/json"}});
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-redline-cache"), "miss");
}

TEST(ClientWatchTest, HangingUpRightAfterSendingIsNoticed) {
  auto mock = start_mock(5000);
  test::TestGateway gw(yaml(*mock, "cache: {enabled: false}\n"));
  const auto& stats = gw.gw.proxy_stats();
  {
    test::RawConn c(gw.port());
    c.send(request(kChat));
  }  // the FIN may arrive before the gateway even reads the request
  ASSERT_TRUE(within(3s, [&] { return stats.requests_total.load() == 1; }));
  EXPECT_TRUE(within(2s, [&] { return stats.requests_in_flight.load() == 0; }))
      << "a client that left before the watch started was not noticed";
}

TEST(ClientWatchTest, PipelinedRequestsAreAnsweredInOrder) {
  auto mock = start_mock(200);
  test::TestGateway gw(yaml(*mock, "cache: {enabled: false}\n"));
  test::RawConn c(gw.port());
  const std::string second =
      R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"and me"}]})";
  // The second request arrives while the first waits for the provider under the watch.
  c.send(request(kChat) + request(second));
  std::string got;
  const auto until = std::chrono::steady_clock::now() + 10s;
  std::size_t first = std::string::npos, next = std::string::npos;
  while (std::chrono::steady_clock::now() < until) {
    got += c.read_until("HTTP/1.1 200", 1s);
    first = got.find("HTTP/1.1 200");
    next = first == std::string::npos ? first : got.find("HTTP/1.1 200", first + 1);
    if (next != std::string::npos && got.find("\"usage\"", next) != std::string::npos) break;
  }
  ASSERT_NE(first, std::string::npos) << got;
  ASSERT_NE(next, std::string::npos) << got;
  EXPECT_EQ(test::mock_total(*mock), 2);
  EXPECT_EQ(gw.gw.proxy_stats().requests_total.load(), 2u);
}

}  // namespace
}  // namespace redline
