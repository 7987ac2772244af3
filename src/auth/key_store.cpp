// KeyStore (see key_store.h): virtual keys in the state Redis under k:, the admin operations
// on them, and the request-path lookup through a shared in-process cache kept coherent by
// CLIENT TRACKING BCAST PREFIX k: on a connection of its own. Record JSON lives in
// key_record.cpp, the cache container in key_cache.h; the Redis layout is in README.md.
#include "auth/key_store.h"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <map>

#include "auth/key_cache.h"
#include "config/config_loader.h"
#include "redis/cluster.h"
#include "redis/config_options.h"
#include "redis/script.h"
#include "redline_scripts.h"

namespace redline::auth {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

namespace {

// A record cached this long is read again even while tracking vouches for it, so a push lost
// without the link noticing cannot keep a revoked key alive for ever.
constexpr auto kRevalidateAfter = std::chrono::seconds(60);
// Tracking link: how often a live link is probed, how soon a lost one is retried.
constexpr auto kHeartbeat = milliseconds(1000);
constexpr auto kRetryPause = milliseconds(100);
// Read-modify-write attempts (revoke, rotate) before giving up on a busy record.
constexpr int kSwapAttempts = 8;
// Longest rotate grace accepted (keeps millisecond arithmetic far from overflow).
constexpr int64_t kMaxGraceSeconds = int64_t{10} * 365 * 86'400;

constexpr std::string_view kIndexAll = "k:ids";

std::string record_key(std::string_view sha) {
  return "k:h:" + std::string(sha);
}
std::string id_key(std::string_view id) {
  return "k:i:" + std::string(id);
}
std::string tenant_index(std::string_view tenant) {
  return "k:t:" + std::string(tenant);
}

bool is_lower_hex(std::string_view s, std::size_t size) {
  if (s.size() != size) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}
bool is_sha(std::string_view s) {
  return is_lower_hex(s, 64);
}
bool is_key_id(std::string_view s) {
  return s.starts_with("key_") && is_lower_hex(s.substr(4), 16);
}

void random_bytes(unsigned char* out, std::size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1) {
    throw std::runtime_error("key store: RAND_bytes failed");
  }
}

std::string new_plaintext(std::string_view prefix) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  unsigned char raw[32];
  random_bytes(raw, sizeof raw);
  std::string out(prefix);
  // base64url without padding: 32 bytes -> 43 characters.
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char b : raw) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 0x3f]);
  OPENSSL_cleanse(raw, sizeof raw);
  return out;
}

std::string new_id() {
  static constexpr char kHex[] = "0123456789abcdef";
  unsigned char raw[8];
  random_bytes(raw, sizeof raw);
  std::string out = "key_";
  for (unsigned char b : raw) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

int64_t system_now_ms() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t steady_ns(SteadyClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

KeyLookup classify(std::shared_ptr<const KeyRecord> record, int64_t now_ms) {
  KeyLookup out;
  if (!record) return out;  // kUnknown
  if (record->revoked_ms != 0) {
    out.status = KeyStatus::kRevoked;
  } else if (record->expires_ms != 0 && record->expires_ms <= now_ms) {
    out.status = KeyStatus::kExpired;
  } else {
    out.status = KeyStatus::kActive;
  }
  out.record = std::move(record);
  return out;
}

const redis::Script& swap_script() {
  static const redis::Script s(scripts::key_record_swap);
  return s;
}

redis::Error error(std::string message) {
  return redis::Error{redis::ErrorKind::kInvalidArgument, std::move(message)};
}

struct Counters {
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> misses{0};
  std::atomic<uint64_t> invalidations{0};
  std::atomic<uint64_t> tracking_resets{0};
  std::atomic<uint64_t> unavailable{0};
  std::atomic<uint64_t> grace_served{0};
};

void bump(std::atomic<uint64_t>& c) {
  c.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

// --- coherence --------------------------------------------------------------------------

// State shared by find() on every thread, the tracking coroutine and the tracking client's
// callbacks. The coroutine holds a reference, so it outlives a KeyStore destroyed first.
struct Tracker {
  explicit Tracker(std::size_t max_cached) : cache(max_cached) {}

  KeyCache cache;
  Counters stats;
  // The tracking link is up, i.e. every change to k:* since `epoch` began reaches us as a
  // push. Entries read during another epoch are not trusted without asking Redis again.
  std::atomic<bool> link_up{false};
  std::atomic<uint64_t> epoch{1};
  // Last moment Redis was known reachable while the link was down (steady ns): grace runs
  // from here.
  std::atomic<int64_t> last_contact_ns{steady_ns(SteadyClock::now())};
  std::atomic<bool> stopping{false};

  // Owned by the io_context given to start(); touched only on its thread.
  asio::io_context* ioc = nullptr;
  std::unique_ptr<redis::Client> client;
  std::unique_ptr<asio::steady_timer> wake;
  uint64_t losses = 0;
  std::map<uint16_t, std::string> probe_keys;  // cluster: one key per probed slot

  void on_push(const redis::Reply& push) {
    if (push.size() < 2 || push[0].str() != "invalidate") return;
    const redis::Reply& keys = push[1];
    if (keys.is_null()) {  // FLUSHALL / FLUSHDB: anything may be gone
      cache.clear();
      bump(stats.invalidations);
      return;
    }
    for (const auto& k : keys.elements()) {
      std::string_view name = k.str();
      if (!name.starts_with("k:h:")) continue;  // pointers and indexes are never cached
      cache.invalidate(name.substr(4));
      bump(stats.invalidations);
    }
  }

  void lose(std::string_view why) {
    ++losses;
    if (!link_up.exchange(false)) return;
    epoch.fetch_add(1);
    last_contact_ns.store(steady_ns(SteadyClock::now()));
    bump(stats.tracking_resets);
    spdlog::warn("key store: tracking link lost ({}); cached keys now need Redis or grace", why);
    if (wake) wake->cancel();
  }

  void restore() {
    epoch.fetch_add(1);
    link_up.store(true);
    spdlog::info("key store: tracking link up (CLIENT TRACKING BCAST PREFIX k:)");
  }

  // A key under k: that lives in `slot` (only ever read: EXISTS on it reaches that master).
  const std::string& probe_key(uint16_t slot) {
    auto it = probe_keys.find(slot);
    if (it != probe_keys.end()) return it->second;
    std::string key;
    for (uint64_t n = 0;; ++n) {
      const std::string tag = std::to_string(n);
      if (redis::key_slot(tag) == slot) {
        key = "k:probe:{" + tag + "}";
        break;
      }
    }
    return probe_keys.emplace(slot, std::move(key)).first->second;
  }

  // True when every tracking connection (cluster: one per master) answers a command, which
  // also means each ran CLIENT TRACKING after its latest (re)connect.
  asio::awaitable<bool> probe() {
    auto connected = co_await client->connect();
    if (!connected.ok()) co_return false;
    std::vector<redis::Command> cmds;
    if (auto* cluster = dynamic_cast<redis::ClusterClient*>(client.get())) {
      const redis::SlotMap& map = cluster->slot_map();
      std::vector<bool> seen(map.shards.size(), false);
      for (uint16_t slot = 0; slot < redis::kClusterSlots; ++slot) {
        const int16_t owner = map.owner[slot];
        if (owner < 0 || seen[static_cast<std::size_t>(owner)]) continue;
        seen[static_cast<std::size_t>(owner)] = true;
        cmds.emplace_back("EXISTS", probe_key(slot));
      }
    } else {
      cmds.emplace_back("PING");
    }
    if (cmds.empty()) co_return false;
    const std::span<const redis::Command> view(cmds);
    auto results = co_await client->batch(view);
    for (const auto& r : results) {
      if (!r.ok()) co_return false;
    }
    co_return true;
  }

  asio::awaitable<void> pause(milliseconds d) {
    wake->expires_after(d);
    co_await wake->async_wait(asio::as_tuple(asio::use_awaitable));
  }
};

namespace {

// Keeps the tracking link's state: probes it until it is up (then opens a new epoch), and
// every kHeartbeat while up, so a hung server is noticed even without a socket error.
asio::awaitable<void> track(std::shared_ptr<Tracker> t) {
  while (!t->stopping.load()) {
    const uint64_t losses = t->losses;
    if (!t->link_up.load()) {
      const bool ok = co_await t->probe();
      if (t->stopping.load()) break;
      if (ok && losses == t->losses) {
        t->restore();
        continue;
      }
      co_await t->pause(kRetryPause);
      continue;
    }
    co_await t->pause(kHeartbeat);
    if (t->stopping.load() || !t->link_up.load()) continue;
    const uint64_t before = t->losses;
    const bool ok = co_await t->probe();
    if (!ok && before == t->losses && !t->stopping.load()) t->lose("heartbeat failed");
  }
  t->link_up.store(false);
  if (t->client) t->client->stop();
}

}  // namespace

// --- KeyStore ---------------------------------------------------------------------------

struct KeyStore::Impl {
  Impl(const config::KeyStoreConfig& c, const config::RedisConfig& r)
      : config(c), redis_config(r), tracker(std::make_shared<Tracker>(c.max_cached)) {}

  config::KeyStoreConfig config;
  config::RedisConfig redis_config;
  std::shared_ptr<Tracker> tracker;
  std::function<int64_t()> clock = system_now_ms;

  struct Stored {
    std::string raw;  // the record's text as read (for the swap)
    KeyRecord record;
  };
  using Load = redis::Result<std::optional<Stored>>;
  // Returns the change's error text, or "" to write the (possibly unchanged) record.
  using Change = std::function<std::string(KeyRecord&)>;

  asio::awaitable<Load> load(redis::Client& redis, std::string id);
  asio::awaitable<redis::Result<void>> write_new(redis::Client& redis, const KeyRecord& record);
  asio::awaitable<void> erase_new(redis::Client& redis, const KeyRecord& record);
  asio::awaitable<redis::Result<std::optional<KeyRecord>>> modify(redis::Client& redis,
                                                                  std::string id, Change change);
  KeyRecord new_record(const KeySpec& spec, std::string& plaintext) const;
};

KeyStore::KeyStore(const config::KeyStoreConfig& config, const config::RedisConfig& redis)
    : impl_(std::make_unique<Impl>(config, redis)) {}

KeyStore::~KeyStore() {
  // The tracking coroutine notices within a heartbeat and stops its client.
  impl_->tracker->stopping.store(true);
}

void KeyStore::set_clock(std::function<int64_t()> now_unix_ms) {
  impl_->clock = std::move(now_unix_ms);
}

void KeyStore::start(asio::io_context& ioc) {
  auto& t = impl_->tracker;
  if (!impl_->config.enabled || t->ioc != nullptr) return;
  redis::ClientOptions o = redis::client_options(impl_->redis_config, "redline-keys");
  o.read_from_replicas = false;  // probes must reach the masters that send the pushes
  o.connect_all_masters = true;  // cluster: every master's k:* writes are heard
  o.connection.init_commands.emplace_back("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "k:");
  auto made = redis::make_client(ioc.get_executor(), o);
  if (!made.ok()) throw std::runtime_error("key store redis: " + made.error().to_string());
  t->ioc = &ioc;
  t->client = std::move(*made);
  t->wake = std::make_unique<asio::steady_timer>(ioc);
  std::weak_ptr<Tracker> weak = t;
  t->client->on_push([weak](const redis::Reply& r) {
    if (auto s = weak.lock()) s->on_push(r);
  });
  t->client->on_disconnect([weak](const redis::Error& e) {
    if (auto s = weak.lock()) s->lose(e.to_string());
  });
  asio::co_spawn(ioc, track(t), asio::detached);
}

void KeyStore::stop() {
  auto t = impl_->tracker;
  if (t->ioc == nullptr || t->stopping.exchange(true)) return;
  auto halt = [t] {
    t->link_up.store(false);
    if (t->wake) t->wake->cancel();
    if (t->client) t->client->stop();
  };
  if (t->ioc->get_executor().running_in_this_thread()) {
    halt();
  } else {
    asio::post(*t->ioc, halt);
  }
}

bool KeyStore::tracking() const {
  return impl_->tracker->link_up.load();
}

KeyStoreStats KeyStore::stats() const {
  const Counters& c = impl_->tracker->stats;
  KeyStoreStats s;
  s.hits = c.hits.load(std::memory_order_relaxed);
  s.misses = c.misses.load(std::memory_order_relaxed);
  s.invalidations = c.invalidations.load(std::memory_order_relaxed);
  s.tracking_resets = c.tracking_resets.load(std::memory_order_relaxed);
  s.unavailable = c.unavailable.load(std::memory_order_relaxed);
  s.grace_served = c.grace_served.load(std::memory_order_relaxed);
  return s;
}

// --- request path -----------------------------------------------------------------------

asio::awaitable<KeyLookup> KeyStore::find(redis::Client& redis, std::string_view sha256_hex) {
  Tracker& t = *impl_->tracker;
  if (!impl_->config.enabled || !is_sha(sha256_hex)) co_return KeyLookup{};
  const std::string sha(sha256_hex);
  const auto cached = t.cache.get(sha);
  const auto now = SteadyClock::now();
  const bool vouched = cached && t.link_up.load() && cached->epoch == t.epoch.load();
  if (vouched && now - cached->verified_at < kRevalidateAfter) {
    bump(t.stats.hits);
    co_return classify(cached->record, impl_->clock());
  }

  // Ask Redis: not cached, cached in an epoch the link cannot vouch for, or due a re-read.
  const uint64_t epoch = t.epoch.load();
  const uint64_t generation = t.cache.generation();
  const std::string key = record_key(sha);
  redis::Command get("GET", key);
  auto r = co_await redis.execute(get, impl_->config.lookup_timeout);
  if (r.ok() && (r->is_null() || r->is_string())) {
    bump(t.stats.misses);
    t.last_contact_ns.store(steady_ns(SteadyClock::now()), std::memory_order_relaxed);
    std::shared_ptr<const KeyRecord> record;
    if (r->is_string()) {
      auto parsed = KeyRecord::parse(r->str());
      if (!parsed || parsed->sha256_hex != sha) {
        spdlog::warn("key store: unreadable record at k:h:{}...", sha.substr(0, 12));
        co_return KeyLookup{};
      }
      record = std::make_shared<const KeyRecord>(std::move(*parsed));
    }
    t.cache.put(sha, KeyCache::Entry{record, epoch, now}, generation);
    co_return classify(std::move(record), impl_->clock());
  }

  // Redis did not answer (in time).
  if (cached && cached->record) {
    if (vouched) {  // only the periodic re-read failed; tracking still covers the entry
      bump(t.stats.hits);
      co_return classify(cached->record, impl_->clock());
    }
    const int64_t since_contact = steady_ns(SteadyClock::now()) - t.last_contact_ns.load();
    const auto grace = std::chrono::duration_cast<std::chrono::nanoseconds>(impl_->config.grace);
    if (t.link_up.load() || since_contact < grace.count()) {
      bump(t.stats.grace_served);
      co_return classify(cached->record, impl_->clock());
    }
  }
  bump(t.stats.unavailable);
  KeyLookup out;
  out.status = KeyStatus::kUnavailable;
  co_return out;
}

// --- admin operations -------------------------------------------------------------------

KeyRecord KeyStore::Impl::new_record(const KeySpec& spec, std::string& plaintext) const {
  plaintext = new_plaintext(config.key_prefix);
  KeyRecord r;
  r.id = new_id();
  r.sha256_hex = config::sha256_hex(plaintext);
  r.name = spec.name;
  r.tenant = spec.tenant;
  r.models = spec.models;
  r.rate_limits = spec.rate_limits;
  r.rate_limits_json = spec.rate_limits_json;
  r.budget = spec.budget;
  r.cache = spec.cache;
  r.metadata = spec.metadata;
  r.created_ms = clock();
  r.expires_ms = spec.expires_ms;
  return r;
}

asio::awaitable<KeyStore::Impl::Load> KeyStore::Impl::load(redis::Client& redis, std::string id) {
  if (!is_key_id(id)) co_return std::optional<Stored>();
  const std::string pointer = id_key(id);
  redis::Command get_pointer("GET", pointer);
  auto sha = co_await redis.execute(get_pointer);
  if (!sha.ok()) co_return sha.error();
  if (sha->is_null()) co_return std::optional<Stored>();
  const std::string key = record_key(sha->str());
  redis::Command get_record("GET", key);
  auto raw = co_await redis.execute(get_record);
  if (!raw.ok()) co_return raw.error();
  if (raw->is_null()) co_return std::optional<Stored>();  // a pointer left by a failed create
  auto parsed = KeyRecord::parse(raw->str());
  if (!parsed) {
    co_return redis::Error{redis::ErrorKind::kServerError, key + " holds an unreadable record"};
  }
  co_return std::optional<Stored>(Stored{std::move(raw->mutable_str()), std::move(*parsed)});
}

// The record first (on a cluster the keys live in different slots, nothing spans them): a
// record without pointer or index is unreachable, its plaintext never left this function.
asio::awaitable<redis::Result<void>> KeyStore::Impl::write_new(redis::Client& redis,
                                                               const KeyRecord& record) {
  const std::string key = record_key(record.sha256_hex);
  const std::string body = record.serialize();
  redis::Command set("SET", key, body, "NX");
  auto r = co_await redis.execute(set);
  if (!r.ok()) co_return r.error();
  if (r->is_null()) co_return redis::Error{redis::ErrorKind::kServerError, "key hash collision"};
  tracker->cache.invalidate(record.sha256_hex);  // a cached "no such key" here is now wrong

  std::vector<redis::Command> rest;
  rest.emplace_back("SET", id_key(record.id), record.sha256_hex, "NX");
  rest.emplace_back("ZADD", kIndexAll, record.created_ms, record.id);
  rest.emplace_back("ZADD", tenant_index(record.tenant), record.created_ms, record.id);
  const std::span<const redis::Command> view(rest);
  auto results = co_await redis.batch(view);
  for (const auto& res : results) {
    if (res.ok() && !res->is_null()) continue;
    redis::Error e =
        res.ok() ? redis::Error{redis::ErrorKind::kServerError, "key id collision"} : res.error();
    if (results[0].ok() && !results[0]->is_null()) {
      co_await erase_new(redis, record);
    } else {  // the id belongs to someone else (or is unknown): remove only the record
      redis::Command del("DEL", key);
      auto deleted = co_await redis.execute(del);
      (void)deleted;
    }
    co_return e;
  }
  co_return redis::Result<void>();
}

asio::awaitable<void> KeyStore::Impl::erase_new(redis::Client& redis, const KeyRecord& record) {
  std::vector<redis::Command> cmds;
  cmds.emplace_back("DEL", record_key(record.sha256_hex));
  cmds.emplace_back("DEL", id_key(record.id));
  cmds.emplace_back("ZREM", kIndexAll, record.id);
  cmds.emplace_back("ZREM", tenant_index(record.tenant), record.id);
  const std::span<const redis::Command> view(cmds);
  auto results = co_await redis.batch(view);
  (void)results;  // best effort: an orphan record is unreachable without its plaintext
  tracker->cache.invalidate(record.sha256_hex);
}

asio::awaitable<redis::Result<std::optional<KeyRecord>>> KeyStore::Impl::modify(
    redis::Client& redis, std::string id, Change change) {
  for (int attempt = 0; attempt < kSwapAttempts; ++attempt) {
    auto loaded = co_await load(redis, id);
    if (!loaded.ok()) co_return loaded.error();
    if (!*loaded) co_return std::optional<KeyRecord>();
    Stored& stored = **loaded;
    KeyRecord updated = stored.record;
    std::string refused = change(updated);
    if (!refused.empty()) co_return error(std::move(refused));
    const std::string body = updated.serialize();
    if (body == stored.raw) co_return std::optional<KeyRecord>(std::move(updated));
    const std::string key = record_key(updated.sha256_hex);
    const std::string_view keys[] = {key};
    const std::string_view args[] = {stored.raw, body};
    redis::Command call = swap_script().call(keys, args);
    auto swapped = co_await swap_script().run(redis, call);
    if (!swapped.ok()) co_return swapped.error();
    if (swapped->integer() == 1) {
      tracker->cache.invalidate(updated.sha256_hex);  // this instance at once, others by push
      co_return std::optional<KeyRecord>(std::move(updated));
    }
  }
  co_return redis::Error{
      redis::ErrorKind::kServerError,
      "key " + id + " kept changing; gave up after " + std::to_string(kSwapAttempts) + " attempts"};
}

asio::awaitable<redis::Result<KeyStore::Created>> KeyStore::create(redis::Client& redis,
                                                                   const KeySpec& spec) {
  Created created;
  created.record = impl_->new_record(spec, created.plaintext);
  auto written = co_await impl_->write_new(redis, created.record);
  if (!written.ok()) co_return written.error();
  spdlog::info("key store: created {} ({}) for tenant {}", created.record.id, created.record.name,
               created.record.tenant);
  co_return created;
}

asio::awaitable<redis::Result<std::vector<KeyRecord>>> KeyStore::list(redis::Client& redis,
                                                                      std::string_view tenant) {
  const std::string index = tenant.empty() ? std::string(kIndexAll) : tenant_index(tenant);
  redis::Command range("ZRANGE", index, 0, -1);
  auto ids = co_await redis.execute(range);
  if (!ids.ok()) co_return ids.error();
  std::vector<KeyRecord> out;
  if (!ids->is_aggregate() || ids->elements().empty()) co_return out;

  std::vector<redis::Command> pointers;
  for (const auto& id : ids->elements()) pointers.emplace_back("GET", id_key(id.str()));
  const std::span<const redis::Command> pointer_view(pointers);
  auto shas = co_await redis.batch(pointer_view);
  std::vector<redis::Command> records;
  for (const auto& sha : shas) {
    if (!sha.ok()) co_return sha.error();
    if (sha->is_string()) records.emplace_back("GET", record_key(sha->str()));
  }
  if (records.empty()) co_return out;
  const std::span<const redis::Command> record_view(records);
  auto bodies = co_await redis.batch(record_view);
  for (const auto& body : bodies) {
    if (!body.ok()) co_return body.error();
    if (!body->is_string()) continue;
    if (auto parsed = KeyRecord::parse(body->str())) out.push_back(std::move(*parsed));
  }
  co_return out;
}

asio::awaitable<redis::Result<std::optional<KeyRecord>>> KeyStore::get(redis::Client& redis,
                                                                       std::string_view id) {
  const std::string key_id(id);  // named: g++ 12 mishandles temporaries in awaited calls
  auto loaded = co_await impl_->load(redis, key_id);
  if (!loaded.ok()) co_return loaded.error();
  if (!*loaded) co_return std::optional<KeyRecord>();
  co_return std::optional<KeyRecord>(std::move((*loaded)->record));
}

asio::awaitable<redis::Result<std::optional<KeyRecord>>> KeyStore::revoke(redis::Client& redis,
                                                                          std::string_view id) {
  const int64_t now = impl_->clock();
  Impl::Change change = [now](KeyRecord& r) {
    if (r.revoked_ms == 0) r.revoked_ms = now;
    return std::string();
  };
  const std::string key_id(id);
  auto revoked = co_await impl_->modify(redis, key_id, std::move(change));
  if (revoked.ok() && *revoked) spdlog::info("key store: revoked {}", (*revoked)->id);
  co_return revoked;
}

asio::awaitable<redis::Result<std::optional<KeyStore::Created>>> KeyStore::rotate(
    redis::Client& redis, std::string_view id, int64_t grace_seconds) {
  const std::string old_id(id);
  const int64_t now = impl_->clock();
  auto loaded = co_await impl_->load(redis, old_id);
  if (!loaded.ok()) co_return loaded.error();
  if (!*loaded) co_return std::optional<Created>();
  const KeyRecord& old = (*loaded)->record;
  // Refused: the same checks as in `change` below, before a new key is written for nothing.
  auto refusal = [now](const KeyRecord& r) -> std::string {
    if (r.revoked_ms != 0) return "key " + r.id + " is revoked";
    if (!r.rotated_to.empty()) return "key " + r.id + " was already rotated to " + r.rotated_to;
    if (r.expires_ms != 0 && r.expires_ms <= now) return "key " + r.id + " has expired";
    return {};
  };
  if (std::string why = refusal(old); !why.empty()) co_return error(std::move(why));

  KeySpec same;
  same.name = old.name;
  same.tenant = old.tenant;
  same.models = old.models;
  same.rate_limits = old.rate_limits;
  same.rate_limits_json = old.rate_limits_json;
  same.budget = old.budget;
  same.cache = old.cache;
  same.metadata = old.metadata;
  same.expires_ms = old.expires_ms;
  Created created;
  created.record = impl_->new_record(same, created.plaintext);
  auto written = co_await impl_->write_new(redis, created.record);
  if (!written.ok()) co_return written.error();

  const int64_t grace = std::clamp<int64_t>(grace_seconds, 0, kMaxGraceSeconds);
  const std::string new_id = created.record.id;
  Impl::Change change = [now, grace, new_id, refusal](KeyRecord& r) {
    if (std::string why = refusal(r); !why.empty()) return why;
    r.rotated_to = new_id;
    if (grace == 0) {
      r.revoked_ms = now;
    } else if (r.expires_ms == 0 || r.expires_ms > now + grace * 1000) {
      r.expires_ms = now + grace * 1000;
    }
    return std::string();
  };
  auto retired = co_await impl_->modify(redis, old_id, std::move(change));
  if (!retired.ok() || !*retired) {
    co_await impl_->erase_new(redis, created.record);
    if (!retired.ok()) co_return retired.error();
    co_return std::optional<Created>();  // deleted meanwhile
  }
  spdlog::info("key store: rotated {} to {} (grace {} s)", old_id, new_id, grace);
  co_return std::optional<Created>(std::move(created));
}

}  // namespace redline::auth
