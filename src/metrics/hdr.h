// The log-linear bucket layout behind every Redline histogram (HdrHistogram-style): values
// below 128 get one bucket each, and every power of two above gets 64 equal sub-buckets, so a
// bucket is never wider than 1/64 of its lower bound and its midpoint is within 0.8% of any
// value in it. Over nanoseconds that is 1984 buckets from 0 to 68.7 s (values above are
// clamped into the last bucket). Also the merged, read-only view (HdrSnapshot) that
// percentiles are computed from. Recording and per-thread storage live in registry.h.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace redline::metrics {

namespace hdr {

inline constexpr int kSubBits = 7;                            // 128 linear values
inline constexpr uint64_t kLinear = uint64_t{1} << kSubBits;  // exact below this
inline constexpr uint64_t kHalf = kLinear / 2;                // sub-buckets per octave above
inline constexpr int kMaxBit = 35;                            // highest octave: [2^35, 2^36)
inline constexpr std::size_t kBuckets = kLinear + (kMaxBit - kSubBits + 1) * kHalf;  // 1984
inline constexpr uint64_t kMaxValue = (uint64_t{1} << (kMaxBit + 1)) - 1;            // 68.7 s in ns

// Bucket of a value (values above kMaxValue land in the last bucket).
constexpr std::size_t index(uint64_t v) noexcept {
  if (v < kLinear) return static_cast<std::size_t>(v);
  if (v > kMaxValue) v = kMaxValue;
  const int k = 63 - std::countl_zero(v);  // kSubBits .. kMaxBit
  const int shift = k - (kSubBits - 1);
  return static_cast<std::size_t>(kLinear + static_cast<uint64_t>(k - kSubBits) * kHalf +
                                  ((v >> shift) - kHalf));
}

// Smallest value of bucket i, and how many consecutive values it holds.
constexpr uint64_t lower(std::size_t i) noexcept {
  if (i < kLinear) return i;
  const uint64_t j = i - kLinear;
  const int k = kSubBits + static_cast<int>(j / kHalf);
  return (kHalf + j % kHalf) << (k - (kSubBits - 1));
}
constexpr uint64_t width(std::size_t i) noexcept {
  if (i < kLinear) return 1;
  const int k = kSubBits + static_cast<int>((i - kLinear) / kHalf);
  return uint64_t{1} << (k - (kSubBits - 1));
}
// The value reported for a bucket: the middle of the integers it holds.
constexpr double midpoint(std::size_t i) noexcept {
  return static_cast<double>(lower(i)) + static_cast<double>(width(i) - 1) / 2.0;
}

}  // namespace hdr

// Merged bucket counts of one histogram (all threads), sparse: only non-empty buckets, in
// bucket order. Cheap to keep several of for the last-minute window.
struct HdrSnapshot {
  std::vector<std::pair<uint16_t, uint64_t>> buckets;  // (bucket index, count)
  uint64_t count = 0;
  uint64_t sum = 0;  // of the raw values (saturating is not needed: 584 years of ns)

  // Builds from dense counts (kBuckets entries).
  static HdrSnapshot from_dense(const uint64_t* counts, uint64_t sum);
  // Adds another snapshot (merging series or threads).
  void merge(const HdrSnapshot& other);
  // This minus an earlier snapshot of the same histogram (counts only grow).
  HdrSnapshot minus(const HdrSnapshot& earlier) const;

  // Value at quantile q in [0, 1]: the midpoint of the bucket holding the ceil(q * count)-th
  // smallest value (1-based; q = 0 gives the smallest). 0 when empty.
  double quantile(double q) const;
  double mean() const { return count ? static_cast<double>(sum) / static_cast<double>(count) : 0; }
};

}  // namespace redline::metrics
