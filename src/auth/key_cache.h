// The KeyStore's in-process cache: key hash -> record (or "no such key"), shared by every
// gateway thread behind one reader-writer lock (lookups take it shared). It only stores and
// bounds entries; whether an entry may be trusted (tracking epoch, age) is key_store.cpp's call.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "auth/key_store.h"

namespace redline::auth {

class KeyCache {
 public:
  using Clock = std::chrono::steady_clock;

  struct Entry {
    std::shared_ptr<const KeyRecord> record;  // null: Redis said there is no such key
    uint64_t epoch = 0;               // tracking epoch the read started in (0: never trusted)
    Clock::time_point verified_at{};  // when Redis last confirmed it
  };

  // At most `max_entries` entries, of which at most a quarter "no such key" answers, so a
  // flood of made-up keys cannot push the real ones out.
  explicit KeyCache(std::size_t max_entries);

  std::optional<Entry> get(const std::string& sha) const;
  // Stores what Redis answered. `seen` is generation() from before the read was sent: if an
  // invalidation of this key (or of all) arrived since, the answer may predate it, so it is
  // kept untrusted (epoch 0). Recent invalidations are remembered for that check.
  void put(const std::string& sha, Entry entry, uint64_t seen);
  // A tracking push (or a local write) for one key; clear(): for every key (FLUSHALL).
  void invalidate(std::string_view sha);
  void clear();
  uint64_t generation() const;
  std::size_t size() const;

 private:
  void erase_locked(std::unordered_map<std::string, Entry>::iterator it);
  bool invalidated_since(const std::string& sha, uint64_t seen) const;

  const std::size_t max_entries_;
  const std::size_t max_absent_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
  std::size_t absent_ = 0;   // entries without a record
  uint64_t generation_ = 0;  // bumped by every invalidate() and clear()
  // The latest invalidations (generation, sha; "" = all), oldest first, bounded.
  std::deque<std::pair<uint64_t, std::string>> recent_;
};

}  // namespace redline::auth
