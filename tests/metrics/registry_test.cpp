// Counters, gauges and the registry: bounded label sets ("other"), declaration rules,
// scrape-time sources, concurrent increments (also past the number of thread slots), the
// Prometheus text format and the /admin/stats JSON.
#include "metrics/registry.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <thread>

#include "metrics/process.h"
#include "metrics/standard.h"
#include "support/process.h"
#include "support/redis_server.h"

namespace redline::metrics {
namespace {

// prefix + i (built in two steps: g++ 12 -O3 warns falsely on "x" + std::to_string(i)).
std::string numbered(const char* prefix, int i) {
  std::string s(prefix);
  s += std::to_string(i);
  return s;
}

double value_of(Family& f, std::vector<std::string> labels) {
  for (const auto& s : f.snapshot()) {
    if (s.labels == labels) return s.value;
  }
  return -1;
}

TEST(Registry, CounterLabelsAndHandles) {
  Registry reg;
  auto& hits = reg.counter("redline_cache_results_total", "Cache lookups.",
                           {"outcome", {"tier", {"l1", "l2"}}});
  const Counter l1 = hits.labels("hit", "l1");
  l1.inc();
  l1.inc(4);
  hits.labels("hit", "l1").inc();
  hits.labels("miss", "l2").inc();
  EXPECT_EQ(l1.value(), 6);
  EXPECT_EQ(value_of(hits, {"miss", "l2"}), 1);
  EXPECT_EQ(hits.series_count(), 2u);
  EXPECT_EQ(hits.total(), 7);
}

TEST(Registry, DeclaredValuesOverflowToOther) {
  Registry reg;
  auto& c = reg.counter("redline_x_total", "x", {"outcome", {"tier", {"l1", "l2"}}});
  c.labels("hit", "l3").inc();
  c.labels("hit", "disk").inc();
  EXPECT_EQ(value_of(c, {"hit", "other"}), 2);
  EXPECT_EQ(c.series_count(), 1u);
}

TEST(Registry, OpenLabelsAreCappedPerLabelAndPerFamily) {
  Registry reg;
  Options o;
  o.max_values_per_label = 3;
  o.max_series = 4;
  auto& c = reg.counter("redline_y_total", "y", {"model", "status"}, o);
  for (int i = 0; i < 10; ++i) c.labels(numbered("m", i), "200").inc();
  EXPECT_EQ(value_of(c, {"m0", "200"}), 1);
  EXPECT_EQ(value_of(c, {"m2", "200"}), 1);
  EXPECT_EQ(value_of(c, {"other", "200"}), 7);
  // Series cap: 4 series exist; a fifth combination of admitted values goes to all-other.
  c.labels("m0", "500").inc();
  c.labels("m1", "500").inc();
  EXPECT_EQ(c.series_count(), 5u);  // 4 + the all-"other" overflow series
  EXPECT_EQ(value_of(c, {"other", "other"}), 2);
  EXPECT_EQ(c.total(), 12);
}

TEST(Registry, RestrictedLabelMapsUnknownModelsToOther) {
  Registry reg;
  reg.restrict_label("model", {"gpt-4o-mini", "claude-3-5-haiku-latest"});
  auto& req = reg.counter("redline_requests_total", "r", {"route", "model", "status"});
  req.labels("chat", "gpt-4o-mini", "200").inc();
  for (int i = 0; i < 50; ++i) req.labels("chat", numbered("made-up-", i), "200").inc();
  EXPECT_EQ(value_of(req, {"chat", "gpt-4o-mini", "200"}), 1);
  EXPECT_EQ(value_of(req, {"chat", "other", "200"}), 50);
  EXPECT_EQ(req.series_count(), 2u);  // an unknown model adds no label value
  // The lock-free table remembers raw values until 3/4 full; lookups after that are correct too.
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 400; ++i) req.labels("chat", numbered("z", i), "200").inc();
  }
  EXPECT_EQ(value_of(req, {"chat", "other", "200"}), 1250);
  EXPECT_EQ(req.series_count(), 2u);
}

TEST(Registry, RepeatedLookupsAreLockFree) {
  Registry reg;
  auto& c = reg.counter("redline_z_total", "z", {"a", "b"});
  c.labels("x", "y").inc();
  const auto slow = c.slow_lookups();
  for (int i = 0; i < 1000; ++i) c.labels("x", "y").inc();
  EXPECT_EQ(c.slow_lookups(), slow);
  EXPECT_EQ(c.labels("x", "y").value(), 1001);
}

TEST(Registry, DeclarationRules) {
  Registry reg;
  auto& a = reg.counter("redline_a_total", "a", {"x"});
  EXPECT_EQ(&reg.counter("redline_a_total", "a again", {"x"}), &a);
  EXPECT_THROW(reg.counter("redline_a_total", "a", {"y"}), std::logic_error);
  EXPECT_THROW(reg.gauge("redline_a_total", "a", {"x"}), std::logic_error);
  EXPECT_THROW(reg.counter("redline_no_suffix", "a"), std::invalid_argument);
  EXPECT_THROW(reg.counter("other_a_total", "a"), std::invalid_argument);
  EXPECT_THROW(reg.counter("redline_b_total", "a", {"bad-label"}), std::invalid_argument);
  EXPECT_THROW(reg.histogram("redline_h_seconds", "a", {"le"}), std::invalid_argument);
  // The standard families can be declared again by the modules that use them.
  standard::declare_all(reg);
  EXPECT_NO_THROW(reg.counter("redline_cache_results_total", "mine", {"outcome", "tier"}));
  EXPECT_THROW(reg.counter("redline_cache_results_total", "mine", {"outcome"}), std::logic_error);
}

TEST(Registry, GaugesAndScrapeTimeSources) {
  Registry reg;
  auto& g = reg.gauge("redline_conns", "c", {"server"});
  g.labels("proxy").set(5);
  g.labels("proxy").add(2);
  g.labels("proxy").sub(1);
  EXPECT_EQ(g.labels("proxy").value(), 6);
  int external = 10;
  {
    auto r1 = g.labels("admin").track([&] { return double(external); });
    auto r2 = g.labels("admin").track([] { return 1.0; });
    EXPECT_EQ(g.labels("admin").value(), 11);
    external = 20;
    EXPECT_EQ(g.labels("admin").value(), 21);
  }
  EXPECT_EQ(g.labels("admin").value(), 0);  // sources unregistered
  auto& c = reg.counter("redline_ext_total", "e");
  c.labels().set_total(100);
  c.inc(5);
  EXPECT_EQ(c.labels().value(), 105);
}

TEST(Registry, ConcurrentIncrementsAreExact) {
  Registry reg;
  auto& c = reg.counter("redline_conc_total", "c", {"t"});
  auto& g = reg.gauge("redline_conc_gauge", "g");
  constexpr int kThreads = 8, kPer = 200000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const auto mine = c.labels(t % 2 ? "odd" : "even");
      for (int i = 0; i < kPer; ++i) {
        mine.inc();
        if (i % 1000 == 0) c.labels("shared").inc();
        g.set(i);
      }
    });
  }
  // Scrape while they run (TSan checks the reader side too).
  for (int i = 0; i < 20; ++i) (void)reg.render();
  for (auto& t : threads) t.join();
  EXPECT_EQ(value_of(c, {"even"}), double(kThreads / 2) * kPer);
  EXPECT_EQ(value_of(c, {"odd"}), double(kThreads / 2) * kPer);
  EXPECT_EQ(value_of(c, {"shared"}), double(kThreads) * (kPer / 1000));
}

TEST(Registry, MoreThreadsThanSlotsStillCountExactly) {
  Registry reg;
  auto& c = reg.counter("redline_many_total", "c");
  auto& h = reg.histogram("redline_many_seconds", "h");
  // 100 live threads at once: 63 own a slot, the rest share the last one (atomic adds).
  constexpr int kThreads = 100, kPer = 5000;
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();
      for (int i = 0; i < kPer; ++i) {
        c.inc();
        h.record(1000);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.labels().value(), double(kThreads) * kPer);
  EXPECT_EQ(h.labels().since_start().count, uint64_t{kThreads} * kPer);
  // Slots of exited threads are reused, and keep what was counted in them.
  std::thread([&] { c.inc(7); }).join();
  EXPECT_EQ(c.labels().value(), double(kThreads) * kPer + 7);
}

TEST(Exposition, TextFormat) {
  Registry reg;
  auto& c = reg.counter("redline_cache_results_total", "Cache lookups.\nBy tier \\ outcome.",
                        {"outcome", "tier"});
  c.labels("hit", "l1").inc(3);
  c.labels("mi\"ss", "l\\2\n").inc();
  auto& g = reg.gauge("redline_in_flight", "In flight.");
  g.set(-2);
  Options spend;
  spend.scale = 1e-6;
  reg.counter("redline_spend_usd_total", "Spend.", {}, spend).inc(1500000);
  Options o;
  o.unit = 1;
  o.buckets = {1, 2.5};
  auto& h = reg.histogram("redline_round_trips", "Round trips.", {"route"}, o);
  h.labels("chat").record(1);
  h.labels("chat").record(2);
  h.labels("chat").record(9);
  reg.gauge("redline_empty", "Declared, never set.", {"x"});
  const std::string expected =
      "# HELP redline_cache_results_total Cache lookups.\\nBy tier \\\\ outcome.\n"
      "# TYPE redline_cache_results_total counter\n"
      "redline_cache_results_total{outcome=\"hit\",tier=\"l1\"} 3\n"
      "redline_cache_results_total{outcome=\"mi\\\"ss\",tier=\"l\\\\2\\n\"} 1\n"
      "# HELP redline_empty Declared, never set.\n"
      "# TYPE redline_empty gauge\n"
      "# HELP redline_in_flight In flight.\n"
      "# TYPE redline_in_flight gauge\n"
      "redline_in_flight -2\n"
      "# HELP redline_round_trips Round trips.\n"
      "# TYPE redline_round_trips histogram\n"
      "redline_round_trips_bucket{route=\"chat\",le=\"1\"} 1\n"
      "redline_round_trips_bucket{route=\"chat\",le=\"2.5\"} 2\n"
      "redline_round_trips_bucket{route=\"chat\",le=\"+Inf\"} 3\n"
      "redline_round_trips_sum{route=\"chat\"} 12\n"
      "redline_round_trips_count{route=\"chat\"} 3\n"
      "# HELP redline_spend_usd_total Spend.\n"
      "# TYPE redline_spend_usd_total counter\n"
      "redline_spend_usd_total 1.5\n";
  EXPECT_EQ(reg.render(), expected);
}

TEST(Exposition, LatencyHistogramText) {
  Registry reg;
  auto& h = reg.histogram("redline_request_duration_seconds", "Requests.");
  h.observe(std::chrono::microseconds(300));
  h.observe(std::chrono::milliseconds(2));
  const auto text = reg.render();
  EXPECT_NE(text.find("redline_request_duration_seconds_bucket{le=\"0.0001\"} 0\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("redline_request_duration_seconds_bucket{le=\"0.0005\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("redline_request_duration_seconds_bucket{le=\"0.0025\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("redline_request_duration_seconds_bucket{le=\"60\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("redline_request_duration_seconds_sum 0.0023\n"), std::string::npos);
  EXPECT_NE(text.find("redline_request_duration_seconds_count 2\n"), std::string::npos);
}

TEST(Exposition, PromtoolAcceptsTheText) {
  const std::string promtool = "/usr/bin/promtool";
  if (!std::filesystem::exists(promtool)) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus; scripts/install-deps.sh)";
  }
  Registry reg;
  standard::declare_all(reg);
  ProcessMetrics process(reg);
  standard::declare_all(reg);
  reg.counter("redline_requests_total", "", {"route", "model", "status"})
      .labels("chat_completions", "gpt-4o-mini", "200")
      .inc();
  reg.histogram("redline_request_duration_seconds", "", {"route"})
      .labels("chat_completions")
      .observe(std::chrono::milliseconds(3));
  test::TempDir dir;
  const auto file = dir.write("metrics.txt", reg.render());
  int rc = -1;
  const auto out =
      test::run_command({"sh", "-c", promtool + " check metrics < " + file.string()}, &rc);
  EXPECT_EQ(rc, 0) << out << "\n" << reg.render();
}

TEST(Stats, JsonHasPercentilesAndCounters) {
  Registry reg;
  auto& h = reg.histogram("redline_request_duration_seconds", "r", {"route"});
  for (int i = 1; i <= 100; ++i) h.labels("chat").observe(std::chrono::milliseconds(i));
  reg.counter("redline_requests_total", "r", {"status"}).labels("200").inc(100);
  reg.gauge("redline_g", "g").set(3);
  auto v = boost::json::parse(reg.stats_json());
  const auto& lat = v.at("latency").at("redline_request_duration_seconds");
  EXPECT_EQ(lat.at("unit").as_string(), "ms");
  const auto& lm = lat.at("last_minute");
  EXPECT_EQ(lm.at("count").to_number<uint64_t>(), 100u);
  EXPECT_NEAR(lm.at("p50").as_double(), 50, 0.5);
  EXPECT_NEAR(lm.at("p90").as_double(), 90, 0.9);
  EXPECT_NEAR(lm.at("p99").as_double(), 99, 1);
  EXPECT_NEAR(lm.at("p999").as_double(), 100, 1);
  EXPECT_NEAR(lat.at("since_start").at("p50").as_double(), 50, 0.5);
  EXPECT_EQ(lat.at("series").as_array().size(), 1u);
  EXPECT_EQ(v.at("counters").at("redline_requests_total").at("total").as_double(), 100);
  EXPECT_EQ(v.at("gauges").at("redline_g").at("total").as_double(), 3);
}

TEST(Process, ReadsProcFiles) {
  const auto r = read_process();
  EXPECT_GT(r.resident_bytes, 1e6);
  EXPECT_GT(r.open_fds, 2);
  EXPECT_GE(r.threads, 1);
  EXPECT_GT(r.max_fds, 0);
}

}  // namespace
}  // namespace redline::metrics
