// The cache's storage tiers (see cache_store.h).
#include "cache/cache_store.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <limits>

#include "common/random_ids.h"
#include "redis/config_options.h"
#include "redis/script.h"
#include "redline_scripts.h"

namespace redline::cache {

namespace asio = boost::asio;
using std::chrono::milliseconds;

namespace {
// Generations cached per thread before the map is simply cleared (tenants x namespaces).
constexpr std::size_t kMaxGenerations = 100'000;
// Refresh-ahead hit counters kept per thread before they are cleared.
constexpr std::size_t kMaxHitCounters = 100'000;
// Own writes remembered before the set is cleared (pushes lost meanwhile only cost L1 hits).
constexpr std::size_t kMaxOwnWrites = 100'000;

int64_t expires_at_ms(const Entry& e) {
  return e.created_unix_ms + static_cast<int64_t>(e.ttl_seconds) * 1000;
}

// The envelope as L1 keeps it: never compressed.
std::string encode_uncompressed(const Entry& e) {
  EncodeOptions raw;
  raw.compress_min_bytes = std::numeric_limits<std::size_t>::max();
  return encode_entry(e, raw);
}

std::optional<KeyDigest> digest_from_hex(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  KeyDigest d{};
  for (std::size_t i = 0; i < 16; ++i) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(hex.data() + 2 * i, hex.data() + 2 * i + 2, v, 16);
    if (ec != std::errc() || p != hex.data() + 2 * i + 2) return std::nullopt;
    d[i] = static_cast<unsigned char>(v);
  }
  return d;
}

std::string random_token() {
  return std::to_string(common::random_u64()) + "-" + std::to_string(common::random_u64());
}

const redis::Script& release_script() {
  static const redis::Script s(scripts::compare_and_delete);
  return s;
}

const redis::Script& purge_script() {
  static const redis::Script s(scripts::cache_purge_entry);
  return s;
}
}  // namespace

std::string_view cache_status_name(CacheStatus s) {
  switch (s) {
    case CacheStatus::kHit:
      return "hit";
    case CacheStatus::kMiss:
      return "miss";
    case CacheStatus::kBypass:
      return "bypass";
    case CacheStatus::kRefresh:
      return "refresh";
    case CacheStatus::kCoalesced:
      return "coalesced";
    case CacheStatus::kPartial:
      return "partial";
  }
  return "miss";
}

std::string_view tier_name(Tier t) {
  switch (t) {
    case Tier::kNone:
      return "none";
    case Tier::kL1:
      return "l1";
    case Tier::kL2:
      return "l2";
  }
  return "none";
}

struct CacheStore::Worker {
  std::size_t index = 0;
  asio::io_context* ioc = nullptr;
  std::unique_ptr<redis::Client> client;
  // tenant + '\0' + namespace -> combined generation, valid while epoch matches.
  std::unordered_map<std::string, uint64_t> generations;
  uint64_t generations_epoch = 0;
  std::unordered_map<KeyDigest, uint32_t, L1DigestHash> hit_counts;
  // Write-behind: the SET, and the lock marker it goes over (released if the SET fails).
  struct QueuedWrite {
    redis::Command set;
    CacheKey key;
    std::string lock_marker;  // empty: no lock of ours in the key
  };
  std::deque<QueuedWrite> queue;
  std::unique_ptr<asio::steady_timer> queue_signal;
  bool stopping = false;
};

CacheStore::CacheStore(const config::CacheConfig& config, const config::RedisConfig& redis,
                       std::vector<asio::io_context*> contexts)
    : config_(config),
      redis_config_(config.redis ? *config.redis : redis),
      contexts_(std::move(contexts)),
      replica_reads_(redis_config_.mode == config::RedisMode::kCluster &&
                     redis_config_.read_from_replicas) {
  if (config_.l1_enabled) {
    l1_ = std::make_unique<L1Cache>(config_.l1_max_bytes, contexts_.size());
  }
  for (std::size_t i = 0; i < contexts_.size(); ++i) {
    auto w = std::make_unique<Worker>();
    w->index = i;
    w->ioc = contexts_[i];
    redis::ClientOptions o = redis::client_options(redis_config_, "redline-cache");
    // Tracking also keeps the per-thread generation caches honest, so it runs without L1 too.
    const bool tracker = i == kTrackerThread;
    if (tracker) {
      // Thread 0 hears about every change to c:* (entries and generations) on every node,
      // except its own (NOLOOP): what thread 0 writes, it has already applied locally.
      o.connection.init_commands.emplace_back("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "c:",
                                              "NOLOOP");
      o.connect_all_masters = true;
    }
    auto made = redis::make_client(w->ioc->get_executor(), o);
    if (!made.ok()) {
      throw std::runtime_error("cache redis: " + made.error().to_string());
    }
    w->client = std::move(*made);
    if (tracker) {
      w->client->on_push([this](const redis::Reply& r) { on_push(r); });
      w->client->on_disconnect([this](const redis::Error&) { on_tracking_lost(); });
    }
    workers_.push_back(std::move(w));
  }
}

CacheStore::~CacheStore() = default;

std::string CacheStore::entry_key(const CacheKey& key) {
  return "c:" + key.hex();
}

std::string CacheStore::tenant_generation_key(std::string_view tenant) {
  std::string k = "c:g:{";
  k += tenant;
  k += '}';
  return k;
}

std::string CacheStore::generation_key(std::string_view tenant, std::string_view ns) {
  std::string k = tenant_generation_key(tenant);
  k += ":ns:";
  k += ns;
  return k;
}

redis::Client& CacheStore::client(std::size_t thread) {
  return *workers_[thread]->client;
}

void CacheStore::start() {
  for (auto& w : workers_) {
    w->queue_signal = std::make_unique<asio::steady_timer>(*w->ioc);
    Worker* raw = w.get();
    asio::co_spawn(
        *w->ioc,
        [raw]() -> asio::awaitable<void> {
          auto r = co_await raw->client->connect();
          if (!r.ok()) spdlog::warn("cache redis: {} (will keep trying)", r.error().to_string());
        },
        asio::detached);
    asio::co_spawn(*w->ioc, write_behind_loop(*w), asio::detached);
  }
}

void CacheStore::stop() {
  for (auto& w : workers_) {
    w->stopping = true;
    if (w->queue_signal) w->queue_signal->cancel();
    if (w->client) w->client->stop();
  }
}

// --- tracking ---------------------------------------------------------------------------

void CacheStore::on_push(const redis::Reply& push) {
  if (push.size() < 2 || push[0].str() != "invalidate") return;
  const auto& keys = push[1];
  if (keys.is_null()) {  // FLUSHALL / FLUSHDB: everything may be gone
    on_tracking_lost();
    return;
  }
  for (const auto& k : keys.elements()) {
    std::string_view name = k.str();
    if (name.starts_with("c:g:")) {
      generation_epoch_.fetch_add(1);
      continue;
    }
    if (!name.starts_with("c:")) continue;
    auto digest = digest_from_hex(name.substr(2));
    if (!digest || consume_own_write(*digest)) continue;
    if (l1_) l1_->invalidate_all_shards(*digest);
    stats_.invalidations.fetch_add(1, std::memory_order_relaxed);
  }
}

void CacheStore::on_tracking_lost() {
  // Invalidations may have been missed while the link was down: trust nothing local.
  if (l1_) l1_->clear_all();
  generation_epoch_.fetch_add(1);
  stats_.tracking_resets.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(own_mu_);
  own_writes_.clear();
}

void CacheStore::note_own_write(std::size_t thread, const KeyDigest& key) {
  if (!l1_ || thread == kTrackerThread) return;
  std::lock_guard lock(own_mu_);
  if (own_writes_.size() >= kMaxOwnWrites) own_writes_.clear();
  ++own_writes_[key];
}

void CacheStore::forget_own_write(std::size_t thread, const KeyDigest& key) {
  if (!l1_ || thread == kTrackerThread) return;
  consume_own_write(key);
}

bool CacheStore::consume_own_write(const KeyDigest& key) {
  std::lock_guard lock(own_mu_);
  auto it = own_writes_.find(key);
  if (it == own_writes_.end()) return false;
  if (--it->second == 0) own_writes_.erase(it);
  return true;
}

// --- generations ------------------------------------------------------------------------

namespace {
std::string generation_map_key(std::string_view tenant, std::string_view ns) {
  std::string k;
  k.reserve(tenant.size() + ns.size() + 1);
  k.append(tenant).push_back('\0');
  k.append(ns);
  return k;
}
}  // namespace

std::optional<uint64_t> CacheStore::known_generation(std::size_t thread, std::string_view tenant,
                                                     std::string_view ns) {
  Worker& w = *workers_[thread];
  const uint64_t epoch = generation_epoch_.load();
  if (w.generations_epoch != epoch || w.generations.size() >= kMaxGenerations) {
    w.generations.clear();
    w.generations_epoch = epoch;
    return std::nullopt;
  }
  if (auto it = w.generations.find(generation_map_key(tenant, ns)); it != w.generations.end()) {
    return it->second;
  }
  return std::nullopt;
}

asio::awaitable<std::optional<uint64_t>> CacheStore::load_generation(std::size_t thread,
                                                                     std::string_view tenant,
                                                                     std::string_view ns) {
  Worker& w = *workers_[thread];
  const uint64_t epoch = generation_epoch_.load();
  std::string map_key = generation_map_key(tenant, ns);
  const std::string tenant_key = tenant_generation_key(tenant);
  const std::string ns_key = generation_key(tenant, ns);
  redis::Command mget("MGET", tenant_key, ns_key);
  auto r = co_await w.client->execute(mget, config_.lookup_timeout);
  if (!r.ok() || r->size() != 2) {
    stats_.lookup_errors.fetch_add(1, std::memory_order_relaxed);
    co_return std::nullopt;
  }
  auto as_u64 = [](const redis::Reply& v) -> uint64_t {
    if (!v.is_string()) return 0;
    uint64_t n = 0;
    std::from_chars(v.str().data(), v.str().data() + v.str().size(), n);
    return n;
  };
  // Both counters in one number: the tenant's in the high half, the namespace's in the low.
  const uint64_t combined = (as_u64((*r)[0]) << 32) ^ as_u64((*r)[1]);
  // Only remember it if no invalidation arrived while we asked (else ask again next time).
  if (generation_epoch_.load() == epoch) w.generations.emplace(std::move(map_key), combined);
  co_return combined;
}

// --- lookup and store -------------------------------------------------------------------

bool CacheStore::l1_hit(std::size_t thread, const CacheKey& key, int64_t now, Lookup& out) {
  if (!l1_) return false;
  const std::string* enc = l1_->shard(thread).get(key.digest, now);
  if (enc == nullptr) return false;
  Entry e;
  if (decode_entry(*enc, e) != DecodeError::kNone) {
    l1_->shard(thread).erase(key.digest);
    return false;
  }
  out.entry = std::move(e);
  out.tier = Tier::kL1;
  stats_.hits_l1.fetch_add(1, std::memory_order_relaxed);
  return true;
}

namespace {
bool refused_syntax(const redis::Result<redis::Reply>& r) {
  return !r.ok() && r.kind() == redis::ErrorKind::kServerError &&
         r.error().starts_with("ERR syntax error");
}
}  // namespace

bool CacheStore::take_value(std::size_t thread, const CacheKey& key, redis::Reply& value,
                            Lookup& out) {
  if (!value.is_string()) return false;  // nil: absent
  if (is_lock_marker(value.str())) {     // another request is asking the provider: a miss
    out.lock = LockState::kHeldByOther;
    return false;
  }
  Entry e;
  if (auto err = decode_entry(value.str(), e); err != DecodeError::kNone) {
    spdlog::warn("cache: dropping corrupt entry {}: {}", entry_key(key), decode_error_message(err));
    stats_.decode_errors.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  const int64_t expires = expires_at_ms(e);
  if (l1_ && expires > now_unix_ms()) {
    l1_->shard(thread).put(key.digest, l1_bytes(std::move(value.mutable_str()), e), expires);
  }
  out.entry = std::move(e);
  out.tier = Tier::kL2;
  return false;
}

asio::awaitable<void> CacheStore::drop_corrupt(std::size_t thread, const CacheKey& key,
                                               Lookup& out) {
  redis::Command del("DEL", entry_key(key));
  auto deleted = co_await workers_[thread]->client->execute(del);
  ++out.round_trips;
  (void)deleted;  // best effort: the next store overwrites it anyway
}

namespace {
// A lock marker: the prefix and 128 random bits in hex (one allocation: it runs per lookup).
std::string new_marker() {
  std::string marker;
  marker.reserve(kLockMarkerPrefix.size() + 33);
  marker.append(kLockMarkerPrefix);
  char digits[16];
  for (int i = 0; i < 2; ++i) {
    const auto end = std::to_chars(digits, digits + sizeof digits, common::random_u64(), 16).ptr;
    if (i > 0) marker += '-';
    marker.append(digits, end);
  }
  return marker;
}
}  // namespace

// Not noted as our own write (note_own_write): no L1 holds anything for a key that was
// absent, so the marker's tracking push may evict freely; noting it would instead let a push
// of someone else's write that lands while the SET is in flight go unapplied when the SET
// finds the key taken. (release_lock: the same.)
redis::Command CacheStore::marker_command(const CacheKey& key, const std::string& marker,
                                          bool with_get) const {
  const auto ttl = static_cast<int64_t>(config_.coalesce_lock_ttl.count());
  const std::string rkey = entry_key(key);
  return with_get ? redis::Command("SET", rkey, marker, "NX", "GET", "PX", ttl)
                  : redis::Command("SET", rkey, marker, "NX", "PX", ttl);
}

void CacheStore::note_marker(const redis::Result<redis::Reply>& r, bool with_get,
                             std::string& marker, Lookup& out) {
  ++out.round_trips;
  const bool wrote = r.ok() && (with_get ? r->is_null() : !r->is_null());
  // A timeout or a lost connection may still have written it: keep it for release_lock.
  const bool maybe = !r.ok() && r.kind() != redis::ErrorKind::kServerError;
  if (wrote || maybe) out.lock_marker = std::move(marker);
  if (wrote) out.lock = LockState::kAcquired;
}

asio::awaitable<redis::Result<redis::Reply>> CacheStore::set_marker(std::size_t thread,
                                                                   const CacheKey& key,
                                                                   bool with_get, Lookup& out) {
  std::string marker = new_marker();
  const redis::Command set = marker_command(key, marker, with_get);
  auto r = co_await workers_[thread]->client->execute(set, config_.lookup_timeout);
  note_marker(r, with_get, marker, out);
  co_return r;
}

void CacheStore::switch_to_two_step() {
  if (!two_step_lock_.exchange(true)) {
    spdlog::warn(
        "cache: Redis refused SET ... NX GET (Redis < 7.0?): from now on the coalescing lock "
        "costs a second round trip per miss (GET, then SET NX)");
  }
}

asio::awaitable<void> CacheStore::read_remote(std::size_t thread, const CacheKey& key,
                                              LookupMode mode, Lookup& out) {
  Worker& w = *workers_[thread];
  const bool two_step = two_step_lock_.load(std::memory_order_relaxed);
  if (mode == LookupMode::kReadOrLock && !two_step && !replica_reads_) {
    // One round trip: nil = the key was absent and now holds our marker; else its value.
    // (set_marker inlined: this runs on every lookup that misses L1.)
    std::string marker = new_marker();
    const redis::Command set = marker_command(key, marker, true);
    auto r = co_await w.client->execute(set, config_.lookup_timeout);
    note_marker(r, true, marker, out);
    if (!refused_syntax(r)) {
      if (!r.ok()) {
        out.error = true;
      } else {
        if (take_value(thread, key, *r, out)) co_await drop_corrupt(thread, key, out);
      }
      co_return;
    }
    switch_to_two_step();  // and go on below, for this request too
  }
  // GET (a replica with replica reads), then, to lock, SET on the master when it was absent.
  redis::Command get("GET", entry_key(key));
  auto r = co_await w.client->execute(get, config_.lookup_timeout);
  ++out.round_trips;
  if (!r.ok()) {
    out.error = true;
    co_return;
  }
  if (mode == LookupMode::kRead || !r->is_null()) {  // an entry or a marker: nothing to lock
    if (take_value(thread, key, *r, out)) co_await drop_corrupt(thread, key, out);
    co_return;
  }
  bool with_get = !two_step_lock_.load(std::memory_order_relaxed);
  auto set = co_await set_marker(thread, key, with_get, out);
  if (with_get && refused_syntax(set)) {
    switch_to_two_step();
    with_get = false;
    set = co_await set_marker(thread, key, false, out);
  }
  if (!set.ok()) {
    out.error = true;
  } else if (!with_get) {
    // Nil: written by someone since our GET (an entry or a marker): wait_for_entry tells which.
    if (set->is_null()) out.lock = LockState::kHeldByOther;
  } else {
    // Written since our GET, or by the master before a lagging replica had it: an entry here
    // is a hit, a marker someone else's lock.
    if (take_value(thread, key, *set, out)) co_await drop_corrupt(thread, key, out);
  }
}

asio::awaitable<Lookup> CacheStore::lookup(std::size_t thread, const CacheKey& key,
                                           LookupMode mode) {
  Lookup out;
  if (l1_hit(thread, key, now_unix_ms(), out)) co_return out;
  // A finished, unstored answer is in-process caching like L1: with `l1.enabled: false`
  // every hit comes from Redis, so a request that arrives before the store sees our marker
  // (and waits for the entry), and one whose Redis is down stays a miss.
  if (l1_ && local_answers_) {
    if (auto local = local_answers_(key.digest)) {
      out.entry = std::move(local);
      out.tier = Tier::kL1;
      stats_.hits_l1.fetch_add(1, std::memory_order_relaxed);
      co_return out;
    }
  }
  co_await read_remote(thread, key, mode, out);
  if (out.error) stats_.lookup_errors.fetch_add(1, std::memory_order_relaxed);
  (out.entry ? stats_.hits_l2 : stats_.misses).fetch_add(1, std::memory_order_relaxed);
  co_return out;
}

asio::awaitable<std::vector<std::optional<Entry>>> CacheStore::lookup_many(
    std::size_t thread, const std::vector<CacheKey>& keys) {
  Worker& w = *workers_[thread];
  std::vector<std::optional<Entry>> out(keys.size());
  const int64_t now = now_unix_ms();
  std::vector<std::size_t> remote;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (l1_) {
      if (const std::string* enc = l1_->shard(thread).get(keys[i].digest, now)) {
        Entry e;
        if (decode_entry(*enc, e) == DecodeError::kNone) {
          out[i] = std::move(e);
          stats_.hits_l1.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
      }
    }
    remote.push_back(i);
  }
  if (remote.empty()) co_return out;
  std::vector<redis::Command> gets;
  gets.reserve(remote.size());
  for (std::size_t i : remote) gets.emplace_back("GET", entry_key(keys[i]));
  const std::span<const redis::Command> view(gets);
  auto replies = co_await w.client->batch(view);
  for (std::size_t j = 0; j < remote.size(); ++j) {
    auto& r = replies[j];
    const std::size_t i = remote[j];
    if (!r.ok()) {
      stats_.lookup_errors.fetch_add(1, std::memory_order_relaxed);
      stats_.misses.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    Entry e;
    // Absent, another request's lock marker, or unreadable: a miss.
    if (!r->is_string() || is_lock_marker(r->str()) ||
        decode_entry(r->str(), e) != DecodeError::kNone) {
      stats_.misses.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (l1_ && expires_at_ms(e) > now) {
      l1_->shard(thread).put(keys[i].digest, l1_bytes(std::move(r->mutable_str()), e),
                             expires_at_ms(e));
    }
    out[i] = std::move(e);
    stats_.hits_l2.fetch_add(1, std::memory_order_relaxed);
  }
  co_return out;
}

std::string CacheStore::encode(const Entry& entry) {
  EncodeOptions opts;
  opts.compress_min_bytes = config_.compress_min_bytes;
  std::string enc = encode_entry(entry, opts);
  count_encoded(entry, enc);
  return enc;
}

void CacheStore::count_encoded(const Entry& entry, const std::string& enc) {
  std::size_t raw = entry.body.size();
  for (const auto& ev : entry.events) raw += ev.size();
  stats_.bytes_raw.fetch_add(raw, std::memory_order_relaxed);
  stats_.bytes_stored.fetch_add(enc.size(), std::memory_order_relaxed);
}

std::string CacheStore::stage_local(std::size_t thread, const CacheKey& key,
                                    const Entry& entry) {
  note_own_write(thread, key.digest);
  const bool compressible = payload_raw_size(entry) >= config_.compress_min_bytes;
  if (!l1_ && compressible) return {};
  std::string enc = encode_uncompressed(entry);
  if (!l1_) return enc;
  // This instance's other threads may hold an older answer; the tracking push for our own
  // write is ignored, so tell them here.
  l1_->invalidate_other_shards(key.digest, thread);
  if (compressible) {
    l1_->shard(thread).put(key.digest, std::move(enc), expires_at_ms(entry));
    return {};
  }
  l1_->shard(thread).put(key.digest, enc, expires_at_ms(entry));
  return enc;
}

redis::Command CacheStore::stage_remote(const CacheKey& key, const Entry& entry,
                                        std::string staged) {
  if (staged.empty()) {
    staged = encode(entry);
  } else {
    count_encoded(entry, staged);
  }
  return redis::Command("SET", entry_key(key), staged, "PX",
                        static_cast<int64_t>(entry.ttl_seconds) * 1000);
}

redis::Command CacheStore::stage_write(std::size_t thread, const CacheKey& key,
                                       const Entry& entry) {
  return stage_remote(key, entry, stage_local(thread, key, entry));
}

std::string CacheStore::l1_bytes(std::string encoded, const Entry& entry) {
  if (!entry_compressed(encoded)) return encoded;
  return encode_uncompressed(entry);
}

asio::awaitable<bool> CacheStore::store(std::size_t thread, const CacheKey& key,
                                        const Entry& entry) {
  const redis::Command set = stage_write(thread, key, entry);
  co_return co_await send_store(thread, key, set);
}

asio::awaitable<bool> CacheStore::send_store(std::size_t thread, const CacheKey& key,
                                             const redis::Command& set) {
  Worker& w = *workers_[thread];
  auto r = co_await w.client->execute(set, config_.store_timeout);
  if (!r.ok()) {
    forget_own_write(thread, key.digest);  // no push will come for a write that did not happen
    stats_.store_errors.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("cache: store failed: {}", r.error().to_string());
    co_return false;
  }
  stats_.stores.fetch_add(1, std::memory_order_relaxed);
  co_return true;
}

asio::awaitable<std::size_t> CacheStore::store_many(
    std::size_t thread, std::span<const std::pair<CacheKey, Entry>> entries) {
  Worker& w = *workers_[thread];
  std::vector<redis::Command> sets;
  sets.reserve(entries.size());
  for (const auto& [key, entry] : entries) sets.push_back(stage_write(thread, key, entry));
  const std::span<const redis::Command> view(sets);
  auto results = co_await w.client->batch(view);
  std::size_t ok = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (results[i].ok()) {
      ++ok;
      stats_.stores.fetch_add(1, std::memory_order_relaxed);
    } else {
      forget_own_write(thread, entries[i].first.digest);
      stats_.store_errors.fetch_add(1, std::memory_order_relaxed);
    }
  }
  co_return ok;
}

bool CacheStore::enqueue_store(std::size_t thread, const CacheKey& key, const Entry& entry,
                               std::string lock_marker) {
  Worker& w = *workers_[thread];
  if (w.queue.size() >= config_.write_behind_queue || w.stopping) {
    stats_.write_behind_dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  w.queue.push_back({stage_write(thread, key, entry), key, std::move(lock_marker)});
  pending_writes_.fetch_add(1);
  w.queue_signal->cancel();
  return true;
}

asio::awaitable<void> CacheStore::write_behind_loop(Worker& w) {
  while (!w.stopping) {
    if (w.queue.empty()) {
      w.queue_signal->expires_at(asio::steady_timer::time_point::max());
      co_await w.queue_signal->async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    const std::size_t n = std::min(w.queue.size(), config_.write_behind_batch);
    const auto taken = w.queue.begin() + static_cast<std::ptrdiff_t>(n);
    std::vector<Worker::QueuedWrite> batch(std::make_move_iterator(w.queue.begin()),
                                           std::make_move_iterator(taken));
    std::vector<redis::Command> cmds;
    cmds.reserve(n);
    for (auto& q : batch) cmds.push_back(std::move(q.set));
    w.queue.erase(w.queue.begin(), taken);
    const std::span<const redis::Command> view(cmds);
    auto results = co_await w.client->batch(view);
    // A failed SET left our lock marker in its key: release it (compare-and-delete, so a SET
    // that timed out but happened, or another request's marker, stays), else the other
    // instances' waiters would wait for it until coalesce_lock_ttl.
    std::vector<redis::Command> releases;
    for (std::size_t i = 0; i < results.size(); ++i) {
      if (results[i].ok()) {
        stats_.write_behind_written.fetch_add(1, std::memory_order_relaxed);
        stats_.stores.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      forget_own_write(w.index, batch[i].key.digest);  // no push for a write that did not happen
      stats_.store_errors.fetch_add(1, std::memory_order_relaxed);
      if (!batch[i].lock_marker.empty()) {
        const std::string k = entry_key(batch[i].key);
        releases.push_back(
            release_script().call({std::string_view(k)}, {std::string_view(batch[i].lock_marker)}));
      }
    }
    if (!releases.empty()) {
      const std::span<const redis::Command> calls(releases);
      auto released = co_await release_script().run_batch(*w.client, calls);
      (void)released;  // a marker not released expires on its own
    }
    pending_writes_.fetch_sub(n);
  }
  // Stopping: whatever is left is dropped (and no longer pending).
  pending_writes_.fetch_sub(w.queue.size());
  stats_.write_behind_dropped.fetch_add(w.queue.size(), std::memory_order_relaxed);
  w.queue.clear();
}

// --- locks -------------------------------------------------------------------------------

namespace {
std::string lock_key(CacheStore::LockKind /*kind: kRefresh is the only one*/, const CacheKey& key) {
  return "cr:" + key.hex();
}
}  // namespace

asio::awaitable<std::optional<std::string>> CacheStore::try_lock(std::size_t thread, LockKind kind,
                                                                 const CacheKey& key,
                                                                 milliseconds ttl) {
  Worker& w = *workers_[thread];
  std::string token = random_token();
  redis::Command set("SET", lock_key(kind, key), token, "NX", "PX", ttl.count());
  auto r = co_await w.client->execute(set, config_.lookup_timeout);
  if (!r.ok()) co_return token;  // Redis trouble: do not make anyone wait on it
  if (r->is_null()) co_return std::nullopt;
  co_return token;
}

asio::awaitable<void> CacheStore::unlock(std::size_t thread, LockKind kind, const CacheKey& key,
                                         const std::string& token) {
  Worker& w = *workers_[thread];
  const std::string k = lock_key(kind, key);
  redis::Command call = release_script().call({std::string_view(k)}, {std::string_view(token)});
  auto released = co_await release_script().run(*w.client, call);
  (void)released;  // the lock expires on its own if this fails
}

asio::awaitable<bool> CacheStore::release_lock(std::size_t thread, CacheKey key,
                                               std::string marker) {
  Worker& w = *workers_[thread];
  const std::string k = entry_key(key);
  redis::Command call = release_script().call({std::string_view(k)}, {std::string_view(marker)});
  auto released = co_await release_script().run(*w.client, call);
  co_return released.ok() && released->integer() == 1;  // else it expires on its own
}

asio::awaitable<Lookup> CacheStore::wait_for_entry(std::size_t thread, const CacheKey& key,
                                                   milliseconds wait) {
  Worker& w = *workers_[thread];
  Lookup out;
  const auto until = std::chrono::steady_clock::now() + wait;
  milliseconds pause(10);
  asio::steady_timer timer(*w.ioc);
  while (std::chrono::steady_clock::now() < until && !w.stopping) {
    timer.expires_after(std::min<std::chrono::steady_clock::duration>(
        pause, until - std::chrono::steady_clock::now()));
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    // The lookup's own command: an entry ends the wait, a marker continues it, and an absent
    // key (the holder gave up) makes the lock ours.
    Lookup probe;
    co_await read_remote(thread, key, LookupMode::kReadOrLock, probe);
    out.round_trips += probe.round_trips;
    out.entry = std::move(probe.entry);
    out.tier = probe.tier;
    out.error = probe.error;
    out.lock = probe.lock;
    out.lock_marker = std::move(probe.lock_marker);
    if (out.entry) stats_.coalesced_remote.fetch_add(1, std::memory_order_relaxed);
    if (probe.lock != LockState::kHeldByOther) co_return out;  // entry, ours, or Redis failed
    pause = std::min(pause * 2, milliseconds(100));
  }
  out.lock = LockState::kNone;  // waited long enough: call the provider without the lock
  co_return out;
}

asio::awaitable<std::optional<int64_t>> CacheStore::redis_created_ms(std::size_t thread,
                                                                     const CacheKey& key) {
  Worker& w = *workers_[thread];
  redis::Command get("GET", entry_key(key));
  auto r = co_await w.client->execute(get, config_.lookup_timeout);
  Entry e;
  // Absent, a coalescing lock marker (not an entry: bad magic) or unreadable: nothing.
  if (!r.ok() || !r->is_string() || is_lock_marker(r->str()) ||
      decode_entry(r->str(), e) != DecodeError::kNone) {
    co_return std::nullopt;
  }
  co_return e.created_unix_ms;
}

bool CacheStore::should_refresh(std::size_t thread, const CacheKey& key, const Entry& entry,
                                int64_t now_ms) {
  Worker& w = *workers_[thread];
  if (w.hit_counts.size() >= kMaxHitCounters) w.hit_counts.clear();
  const uint32_t hits = ++w.hit_counts[key.digest];
  if (hits < config_.refresh_min_hits || entry.ttl_seconds == 0) return false;
  const double left = static_cast<double>(expires_at_ms(entry) - now_ms);
  if (left > config_.refresh_ttl_fraction * entry.ttl_seconds * 1000.0) return false;
  w.hit_counts.erase(key.digest);  // the refreshed entry starts counting again
  return true;
}

// --- admin -------------------------------------------------------------------------------

asio::awaitable<std::optional<uint64_t>> CacheStore::purge_namespace(std::size_t thread,
                                                                     std::string_view tenant,
                                                                     std::string_view ns) {
  Worker& w = *workers_[thread];
  redis::Command incr("INCR", generation_key(tenant, ns));
  auto r = co_await w.client->execute(incr);
  generation_epoch_.fetch_add(1);  // this instance forgets at once, others on the push
  if (!r.ok()) co_return std::nullopt;
  co_return static_cast<uint64_t>(r->integer());
}

asio::awaitable<std::optional<uint64_t>> CacheStore::purge_tenant(std::size_t thread,
                                                                  std::string_view tenant) {
  Worker& w = *workers_[thread];
  redis::Command incr("INCR", tenant_generation_key(tenant));
  auto r = co_await w.client->execute(incr);
  generation_epoch_.fetch_add(1);
  if (!r.ok()) co_return std::nullopt;
  co_return static_cast<uint64_t>(r->integer());
}

asio::awaitable<std::optional<bool>> CacheStore::purge_key(std::size_t thread,
                                                           const std::string& hex_key) {
  Worker& w = *workers_[thread];
  auto digest = digest_from_hex(hex_key);
  if (!digest) co_return false;
  if (l1_) l1_->invalidate_all_shards(*digest);
  // One script: delete an entry, leave a lock marker (a call in flight) where it is.
  const std::string k = "c:" + hex_key;
  redis::Command call = purge_script().call({std::string_view(k)}, {kLockMarkerPrefix});
  auto r = co_await purge_script().run(*w.client, call);
  if (!r.ok()) co_return std::nullopt;
  co_return r->integer() > 0;
}

}  // namespace redline::cache
