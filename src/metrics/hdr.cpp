// Merged histogram snapshots and their percentiles (see hdr.h for the bucket layout).
#include "metrics/hdr.h"

#include <cmath>

namespace redline::metrics {

HdrSnapshot HdrSnapshot::from_dense(const uint64_t* counts, uint64_t sum) {
  HdrSnapshot s;
  s.sum = sum;
  for (std::size_t i = 0; i < hdr::kBuckets; ++i) {
    if (counts[i] == 0) continue;
    s.buckets.emplace_back(static_cast<uint16_t>(i), counts[i]);
    s.count += counts[i];
  }
  return s;
}

void HdrSnapshot::merge(const HdrSnapshot& other) {
  std::vector<std::pair<uint16_t, uint64_t>> out;
  out.reserve(buckets.size() + other.buckets.size());
  auto a = buckets.begin();
  auto b = other.buckets.begin();
  while (a != buckets.end() || b != other.buckets.end()) {
    if (b == other.buckets.end() || (a != buckets.end() && a->first < b->first)) {
      out.push_back(*a++);
    } else if (a == buckets.end() || b->first < a->first) {
      out.push_back(*b++);
    } else {
      out.emplace_back(a->first, a->second + b->second);
      ++a;
      ++b;
    }
  }
  buckets = std::move(out);
  count += other.count;
  sum += other.sum;
}

HdrSnapshot HdrSnapshot::minus(const HdrSnapshot& earlier) const {
  HdrSnapshot out;
  auto e = earlier.buckets.begin();
  for (const auto& [i, c] : buckets) {
    while (e != earlier.buckets.end() && e->first < i) ++e;
    const uint64_t before = (e != earlier.buckets.end() && e->first == i) ? e->second : 0;
    if (c > before) {
      out.buckets.emplace_back(i, c - before);
      out.count += c - before;
    }
  }
  out.sum = sum >= earlier.sum ? sum - earlier.sum : 0;
  return out;
}

double HdrSnapshot::quantile(double q) const {
  if (count == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count)));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (const auto& [i, c] : buckets) {
    seen += c;
    if (seen >= rank) return hdr::midpoint(i);
  }
  return hdr::midpoint(buckets.back().first);
}

}  // namespace redline::metrics
