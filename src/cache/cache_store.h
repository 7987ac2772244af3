// The response cache's storage: the L1 tier (per-thread shards, l1_cache.h) in front of the
// Redis tier (L2), namespace generations for O(1) purges, the cross-instance coalescing lock,
// the write-behind queue, and L1 coherence through CLIENT TRACKING invalidation pushes.
// It stores encoded entries (entry.h) under keys computed by cache_key.h; it does not decide
// what is cacheable, build keys or talk to providers (that is src/proxy/).
//
// Redis keys (docs/redis-keys.md): entries `c:<32 hex>` with PX = the entry's TTL;
// generations `c:g:{<tenant>}` and `c:g:{<tenant>}:ns:<namespace>` (INCR on purge, one hash tag
// so both are read with one MGET); the refresh-ahead lock `cr:<32 hex>`, outside the `c:`
// prefix that thread 0 tracks with BCAST. The cross-instance coalescing lock lives in the
// entry key itself: a lock marker (kLockMarkerPrefix + token) that the store overwrites, taken
// in the same command as the lookup (`SET c:<hex> <marker> NX GET PX lock_ttl`).
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
#include <functional>
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

// A value of `c:<hex>` that is not an entry but the coalescing lock of the instance asking
// the provider: this prefix + a random token. It can never be an entry (those start with
// kEntryMagic "RLC"), is never served, never counted as corrupt, never put in L1.
inline constexpr std::string_view kLockMarkerPrefix = "RL~lock:";
inline bool is_lock_marker(std::string_view value) {
  return value.starts_with(kLockMarkerPrefix);
}

// What a lookup learned about the cross-instance coalescing lock (LookupMode::kReadOrLock).
enum class LockState {
  kNone,          // not asked, a hit, or Redis failed (fail open: call the provider)
  kAcquired,      // the key was absent: our marker is in it, we ask the provider
  kHeldByOther,   // another request's marker is in it: wait for its entry (wait_for_entry)
};

enum class LookupMode {
  kRead,        // GET
  kReadOrLock,  // the same, and take the coalescing lock on a miss, in the same round trip
};

struct Lookup {
  std::optional<Entry> entry;
  Tier tier = Tier::kNone;
  bool error = false;  // Redis failed or timed out: treated as a miss
  LockState lock = LockState::kNone;
  // The marker this lookup wrote or may have written (kAcquired, or a kReadOrLock error: the
  // SET may have happened). Whoever ends up not storing an answer passes it to release_lock.
  std::string lock_marker;
  uint32_t round_trips = 0;  // Redis round trips waited for: 0 (L1), 1, 2 (see lookup)
};

class CacheStore {
 public:
  CacheStore(const config::CacheConfig& config, const config::RedisConfig& redis,
             std::vector<boost::asio::io_context*> contexts);
  ~CacheStore();
  CacheStore(const CacheStore&) = delete;
  CacheStore& operator=(const CacheStore&) = delete;

  // Starts the Redis clients (made by the constructor: client() works before this) with
  // tracking on thread 0, and the write-behind flushers. Call once, before the threads run;
  // connecting happens in the background.
  void start();
  // Answers this instance holds outside L1 (a finished provider call whose store is on its
  // way to Redis), asked after an L1 miss and before Redis; counted as L1 hits. Only asked
  // when L1 is enabled. Set once, before the threads run.
  using LocalAnswers = std::function<std::optional<Entry>(const KeyDigest&)>;
  void set_local_answers(LocalAnswers answers) { local_answers_ = std::move(answers); }
  // Stops the Redis clients; call after the threads stopped, before the io_contexts die.
  void stop();

  const config::CacheConfig& config() const { return config_; }
  CacheStats& stats() { return stats_; }
  // The L1 tier (null when cache.l1.enabled is false); read its counters from any thread
  // through L1Cache::shard_stats.
  const L1Cache* l1() const { return l1_.get(); }
  redis::Client& client(std::size_t thread);

  // The namespace generation that goes into the cache key (tenant and namespace counters
  // combined) when this thread already knows it (no I/O); nullopt when Redis must be asked.
  std::optional<uint64_t> known_generation(std::size_t thread, std::string_view tenant,
                                           std::string_view ns);
  // Asks Redis for it (call when known_generation had nothing) and remembers it. nullopt
  // when Redis cannot tell (the request then bypasses the cache).
  boost::asio::awaitable<std::optional<uint64_t>> load_generation(std::size_t thread,
                                                                  std::string_view tenant,
                                                                  std::string_view ns);

  // L1, then Redis within cache.lookup_timeout. A Redis hit is copied into L1; a lock marker
  // is a miss. kReadOrLock: one `SET c:<hex> <marker> NX GET PX coalesce_lock_ttl` instead of
  // the GET (Redis >= 7.0), so a miss also takes the coalescing lock (LockState says which).
  // Two round trips instead (GET, then the SET on a miss) with redis.read_from_replicas in
  // cluster mode (the GET goes to a replica, the SET to the master) and in two-step mode.
  boost::asio::awaitable<Lookup> lookup(std::size_t thread, const CacheKey& key,
                                        LookupMode mode = LookupMode::kRead);
  // Many keys at once: L1 first, then one pipelined batch of GETs for the rest (a cluster
  // splits it per node, in parallel). A failed or timed-out read is a miss.
  boost::asio::awaitable<std::vector<std::optional<Entry>>> lookup_many(
      std::size_t thread, const std::vector<CacheKey>& keys);

  // Writes the entry to L1 and Redis (PX = ttl) and waits for Redis (write-through and the
  // others alike; callers that must not wait spawn it). False when Redis failed.
  boost::asio::awaitable<bool> store(std::size_t thread, const CacheKey& key, const Entry& entry);
  // The same in steps, for a caller that puts the entry in L1 before the answer goes out and
  // the Redis write after it: stage_local (into this thread's L1, uncompressed, the write noted
  // as our own), then stage_remote (the SET: a payload of compress_min_bytes or more is
  // zstd-compressed here, off the clients' path) and send_store (to Redis, waits for it).
  // stage_local returns what stage_remote takes: the encoding when it goes to Redis as it is.
  std::string stage_local(std::size_t thread, const CacheKey& key, const Entry& entry);
  redis::Command stage_remote(const CacheKey& key, const Entry& entry, std::string staged);
  boost::asio::awaitable<bool> send_store(std::size_t thread, const CacheKey& key,
                                          const redis::Command& set);
  // Several entries in one pipelined batch (cluster: per node, in parallel). Returns how
  // many Redis acknowledged.
  boost::asio::awaitable<std::size_t> store_many(
      std::size_t thread, std::span<const std::pair<CacheKey, Entry>> entries);
  // Write-behind: L1 now, Redis later in pipelined batches. False when the queue is full.
  // `lock_marker`: our coalescing lock marker in c:<hex> (Lookup::lock_marker), released
  // (compare-and-delete) when the SET later fails, so other instances' waiters stop waiting;
  // it costs nothing when the SET succeeds.
  bool enqueue_store(std::size_t thread, const CacheKey& key, const Entry& entry,
                     std::string lock_marker = {});
  // Entries queued for write-behind and not yet acknowledged, over all threads.
  std::size_t pending_writes() const { return pending_writes_.load(); }

  // Deletes the coalescing lock marker `marker` from c:<hex> if it is still there (compare
  // and delete: never an entry, never another request's marker). For a lock holder that
  // stores nothing; a store overwrites the marker by itself. True when it was deleted.
  // Arguments by value: callers may spawn it and go.
  boost::asio::awaitable<bool> release_lock(std::size_t thread, CacheKey key, std::string marker);
  // Waits while another request's lock marker is in c:<hex> (LockState::kHeldByOther), polling
  // with the lookup's own command (10 ms doubling to 100 ms) for up to `wait`. Returns the
  // entry once it appears (serve it); or, when the key is gone (the holder gave up), the lock
  // taken over by us (kAcquired and lock_marker: call the provider, then store or release);
  // or neither when Redis fails or `wait` passes (call the provider without the lock).
  // round_trips: the polls' round trips.
  boost::asio::awaitable<Lookup> wait_for_entry(std::size_t thread, const CacheKey& key,
                                                std::chrono::milliseconds wait);
  // Two-step locking: GET, then `SET c:<hex> <marker> NX PX` on a miss (two round trips), for
  // Redis < 7.0, which refuses `SET ... NX GET` ("ERR syntax error"). Switched on by itself,
  // for the rest of the process, the first time Redis refuses it; tests force it here.
  void set_two_step_lock(bool on) { two_step_lock_.store(on); }
  bool two_step_lock() const { return two_step_lock_.load(); }

  // The refresh-ahead lock `cr:<hex>` (SET NX PX / compare-and-delete). try_lock returns the
  // token when acquired; on a Redis error it also returns a token (fail open).
  enum class LockKind { kRefresh };
  boost::asio::awaitable<std::optional<std::string>> try_lock(std::size_t thread, LockKind kind,
                                                              const CacheKey& key,
                                                              std::chrono::milliseconds ttl);
  boost::asio::awaitable<void> unlock(std::size_t thread, LockKind kind, const CacheKey& key,
                                      const std::string& token);

  // When the entry now in Redis was created (unix ms), bypassing L1; nullopt if absent or
  // unreadable. Lets a refresher see that another instance refreshed it meanwhile.
  boost::asio::awaitable<std::optional<int64_t>> redis_created_ms(std::size_t thread,
                                                                  const CacheKey& key);
  // Refresh-ahead: counts a hit and says whether this entry is hot and close enough to expiry.
  bool should_refresh(std::size_t thread, const CacheKey& key, const Entry& entry, int64_t now_ms);

  // Admin. Purges bump generations (O(1), every instance stops matching the old keys at
  // once through tracking); purge_key deletes one entry, never a lock marker (a call in
  // flight: its waiters keep waiting for its answer), in one script. Return the new generation
  // / whether an entry was deleted (false for an absent key or a marker); nullopt when Redis
  // failed.
  boost::asio::awaitable<std::optional<uint64_t>> purge_namespace(std::size_t thread,
                                                                  std::string_view tenant,
                                                                  std::string_view ns);
  boost::asio::awaitable<std::optional<uint64_t>> purge_tenant(std::size_t thread,
                                                               std::string_view tenant);
  boost::asio::awaitable<std::optional<bool>> purge_key(std::size_t thread,
                                                        const std::string& hex_key);

  static std::string entry_key(const CacheKey& key);                  // c:<hex>
  static std::string tenant_generation_key(std::string_view tenant);  // c:g:{<tenant>}
  static std::string generation_key(std::string_view tenant,
                                    std::string_view ns);  // c:g:{<tenant>}:ns:<ns>

 private:
  struct Worker;
  void on_push(const redis::Reply& push);
  void on_tracking_lost();
  // Own-write bookkeeping for a store made on `thread` (a no-op on the tracking thread, whose
  // connection does not hear its own writes: NOLOOP).
  void note_own_write(std::size_t thread, const KeyDigest& key);
  void forget_own_write(std::size_t thread, const KeyDigest& key);  // the write failed
  bool consume_own_write(const KeyDigest& key);
  boost::asio::awaitable<void> write_behind_loop(Worker& w);
  std::string encode(const Entry& entry);
  void count_encoded(const Entry& entry, const std::string& enc);  // bytes_raw, bytes_stored
  // What L1 keeps of an entry: the encoded bytes, re-encoded without compression when they
  // were compressed. L1 serves every hit from memory, and decompressing on each one cost about
  // 30 % of L1-hit throughput with a 3 KB answer; Redis keeps the compressed bytes.
  static std::string l1_bytes(std::string encoded, const Entry& entry);
  // An L1 hit for `key` into `out` (true), or false; drops an undecodable L1 copy.
  bool l1_hit(std::size_t thread, const CacheKey& key, int64_t now, Lookup& out);
  // Reads the value Redis returned for c:<hex> (GET or SET ... GET) into `out`: an entry is a
  // hit (copied into L1), a marker kHeldByOther, nil nothing. A corrupt entry is counted and
  // true returned: the caller deletes it (drop_corrupt). No I/O, so no coroutine frame.
  bool take_value(std::size_t thread, const CacheKey& key, redis::Reply& value, Lookup& out);
  boost::asio::awaitable<void> drop_corrupt(std::size_t thread, const CacheKey& key,
                                            Lookup& out);
  // The Redis part of lookup (no L1, no hit/miss counting; wait_for_entry polls with it).
  boost::asio::awaitable<void> read_remote(std::size_t thread, const CacheKey& key,
                                           LookupMode mode, Lookup& out);
  // The SET that takes the lock (`with_get`: SET ... NX GET), with the own-write bookkeeping
  // around it; sets out.lock (kAcquired) and out.lock_marker, returns Redis's answer.
  redis::Command marker_command(const CacheKey& key, const std::string& marker,
                               bool with_get) const;
  // Records the SET's outcome in `out` (round trip, lock state, our marker).
  static void note_marker(const redis::Result<redis::Reply>& r, bool with_get,
                          std::string& marker, Lookup& out);
  boost::asio::awaitable<redis::Result<redis::Reply>> set_marker(std::size_t thread,
                                                                 const CacheKey& key,
                                                                 bool with_get, Lookup& out);
  void switch_to_two_step();
  // The common part of every store: stage_local then stage_remote (remember the write as our
  // own, put it in this thread's L1 evicting sibling shards' copies, encode for Redis); returns
  // the SET to send.
  redis::Command stage_write(std::size_t thread, const CacheKey& key, const Entry& entry);

  config::CacheConfig config_;
  config::RedisConfig redis_config_;
  std::vector<boost::asio::io_context*> contexts_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<L1Cache> l1_;
  CacheStats stats_;
  std::atomic<uint64_t> generation_epoch_{0};
  std::atomic<std::size_t> pending_writes_{0};
  std::atomic<bool> two_step_lock_{false};
  // Cluster with redis.read_from_replicas: lookups read a replica, the lock goes to the master.
  bool replica_reads_ = false;
  LocalAnswers local_answers_;

  // The thread whose Redis connection tracks c:* (BCAST, NOLOOP).
  static constexpr std::size_t kTrackerThread = 0;
  // Keys this instance's other threads wrote and whose tracking push has not arrived yet:
  // such a push must not evict the entry just stored in L1. Touched only on stores and
  // pushes, never on hits.
  std::mutex own_mu_;
  std::unordered_map<KeyDigest, uint32_t, L1DigestHash> own_writes_;
};

}  // namespace redline::cache
