// The provider circuit breaker's state machine at fixed times, and its single probe under
// concurrent callers.
#include "upstream/circuit_breaker.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace redline::upstream {
namespace {

using namespace std::chrono_literals;
using State = CircuitBreaker::State;

TEST(CircuitBreaker, OpensAfterConsecutiveFailuresThenProbes) {
  CircuitBreaker b(3, 1000ms);
  const auto t0 = CircuitBreaker::Clock::now();
  b.on_failure(t0);
  b.on_failure(t0);
  b.on_success();  // not consecutive any more
  b.on_failure(t0);
  b.on_failure(t0);
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.allow(t0));
  b.on_failure(t0);  // third in a row
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_EQ(b.opened_count(), 1u);
  EXPECT_FALSE(b.allow(t0 + 999ms));
  EXPECT_TRUE(b.allow(t0 + 1000ms));  // the probe
  EXPECT_EQ(b.state(), State::kHalfOpen);
  EXPECT_FALSE(b.allow(t0 + 1000ms));  // only one
  b.on_failure(t0 + 1100ms);           // probe failed: open again from now
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_FALSE(b.allow(t0 + 2000ms));
  EXPECT_TRUE(b.allow(t0 + 2100ms));
  b.on_success();  // probe succeeded
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.allow(t0 + 2100ms));
  EXPECT_EQ(b.opened_count(), 2u);
}

TEST(CircuitBreaker, UnusedProbeIsGivenBack) {
  CircuitBreaker b(1, 100ms);
  const auto t0 = CircuitBreaker::Clock::now();
  b.on_failure(t0);
  ASSERT_TRUE(b.allow(t0 + 100ms));
  b.release_probe();
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_TRUE(b.allow(t0 + 100ms));  // due at once
}

TEST(CircuitBreaker, DisabledNeverOpens) {
  CircuitBreaker b(0, 100ms);
  for (int i = 0; i < 100; ++i) b.on_failure();
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.allow());
}

TEST(CircuitBreaker, ExactlyOneProbeAmongThreads) {
  CircuitBreaker b(1, 0ms);
  b.on_failure();
  std::atomic<int> probes{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      for (int j = 0; j < 1000; ++j) {
        if (b.allow()) probes.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(probes.load(), 1);
  EXPECT_EQ(circuit_state_name(b.state()), "half_open");
}

}  // namespace
}  // namespace redline::upstream
