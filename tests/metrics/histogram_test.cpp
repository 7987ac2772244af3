// The log-linear histogram: the precision bound over the whole range, percentiles against a
// sorted reference, merging threads, Prometheus bucket edges, and the last-minute window
// rotated by an injected clock.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>

#include "metrics/hdr.h"
#include "metrics/registry.h"

namespace redline::metrics {
namespace {

using namespace std::chrono_literals;

TEST(Hdr, BucketsTileTheRangeWithoutGaps) {
  EXPECT_EQ(hdr::kBuckets, 1984u);
  for (std::size_t i = 0; i + 1 < hdr::kBuckets; ++i) {
    ASSERT_EQ(hdr::lower(i) + hdr::width(i), hdr::lower(i + 1)) << i;
    ASSERT_EQ(hdr::index(hdr::lower(i)), i);
    ASSERT_EQ(hdr::index(hdr::lower(i) + hdr::width(i) - 1), i);
  }
  EXPECT_EQ(hdr::lower(hdr::kBuckets - 1) + hdr::width(hdr::kBuckets - 1) - 1, hdr::kMaxValue);
  EXPECT_EQ(hdr::index(hdr::kMaxValue + 12345), hdr::kBuckets - 1);
}

TEST(Hdr, PrecisionBoundHoldsFrom1usTo60s) {
  // Every value (sampled densely on a log scale, plus bucket edges) is reported within
  // 1/128 of itself: below 128 ns exactly.
  std::mt19937_64 rng(7);
  double worst = 0;
  auto check = [&](uint64_t v) {
    const double m = hdr::midpoint(hdr::index(v));
    const double err = std::abs(m - static_cast<double>(v)) / static_cast<double>(v);
    worst = std::max(worst, err);
    ASSERT_LE(err, 1.0 / 128) << v;
  };
  for (double v = 1000; v <= 60e9; v *= 1.0007) check(static_cast<uint64_t>(v));
  for (std::size_t i = 128; i < hdr::kBuckets; ++i) {
    check(hdr::lower(i));
    check(hdr::lower(i) + hdr::width(i) - 1);
  }
  for (uint64_t v = 1; v < 128; ++v) EXPECT_EQ(hdr::midpoint(hdr::index(v)), double(v));
  EXPECT_LT(worst, 0.01);
  EXPECT_GT(worst, 0.005);  // the bound is not vacuous
}

TEST(Histogram, PercentilesMatchSortedReference) {
  Registry reg;
  auto& h = reg.histogram("redline_test_seconds", "test");
  std::mt19937_64 rng(42);
  // Log-uniform from 1 us to 60 s, plus a dense cluster (realistic latency shape).
  std::uniform_real_distribution<double> exp10(3, std::log10(60e9));
  std::lognormal_distribution<double> cluster(std::log(2e6), 0.3);
  std::vector<uint64_t> values;
  for (int i = 0; i < 50000; ++i) {
    values.push_back(static_cast<uint64_t>(std::pow(10, exp10(rng))));
    values.push_back(static_cast<uint64_t>(cluster(rng)));
  }
  for (auto v : values) h.record(v);
  std::sort(values.begin(), values.end());
  const auto p = h.labels().since_start();
  ASSERT_EQ(p.count, values.size());
  auto ref = [&](double q) {
    auto rank = static_cast<std::size_t>(std::ceil(q * values.size()));
    return static_cast<double>(values[std::max<std::size_t>(rank, 1) - 1]) * 1e-9;
  };
  for (auto [q, got] : {std::pair{0.5, p.p50}, {0.9, p.p90}, {0.99, p.p99}, {0.999, p.p999}}) {
    EXPECT_NEAR(got, ref(q), ref(q) / 128) << "q=" << q;
  }
  double sum = 0;
  for (auto v : values) sum += static_cast<double>(v) * 1e-9;
  EXPECT_NEAR(p.sum, sum, sum * 1e-9);
}

TEST(Histogram, ThreadsMergeExactly) {
  Registry reg;
  auto& h = reg.histogram("redline_merge_seconds", "test", {"route"});
  const auto a = h.labels("a");
  constexpr int kThreads = 6, kPer = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPer; ++i) a.observe(std::chrono::microseconds(100 * (t + 1) + i % 7));
    });
  }
  for (auto& t : threads) t.join();
  const auto p = a.since_start();
  EXPECT_EQ(p.count, uint64_t{kThreads} * kPer);
  double sum = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPer; ++i) sum += (100.0 * (t + 1) + i % 7) * 1e-6;
  }
  EXPECT_NEAR(p.sum, sum, 1e-6);
  const auto m = h.merged_buckets(0);
  EXPECT_EQ(m.count, uint64_t{kThreads} * kPer);
  // Recorded values lie in 100 us .. 606 us: le=0.0001 holds exactly the 100 us ones.
  EXPECT_EQ(m.prom[0], uint64_t{kPer / 7 + 1});
}

TEST(Histogram, PrometheusBucketEdgesAreExact) {
  Registry reg;
  auto& h = reg.histogram("redline_edge_seconds", "test");
  // le="0.0001" is 100000 ns: that value is inside, one more nanosecond is not.
  h.record(100000);
  h.record(100001);
  h.record(250000);
  h.record(250001);
  h.record(uint64_t{61} * 1000000000);  // past the last bound: only +Inf
  const auto m = h.merged_buckets(0);
  ASSERT_EQ(m.prom.size(), latency_buckets().size() + 1);
  EXPECT_EQ(m.prom[0], 1u);  // <= 100 us
  EXPECT_EQ(m.prom[1], 2u);  // (100 us, 250 us]
  EXPECT_EQ(m.prom[2], 1u);  // (250 us, 500 us]
  EXPECT_EQ(m.prom.back(), 1u);
  EXPECT_EQ(m.count, 5u);
}

TEST(Histogram, CountBucketsForNonDurations) {
  Registry reg;
  Options o;
  o.unit = 1;
  o.buckets = {0, 1, 2, 3, 5, 10};
  auto& h = reg.histogram("redline_round_trips", "test", {}, o);
  for (uint64_t v : {0, 1, 1, 2, 4, 5, 11}) h.record(v);
  const auto m = h.merged_buckets(0);
  EXPECT_EQ(m.prom, (std::vector<uint64_t>{1, 2, 1, 0, 2, 0, 1}));
  EXPECT_EQ(h.labels().since_start().p50, 2);
}

TEST(Histogram, LastMinuteWindowRotatesWithInjectedClock) {
  auto now = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  Registry reg([&] { return now; });
  auto& h = reg.histogram("redline_window_seconds", "test", {"route"});
  const auto r = h.labels("chat");
  const auto t0 = now;
  auto at = [&](std::chrono::seconds s) { now = t0 + s; };

  for (int i = 0; i < 100; ++i) r.observe(1ms);
  at(5s);
  reg.tick();
  at(30s);
  for (int i = 0; i < 100; ++i) r.observe(10ms);
  reg.tick();
  at(40s);
  {
    // Younger than a minute: the window is everything since the family was declared.
    auto s = h.stats(now);
    EXPECT_EQ(s.last_minute.count, 200u);
    EXPECT_NEAR(s.last_minute.window_seconds, 40, 0.01);
  }
  at(70s);
  {
    auto s = h.stats(now);
    EXPECT_EQ(s.since_start.count, 200u);
    EXPECT_EQ(s.last_minute.count, 100u);  // the 1 ms ones are older than a minute
    EXPECT_NEAR(s.last_minute.p50, 0.010, 0.010 / 128);
    EXPECT_NEAR(s.last_minute.window_seconds, 65, 0.01);
    ASSERT_EQ(s.series.size(), 1u);
    EXPECT_EQ(s.series[0].last_minute.count, 100u);
  }
  at(100s);
  for (int i = 0; i < 10; ++i) r.observe(100ms);
  {
    auto s = h.stats(now);
    EXPECT_EQ(s.last_minute.count, 10u);
    EXPECT_NEAR(s.last_minute.p99, 0.1, 0.1 / 128);
    EXPECT_NEAR(s.since_start.p50, 0.010, 0.010 / 128);
  }
  // Nothing new for minutes, and nobody ticked meanwhile: the window is empty, not stale.
  at(400s);
  reg.tick();
  at(470s);
  {
    auto s = h.stats(now);
    EXPECT_EQ(s.last_minute.count, 0u);
    EXPECT_EQ(s.last_minute.p99, 0);
    EXPECT_EQ(s.since_start.count, 210u);
  }
  // A series born after the snapshots still has a window.
  const auto late = h.labels("embeddings");
  late.observe(2ms);
  at(480s);
  auto s = h.stats(now);
  ASSERT_EQ(s.series.size(), 2u);
  EXPECT_EQ(s.series[1].last_minute.count, 1u);
}

}  // namespace
}  // namespace redline::metrics
