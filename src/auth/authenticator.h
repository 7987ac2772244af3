// Client authentication against the virtual keys of the config (`keys:`): the presented
// key (Authorization: Bearer, or x-api-key) is hashed with SHA-256 and compared in
// constant time with the stored hashes; plaintext keys are never kept. With no keys
// configured the gateway is open and every request belongs to tenant "default".
// Keys issued at run time through the admin API (Redis) come later and plug in here.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.h"

namespace redline::auth {

struct Identity {
  std::string tenant = "default";
  std::string key_name;             // label from config, never the key
  std::string key_id;               // first 12 hex chars of the key hash; "" when open
  const std::vector<std::string>* models = nullptr;  // allowed models; null/empty = all
  bool cache = true;                // false: the key opted out of the response cache
  bool model_allowed(std::string_view model) const;
};

enum class AuthOutcome { kOk, kMissing, kInvalid };

struct AuthResult {
  AuthOutcome outcome = AuthOutcome::kMissing;
  Identity identity;
};

class Authenticator {
 public:
  explicit Authenticator(const std::vector<config::KeyConfig>& keys);
  bool open() const { return keys_.empty(); }
  // `authorization` is the Authorization header value, `api_key` the x-api-key value.
  AuthResult authenticate(std::string_view authorization, std::string_view api_key) const;

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
