// Sharded, byte-bounded LRU for the L1 tier (see l1_cache.h), with a per-shard inbox through
// which any thread can post invalidations. It stores opaque encoded entries and never decodes.
#include "cache/l1_cache.h"

#include <iterator>
#include <utility>

namespace redline::cache {

void L1Shard::post_invalidate(const KeyDigest& key) {
  std::lock_guard<std::mutex> lock(inbox_mu_);
  if (inbox_clear_) return;  // a pending clear covers it
  if (inbox_.size() >= kL1MaxPendingInvalidations) {
    inbox_.clear();
    inbox_clear_ = true;
  } else {
    inbox_.push_back(key);
  }
  pending_.store(true, std::memory_order_release);
}

void L1Shard::post_clear() {
  std::lock_guard<std::mutex> lock(inbox_mu_);
  inbox_.clear();
  inbox_clear_ = true;
  pending_.store(true, std::memory_order_release);
}

void L1Shard::drain_inbox() {
  if (!pending_.load(std::memory_order_acquire)) return;
  std::vector<KeyDigest> keys;
  bool do_clear = false;
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    keys.swap(inbox_);
    do_clear = inbox_clear_;
    inbox_clear_ = false;
    pending_.store(false, std::memory_order_relaxed);
  }
  if (do_clear) {
    lru_.clear();
    index_.clear();
    stats_.entries = 0;
    stats_.bytes = 0;
    ++stats_.clears;
    return;
  }
  for (const auto& k : keys) {
    if (auto it = index_.find(k); it != index_.end()) {
      remove(it->second);
      ++stats_.invalidations;
    }
  }
}

void L1Shard::remove(List::iterator it) {
  stats_.bytes -= charge(it->value.size());
  --stats_.entries;
  index_.erase(it->key);
  lru_.erase(it);
}

const std::string* L1Shard::get(const KeyDigest& key, int64_t now_ms) {
  drain_inbox();
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++stats_.misses;
    return nullptr;
  }
  if (it->second->expires_at_ms <= now_ms) {
    remove(it->second);
    ++stats_.expirations;
    ++stats_.misses;
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  ++stats_.hits;
  return &lru_.front().value;
}

void L1Shard::put(const KeyDigest& key, std::string encoded, int64_t expires_at_ms) {
  drain_inbox();
  const std::size_t need = charge(encoded.size());
  if (need > budget_) {
    ++stats_.rejected;
    return;
  }
  if (auto it = index_.find(key); it != index_.end()) remove(it->second);
  while (!lru_.empty() && stats_.bytes + need > budget_) {
    remove(std::prev(lru_.end()));
    ++stats_.evictions;
  }
  lru_.push_front(Node{key, std::move(encoded), expires_at_ms});
  index_.emplace(key, lru_.begin());
  stats_.bytes += need;
  ++stats_.entries;
}

bool L1Shard::erase(const KeyDigest& key) {
  drain_inbox();
  auto it = index_.find(key);
  if (it == index_.end()) return false;
  remove(it->second);
  ++stats_.invalidations;
  return true;
}

void L1Shard::clear() {
  drain_inbox();
  lru_.clear();
  index_.clear();
  stats_.entries = 0;
  stats_.bytes = 0;
  ++stats_.clears;
}

L1Cache::L1Cache(std::size_t total_bytes, std::size_t shards) {
  if (shards == 0) shards = 1;
  shards_.reserve(shards);
  for (std::size_t i = 0; i < shards; ++i) {
    shards_.push_back(std::make_unique<L1Shard>(total_bytes / shards));
  }
}

void L1Cache::invalidate_all_shards(const KeyDigest& key) {
  for (auto& s : shards_) s->post_invalidate(key);
}

void L1Cache::invalidate_other_shards(const KeyDigest& key, std::size_t except) {
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    if (i != except) shards_[i]->post_invalidate(key);
  }
}

void L1Cache::clear_all() {
  for (auto& s : shards_) s->post_clear();
}

}  // namespace redline::cache
