// The L1 response-cache tier: an in-process LRU of encoded entries (see entry.h; CacheStore
// puts them uncompressed, CacheStore::l1_bytes) keyed by the 16-byte cache key digest, bounded
// in bytes and split into one shard per gateway thread so the request path takes no locks. It
// does not decode entries, talk to Redis or pick TTLs.
//
// Threading: L1Cache::shard(i) and everything on the returned L1Shard (get, put, erase, clear,
// stats) must only be used from gateway thread i. invalidate_all_shards() and clear_all() may
// be called from ANY thread: they post to each shard's small mutex-protected inbox and raise an
// atomic flag; the owning thread drains the inbox at the start of its next get/put/erase/clear
// (a single atomic acquire load when nothing is pending). Coherence guarantee: an invalidation
// call that happens-before the start of an owner call (e.g. it returned before the owner thread
// learned of it through any synchronizing operation) is applied before that call looks up.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace redline::cache {

using KeyDigest = std::array<unsigned char, 16>;

struct L1DigestHash {
  std::size_t operator()(const KeyDigest& k) const {
    std::size_t h;
    std::memcpy(&h, k.data(), sizeof h);  // the digest is already a good hash
    return h;
  }
};

// Charged per stored entry on top of key and value bytes: list node, hash node and bucket,
// std::string header (a rough, deliberately generous estimate).
inline constexpr std::size_t kL1NodeOverheadBytes = 128;

// Posted invalidations above this many per shard collapse into a full clear of that shard.
inline constexpr std::size_t kL1MaxPendingInvalidations = 4096;

// A counter written only by its shard's thread and read by any (the metrics scrape): relaxed
// loads and stores, no read-modify-write instruction on the hit path.
class OwnedCounter {
 public:
  uint64_t load() const { return v_.load(std::memory_order_relaxed); }
  operator uint64_t() const { return load(); }  // NOLINT: reads like the plain integer it was
  OwnedCounter& operator=(uint64_t v) {
    v_.store(v, std::memory_order_relaxed);
    return *this;
  }
  OwnedCounter& operator+=(uint64_t d) { return *this = load() + d; }
  OwnedCounter& operator-=(uint64_t d) { return *this = load() - d; }
  OwnedCounter& operator++() { return *this += 1; }
  OwnedCounter& operator--() { return *this -= 1; }

 private:
  std::atomic<uint64_t> v_{0};
};

struct L1Stats {
  OwnedCounter entries;
  OwnedCounter bytes;  // charged bytes: key + value + kL1NodeOverheadBytes per entry
  OwnedCounter hits;
  OwnedCounter misses;
  OwnedCounter evictions;      // LRU evictions to make room
  OwnedCounter expirations;    // entries found expired on lookup
  OwnedCounter rejected;       // puts larger than the whole shard budget
  OwnedCounter invalidations;  // entries removed by erase or posted invalidations
  OwnedCounter clears;         // clear() or clear_all() applied
};

class L1Shard {
 public:
  explicit L1Shard(std::size_t budget_bytes) : budget_(budget_bytes) {}
  L1Shard(const L1Shard&) = delete;
  L1Shard& operator=(const L1Shard&) = delete;

  // The stored encoded entry, or nullptr if absent or expired (expires_at_ms <= now_ms).
  // A hit becomes most recently used. The pointer is valid until the next call on this shard.
  const std::string* get(const KeyDigest& key, int64_t now_ms);
  // Stores (or replaces) an entry, evicting least recently used ones until within budget.
  // An entry whose charge exceeds the whole shard budget is not stored (and replaces nothing).
  void put(const KeyDigest& key, std::string encoded, int64_t expires_at_ms);
  bool erase(const KeyDigest& key);
  void clear();

  const L1Stats& stats() const { return stats_; }
  std::size_t budget_bytes() const { return budget_; }
  static std::size_t charge(std::size_t value_bytes) {
    return sizeof(KeyDigest) + value_bytes + kL1NodeOverheadBytes;
  }

  // Thread-safe: queue work for the owner thread.
  void post_invalidate(const KeyDigest& key);
  void post_clear();

 private:
  struct Node {
    KeyDigest key;
    std::string value;
    int64_t expires_at_ms;
  };
  using DigestHash = L1DigestHash;
  using List = std::list<Node>;

  void drain_inbox();
  void remove(List::iterator it);

  std::size_t budget_;
  List lru_;  // front = most recently used
  std::unordered_map<KeyDigest, List::iterator, DigestHash> index_;
  L1Stats stats_;

  std::atomic<bool> pending_{false};
  std::mutex inbox_mu_;
  std::vector<KeyDigest> inbox_;  // guarded by inbox_mu_
  bool inbox_clear_ = false;      // guarded by inbox_mu_
};

class L1Cache {
 public:
  // Splits total_bytes evenly across `shards` shards (at least one).
  L1Cache(std::size_t total_bytes, std::size_t shards);

  std::size_t shard_count() const { return shards_.size(); }
  // Only from thread i (see the file comment).
  L1Shard& shard(std::size_t i) { return *shards_[i]; }

  // Any thread: evicts `key` from every shard before each owner's next call.
  void invalidate_all_shards(const KeyDigest& key);
  // Any thread: the same for every shard but `except` (the caller's, which it updates itself).
  void invalidate_other_shards(const KeyDigest& key, std::size_t except);
  // Any thread: empties every shard before each owner's next call (e.g. tracking link lost).
  void clear_all();
  // Any thread: one shard's counters (each field read on its own, relaxed).
  const L1Stats& shard_stats(std::size_t i) const { return shards_[i]->stats(); }

 private:
  std::vector<std::unique_ptr<L1Shard>> shards_;
};

}  // namespace redline::cache
