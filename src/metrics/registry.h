// Redline's metrics: counters, gauges and log-linear histograms that are cheap on the request
// path, and the registry that renders them in the Prometheus text format (exposition.cpp) and
// as the JSON of /admin/stats. Recording never takes a lock: each thread owns a slot (shard)
// of every metric and bumps it with a relaxed load + store; slots are summed at scrape time.
// Label sets are bounded: a value outside a label's declared set, past a label's cap of
// distinct values, or past a family's cap of series is recorded as "other".
//
// How a module declares and updates a metric (declare once, next to the code that bumps it):
//
//   #include "metrics/registry.h"
//
//   // Declaration: returns the family; declaring the same name again returns the same family
//   // (so standard.h can pre-declare names), a different type or label set throws.
//   static auto& results = metrics::counter("redline_cache_results_total",
//                                           "Cache lookups by outcome and tier.",
//                                           {"outcome", {"tier", {"l1", "l2"}}});
//   // Resolve label values to a handle once (a lock-free table lookup, ~20 ns) ...
//   static const metrics::Counter l1_hits = results.labels("hit", "l1");
//   // ... then on the request path (~1-2 ns, no lock, no allocation):
//   l1_hits.inc();
//   results.labels(outcome_name(o), "l2").inc();   // also fine per request
//
//   static auto& duration = metrics::histogram("redline_request_duration_seconds",
//                                              "Whole request, first byte in to last byte out.",
//                                              {"route"});
//   duration.labels(route).observe(std::chrono::steady_clock::now() - start);  // nanoseconds
//
//   static auto& depth = metrics::gauge("redline_redis_pipeline_depth", "...", {"node"});
//   depth.labels(addr).set(n);
//   // A value that already lives elsewhere is read at scrape time instead of copied:
//   metrics::Registration r = conns.labels("proxy").track([&] { return double(stats.n); });
//
// Names start with "redline_"; counters end in "_total"; histograms of durations are in
// seconds (recorded as nanoseconds). Use metrics::registry() (process-wide) through the free
// functions above; tests build their own Registry.
#pragma once

#include <array>
#include <atomic>
#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "metrics/hdr.h"

namespace redline::metrics {

// Thread slots: each recording thread owns one (returned to a free list when it exits); the
// last slot is shared by threads beyond the first 63 and is bumped with atomic adds.
inline constexpr uint32_t kMaxShards = 64;

namespace detail {
inline constexpr uint32_t kSharedShard = kMaxShards - 1;
inline constexpr uint32_t kNoShard = ~uint32_t{0};
inline constinit thread_local uint32_t t_shard = kNoShard;
uint32_t assign_shard() noexcept;
inline uint32_t shard() noexcept {
  const uint32_t s = t_shard;
  return s != kNoShard ? s : assign_shard();
}
// The owner of a slot is its only writer: a plain relaxed load + store is enough (and has
// no lock prefix); readers see a torn-free value because the cell is an atomic.
inline void bump(std::atomic<uint64_t>& cell, uint64_t n, uint32_t shard) noexcept {
  if (shard != kSharedShard) [[likely]] {
    cell.store(cell.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  } else {
    cell.fetch_add(n, std::memory_order_relaxed);
  }
}
struct alignas(64) Line {
  std::atomic<uint64_t> v[8];
};
}  // namespace detail

enum class Kind { kCounter, kGauge, kHistogram };
std::string_view kind_name(Kind k);

// A declared label: a name, and optionally the only values it may take (others -> "other").
struct Label {
  std::string name;
  std::vector<std::string> values;   // empty: open, first Options::max_values_per_label win
  Label(const char* n) : name(n) {}  // NOLINT: implicit on purpose
  Label(std::string n) : name(std::move(n)) {}  // NOLINT
  Label(std::string_view n) : name(n) {}        // NOLINT
  Label(std::string n, std::vector<std::string> v) : name(std::move(n)), values(std::move(v)) {}
};

inline constexpr std::string_view kOther = "other";

struct Options {
  std::size_t max_series = 64;            // distinct label sets; beyond: the all-"other" set
  std::size_t max_values_per_label = 32;  // open labels: distinct values; beyond: "other"
  double scale = 1.0;  // counters/gauges: exposition value = stored integer x scale
  // Histograms: Prometheus bucket upper bounds in exposition units (empty: latency_buckets()),
  // and the exposition units of one recorded unit (1e-9: nanoseconds recorded, seconds shown).
  std::vector<double> buckets;
  double unit = 1e-9;
};

// 100 us .. 60 s, the layout of every *_seconds histogram.
const std::vector<double>& latency_buckets();

class Registry;
class Family;

// Keeps a scrape-time value source (track()) registered; unregisters when destroyed.
class Registration {
 public:
  Registration() = default;
  Registration(Family* f, uint64_t id) : family_(f), id_(id) {}
  Registration(Registration&& o) noexcept : family_(o.family_), id_(o.id_) { o.family_ = nullptr; }
  Registration& operator=(Registration&& o) noexcept;
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;
  ~Registration() { reset(); }
  void reset();

 private:
  Family* family_ = nullptr;
  uint64_t id_ = 0;
};

// Percentiles of one histogram over a span of time, in exposition units (seconds).
struct Percentiles {
  uint64_t count = 0;
  double sum = 0, mean = 0, p50 = 0, p90 = 0, p99 = 0, p999 = 0;
  double window_seconds = 0;  // the span covered (uptime for "since start")
};

// What one family holds, for /admin/stats and tests.
struct SeriesValue {
  std::vector<std::string> labels;  // values, in the family's label order
  double value = 0;                 // counters, gauges; histograms: count
};

// One metric name with its help text, label names and series. Subclasses add the storage.
class Family {
 public:
  Family(Registry& registry, Kind kind, std::string name, std::string help,
         std::vector<Label> labels, Options options);
  virtual ~Family();
  Family(const Family&) = delete;
  Family& operator=(const Family&) = delete;

  Kind kind() const { return kind_; }
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<Label>& labels() const { return labels_; }
  const Options& options() const { return options_; }
  std::size_t series_count() const;
  // Every series: label values and current value (summed over threads and sources).
  std::vector<SeriesValue> snapshot() const;
  // Sum over all series (counters, gauges: values; histograms: counts).
  double total() const;
  // How often a label lookup missed the lock-free table and took the family's mutex.
  uint64_t slow_lookups() const { return slow_lookups_.load(std::memory_order_relaxed); }

 protected:
  friend class Registration;
  friend class Registry;
  // Series index of these label values (resolving "other"); lock-free when seen before.
  uint32_t resolve(std::span<const std::string_view> values);
  Registration track(uint32_t series, std::function<double()> fn);
  // Stored value of one series, without tracked sources (caller holds mu_ or not: atomics).
  virtual double stored(uint32_t series) const = 0;
  double tracked(uint32_t series) const;  // caller holds mu_
  void untrack(uint64_t id);
  std::size_t capacity() const { return options_.max_series + 1; }

  struct Slot;
  struct Source {
    uint64_t id;
    uint32_t series;
    std::function<double()> fn;
  };

  Registry& registry_;
  const Kind kind_;
  const std::string name_;
  const std::string help_;
  const std::vector<Label> labels_;
  const Options options_;

  mutable std::mutex mu_;
  std::vector<std::vector<std::string>> series_;       // guarded by mu_; index = series
  std::atomic<uint32_t> published_series_{0};          // series_.size(), for lock-free readers
  std::unordered_map<std::string, uint32_t> by_key_;   // canonical key -> series
  std::vector<std::unordered_set<std::string>> seen_;  // open labels: values admitted
  std::vector<Source> sources_;
  uint64_t next_source_id_ = 1;
  std::unique_ptr<Slot[]> table_;  // raw label values -> series, insert-only, lock-free reads
  std::size_t table_mask_ = 0;
  std::size_t table_used_ = 0;
  std::atomic<uint64_t> slow_lookups_{0};

 private:
  uint32_t resolve_slow(std::span<const std::string_view> values, uint64_t hash);
  uint32_t add_series(std::vector<std::string> canonical);
};

class CounterFamily;
class GaugeFamily;
class HistogramFamily;

// A counter series. Copyable handle (16 bytes); valid as long as its registry.
class Counter {
 public:
  Counter() = default;
  Counter(CounterFamily* f, uint32_t series) : family_(f), series_(series) {}
  inline void inc(uint64_t n = 1) const noexcept;
  // For totals counted elsewhere (e.g. Redis INFO): the series shows this plus any inc()s.
  void set_total(uint64_t v) const noexcept;
  double value() const;                                  // merged now (scrape side)
  Registration track(std::function<double()> fn) const;  // adds fn() at scrape time

 private:
  CounterFamily* family_ = nullptr;
  uint32_t series_ = 0;
};

class Gauge {
 public:
  Gauge() = default;
  Gauge(GaugeFamily* f, uint32_t series) : family_(f), series_(series) {}
  inline void set(int64_t v) const noexcept;
  inline void add(int64_t d) const noexcept;
  void sub(int64_t d) const noexcept { add(-d); }
  double value() const;
  Registration track(std::function<double()> fn) const;

 private:
  GaugeFamily* family_ = nullptr;
  uint32_t series_ = 0;
};

class Histogram {
 public:
  Histogram() = default;
  Histogram(HistogramFamily* f, uint32_t series) : family_(f), series_(series) {}
  // Durations (recorded in nanoseconds; negative counts as 0).
  template <class Rep, class Period>
  void observe(std::chrono::duration<Rep, Period> d) const noexcept {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    record(ns > 0 ? static_cast<uint64_t>(ns) : 0);
  }
  // A raw value in the family's recorded unit (nanoseconds, or a count for Options::unit 1).
  inline void record(uint64_t raw) const noexcept;
  Percentiles since_start() const;

 private:
  HistogramFamily* family_ = nullptr;
  uint32_t series_ = 0;
};

class CounterFamily : public Family {
 public:
  CounterFamily(Registry& r, std::string name, std::string help, std::vector<Label> labels,
                Options o);
  ~CounterFamily() override;
  template <class... V>
  Counter labels(const V&... values) {
    const std::array<std::string_view, sizeof...(V)> a{std::string_view(values)...};
    return Counter(this, resolve(a));
  }
  Counter labels_span(std::span<const std::string_view> v) { return Counter(this, resolve(v)); }
  // Unlabeled families: the single series.
  void inc(uint64_t n = 1) noexcept { Counter(this, 0).inc(n); }

 private:
  friend class Counter;
  double stored(uint32_t series) const override;
  std::atomic<uint64_t>& cell(uint32_t series, uint32_t shard) noexcept {
    detail::Line* b = blocks_[shard].load(std::memory_order_acquire);
    if (!b) [[unlikely]]
      b = allocate(shard);
    return b[series / 8].v[series % 8];
  }
  detail::Line* allocate(uint32_t shard) noexcept;

  std::array<std::atomic<detail::Line*>, kMaxShards> blocks_{};
  std::unique_ptr<std::atomic<uint64_t>[]> totals_;  // set_total()
};

class GaugeFamily : public Family {
 public:
  GaugeFamily(Registry& r, std::string name, std::string help, std::vector<Label> labels,
              Options o);
  template <class... V>
  Gauge labels(const V&... values) {
    const std::array<std::string_view, sizeof...(V)> a{std::string_view(values)...};
    return Gauge(this, resolve(a));
  }
  Gauge labels_span(std::span<const std::string_view> v) { return Gauge(this, resolve(v)); }
  void set(int64_t v) noexcept { Gauge(this, 0).set(v); }

 private:
  friend class Gauge;
  double stored(uint32_t series) const override;
  std::unique_ptr<std::atomic<int64_t>[]> cells_;
};

// Per-thread storage of one histogram series: Prometheus buckets, sum, and the log-linear
// buckets the percentiles come from (16 KiB).
struct alignas(64) HistogramCells {
  static constexpr std::size_t kMaxBounds = 31;
  std::atomic<uint64_t> sum{0};
  std::array<std::atomic<uint64_t>, kMaxBounds + 1> prom{};  // last: +Inf
  std::array<std::atomic<uint64_t>, hdr::kBuckets> hdr{};
};

// Percentiles of every series of a histogram family and of all of them merged.
struct HistogramStats {
  std::string name;
  std::vector<std::string> label_names;
  Percentiles since_start, last_minute;  // all series merged
  struct Series {
    std::vector<std::string> labels;
    Percentiles since_start, last_minute;
  };
  std::vector<Series> series;
};

class HistogramFamily : public Family {
 public:
  using Time = std::chrono::steady_clock::time_point;
  static constexpr auto kWindow = std::chrono::seconds(60);
  static constexpr auto kSlot = std::chrono::seconds(10);

  HistogramFamily(Registry& r, std::string name, std::string help, std::vector<Label> labels,
                  Options o, Time created);
  ~HistogramFamily() override;
  template <class... V>
  Histogram labels(const V&... values) {
    const std::array<std::string_view, sizeof...(V)> a{std::string_view(values)...};
    return Histogram(this, resolve(a));
  }
  Histogram labels_span(std::span<const std::string_view> v) { return Histogram(this, resolve(v)); }
  template <class Rep, class Period>
  void observe(std::chrono::duration<Rep, Period> d) noexcept {
    Histogram(this, 0).observe(d);
  }
  void record(uint64_t raw) noexcept { Histogram(this, 0).record(raw); }

  // Prometheus bounds in recorded units (floor), and the merged per-series data.
  const std::vector<double>& bounds() const { return bounds_; }
  struct Merged {
    std::vector<uint64_t> prom;  // per bucket (not cumulative), last = +Inf
    uint64_t sum = 0;
    uint64_t count = 0;
  };
  Merged merged_buckets(uint32_t series) const;
  HdrSnapshot merged_hdr(uint32_t series) const;
  // Takes a window snapshot when the last is kSlot old (called by Registry::tick()).
  void tick(Time now);
  HistogramStats stats(Time now);

 private:
  friend class Histogram;
  double stored(uint32_t series) const override;
  HistogramCells& cells(uint32_t series, uint32_t shard) noexcept {
    HistogramCells* c = cells_[series][shard].load(std::memory_order_acquire);
    if (!c) [[unlikely]]
      c = allocate(series, shard);
    return *c;
  }
  HistogramCells* allocate(uint32_t series, uint32_t shard) noexcept;
  Percentiles percentiles(const HdrSnapshot& s, double window_seconds) const;
  // The newest snapshot at least kWindow old (or the empty one at creation).
  std::pair<Time, const HdrSnapshot*> window_base(uint32_t series, Time now) const;

  std::vector<double> bounds_;        // exposition units
  std::vector<uint64_t> raw_bounds_;  // recorded units: v <= raw_bounds_[i] -> bucket i
  std::vector<uint8_t> first_bound_;  // per hdr bucket: first Prometheus bucket to try
  std::unique_ptr<std::array<std::atomic<HistogramCells*>, kMaxShards>[]> cells_;
  // Window ring per series: (time, merged snapshot); guarded by mu_.
  struct Snap {
    Time at;
    std::vector<HdrSnapshot> series;
  };
  std::vector<Snap> ring_;
  Time created_;
  HdrSnapshot empty_;
};

// The set of families. Thread-safe; declaration takes a mutex, recording never does.
class Registry {
 public:
  using Time = std::chrono::steady_clock::time_point;
  using Clock = std::function<Time()>;
  explicit Registry(Clock clock = {});
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  CounterFamily& counter(std::string_view name, std::string_view help,
                         std::vector<Label> labels = {}, Options options = {});
  GaugeFamily& gauge(std::string_view name, std::string_view help, std::vector<Label> labels = {},
                     Options options = {});
  HistogramFamily& histogram(std::string_view name, std::string_view help,
                             std::vector<Label> labels = {}, Options options = {});

  // Closes an open label (by name, in every family, also ones declared later) to these
  // values; others become "other". Call at start-up, before traffic (e.g. "model" from the
  // config's models). A label declared with its own values keeps them.
  void restrict_label(std::string_view label, std::vector<std::string> values);
  // The values restrict_label() set, or nullptr.
  std::shared_ptr<const std::unordered_set<std::string>> label_domain(std::string_view label) const;

  // Prometheus text exposition format 0.0.4 of every family, sorted by name.
  std::string render();
  // JSON for /admin/stats: percentiles of every histogram (last minute, since start) and
  // every counter's and gauge's series.
  std::string stats_json();
  boost::json::object stats_object();
  std::vector<HistogramStats> histogram_stats();
  // Rotates the last-minute windows (every HistogramFamily::kSlot; cheap when not due).
  // render() and stats_json() call it; a timer should too (see run_ticker()).
  void tick();

  Time now() const { return clock_(); }
  Time started() const { return started_; }
  Family* find(std::string_view name) const;
  std::vector<Family*> families() const;  // sorted by name

 private:
  template <class F>
  F& declare(Kind kind, std::string_view name, std::string_view help, std::vector<Label> labels,
             Options options);

  Clock clock_;
  Time started_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;
  mutable std::mutex domains_mu_;  // a leaf lock (taken inside a family's mutex)
  std::map<std::string, std::shared_ptr<const std::unordered_set<std::string>>, std::less<>>
      domains_;
};

// The process-wide registry (never destroyed, so threads may record until the very end).
Registry& registry();
inline CounterFamily& counter(std::string_view name, std::string_view help,
                              std::vector<Label> labels = {}, Options options = {}) {
  return registry().counter(name, help, std::move(labels), std::move(options));
}
inline GaugeFamily& gauge(std::string_view name, std::string_view help,
                          std::vector<Label> labels = {}, Options options = {}) {
  return registry().gauge(name, help, std::move(labels), std::move(options));
}
inline HistogramFamily& histogram(std::string_view name, std::string_view help,
                                  std::vector<Label> labels = {}, Options options = {}) {
  return registry().histogram(name, help, std::move(labels), std::move(options));
}

// ---- inline recording paths ----

inline void Counter::inc(uint64_t n) const noexcept {
  const uint32_t s = detail::shard();
  detail::bump(family_->cell(series_, s), n, s);
}

inline void Gauge::set(int64_t v) const noexcept {
  family_->cells_[series_].store(v, std::memory_order_relaxed);
}
inline void Gauge::add(int64_t d) const noexcept {
  family_->cells_[series_].fetch_add(d, std::memory_order_relaxed);
}

inline void Histogram::record(uint64_t raw) const noexcept {
  const uint32_t s = detail::shard();
  HistogramCells& c = family_->cells(series_, s);
  const std::size_t i = hdr::index(raw);
  std::size_t b = family_->first_bound_[i];
  const std::size_t nb = family_->raw_bounds_.size();
  while (b < nb && raw > family_->raw_bounds_[b]) ++b;
  detail::bump(c.hdr[i], 1, s);
  detail::bump(c.prom[b], 1, s);
  detail::bump(c.sum, raw, s);
}

}  // namespace redline::metrics
