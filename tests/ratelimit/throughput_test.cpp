// Decision throughput and latency of RateLimiter::check() against a local redis-server, for
// docs and the benchmark issue. Disabled by default (timing is not a test); run with
//   build/tests/redline_ratelimit_tests --gtest_also_run_disabled_tests
//       --gtest_filter='RateLimitThroughput.*'
// It prints numbers and asserts only that every check was decided by Redis.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>

#include "ratelimit/limiter.h"
#include "redis/async_test_util.h"
#include "support/redis_server.h"

namespace redline::ratelimit {
namespace {

namespace asio = boost::asio;
using config::RateLimitAlgorithm;
using config::RateLimitScope;
using Clock = std::chrono::steady_clock;

struct Result {
  double per_second = 0;
  double p50_us = 0;
  double p99_us = 0;
};

// `total` checks with `in_flight` concurrent coroutines on one thread and one connection.
Result measure(redis::Client& client, asio::io_context& io, RateLimiter& limiter, int total,
               int in_flight) {
  std::vector<double> latencies;
  latencies.reserve(static_cast<size_t>(total));
  int started = 0;
  int done = 0;
  int degraded = 0;
  const auto t0 = Clock::now();
  for (int w = 0; w < in_flight; ++w) {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          while (started < total) {
            ++started;
            RequestFacts f;
            f.key_id = "bench-key";
            f.tenant = "bench";
            f.model = "gpt-4o";
            f.estimated_tokens = 500;
            const auto s = Clock::now();
            const Decision d = co_await limiter.check(f);
            latencies.push_back(
                std::chrono::duration<double, std::micro>(Clock::now() - s).count());
            if (d.outcome != Outcome::kAdmitted) {
              ++degraded;
            }
            ++done;
          }
        },
        asio::detached);
  }
  while (done < total) {
    io.run_one();
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_EQ(degraded, 0);
  std::sort(latencies.begin(), latencies.end());
  Result r;
  r.per_second = total / secs;
  r.p50_us = latencies[latencies.size() / 2];
  r.p99_us = latencies[latencies.size() * 99 / 100];
  return r;
}

TEST(RateLimitThroughput, DISABLED_DecisionsPerSecond) {
  test::RedisServer server;
  asio::io_context io;
  redis::ClientOptions o;
  o.urls = {server.url()};
  auto client = redis::make_client(io.get_executor(), o).value();
  ASSERT_TRUE(redis::testing::run_until_done(io, client->connect()).ok());
  for (auto a : {RateLimitAlgorithm::kFixedWindow, RateLimitAlgorithm::kSlidingWindowLog,
                 RateLimitAlgorithm::kSlidingWindowCounter, RateLimitAlgorithm::kTokenBucket}) {
    server.cli("FLUSHALL");
    // A per-key requests+tokens policy and a global one: 4 states, one script call.
    config::RateLimitPolicy key;
    key.scopes = {RateLimitScope::kKey};
    key.algorithm = a;
    key.requests = 1'000'000'000;
    key.tokens = 1'000'000'000'000;
    config::RateLimitPolicy global = key;
    global.scopes = {RateLimitScope::kGlobal};
    const std::vector<config::RateLimitPolicy> policies = {key, global};
    RateLimiter limiter(*client, policies);
    measure(*client, io, limiter, 2'000, 16);  // warm-up, loads the script
    server.cli("CONFIG", "RESETSTAT");
    const Result one = measure(*client, io, limiter, 5'000, 1);
    const Result many = measure(*client, io, limiter, 50'000, 64);
    // Redis' own CPU time per script call: the figure that noise on the machine moves least.
    const std::string stats = server.cli("INFO", "commandstats");
    const auto at = stats.find("usec_per_call=", stats.find("cmdstat_evalsha:"));
    const double script_us = at == std::string::npos ? 0 : std::stod(stats.substr(at + 14));
    std::printf(
        "[ ratelimit] %-22s 1 in flight: %7.0f/s p50 %6.1f us p99 %6.1f us | 64 in "
        "flight: %7.0f/s p50 %7.1f us p99 %7.1f us | script %5.1f us in Redis\n",
        std::string(algorithm_name(a)).c_str(), one.per_second, one.p50_us, one.p99_us,
        many.per_second, many.p50_us, many.p99_us, script_us);
  }
  client->stop();
  redis::testing::run_for(io, std::chrono::milliseconds(5));
}

}  // namespace
}  // namespace redline::ratelimit
