// The in-process fallback for fail_mode local: fixed-window counters per limiter state, shared
// by every thread of the process (sharded mutexes; it only runs while Redis is unreachable).
// The caller passes the per-instance limit (policy limit / instance count). It knows nothing of
// Redis or policies.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace redline::ratelimit {

class LocalLimiter {
 public:
  struct Result {
    bool admitted = false;
    uint64_t remaining = 0;
    uint64_t reset_ms = 0;  // until the window ends
    int64_t retry_ms = 0;   // refused: until the next window; -1 when cost > limit
    int64_t handle = 0;     // window index, for adjust()
  };

  // Consumes `cost` from `key`'s current window if it fits (a cost of 0 fits while anything is
  // left). `now_ms` is wall-clock milliseconds; windows are aligned to the epoch.
  Result acquire(std::string_view key, uint64_t limit, uint64_t window_ms, uint64_t cost,
                 int64_t now_ms);
  // Adds `delta` (may be negative) to the window `handle` if it is still current; never below 0.
  void adjust(std::string_view key, int64_t handle, int64_t delta);
  size_t size() const;  // states held (tests)

 private:
  struct Entry {
    int64_t window = -1;
    uint64_t used = 0;
    uint64_t window_ms = 0;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, Entry> map;
  };
  static constexpr size_t kShards = 16;
  static constexpr size_t kPruneAbove = 50'000;  // per shard: drop finished windows beyond this
  Shard& shard(std::string_view key);

  std::array<Shard, kShards> shards_;
};

}  // namespace redline::ratelimit
