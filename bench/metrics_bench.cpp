// Cost of recording a metric on the request path: a counter increment through a resolved
// handle, a label lookup + increment, a histogram record, and the same from several threads
// at once (each thread owns its slot, so they should not slow each other down). Also the
// scrape side: rendering a registry of a realistic size.
#include <benchmark/benchmark.h>

#include <chrono>

#include "metrics/registry.h"
#include "metrics/standard.h"

namespace {

using namespace redline::metrics;

Registry& reg() {
  static Registry r;
  return r;
}

void BM_CounterInc(benchmark::State& state) {
  static auto& f = reg().counter("redline_bench_total", "b", {"outcome", "tier"});
  const Counter c = f.labels("hit", "l1");
  for (auto _ : state) c.inc();
  benchmark::DoNotOptimize(c.value());
}
BENCHMARK(BM_CounterInc)->ThreadRange(1, 4);

void BM_CounterLabelsThenInc(benchmark::State& state) {
  static auto& f = reg().counter("redline_bench_labels_total", "b", {"route", "model", "status"});
  for (auto _ : state) f.labels("chat_completions", "gpt-4o-mini", "200").inc();
}
BENCHMARK(BM_CounterLabelsThenInc)->ThreadRange(1, 4);

void BM_HistogramRecord(benchmark::State& state) {
  static auto& f = reg().histogram("redline_bench_seconds", "b", {"route"});
  const Histogram h = f.labels("chat");
  uint64_t v = 12345;
  for (auto _ : state) {
    h.record(v);
    v = v * 6364136223846793005ull + 1442695040888963407ull;  // spread over buckets
    v >>= 28;
  }
}
BENCHMARK(BM_HistogramRecord)->ThreadRange(1, 4);

void BM_HistogramObserveDuration(benchmark::State& state) {
  static auto& f = reg().histogram("redline_bench2_seconds", "b");
  const Histogram h = f.labels();
  const auto d = std::chrono::microseconds(850);
  for (auto _ : state) h.observe(d);
}
BENCHMARK(BM_HistogramObserveDuration);

void BM_Render(benchmark::State& state) {
  Registry r;
  redline::metrics::standard::declare_all(r);
  auto& req = r.counter("redline_requests_total", "", {"route", "model", "status"});
  auto& dur = r.histogram("redline_request_duration_seconds", "", {"route"});
  for (int m = 0; m < 10; ++m) {
    for (const char* s : {"200", "429", "500"}) {
      req.labels("chat_completions", "model-" + std::to_string(m), s).inc();
    }
  }
  for (const char* route : {"chat_completions", "embeddings", "messages"}) {
    dur.labels(route).observe(std::chrono::milliseconds(3));
  }
  std::size_t bytes = 0;
  for (auto _ : state) bytes = r.render().size();
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Render)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
