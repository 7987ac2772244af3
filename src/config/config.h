// Redline's configuration as plain structs: parsed once from YAML (config_loader.h),
// validated at start-up, then shared read-only by every thread. Defaults live here, so
// a struct built in a test without any YAML is a valid, safe configuration.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace redline::config {

using Seconds = std::chrono::seconds;
using Millis = std::chrono::milliseconds;

struct HostPort {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string str() const { return host + ":" + std::to_string(port); }
};

// Limits of the client-facing HTTP server. Each one, when hit, is answered with its own
// status and an OpenAI-shaped error body (see docs/configuration.md).
struct HttpLimits {
  std::size_t max_header_bytes = 16 * 1024;       // 431
  std::size_t max_header_count = 100;             // 431
  std::size_t max_body_bytes = 8 * 1024 * 1024;   // 413
  Millis header_timeout{10'000};                  // 408: first byte to end of headers
  Millis body_timeout{30'000};                    // 408: reading the request body
  Millis idle_timeout{60'000};                    // keep-alive wait for the next request
  Millis send_timeout{60'000};                    // a client that stops reading
  std::size_t max_connections = 10'000;           // per process; beyond: 503 and close
  // Per client address (the TCP peer); beyond: 503 and close; 0 = off. Peers inside
  // trusted_proxies are exempt (a load balancer carries many clients). 1024 sits above
  // the connection pool of the official SDKs (openai-python: 1000) and is a tenth of
  // max_connections, so one address alone cannot take the whole process.
  std::size_t max_connections_per_ip = 1024;
  // The top-level `trusted_proxies` key (CIDRs or addresses), kept here because the HTTP
  // server applies it: X-Forwarded-For / X-Real-IP are believed only from these peers.
  std::vector<std::string> trusted_proxies;
};

struct AdminConfig {
  HostPort listen{"127.0.0.1", 9090};
  std::string token;  // empty: protected admin endpoints are refused (403)
  // The Redis health poller (INFO, SLOWLOG, CLUSTER INFO of every node); /readyz follows it.
  Millis redis_poll_interval{5'000};
  Millis redis_poll_timeout{1'000};  // per node and round
};

enum class RedisMode { kStandalone, kCluster };

struct RedisConfig {
  RedisMode mode = RedisMode::kStandalone;
  std::vector<std::string> urls{"redis://127.0.0.1:6379"};
  Millis connect_timeout{1'000};
  Millis command_timeout{250};
  bool read_from_replicas = false;
  std::string ca_file;  // for rediss://
};

enum class ProviderType { kOpenAI, kAnthropic };

struct UpstreamTimeouts {
  Millis connect{5'000};
  Millis first_byte{60'000};   // request sent -> response headers
  Millis idle{30'000};         // between two body chunks (streams)
  Millis total{600'000};       // whole exchange, retries included
};

struct RetryPolicy {
  int max_attempts = 3;             // per provider, the first try included
  Millis base_backoff{100};
  Millis max_backoff{2'000};
  Millis max_retry_after{10'000};   // a longer retry-after moves on to the fallback instead
};

// The provider's circuit breaker (src/upstream/circuit_breaker.h).
struct CircuitConfig {
  uint32_t failures = 5;         // consecutive failed attempts that open it; 0 = off
  Millis open_for{10'000};       // how long it stays open before one probe is let through
};

struct ProviderConfig {
  std::string name;
  ProviderType type = ProviderType::kOpenAI;
  std::string base_url;  // openai: includes /v1; anthropic: the root
  std::string api_key;   // empty after expansion: provider disabled (warning)
  bool enabled = true;
  std::string anthropic_version = "2023-06-01";
  UpstreamTimeouts timeouts;
  RetryPolicy retry;
  CircuitConfig circuit;
  std::size_t max_idle_connections = 512;  // per thread; beyond it, idle ones are closed
  std::string ca_file;                    // extra CA bundle (PEM); system store always used
  bool tls_verify = true;
  std::map<std::string, std::string> headers;  // extra headers sent to this provider
};

// One entry of `models:`. The short form `name: provider` sets only `provider`.
struct ModelRoute {
  std::string name;                    // what clients ask for
  std::string provider;                // provider name
  std::string upstream_model;          // sent to the provider; empty = same as name
  std::vector<std::string> fallbacks;  // model names tried in order after this one fails
};

struct RateLimitPolicy;  // below

// A spending limit over one UTC calendar period (day: 00:00 UTC; week: Monday 00:00 UTC;
// month: the 1st, 00:00 UTC). Amounts are US dollars; spend is counted in micro-dollars.
enum class BudgetPeriod { kDay, kWeek, kMonth };

struct Budget {
  double limit_usd = 0;  // > 0
  BudgetPeriod period = BudgetPeriod::kMonth;
};

// One model's price (`prices:`), US dollars per million tokens. A model without a price
// costs nothing (and a warning names it at start-up when budgets are configured).
struct ModelPrice {
  double input_per_mtok = 0;
  double output_per_mtok = 0;
};

struct KeyConfig {
  std::string name;          // label for logs (never the key)
  std::string sha256_hex;    // lower-case hex SHA-256 of the plaintext key
  std::string tenant = "default";
  std::vector<std::string> models;  // allowed models; empty = all
  bool cache = true;                // false: this key's requests never read or write the cache
  std::vector<RateLimitPolicy> rate_limits;  // this key's own policies, on top of rate_limits
  std::optional<Budget> budget;              // this key's spending limit
};

// Virtual keys issued at run time through the admin API, kept in the state Redis (`k:`).
// Each instance caches key records in-process and keeps them coherent with CLIENT TRACKING
// (BCAST PREFIX k:), so a revoked key stops working everywhere within about a second.
struct KeyStoreConfig {
  bool enabled = true;          // false: only the keys of the config authenticate
  Seconds grace{300};           // Redis unreachable: known keys keep working this long
  Millis lookup_timeout{250};   // a key not cached locally waits this long for Redis
  std::size_t max_cached = 100'000;  // records (and unknown keys) cached per process
  std::string key_prefix = "sk-redline-";  // prefix of generated plaintext keys
};

// `budgets:` spending limits beyond the per-key ones.
struct BudgetsConfig {
  std::map<std::string, Budget> tenants;  // tenant -> budget
};

// Conversation sessions (`x-redline-session: ID`), kept in the state Redis (`s:`).
struct SessionConfig {
  bool enabled = true;
  Seconds ttl{86'400};                  // sliding: every turn renews it
  std::size_t max_messages = 200;       // beyond: oldest non-system messages trimmed
  std::size_t max_bytes = 1024 * 1024;  // serialized messages; beyond: oldest trimmed
  std::size_t max_id_bytes = 128;       // longer session ids are refused (400)
};

// The Responses API (POST /v1/responses): the gateway keeps each response and its input chain
// in the state Redis (`rs:`), so previous_response_id works for every provider.
struct ResponsesConfig {
  bool enabled = true;                        // false: the provider keeps the state (OpenAI only)
  Seconds ttl{7 * 86'400};                    // from the save; a new turn saves a new record
  std::size_t max_chain_bytes = 1024 * 1024;  // input + output stored; oldest input trimmed
};

enum class CacheMode { kCacheAside, kWriteThrough, kWriteBehind, kRefreshAhead };

struct CacheConfig {
  bool enabled = true;
  CacheMode mode = CacheMode::kCacheAside;
  Seconds ttl{3600};
  bool l1_enabled = true;
  std::size_t l1_max_bytes = 64 * 1024 * 1024;
  std::size_t compress_min_bytes = 1024;
  std::size_t max_entry_bytes = 4 * 1024 * 1024;
  bool cache_nonzero_temperature = true;
  std::optional<RedisConfig> redis;  // separate cache Redis; default: the state Redis
  Millis lookup_timeout{5};          // a slower lookup counts as a miss
  Millis store_timeout{250};         // write-through waits at most this for the store
  Seconds max_ttl{30 * 86400};       // bound for x-redline-cache-ttl
  // Request coalescing: identical misses share one provider call per process, and a Redis
  // lock (a marker in the entry key c:<hex>, docs/caching.md) keeps other instances waiting up
  // to `coalesce_wait` for the answer.
  bool coalesce = true;
  Millis coalesce_wait{10'000};
  Millis coalesce_lock_ttl{60'000};
  // write-behind
  std::size_t write_behind_queue = 10'000;  // entries per thread; beyond: dropped, counted
  std::size_t write_behind_batch = 64;      // entries per pipelined write
  // refresh-ahead
  uint32_t refresh_min_hits = 2;     // an entry hit this often (per thread) is hot
  double refresh_ttl_fraction = 0.2; // hot and under this fraction of its TTL left: refresh
};

enum class RateLimitScope { kKey, kTenant, kModel, kIp, kGlobal };
enum class RateLimitAlgorithm { kSlidingWindowLog, kSlidingWindowCounter, kTokenBucket, kFixedWindow };
enum class FailMode { kOpen, kClosed, kLocal };

struct RateLimitPolicy {
  std::vector<RateLimitScope> scopes{RateLimitScope::kKey};  // combined scopes
  RateLimitAlgorithm algorithm = RateLimitAlgorithm::kSlidingWindowLog;
  std::optional<uint64_t> requests;
  std::optional<uint64_t> tokens;
  Seconds window{60};
  std::optional<uint64_t> burst;  // token-bucket only; default = the limit
  FailMode fail_mode = FailMode::kOpen;
};

// `rate_limit_options`: how the limiter behaves beyond the policies themselves.
struct RateLimitOptions {
  std::size_t instances = 1;              // gateway instances sharing the limits (fail_mode local)
  uint64_t default_output_tokens = 4096;  // reserved when a request sets no max_tokens
  std::map<std::string, uint64_t> output_tokens;  // per model; overrides the default
  bool cache_hits_consume_tokens = false;         // charge answers served from the cache
  // How long a settlement may wait to ride on the thread's next check of its slot (0: sent
  // at once, on its own).
  Millis settle_delay{5};
};

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError, kOff };

struct LoggingConfig {
  LogLevel level = LogLevel::kInfo;
  bool access_log = true;
  std::string access_log_path;  // empty: stdout
};

struct Config {
  std::string source;  // the file it came from, for messages
  HostPort listen{"127.0.0.1", 8080};
  int threads = 0;  // 0 = one per core
  Millis drain_timeout{30'000};
  HttpLimits limits;
  AdminConfig admin;
  RedisConfig redis;
  std::vector<ProviderConfig> providers;
  std::vector<ModelRoute> models;
  std::vector<KeyConfig> keys;
  CacheConfig cache;
  std::vector<RateLimitPolicy> rate_limits;
  RateLimitOptions rate_limit_options;
  KeyStoreConfig key_store;
  std::map<std::string, ModelPrice> prices;  // model name -> price
  BudgetsConfig budgets;
  SessionConfig sessions;
  ResponsesConfig responses;
  LoggingConfig logging;

  const ProviderConfig* find_provider(const std::string& name) const {
    for (const auto& p : providers) {
      if (p.name == name) return &p;
    }
    return nullptr;
  }
  const ModelRoute* find_model(const std::string& name) const {
    for (const auto& m : models) {
      if (m.name == name) return &m;
    }
    return nullptr;
  }
};

}  // namespace redline::config
