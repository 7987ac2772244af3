// The response cache's storage: the L1 tier (per-thread shards, l1_cache.h) in front of the
// Redis tier (L2), namespace generations for O(1) purges, the cross-instance coalescing lock,
// the write-behind queue, and L1 coherence through CLIENT TRACKING invalidation pushes.
// It stores encoded entries (entry.h) under keys computed by cache_key.h; it does not decide
// what is cacheable, build keys or talk to providers (that is src/proxy/).
//
// Redis keys (docs/redis-keys.md): entries `c:<32 hex>` with PX = the entry's TTL;
// generations `c:g:{<tenant>}` and `c:g:{<tenant>}:ns:<namespace>` (INCR on purge, one hash tag
// so both are read with one MGET); locks `cl:<32 hex>` (coalescing) and `cr:<32 hex>`
// (refresh-ahead), outside the `c:` prefix that thread 0 tracks with BCAST.
//
// Threading: one Worker per gateway thread; a method taking `thread` must run on that
// thread's io_context. Redis trouble never throws or fails a request: lookups degrade to a
// miss (counted), stores are dropped (counted).
#pragma once

#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/cache_key.h"
#include "cache/entry.h"
#include "cache/l1_cache.h"
#include "config/config.h"
#include "redis/client.h"

namespace redline::cache {

// The outcome of a request with respect to the cache: the `x-redline-cache` header value and
// the `outcome` label of the cache metrics. One enum for both.
enum class CacheStatus {
  kHit,        // served from L1 or Redis
  kMiss,       // looked up, not found (or the lookup failed): the provider answered
  kBypass,     // not looked up, not stored (no-store, cache off, uncacheable request, key opt-out)
  kRefresh,    // cache-control: no-cache: not looked up, the fresh answer was stored
  kCoalesced,  // shared the provider answer of an identical request in flight
  kPartial,    // embeddings: some inputs of the batch were cached, the rest came from the provider
};
std::string_view cache_status_name(CacheStatus s);

enum class Tier { kNone, kL1, kL2 };
std::string_view tier_name(Tier t);

struct CacheStats {
  std::atomic<uint64_t> hits_l1{0};
  std::atomic<uint64_t> hits_l2{0};
  std::atomic<uint64_t> misses{0};
  std::atomic<uint64_t> lookup_errors{0};  // Redis error or timeout on lookup (served as miss)
  std::atomic<uint64_t> decode_errors{0};  // corrupt entries found (treated as miss, deleted)
  std::atomic<uint64_t> stores{0};
  std::atomic<uint64_t> store_errors{0};
  std::atomic<uint64_t> not_stored_too_large{0};
  std::atomic<uint64_t> not_stored_incomplete{0};  // errors, interrupted streams
  std::atomic<uint64_t> write_behind_dropped{0};
  std::atomic<uint64_t> write_behind_written{0};
  std::atomic<uint64_t> coalesced_local{0};
  std::atomic<uint64_t> coalesced_remote{0};  // answered from Redis after another instance's lock
  std::atomic<uint64_t> refreshes{0};         // refresh-ahead provider calls started
  std::atomic<uint64_t> invalidations{0};     // tracking pushes applied to L1
  std::atomic<uint64_t> tracking_resets{0};   // tracking link lost: L1 flushed
  std::atomic<uint64_t> bytes_raw{0};         // stored payload bytes before compression
  std::atomic<uint64_t> bytes_stored{0};      // encoded bytes written to Redis
};

struct Lookup {
  std::optional<Entry> entry;
  Tier tier = Tier::kNone;
  bool error = false;  // Redis failed or timed out: treated as a miss
};

class CacheStore {
 public:
  CacheStore(const config::CacheConfig& config, const config::RedisConfig& redis,
             std::vector<boost::asio::io_context*> contexts);
  ~CacheStore();
  CacheStore(const CacheStore&) = delete;
  CacheStore& operator=(const CacheStore&) = delete;

  // Creates the Redis clients and starts tracking (thread 0) and the write-behind flushers.
  // Call once, before the threads run; connecting happens in the background.
  void start();
  // Stops the Redis clients; call after the threads stopped, before the io_contexts die.
  void stop();

  const config::CacheConfig& config() const { return config_; }
  CacheStats& stats() { return stats_; }
  // The L1 tier (null when cache.l1.enabled is false); read its counters from any thread
  // through L1Cache::shard_stats.
  const L1Cache* l1() const { return l1_.get(); }
  redis::Client& client(std::size_t thread);

  // The namespace generation that goes into the cache key: tenant and namespace counters
  // combined. nullopt when Redis cannot tell (the request then bypasses the cache).
  boost::asio::awaitable<std::optional<uint64_t>> generation(std::size_t thread,
                                                             std::string_view tenant,
                                                             std::string_view ns);
  // The same when this thread already knows it (no I/O); nullopt when Redis must be asked.
  std::optional<uint64_t> known_generation(std::size_t thread, std::string_view tenant,
                                           std::string_view ns);

  // L1, then Redis within cache.lookup_timeout. A Redis hit is copied into L1.
  boost::asio::awaitable<Lookup> lookup(std::size_t thread, const CacheKey& key);
  // Many keys at once: L1 first, then one pipelined batch of GETs for the rest (a cluster
  // splits it per node, in parallel). A failed or timed-out read is a miss.
  boost::asio::awaitable<std::vector<std::optional<Entry>>> lookup_many(
      std::size_t thread, const std::vector<CacheKey>& keys);

  // Writes the entry to L1 and Redis (PX = ttl) and waits for Redis (write-through and the
  // others alike; callers that must not wait spawn it). False when Redis failed.
  boost::asio::awaitable<bool> store(std::size_t thread, const CacheKey& key, const Entry& entry);
  // Several entries in one pipelined batch (cluster: per node, in parallel). Returns how
  // many Redis acknowledged.
  boost::asio::awaitable<std::size_t> store_many(
      std::size_t thread, std::span<const std::pair<CacheKey, Entry>> entries);
  // Write-behind: L1 now, Redis later in pipelined batches. False when the queue is full.
  bool enqueue_store(std::size_t thread, const CacheKey& key, const Entry& entry);
  // Entries queued for write-behind and not yet acknowledged, over all threads.
  std::size_t pending_writes() const { return pending_writes_.load(); }

  // Coalescing and refresh locks (SET NX PX / compare-and-delete). try_lock returns the token
  // when acquired; on a Redis error it also returns a token (fail open: call the provider).
  enum class LockKind { kCoalesce, kRefresh };
  boost::asio::awaitable<std::optional<std::string>> try_lock(std::size_t thread, LockKind kind,
                                                              const CacheKey& key,
                                                              std::chrono::milliseconds ttl);
  boost::asio::awaitable<void> unlock(std::size_t thread, LockKind kind, const CacheKey& key,
                                      const std::string& token);
  // Polls Redis for `key` until it appears or `wait` passes (another instance holds the lock).
  boost::asio::awaitable<std::optional<Entry>> wait_for_entry(std::size_t thread,
                                                              const CacheKey& key,
                                                              std::chrono::milliseconds wait);

  // When the entry now in Redis was created (unix ms), bypassing L1; nullopt if absent or
  // unreadable. Lets a refresher see that another instance refreshed it meanwhile.
  boost::asio::awaitable<std::optional<int64_t>> redis_created_ms(std::size_t thread,
                                                                  const CacheKey& key);
  // Refresh-ahead: counts a hit and says whether this entry is hot and close enough to expiry.
  bool should_refresh(std::size_t thread, const CacheKey& key, const Entry& entry, int64_t now_ms);

  // Admin. Purges bump generations (O(1), every instance stops matching the old keys at
  // once through tracking); purge_key deletes one entry. Return the new generation / deleted.
  boost::asio::awaitable<std::optional<uint64_t>> purge_namespace(std::size_t thread,
                                                                  std::string_view tenant,
                                                                  std::string_view ns);
  boost::asio::awaitable<std::optional<uint64_t>> purge_tenant(std::size_t thread,
                                                               std::string_view tenant);
  boost::asio::awaitable<bool> purge_key(std::size_t thread, const std::string& hex_key);

  static std::string entry_key(const CacheKey& key);                  // c:<hex>
  static std::string tenant_generation_key(std::string_view tenant);  // c:g:{<tenant>}
  static std::string generation_key(std::string_view tenant,
                                    std::string_view ns);  // c:g:{<tenant>}:ns:<ns>

 private:
  struct Worker;
  void on_push(const redis::Reply& push);
  void on_tracking_lost();
  void note_own_write(const KeyDigest& key);
  bool consume_own_write(const KeyDigest& key);
  boost::asio::awaitable<void> write_behind_loop(Worker& w);
  std::string encode(const Entry& entry);
  // The common part of every store: encode, remember the write as our own, put it in this
  // thread's L1 (evicting sibling shards' copies); returns the SET to send.
  redis::Command stage_write(std::size_t thread, const CacheKey& key, const Entry& entry);

  config::CacheConfig config_;
  config::RedisConfig redis_config_;
  std::vector<boost::asio::io_context*> contexts_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<L1Cache> l1_;
  CacheStats stats_;
  std::atomic<uint64_t> generation_epoch_{0};
  std::atomic<std::size_t> pending_writes_{0};

  // Keys this instance wrote and whose tracking push has not arrived yet: such a push must
  // not evict the entry just stored in L1. Touched only on stores and pushes, never on hits.
  std::mutex own_mu_;
  std::unordered_map<KeyDigest, uint32_t, L1DigestHash> own_writes_;
};

}  // namespace redline::cache
