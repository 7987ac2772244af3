// Virtual keys issued at run time through the admin API, kept in the state Redis besides the
// static keys of the config. Only SHA-256 hashes are stored, with the key's tenant, allowed
// models, rate-limit policies, budget, expiry and metadata. The plaintext is returned once,
// by create / rotate.
//
// A key check does not cost a Redis round trip per request: records (and "no such key"
// answers) are cached in-process and kept coherent with CLIENT TRACKING (BCAST PREFIX k:) on
// a connection of the KeyStore's own, so a revoke or rotate on any instance reaches every
// instance's cache within about a second. When tracking is lost the cache is marked
// unverified: cached records keep serving for `key_store.grace` while Redis stays unreachable
// (and are re-read as soon as it answers); unknown keys are answered kUnavailable (the
// pipeline says 503: the gateway cannot tell), never kUnknown (401).
//
// Thread model: one KeyStore per process. find() may be called from any gateway thread with
// that thread's own Redis client; the cache is shared (read-mostly lock); tracking runs on
// the io_context given to start(). See README.md for the Redis layout (k:...).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/config.h"
#include "redis/client.h"

namespace redline::auth {

struct KeyRecord {
  std::string id;          // public handle: "key_" + 16 random hex digits (rotate makes a new one)
  std::string sha256_hex;  // of the plaintext; the Redis lookup key
  std::string name;        // label for logs
  std::string tenant = "default";
  std::vector<std::string> models;                   // allowed; empty = all
  std::vector<config::RateLimitPolicy> rate_limits;  // the key's own policies
  // rate_limits as the admin wrote them (a JSON array, "" = none): stored, parsed back into
  // rate_limits on load and echoed by to_json, so auth needs no policy-name tables.
  std::string rate_limits_json;
  std::optional<config::Budget> budget;
  bool cache = true;
  std::map<std::string, std::string> metadata;
  int64_t created_ms = 0;
  int64_t expires_ms = 0;  // 0 = never
  int64_t revoked_ms = 0;  // 0 = active
  std::string rotated_to;  // id of the key that replaced this one ("" = none)

  // The admin API's view: every field above except sha256_hex (with_hash=false), plus
  // "status": "active" | "revoked" | "expired" at `now_ms`.
  boost::json::object to_json(int64_t now_ms, bool with_hash = false) const;
  // Storage form (JSON text) and back; nullopt for a record that does not parse.
  std::string serialize() const;
  static std::optional<KeyRecord> parse(std::string_view stored);
};

// What the admin API may set when creating a key (POST /admin/keys) or rotating one.
struct KeySpec {
  std::string name;
  std::string tenant = "default";
  std::vector<std::string> models;
  std::vector<config::RateLimitPolicy> rate_limits;
  std::string rate_limits_json;  // the body's "rate_limits" array as JSON text ("" = none)
  std::optional<config::Budget> budget;
  bool cache = true;
  std::map<std::string, std::string> metadata;  // string values only
  int64_t expires_ms = 0;                       // absolute; 0 = never
};

// Parses a create body: {"name","tenant","models":[..],"rate_limits":[..] (as in the config
// file),"budget":{"limit":..,"period":..},"cache":bool,"metadata":{..},"expires_at":
// unix-seconds | "expires_in": seconds}. Unknown fields and wrong types are errors; the
// error text names the field ("tenant: expected a non-empty string").
std::variant<KeySpec, std::string> parse_key_spec(std::string_view json_body, int64_t now_ms);

enum class KeyStatus { kActive, kUnknown, kRevoked, kExpired, kUnavailable };

struct KeyLookup {
  KeyStatus status = KeyStatus::kUnknown;
  std::shared_ptr<const KeyRecord> record;  // set for kActive, kRevoked, kExpired
};

struct KeyStoreStats {
  uint64_t hits = 0;           // answered from the in-process cache
  uint64_t misses = 0;         // read from Redis
  uint64_t invalidations = 0;  // tracking pushes applied
  uint64_t tracking_resets = 0;
  uint64_t unavailable = 0;   // answered kUnavailable
  uint64_t grace_served = 0;  // served from a cache Redis could not confirm
};

class KeyStore {
 public:
  KeyStore(const config::KeyStoreConfig& config, const config::RedisConfig& redis);
  ~KeyStore();

  // Opens the tracking connection(s) on `ioc` (gateway thread 0); stop() before `ioc` dies.
  void start(boost::asio::io_context& ioc);
  void stop();

  // The request path: the record for a presented key's SHA-256 (lower-case hex). From the
  // cache when it is coherent; otherwise one GET bounded by key_store.lookup_timeout on
  // `redis` (the calling thread's client). Never throws.
  boost::asio::awaitable<KeyLookup> find(redis::Client& redis, std::string_view sha256_hex);

  // Admin operations (any thread's client). create / rotate return the plaintext once.
  struct Created {
    std::string plaintext;
    KeyRecord record;
  };
  boost::asio::awaitable<redis::Result<Created>> create(redis::Client& redis, const KeySpec& spec);
  boost::asio::awaitable<redis::Result<std::vector<KeyRecord>>> list(
      redis::Client& redis,
      std::string_view tenant);  // "" = all
  boost::asio::awaitable<redis::Result<std::optional<KeyRecord>>> get(redis::Client& redis,
                                                                      std::string_view id);
  // Marks the key revoked (kept for the audit trail); nullopt when no such id.
  boost::asio::awaitable<redis::Result<std::optional<KeyRecord>>> revoke(redis::Client& redis,
                                                                         std::string_view id);
  // A new key with the same attributes; the old one expires after `grace_seconds` (0 = now).
  boost::asio::awaitable<redis::Result<std::optional<Created>>> rotate(redis::Client& redis,
                                                                       std::string_view id,
                                                                       int64_t grace_seconds);

  KeyStoreStats stats() const;
  // True while the tracking link is up, i.e. cached answers are coherent with Redis.
  bool tracking() const;

  // Wall clock (unix ms) for created/expiry/revoked times; tests inject one. Set before use.
  void set_clock(std::function<int64_t()> now_unix_ms);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace redline::auth
