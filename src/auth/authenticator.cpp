// Virtual-key authentication (see authenticator.h).
#include "auth/authenticator.h"

#include "auth/key_store.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>

namespace redline::auth {

namespace {
std::array<unsigned char, 32> sha256(std::string_view data) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

std::string to_hex(const unsigned char* p, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    s[2 * i] = kHex[p[i] >> 4];
    s[2 * i + 1] = kHex[p[i] & 15];
  }
  return s;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
}  // namespace

bool Identity::model_allowed(std::string_view model) const {
  if (models == nullptr || models->empty()) return true;
  return std::find(models->begin(), models->end(), model) != models->end();
}

Authenticator::Authenticator(const std::vector<config::KeyConfig>& keys) {
  for (const auto& k : keys) {
    Entry e{};
    const auto& hex = k.sha256_hex;
    for (std::size_t i = 0; i < e.digest.size() && 2 * i + 1 < hex.size(); ++i) {
      e.digest[i] = static_cast<unsigned char>(hex_value(hex[2 * i]) * 16 + hex_value(hex[2 * i + 1]));
    }
    e.config = &k;
    by_hex_[to_hex(e.digest.data(), e.digest.size())] = keys_.size();
    keys_.push_back(e);
  }
}

Identity identity_of(std::shared_ptr<const KeyRecord> record) {
  Identity id;
  id.tenant = record->tenant;
  id.key_name = record->name;
  id.key_id = record->id;
  id.models = &record->models;
  id.cache = record->cache;
  id.rate_limits = &record->rate_limits;
  id.budget = record->budget;
  id.stored = true;
  id.record = std::move(record);
  return id;
}

AuthResult Authenticator::authenticate(std::string_view authorization, std::string_view api_key,
                                       bool hash_unknown) const {
  AuthResult result;
  if (open() && !hash_unknown) {
    result.outcome = AuthOutcome::kOk;
    return result;
  }
  std::string_view presented = trim(api_key);
  authorization = trim(authorization);
  if (authorization.size() > 7 && (authorization.substr(0, 7) == "Bearer " ||
                                   authorization.substr(0, 7) == "bearer ")) {
    presented = trim(authorization.substr(7));
  }
  if (presented.empty()) {
    if (open()) result.outcome = AuthOutcome::kOk;
    return result;  // kMissing
  }

  result.outcome = open() ? AuthOutcome::kOk : AuthOutcome::kInvalid;
  const auto digest = sha256(presented);
  auto hex = to_hex(digest.data(), digest.size());
  auto it = by_hex_.find(hex);
  if (it == by_hex_.end()) {
    result.presented_sha256 = std::move(hex);
    return result;
  }
  const auto& entry = keys_[it->second];
  // The map found the candidate by its hash; confirm in constant time anyway.
  if (CRYPTO_memcmp(entry.digest.data(), digest.data(), digest.size()) != 0) return result;
  result.outcome = AuthOutcome::kOk;
  result.identity.tenant = entry.config->tenant;
  result.identity.key_name = entry.config->name;
  result.identity.key_id = to_hex(digest.data(), 6);
  result.identity.models = &entry.config->models;
  result.identity.cache = entry.config->cache;
  result.identity.rate_limits = &entry.config->rate_limits;
  result.identity.budget = entry.config->budget;
  return result;
}

}  // namespace redline::auth
