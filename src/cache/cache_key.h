// The deterministic response-cache key: tenant, namespace, generation, endpoint, provider,
// model, the answer-changing headers and a canonical form of the JSON body, hashed with XXH3-128.
// It does not look anything up or decide whether a request is cacheable; see docs/caching.md.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace redline::cache {

// Bump whenever the framing or the canonical form changes, so old entries stop matching.
inline constexpr int kKeyVersion = 1;

// Objects and arrays nested deeper than this are refused (kTooDeep).
inline constexpr int kMaxKeyDepth = 128;

struct KeyRequest {
  std::string_view tenant;
  std::string_view cache_namespace;  // "" = the tenant's default namespace
  uint64_t generation = 0;           // bumped by a purge of the namespace or tenant
  std::string_view endpoint;  // "chat_completions", "messages", "embeddings", "completions", ...
  std::string_view provider;
  std::string_view model;  // the resolved upstream model
  std::string_view anthropic_version;
  std::string_view anthropic_beta;
  std::string_view openai_beta;
  std::string_view body;  // the raw JSON request body
};

enum class KeyError { kNone, kInvalidJson, kDuplicateKey, kNotAnObject, kTooDeep };

std::string_view key_error_message(KeyError e);

struct CacheKey {
  std::array<unsigned char, 16> digest{};
  std::string hex() const;  // 32 lower-case hex characters
  bool operator==(const CacheKey&) const = default;
};

struct KeyResult {
  KeyError error = KeyError::kNone;
  std::string detail;  // what exactly was wrong, for the 400 message
  CacheKey key;
  std::string canonical_body;  // filled only when asked (debugging, tests)
};

// Any error means the request must be answered 400 (or bypass the cache); `key` is then zero.
KeyResult compute_cache_key(const KeyRequest& req, bool keep_canonical = false);

// Top-level body fields left out of the key because they cannot change the answer.
std::span<const std::string_view> ignored_body_fields();

}  // namespace redline::cache
