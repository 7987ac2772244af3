// In-process fixed-window fallback limiter (see local_limiter.h).
#include "ratelimit/local_limiter.h"

#include <functional>

namespace redline::ratelimit {

LocalLimiter::Shard& LocalLimiter::shard(std::string_view key) {
  return shards_[std::hash<std::string_view>{}(key) % kShards];
}

LocalLimiter::Result LocalLimiter::acquire(std::string_view key, uint64_t limit, uint64_t window_ms,
                                           uint64_t cost, int64_t now_ms) {
  const auto w = static_cast<int64_t>(std::max<uint64_t>(1, window_ms));
  const int64_t idx = now_ms / w;
  const auto ends = static_cast<uint64_t>((idx + 1) * w - now_ms);
  Shard& s = shard(key);
  std::lock_guard lock(s.mu);
  if (s.map.size() > kPruneAbove) {
    std::erase_if(s.map, [&](const auto& kv) {
      return kv.second.window <
             now_ms / static_cast<int64_t>(std::max<uint64_t>(1, kv.second.window_ms));
    });
  }
  auto [it, inserted] = s.map.try_emplace(std::string(key));
  Entry& e = it->second;
  if (e.window != idx) {
    e = Entry{idx, 0, window_ms};
  }
  Result r;
  r.handle = idx;
  r.admitted = cost == 0 ? e.used < limit : e.used + cost <= limit;
  if (r.admitted) {
    e.used += cost;
  }
  r.remaining = e.used >= limit ? 0 : limit - e.used;
  r.reset_ms = e.used > 0 ? ends : 0;
  r.retry_ms = r.admitted ? 0 : (cost > limit ? -1 : static_cast<int64_t>(ends));
  return r;
}

void LocalLimiter::adjust(std::string_view key, int64_t handle, int64_t delta) {
  Shard& s = shard(key);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(std::string(key));
  if (it == s.map.end() || it->second.window != handle) {
    return;
  }
  const int64_t used = static_cast<int64_t>(it->second.used) + delta;
  it->second.used = static_cast<uint64_t>(std::max<int64_t>(0, used));
}

size_t LocalLimiter::size() const {
  size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard lock(s.mu);
    n += s.map.size();
  }
  return n;
}

}  // namespace redline::ratelimit
