// Client authentication against the virtual keys of the config (`keys:`): the presented
// key (Authorization: Bearer, or x-api-key) is hashed with SHA-256 and compared in
// constant time with the stored hashes; plaintext keys are never kept. With no keys
// configured the gateway is open and every request belongs to tenant "default".
// Keys issued at run time through the admin API live in Redis (key_store.h): the pipeline
// asks the KeyStore for a presented key the config does not know.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.h"

namespace redline::auth {

struct KeyRecord;  // key_store.h

struct Identity {
  std::string tenant = "default";
  std::string key_name;             // label from config, never the key
  std::string key_id;               // first 12 hex chars of the key hash; "" when open
  const std::vector<std::string>* models = nullptr;  // allowed models; null/empty = all
  bool cache = true;                // false: the key opted out of the response cache
  const std::vector<config::RateLimitPolicy>* rate_limits = nullptr;  // the key's own policies
  std::optional<config::Budget> budget;  // the key's own spending limit
  bool stored = false;                   // issued through the admin API (Redis)
  std::shared_ptr<const KeyRecord> record;  // keeps `models` / `rate_limits` alive for stored keys
  bool model_allowed(std::string_view model) const;
};

// The identity of a key issued through the admin API.
Identity identity_of(std::shared_ptr<const KeyRecord> record);

enum class AuthOutcome { kOk, kMissing, kInvalid };

struct AuthResult {
  AuthOutcome outcome = AuthOutcome::kMissing;
  Identity identity;
  // Lower-case hex SHA-256 of a presented key the config does not know (kInvalid, or kOk on an
  // open gateway when `hash_unknown`): the KeyStore lookup key. Empty otherwise.
  std::string presented_sha256;
};

class Authenticator {
 public:
  explicit Authenticator(const std::vector<config::KeyConfig>& keys);
  bool open() const { return keys_.empty(); }
  // `authorization` is the Authorization header value, `api_key` the x-api-key value. With
  // `hash_unknown`, an open gateway also hashes a presented key (stored keys then apply).
  AuthResult authenticate(std::string_view authorization, std::string_view api_key,
                          bool hash_unknown = false) const;

 private:
  using Digest = std::array<unsigned char, 32>;
  struct Entry {
    Digest digest;
    const config::KeyConfig* config;
  };
  std::vector<Entry> keys_;
  std::unordered_map<std::string, std::size_t> by_hex_;  // sha256 hex -> index in keys_
};

}  // namespace redline::auth
