// Families, label resolution, per-thread storage and the last-minute windows (see registry.h).
// The text and JSON renderings are in exposition.cpp.
#include "metrics/registry.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <stdexcept>

namespace redline::metrics {

// ---- thread slots ----

namespace detail {
namespace {

struct ShardPool {
  std::mutex mu;
  std::vector<uint32_t> free;
  uint32_t next = 0;
};

ShardPool& pool() {
  static auto* p = new ShardPool;  // never destroyed: threads may exit after static dtors
  return *p;
}

// Gives the thread's slot back when it exits; later recording on this thread (from other
// thread_local destructors) goes to the shared slot.
struct ShardReleaser {
  uint32_t index = kNoShard;
  ~ShardReleaser() {
    if (index == kNoShard) return;
    auto& p = pool();
    std::lock_guard lock(p.mu);
    p.free.push_back(index);
    t_shard = kSharedShard;
  }
};

}  // namespace

uint32_t assign_shard() noexcept {
  auto& p = pool();
  uint32_t s = kSharedShard;
  {
    std::lock_guard lock(p.mu);
    if (!p.free.empty()) {
      s = p.free.back();
      p.free.pop_back();
    } else if (p.next < kSharedShard) {
      s = p.next++;
    }
  }
  if (s != kSharedShard) {
    thread_local ShardReleaser releaser;
    releaser.index = s;
  }
  t_shard = s;
  return s;
}

}  // namespace detail

std::string_view kind_name(Kind k) {
  switch (k) {
    case Kind::kCounter:
      return "counter";
    case Kind::kGauge:
      return "gauge";
    case Kind::kHistogram:
      return "histogram";
  }
  return "untyped";
}

const std::vector<double>& latency_buckets() {
  static const std::vector<double> b{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                     0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                     1,      2.5,     5,      10,    30,     60};
  return b;
}

// ---- registrations (scrape-time sources) ----

Registration& Registration::operator=(Registration&& o) noexcept {
  if (this != &o) {
    reset();
    family_ = o.family_;
    id_ = o.id_;
    o.family_ = nullptr;
  }
  return *this;
}

void Registration::reset() {
  if (family_) family_->untrack(id_);
  family_ = nullptr;
}

// ---- families ----

namespace {

constexpr char kSep = '\x1f';

bool valid_name(std::string_view n, bool colon) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

uint64_t hash_values(std::span<const std::string_view> values) {
  uint64_t h = 14695981039346656037ull;
  for (auto v : values) {
    for (unsigned char c : v) {
      h ^= c;
      h *= 1099511628211ull;
    }
    h ^= static_cast<unsigned char>(kSep);
    h *= 1099511628211ull;
  }
  return h ? h : 1;
}

bool key_equals(std::string_view key, std::span<const std::string_view> values) {
  std::size_t pos = 0;
  for (auto v : values) {
    if (key.size() < pos + v.size() + 1 || key.compare(pos, v.size(), v) != 0 ||
        key[pos + v.size()] != kSep) {
      return false;
    }
    pos += v.size() + 1;
  }
  return pos == key.size();
}

std::string join(std::span<const std::string_view> values) {
  std::string k;
  for (auto v : values) {
    k.append(v);
    k.push_back(kSep);
  }
  return k;
}

}  // namespace

struct Family::Slot {
  std::atomic<uint64_t> tag{0};  // hash of the raw values; 0 = empty. Published last.
  uint32_t series = 0;
  std::string key;  // raw values joined by kSep
};

Family::Family(Registry& registry, Kind kind, std::string name, std::string help,
               std::vector<Label> labels, Options options)
    : registry_(registry),
      kind_(kind),
      name_(std::move(name)),
      help_(std::move(help)),
      labels_(std::move(labels)),
      options_(std::move(options)) {
  if (!valid_name(name_, true)) throw std::invalid_argument("bad metric name '" + name_ + "'");
  for (const auto& l : labels_) {
    if (!valid_name(l.name, false) || l.name.starts_with("__") ||
        (kind_ == Kind::kHistogram && l.name == "le")) {
      throw std::invalid_argument(name_ + ": bad label name '" + l.name + "'");
    }
  }
  if (options_.max_series == 0) throw std::invalid_argument(name_ + ": max_series is 0");
  std::size_t table = 64;
  while (table < 4 * capacity()) table *= 2;
  table_ = std::make_unique<Slot[]>(table);
  table_mask_ = table - 1;
  seen_.resize(labels_.size());
  series_.reserve(capacity());
  if (labels_.empty()) add_series({});
}

Family::~Family() = default;

uint32_t Family::add_series(std::vector<std::string> canonical) {
  const auto id = static_cast<uint32_t>(series_.size());
  by_key_.emplace(join(std::vector<std::string_view>(canonical.begin(), canonical.end())), id);
  series_.push_back(std::move(canonical));
  published_series_.store(static_cast<uint32_t>(series_.size()), std::memory_order_release);
  return id;
}

uint32_t Family::resolve(std::span<const std::string_view> values) {
  if (values.size() != labels_.size()) {
    assert(!"metric labels(): wrong number of label values");
    std::vector<std::string_view> fixed(labels_.size(), kOther);
    return resolve(fixed);
  }
  if (labels_.empty()) return 0;
  const uint64_t h = hash_values(values);
  for (std::size_t i = h & table_mask_, n = 0; n <= table_mask_; i = (i + 1) & table_mask_, ++n) {
    const Slot& s = table_[i];
    const uint64_t tag = s.tag.load(std::memory_order_acquire);
    if (tag == 0) break;
    if (tag == h && key_equals(s.key, values)) return s.series;
  }
  return resolve_slow(values, h);
}

uint32_t Family::resolve_slow(std::span<const std::string_view> values, uint64_t hash) {
  std::lock_guard lock(mu_);
  slow_lookups_.fetch_add(1, std::memory_order_relaxed);
  std::size_t empty = table_mask_ + 1;
  for (std::size_t i = hash & table_mask_, n = 0; n <= table_mask_;
       i = (i + 1) & table_mask_, ++n) {
    const Slot& s = table_[i];
    const uint64_t tag = s.tag.load(std::memory_order_relaxed);
    if (tag == 0) {
      empty = i;
      break;
    }
    if (tag == hash && key_equals(s.key, values)) return s.series;
  }

  // Canonical values: declared set, registry-wide domain, or first-come open values.
  std::vector<std::string> canonical;
  canonical.reserve(values.size());
  for (std::size_t l = 0; l < values.size(); ++l) {
    const Label& label = labels_[l];
    const std::string_view v = values[l];
    bool keep;
    if (!label.values.empty()) {
      keep = std::find(label.values.begin(), label.values.end(), v) != label.values.end();
    } else if (auto domain = registry_.label_domain(label.name)) {
      keep = domain->contains(std::string(v));
    } else {
      auto& seen = seen_[l];
      keep = seen.contains(std::string(v));
      if (!keep && seen.size() < options_.max_values_per_label) {
        seen.emplace(v);
        keep = true;
      }
    }
    canonical.emplace_back(keep ? v : kOther);
  }
  const std::string key = join(std::vector<std::string_view>(canonical.begin(), canonical.end()));
  uint32_t series;
  if (auto it = by_key_.find(key); it != by_key_.end()) {
    series = it->second;
  } else if (series_.size() < options_.max_series) {
    series = add_series(std::move(canonical));
  } else {
    const std::string other_key = join(std::vector<std::string_view>(labels_.size(), kOther));
    auto o = by_key_.find(other_key);
    series = o != by_key_.end()
                 ? o->second
                 : add_series(std::vector<std::string>(labels_.size(), std::string(kOther)));
  }
  // Remember the raw values while the table is at most 3/4 full (beyond: this path again).
  if (empty <= table_mask_ && (table_used_ + 1) * 4 <= (table_mask_ + 1) * 3) {
    Slot& s = table_[empty];
    s.key = join(values);
    s.series = series;
    s.tag.store(hash, std::memory_order_release);
    ++table_used_;
  }
  return series;
}

Registration Family::track(uint32_t series, std::function<double()> fn) {
  std::lock_guard lock(mu_);
  const uint64_t id = next_source_id_++;
  sources_.push_back(Source{id, series, std::move(fn)});
  return Registration(this, id);
}

void Family::untrack(uint64_t id) {
  std::lock_guard lock(mu_);
  std::erase_if(sources_, [id](const Source& s) { return s.id == id; });
}

double Family::tracked(uint32_t series) const {
  double v = 0;
  for (const auto& s : sources_) {
    if (s.series == series) v += s.fn();
  }
  return v;
}

std::size_t Family::series_count() const {
  std::lock_guard lock(mu_);
  return series_.size();
}

std::vector<SeriesValue> Family::snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<SeriesValue> out;
  out.reserve(series_.size());
  for (uint32_t i = 0; i < series_.size(); ++i) {
    out.push_back(SeriesValue{series_[i], stored(i) + tracked(i)});
  }
  return out;
}

double Family::total() const {
  double t = 0;
  for (const auto& s : snapshot()) t += s.value;
  return t;
}

// ---- counters ----

CounterFamily::CounterFamily(Registry& r, std::string name, std::string help,
                             std::vector<Label> labels, Options o)
    : Family(r, Kind::kCounter, std::move(name), std::move(help), std::move(labels), std::move(o)),
      totals_(std::make_unique<std::atomic<uint64_t>[]>(capacity())) {}

CounterFamily::~CounterFamily() {
  for (auto& b : blocks_) delete[] b.load(std::memory_order_acquire);
}

detail::Line* CounterFamily::allocate(uint32_t shard) noexcept {
  auto* fresh = new detail::Line[(capacity() + 7) / 8]();
  detail::Line* expected = nullptr;
  if (!blocks_[shard].compare_exchange_strong(expected, fresh, std::memory_order_acq_rel)) {
    delete[] fresh;
    return expected;
  }
  return fresh;
}

double CounterFamily::stored(uint32_t series) const {
  uint64_t v = totals_[series].load(std::memory_order_relaxed);
  for (const auto& b : blocks_) {
    if (auto* p = b.load(std::memory_order_acquire)) {
      v += p[series / 8].v[series % 8].load(std::memory_order_relaxed);
    }
  }
  return static_cast<double>(v) * options_.scale;
}

void Counter::set_total(uint64_t v) const noexcept {
  family_->totals_[series_].store(v, std::memory_order_relaxed);
}

double Counter::value() const {
  std::lock_guard lock(family_->mu_);
  return family_->stored(series_) + family_->tracked(series_);
}

Registration Counter::track(std::function<double()> fn) const {
  return family_->track(series_, std::move(fn));
}

// ---- gauges ----

GaugeFamily::GaugeFamily(Registry& r, std::string name, std::string help, std::vector<Label> labels,
                         Options o)
    : Family(r, Kind::kGauge, std::move(name), std::move(help), std::move(labels), std::move(o)),
      cells_(std::make_unique<std::atomic<int64_t>[]>(capacity())) {}

double GaugeFamily::stored(uint32_t series) const {
  return static_cast<double>(cells_[series].load(std::memory_order_relaxed)) * options_.scale;
}

double Gauge::value() const {
  std::lock_guard lock(family_->mu_);
  return family_->stored(series_) + family_->tracked(series_);
}

Registration Gauge::track(std::function<double()> fn) const {
  return family_->track(series_, std::move(fn));
}

// ---- histograms ----

HistogramFamily::HistogramFamily(Registry& r, std::string name, std::string help,
                                 std::vector<Label> labels, Options o, Time created)
    : Family(r, Kind::kHistogram, std::move(name), std::move(help), std::move(labels),
             std::move(o)),
      bounds_(options_.buckets.empty() ? latency_buckets() : options_.buckets),
      cells_(std::make_unique<std::array<std::atomic<HistogramCells*>, kMaxShards>[]>(capacity())),
      created_(created) {
  if (bounds_.size() > HistogramCells::kMaxBounds) {
    throw std::invalid_argument(name_ + ": more than 31 histogram buckets");
  }
  if (!(options_.unit > 0)) throw std::invalid_argument(name_ + ": unit must be positive");
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    if (i > 0 && !(bounds_[i] > bounds_[i - 1])) {
      throw std::invalid_argument(name_ + ": histogram buckets must increase");
    }
    // "value <= bound" over integers: the bound's floor, forgiving float noise (0.0001/1e-9).
    const double raw = bounds_[i] / options_.unit;
    const double near = std::round(raw);
    const double fl = std::abs(raw - near) <= 1e-6 * std::max(1.0, raw) ? near : std::floor(raw);
    raw_bounds_.push_back(fl <= 0 ? 0 : static_cast<uint64_t>(fl));
  }
  first_bound_.resize(hdr::kBuckets);
  std::size_t b = 0;
  for (std::size_t i = 0; i < hdr::kBuckets; ++i) {
    while (b < raw_bounds_.size() && raw_bounds_[b] < hdr::lower(i)) ++b;
    first_bound_[i] = static_cast<uint8_t>(b);
  }
}

HistogramFamily::~HistogramFamily() {
  for (std::size_t s = 0; s < capacity(); ++s) {
    for (auto& c : cells_[s]) delete c.load(std::memory_order_acquire);
  }
}

HistogramCells* HistogramFamily::allocate(uint32_t series, uint32_t shard) noexcept {
  auto* fresh = new HistogramCells();
  HistogramCells* expected = nullptr;
  if (!cells_[series][shard].compare_exchange_strong(expected, fresh, std::memory_order_acq_rel)) {
    delete fresh;
    return expected;
  }
  return fresh;
}

HistogramFamily::Merged HistogramFamily::merged_buckets(uint32_t series) const {
  Merged m;
  m.prom.assign(bounds_.size() + 1, 0);
  for (const auto& slot : cells_[series]) {
    const HistogramCells* c = slot.load(std::memory_order_acquire);
    if (!c) continue;
    for (std::size_t b = 0; b < m.prom.size(); ++b) {
      m.prom[b] += c->prom[b].load(std::memory_order_relaxed);
    }
    m.sum += c->sum.load(std::memory_order_relaxed);
  }
  for (auto n : m.prom) m.count += n;
  return m;
}

HdrSnapshot HistogramFamily::merged_hdr(uint32_t series) const {
  std::vector<uint64_t> dense(hdr::kBuckets, 0);
  uint64_t sum = 0;
  for (const auto& slot : cells_[series]) {
    const HistogramCells* c = slot.load(std::memory_order_acquire);
    if (!c) continue;
    for (std::size_t i = 0; i < hdr::kBuckets; ++i) {
      dense[i] += c->hdr[i].load(std::memory_order_relaxed);
    }
    sum += c->sum.load(std::memory_order_relaxed);
  }
  return HdrSnapshot::from_dense(dense.data(), sum);
}

double HistogramFamily::stored(uint32_t series) const {
  return static_cast<double>(merged_buckets(series).count);
}

void HistogramFamily::tick(Time now) {
  std::lock_guard lock(mu_);
  if (!ring_.empty() && now - ring_.back().at < kSlot) return;
  Snap snap{now, {}};
  snap.series.reserve(series_.size());
  for (uint32_t s = 0; s < series_.size(); ++s) snap.series.push_back(merged_hdr(s));
  ring_.push_back(std::move(snap));
  // Keep the newest snapshot that is a full window old, and everything after it.
  while (ring_.size() >= 2 && ring_[1].at <= now - kWindow) ring_.erase(ring_.begin());
}

std::pair<HistogramFamily::Time, const HdrSnapshot*> HistogramFamily::window_base(uint32_t series,
                                                                                  Time now) const {
  for (auto it = ring_.rbegin(); it != ring_.rend(); ++it) {
    if (it->at <= now - kWindow) {
      return {it->at, series < it->series.size() ? &it->series[series] : &empty_};
    }
  }
  return {created_, &empty_};
}

Percentiles HistogramFamily::percentiles(const HdrSnapshot& s, double window_seconds) const {
  const double u = options_.unit;
  Percentiles p;
  p.count = s.count;
  p.sum = static_cast<double>(s.sum) * u;
  p.mean = s.mean() * u;
  p.p50 = s.quantile(0.50) * u;
  p.p90 = s.quantile(0.90) * u;
  p.p99 = s.quantile(0.99) * u;
  p.p999 = s.quantile(0.999) * u;
  p.window_seconds = window_seconds;
  return p;
}

HistogramStats HistogramFamily::stats(Time now) {
  tick(now);
  std::lock_guard lock(mu_);
  HistogramStats out;
  out.name = name_;
  for (const auto& l : labels_) out.label_names.push_back(l.name);
  const auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
  HdrSnapshot all_now, all_window;
  double widest = 0;
  for (uint32_t s = 0; s < series_.size(); ++s) {
    HdrSnapshot cur = merged_hdr(s);
    const auto [base_at, base] = window_base(s, now);
    HdrSnapshot window = cur.minus(*base);
    widest = std::max(widest, secs(now - base_at));
    HistogramStats::Series row;
    row.labels = series_[s];
    row.since_start = percentiles(cur, secs(now - created_));
    row.last_minute = percentiles(window, secs(now - base_at));
    out.series.push_back(std::move(row));
    all_now.merge(cur);
    all_window.merge(window);
  }
  out.since_start = percentiles(all_now, secs(now - created_));
  out.last_minute = percentiles(all_window, series_.empty() ? secs(now - created_) : widest);
  return out;
}

Percentiles Histogram::since_start() const {
  const auto now = family_->registry_.now();
  std::lock_guard lock(family_->mu_);
  return family_->percentiles(family_->merged_hdr(series_),
                              std::chrono::duration<double>(now - family_->created_).count());
}

// ---- registry ----

Registry::Registry(Clock clock)
    : clock_(clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); })),
      started_(clock_()) {}

Registry::~Registry() = default;

template <class F>
F& Registry::declare(Kind kind, std::string_view name, std::string_view help,
                     std::vector<Label> labels, Options options) {
  if (!name.starts_with("redline_")) {
    throw std::invalid_argument("metric '" + std::string(name) + "' must start with redline_");
  }
  if (kind == Kind::kCounter && !name.ends_with("_total")) {
    throw std::invalid_argument("counter '" + std::string(name) + "' must end with _total");
  }
  std::lock_guard lock(mu_);
  if (auto it = families_.find(name); it != families_.end()) {
    Family& f = *it->second;
    bool same = f.kind() == kind && f.labels().size() == labels.size();
    for (std::size_t i = 0; same && i < labels.size(); ++i) {
      same = f.labels()[i].name == labels[i].name;
    }
    if (!same) {
      throw std::logic_error("metric '" + std::string(name) +
                             "' declared twice with a different type or label names");
    }
    return static_cast<F&>(f);
  }
  std::unique_ptr<F> f;
  if constexpr (std::is_same_v<F, HistogramFamily>) {
    f = std::make_unique<F>(*this, std::string(name), std::string(help), std::move(labels),
                            std::move(options), clock_());
  } else {
    f = std::make_unique<F>(*this, std::string(name), std::string(help), std::move(labels),
                            std::move(options));
  }
  F& ref = *f;
  families_.emplace(std::string(name), std::move(f));
  return ref;
}

CounterFamily& Registry::counter(std::string_view name, std::string_view help,
                                 std::vector<Label> labels, Options options) {
  return declare<CounterFamily>(Kind::kCounter, name, help, std::move(labels), std::move(options));
}

GaugeFamily& Registry::gauge(std::string_view name, std::string_view help,
                             std::vector<Label> labels, Options options) {
  return declare<GaugeFamily>(Kind::kGauge, name, help, std::move(labels), std::move(options));
}

HistogramFamily& Registry::histogram(std::string_view name, std::string_view help,
                                     std::vector<Label> labels, Options options) {
  return declare<HistogramFamily>(Kind::kHistogram, name, help, std::move(labels),
                                  std::move(options));
}

void Registry::restrict_label(std::string_view label, std::vector<std::string> values) {
  auto set = std::make_shared<const std::unordered_set<std::string>>(values.begin(), values.end());
  std::lock_guard lock(domains_mu_);
  domains_[std::string(label)] = std::move(set);
}

std::shared_ptr<const std::unordered_set<std::string>> Registry::label_domain(
    std::string_view label) const {
  std::lock_guard lock(domains_mu_);
  auto it = domains_.find(label);
  return it == domains_.end() ? nullptr : it->second;
}

Family* Registry::find(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  return it == families_.end() ? nullptr : it->second.get();
}

std::vector<Family*> Registry::families() const {
  std::lock_guard lock(mu_);
  std::vector<Family*> out;
  for (const auto& [n, f] : families_) out.push_back(f.get());
  return out;
}

void Registry::tick() {
  const Time now = clock_();
  for (Family* f : families()) {
    if (f->kind() == Kind::kHistogram) static_cast<HistogramFamily*>(f)->tick(now);
  }
}

std::vector<HistogramStats> Registry::histogram_stats() {
  const Time now = clock_();
  std::vector<HistogramStats> out;
  for (Family* f : families()) {
    if (f->kind() == Kind::kHistogram) out.push_back(static_cast<HistogramFamily*>(f)->stats(now));
  }
  return out;
}

Registry& registry() {
  static auto* r = new Registry();  // never destroyed (see registry.h)
  return *r;
}

}  // namespace redline::metrics
