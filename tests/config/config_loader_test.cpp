// Tests for the configuration loader: every section, `${VAR}` expansion, durations and
// sizes, the exact error messages, provider disabling, command-line overrides, validation,
// and that every shipped file under config/ loads. The environment is always a fixed map.
#include "config/config_loader.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>

#include "support/process.h"

namespace redline::config {
namespace {

using Env = std::map<std::string, std::string>;

EnvLookup fixed_env(Env vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) {
      return std::nullopt;
    }
    return it->second;
  };
}

// One enabled provider (loopback, so no key needed): the smallest valid document.
constexpr std::string_view kProvider = R"(
providers:
  - name: mock
    base_url: "http://127.0.0.1:8081/v1"
)";

LoadResult load(std::string_view yaml, Env env = {}) {
  return load_config_string(yaml, "test.yaml", fixed_env(std::move(env)));
}

// `yaml` plus the minimal provider list.
LoadResult load_with_provider(const std::string& yaml, Env env = {}) {
  return load(yaml + std::string(kProvider), std::move(env));
}

// The ConfigError message of loading `yaml`, or "no error".
std::string error_of(std::string_view yaml, Env env = {}) {
  try {
    load(yaml, std::move(env));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

std::string error_with_provider(const std::string& yaml, Env env = {}) {
  return error_of(yaml + std::string(kProvider), std::move(env));
}

template <class Fn>
std::string error_of_call(Fn&& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

// A valid Config built in code, for validate() and apply_overrides().
Config valid_config() {
  Config config;
  config.source = "code";
  ProviderConfig provider;
  provider.name = "mock";
  provider.base_url = "http://127.0.0.1:8081/v1";
  config.providers.push_back(provider);
  return config;
}

std::string validate_error(const Config& config) {
  return error_of_call([&] { validate(config); });
}

// ---------------------------------------------------------------------------------------
// Defaults and sections

TEST(ConfigLoader, MinimalDocumentKeepsEveryDefault) {
  const LoadResult result = load(kProvider);
  const Config& c = result.config;
  const Config d;
  EXPECT_TRUE(result.warnings.empty());
  EXPECT_EQ(c.source, "test.yaml");
  EXPECT_EQ(c.listen.str(), "127.0.0.1:8080");
  EXPECT_EQ(c.threads, 0);
  EXPECT_EQ(c.drain_timeout, d.drain_timeout);
  EXPECT_EQ(c.limits.max_header_bytes, d.limits.max_header_bytes);
  EXPECT_EQ(c.limits.max_body_bytes, d.limits.max_body_bytes);
  EXPECT_EQ(c.limits.idle_timeout, d.limits.idle_timeout);
  EXPECT_EQ(c.admin.listen.str(), "127.0.0.1:9090");
  EXPECT_EQ(c.admin.token, "");
  EXPECT_EQ(c.redis.mode, RedisMode::kStandalone);
  EXPECT_EQ(c.redis.urls, std::vector<std::string>{"redis://127.0.0.1:6379"});
  ASSERT_EQ(c.providers.size(), 1u);
  const ProviderConfig& p = c.providers[0];
  EXPECT_EQ(p.name, "mock");
  EXPECT_EQ(p.type, ProviderType::kOpenAI);
  EXPECT_TRUE(p.enabled);
  EXPECT_EQ(p.anthropic_version, "2023-06-01");
  EXPECT_EQ(p.timeouts.total, ProviderConfig{}.timeouts.total);
  EXPECT_EQ(p.retry.max_attempts, 3);
  EXPECT_TRUE(p.tls_verify);
  EXPECT_TRUE(c.models.empty());
  EXPECT_TRUE(c.keys.empty());
  EXPECT_TRUE(c.cache.enabled);
  EXPECT_EQ(c.cache.mode, CacheMode::kCacheAside);
  EXPECT_EQ(c.cache.ttl, Seconds(3600));
  EXPECT_FALSE(c.cache.redis.has_value());
  EXPECT_TRUE(c.rate_limits.empty());
  EXPECT_EQ(c.logging.level, LogLevel::kInfo);
  EXPECT_TRUE(c.logging.access_log);
}

TEST(ConfigLoader, NullValuesKeepDefaults) {
  const Config c = load_with_provider("listen:\nthreads: ~\nlimits:\nkeys:\nmodels:\n").config;
  EXPECT_EQ(c.listen.str(), "127.0.0.1:8080");
  EXPECT_EQ(c.threads, 0);
  EXPECT_TRUE(c.keys.empty());
}

TEST(ConfigLoader, TopLevelScalars) {
  const Config c =
      load_with_provider("listen: '0.0.0.0:0'\nthreads: 4\ndrain_timeout: 5s\n").config;
  EXPECT_EQ(c.listen.host, "0.0.0.0");
  EXPECT_EQ(c.listen.port, 0);
  EXPECT_EQ(c.threads, 4);
  EXPECT_EQ(c.drain_timeout, Millis(5000));
}

TEST(ConfigLoader, Limits) {
  const Config c = load_with_provider(R"(
limits:
  max_header_bytes: 32KiB
  max_header_count: 50
  max_body_bytes: 1MB
  header_timeout: 2s
  body_timeout: 3s
  idle_timeout: 4s
  send_timeout: 500ms
  max_connections: 7
)")
                       .config;
  EXPECT_EQ(c.limits.max_header_bytes, 32u * 1024);
  EXPECT_EQ(c.limits.max_header_count, 50u);
  EXPECT_EQ(c.limits.max_body_bytes, 1'000'000u);
  EXPECT_EQ(c.limits.header_timeout, Millis(2000));
  EXPECT_EQ(c.limits.body_timeout, Millis(3000));
  EXPECT_EQ(c.limits.idle_timeout, Millis(4000));
  EXPECT_EQ(c.limits.send_timeout, Millis(500));
  EXPECT_EQ(c.limits.max_connections, 7u);
}

TEST(ConfigLoader, AdminAndIpv6) {
  const Config c =
      load_with_provider("admin:\n  listen: '[::1]:9999'\n  token: '${TOKEN}'\n", {{"TOKEN", "t0"}})
          .config;
  EXPECT_EQ(c.admin.listen.host, "::1");
  EXPECT_EQ(c.admin.listen.port, 9999);
  EXPECT_EQ(c.admin.token, "t0");
}

TEST(ConfigLoader, Redis) {
  const Config c = load_with_provider(R"(
redis:
  mode: cluster
  urls: ["redis://a:7000", "rediss://user:pw@b:7001"]
  connect_timeout: 2s
  command_timeout: 50ms
  read_from_replicas: true
  ca_file: /etc/ca.pem
)")
                       .config;
  EXPECT_EQ(c.redis.mode, RedisMode::kCluster);
  EXPECT_EQ(c.redis.urls, (std::vector<std::string>{"redis://a:7000", "rediss://user:pw@b:7001"}));
  EXPECT_EQ(c.redis.connect_timeout, Millis(2000));
  EXPECT_EQ(c.redis.command_timeout, Millis(50));
  EXPECT_TRUE(c.redis.read_from_replicas);
  EXPECT_EQ(c.redis.ca_file, "/etc/ca.pem");
}

TEST(ConfigLoader, RedisUrlsAcceptsASingleString) {
  const Config c = load_with_provider("redis:\n  urls: redis://h:6380/2\n").config;
  EXPECT_EQ(c.redis.urls, std::vector<std::string>{"redis://h:6380/2"});
}

TEST(ConfigLoader, ProviderWithEveryKey) {
  const LoadResult result = load(R"(
providers:
  - name: oa
    type: openai
    base_url: "https://api.example.com/v1/"
    api_key: "${KEY}"
    timeouts: {connect: 1s, first_byte: 2s, idle: 3s, total: 4m}
    retry: {max_attempts: 5, base_backoff: 10ms, max_backoff: 1s, max_retry_after: 3s}
    max_idle_connections: 8
    ca_file: /ca.pem
    tls_verify: false
    headers:
      X-Team: "${TEAM:-core}"
      X-Optional: "${UNSET_OPTIONAL:-}"
  - name: an
    type: anthropic
    base_url: https://api.anthropic.com
    api_key: k2
    anthropic_version: "2024-01-01"
)",
                                 {{"KEY", "sk-1"}});
  ASSERT_EQ(result.config.providers.size(), 2u);
  const ProviderConfig& p = result.config.providers[0];
  EXPECT_EQ(p.base_url, "https://api.example.com/v1");  // trailing slash removed
  EXPECT_EQ(p.api_key, "sk-1");
  EXPECT_TRUE(p.enabled);
  EXPECT_EQ(p.timeouts.connect, Millis(1000));
  EXPECT_EQ(p.timeouts.first_byte, Millis(2000));
  EXPECT_EQ(p.timeouts.idle, Millis(3000));
  EXPECT_EQ(p.timeouts.total, Millis(240'000));
  EXPECT_EQ(p.retry.max_attempts, 5);
  EXPECT_EQ(p.retry.base_backoff, Millis(10));
  EXPECT_EQ(p.retry.max_backoff, Millis(1000));
  EXPECT_EQ(p.retry.max_retry_after, Millis(3000));
  EXPECT_EQ(p.max_idle_connections, 8u);
  EXPECT_EQ(p.ca_file, "/ca.pem");
  EXPECT_FALSE(p.tls_verify);
  EXPECT_EQ(p.headers, (std::map<std::string, std::string>{{"X-Team", "core"}}));
  const ProviderConfig& a = result.config.providers[1];
  EXPECT_EQ(a.type, ProviderType::kAnthropic);
  EXPECT_EQ(a.anthropic_version, "2024-01-01");
  EXPECT_TRUE(result.warnings.empty());
}

TEST(ConfigLoader, UnknownProviderTypeNamesTheChoices) {
  EXPECT_EQ(error_of("providers:\n  - {name: x, type: gemini, base_url: 'http://localhost/'}\n"),
            "test.yaml: providers[0].type: expected one of openai|anthropic, got 'gemini'");
}

TEST(ConfigLoader, ModelsShortAndLongForm) {
  const Config c = load(R"(
providers:
  - {name: oa, base_url: "http://127.0.0.1:1/v1"}
  - {name: an, type: anthropic, base_url: "http://localhost:2"}
models:
  gpt-4o: oa
  fast:
    provider: an
    model: claude-3-5-haiku-latest
    fallbacks: [gpt-4o]
  single: {provider: oa, fallbacks: fast}
)")
                       .config;
  ASSERT_EQ(c.models.size(), 3u);
  EXPECT_EQ(c.models[0].name, "gpt-4o");
  EXPECT_EQ(c.models[0].provider, "oa");
  EXPECT_EQ(c.models[0].upstream_model, "");
  EXPECT_TRUE(c.models[0].fallbacks.empty());
  const ModelRoute* fast = c.find_model("fast");
  ASSERT_NE(fast, nullptr);
  EXPECT_EQ(fast->provider, "an");
  EXPECT_EQ(fast->upstream_model, "claude-3-5-haiku-latest");
  EXPECT_EQ(fast->fallbacks, std::vector<std::string>{"gpt-4o"});
  EXPECT_EQ(c.find_model("single")->fallbacks, std::vector<std::string>{"fast"});
}

TEST(ConfigLoader, ModelWithUnknownProviderFails) {
  EXPECT_EQ(error_with_provider("models:\n  gpt-4o: {provider: nope}\n"),
            "test.yaml: models.gpt-4o.provider: expected the name of a configured provider "
            "(mock), got 'nope'");
}

TEST(ConfigLoader, ModelWithWrongShapeFails) {
  EXPECT_EQ(error_with_provider("models:\n  gpt-4o: [mock]\n"),
            "test.yaml: models.gpt-4o: expected a provider name or a map with provider, model, "
            "fallbacks, got a list");
}

TEST(ConfigLoader, FallbackToUnknownModelFails) {
  EXPECT_EQ(error_with_provider("models:\n  a: {provider: mock, fallbacks: [b]}\n"),
            "test.yaml: models.a.fallbacks[0]: expected the name of a model listed under models, "
            "got 'b'");
}

TEST(ConfigLoader, FallbackToSelfFails) {
  EXPECT_EQ(error_with_provider("models:\n  a: {provider: mock, fallbacks: [a]}\n"),
            "test.yaml: models.a.fallbacks: expected fallbacks other than the model itself, got "
            "'a'");
}

TEST(ConfigLoader, MutualFallbacksLoad) {
  // Each request tries a model at most once (proxy/router.cpp), so a ring is safe.
  const Config c = load_with_provider(R"(
models:
  a: {provider: mock, fallbacks: [b]}
  b: {provider: mock, fallbacks: [c]}
  c: {provider: mock, fallbacks: [a]}
)")
                       .config;
  EXPECT_EQ(c.models.size(), 3u);
}

TEST(ConfigLoader, FallbackChainWithoutCycleLoads) {
  const Config c = load_with_provider(R"(
models:
  a: {provider: mock, fallbacks: [b, c]}
  b: {provider: mock, fallbacks: [c]}
  c: mock
)")
                       .config;
  EXPECT_EQ(c.models.size(), 3u);
}

// ---------------------------------------------------------------------------------------
// Keys

constexpr std::string_view kAbcSha256 =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

TEST(ConfigLoader, Sha256Hex) {
  EXPECT_EQ(sha256_hex("abc"), kAbcSha256);
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(ConfigLoader, PlaintextKeyIsStoredOnlyAsHash) {
  const Config c =
      load_with_provider("keys:\n  - {key: '${K}', name: app, models: [gpt-4o]}\n", {{"K", "abc"}})
          .config;
  ASSERT_EQ(c.keys.size(), 1u);
  EXPECT_EQ(c.keys[0].sha256_hex, kAbcSha256);
  EXPECT_EQ(c.keys[0].tenant, "default");
  EXPECT_EQ(c.keys[0].name, "app");
  EXPECT_EQ(c.keys[0].models, std::vector<std::string>{"gpt-4o"});
}

TEST(ConfigLoader, HashedKeyIsLowerCased) {
  const Config c = load_with_provider(
                       "keys:\n  - key_sha256: BA7816BF8F01CFEA414140DE5DAE2223B003"
                       "61A396177A9CB410FF61F20015AD\n    tenant: t\n")
                       .config;
  ASSERT_EQ(c.keys.size(), 1u);
  EXPECT_EQ(c.keys[0].sha256_hex, kAbcSha256);
  EXPECT_EQ(c.keys[0].tenant, "t");
}

TEST(ConfigLoader, BadKeyHashFails) {
  EXPECT_EQ(error_with_provider("keys:\n  - key_sha256: abc123\n"),
            "test.yaml: keys[0].key_sha256: expected 64 hex digits (a SHA-256), got 'abc123'");
}

TEST(ConfigLoader, KeyNeedsExactlyOneOfKeyAndHash) {
  EXPECT_EQ(error_with_provider("keys:\n  - {tenant: a}\n"),
            "test.yaml: keys[0]: expected exactly one of key or key_sha256, got neither");
  EXPECT_EQ(
      error_with_provider("keys:\n  - {key: abc, key_sha256: '" + std::string(kAbcSha256) + "'}\n"),
      "test.yaml: keys[0]: expected exactly one of key or key_sha256, got both");
  EXPECT_EQ(error_with_provider("keys:\n  - key: '${EMPTY:-}'\n"),
            "test.yaml: keys[0].key: expected a non-empty key, got ''");
}

TEST(ConfigLoader, DuplicateKeysFail) {
  EXPECT_EQ(error_with_provider("keys:\n  - key: abc\n  - key_sha256: '" + std::string(kAbcSha256) +
                                "'\n"),
            "test.yaml: keys[1]: expected a unique key, got the same key as keys[0]");
}

// ---------------------------------------------------------------------------------------
// Cache, rate limits, logging

TEST(ConfigLoader, Cache) {
  const Config c = load_with_provider(R"(
cache:
  enabled: false
  mode: write-behind
  ttl: 5m
  l1: {enabled: false, max_bytes: 1GiB}
  compress_min_bytes: 0
  max_entry_bytes: 64KiB
  cache_nonzero_temperature: no
  redis:
    urls: [redis://cache:6380]
)")
                       .config;
  EXPECT_FALSE(c.cache.enabled);
  EXPECT_EQ(c.cache.mode, CacheMode::kWriteBehind);
  EXPECT_EQ(c.cache.ttl, Seconds(300));
  EXPECT_FALSE(c.cache.l1_enabled);
  EXPECT_EQ(c.cache.l1_max_bytes, std::size_t{1} << 30);
  EXPECT_EQ(c.cache.compress_min_bytes, 0u);
  EXPECT_EQ(c.cache.max_entry_bytes, 64u * 1024);
  EXPECT_FALSE(c.cache.cache_nonzero_temperature);
  ASSERT_TRUE(c.cache.redis.has_value());
  EXPECT_EQ(c.cache.redis->urls, std::vector<std::string>{"redis://cache:6380"});
  EXPECT_EQ(c.cache.redis->mode, RedisMode::kStandalone);
}

TEST(ConfigLoader, NullCacheRedisMeansTheStateRedis) {
  EXPECT_FALSE(load_with_provider("cache:\n  redis:\n").config.cache.redis.has_value());
  EXPECT_TRUE(load_with_provider("cache:\n  redis: {}\n").config.cache.redis.has_value());
}

TEST(ConfigLoader, CacheModes) {
  for (const auto& [name, mode] :
       std::map<std::string, CacheMode>{{"cache-aside", CacheMode::kCacheAside},
                                        {"write-through", CacheMode::kWriteThrough},
                                        {"write-behind", CacheMode::kWriteBehind},
                                        {"refresh-ahead", CacheMode::kRefreshAhead}}) {
    EXPECT_EQ(load_with_provider("cache: {mode: " + name + "}\n").config.cache.mode, mode) << name;
  }
  EXPECT_EQ(error_with_provider("cache: {mode: lazy}\n"),
            "test.yaml: cache.mode: expected one of "
            "cache-aside|write-through|write-behind|refresh-ahead, got 'lazy'");
}

TEST(ConfigLoader, CacheCoalescingModesAndTimeouts) {
  const Config c = load_with_provider(R"(
keys:
  - {key: abc, cache: false}
cache:
  lookup_timeout: 20ms
  store_timeout: 1s
  max_ttl: 24h
  coalesce: {enabled: false, wait: 2s, lock_ttl: 30s}
  write_behind: {queue: 100, batch: 8}
  refresh_ahead: {min_hits: 5, ttl_fraction: 0.5}
)")
                       .config;
  EXPECT_FALSE(c.keys.at(0).cache);
  EXPECT_EQ(c.cache.lookup_timeout, Millis(20));
  EXPECT_EQ(c.cache.store_timeout, Millis(1000));
  EXPECT_EQ(c.cache.max_ttl, Seconds(86400));
  EXPECT_FALSE(c.cache.coalesce);
  EXPECT_EQ(c.cache.coalesce_wait, Millis(2000));
  EXPECT_EQ(c.cache.coalesce_lock_ttl, Millis(30000));
  EXPECT_EQ(c.cache.write_behind_queue, 100u);
  EXPECT_EQ(c.cache.write_behind_batch, 8u);
  EXPECT_EQ(c.cache.refresh_min_hits, 5u);
  EXPECT_DOUBLE_EQ(c.cache.refresh_ttl_fraction, 0.5);
  // Defaults.
  const Config d = load_with_provider("").config;
  EXPECT_TRUE(d.cache.coalesce);
  EXPECT_EQ(d.cache.lookup_timeout, Millis(5));
  EXPECT_DOUBLE_EQ(d.cache.refresh_ttl_fraction, 0.2);
}

TEST(ConfigLoader, CacheBadFractionAndZeroBatchFail) {
  EXPECT_EQ(error_with_provider("cache: {refresh_ahead: {ttl_fraction: 1.5}}\n"),
            "test.yaml: cache.refresh_ahead.ttl_fraction: expected a number between 0 and 1, "
            "got '1.5'");
  EXPECT_NE(error_with_provider("cache: {write_behind: {batch: 0}}\n").find("cache.write_behind.batch"),
            std::string::npos);
}

TEST(ConfigLoader, CacheTtlMustBeWholeSeconds) {
  EXPECT_EQ(error_with_provider("cache: {ttl: 1500ms}\n"),
            "test.yaml: cache.ttl: expected a whole number of seconds like 60, 60s or 5m, got "
            "'1500ms'");
}

TEST(ConfigLoader, RateLimits) {
  const Config c = load_with_provider(R"(
rate_limits:
  - scope: key
    requests: 60
    window: 60
  - scope: [tenant, model]
    algorithm: token-bucket
    tokens: 100000
    burst: 5000
    window: 1m
    fail_mode: closed
  - {scope: global, algorithm: fixed-window, requests: 10, window: 1s, fail_mode: local}
  - {scope: ip, algorithm: sliding-window-counter, requests: 1, tokens: 2}
)")
                       .config;
  ASSERT_EQ(c.rate_limits.size(), 4u);
  EXPECT_EQ(c.rate_limits[0].scopes, std::vector<RateLimitScope>{RateLimitScope::kKey});
  EXPECT_EQ(c.rate_limits[0].algorithm, RateLimitAlgorithm::kSlidingWindowLog);
  EXPECT_EQ(c.rate_limits[0].requests, 60u);
  EXPECT_FALSE(c.rate_limits[0].tokens.has_value());
  EXPECT_EQ(c.rate_limits[0].fail_mode, FailMode::kOpen);
  EXPECT_EQ(c.rate_limits[1].scopes,
            (std::vector<RateLimitScope>{RateLimitScope::kTenant, RateLimitScope::kModel}));
  EXPECT_EQ(c.rate_limits[1].algorithm, RateLimitAlgorithm::kTokenBucket);
  EXPECT_EQ(c.rate_limits[1].tokens, 100000u);
  EXPECT_EQ(c.rate_limits[1].burst, 5000u);
  EXPECT_EQ(c.rate_limits[1].window, Seconds(60));
  EXPECT_EQ(c.rate_limits[1].fail_mode, FailMode::kClosed);
  EXPECT_EQ(c.rate_limits[2].scopes, std::vector<RateLimitScope>{RateLimitScope::kGlobal});
  EXPECT_EQ(c.rate_limits[2].algorithm, RateLimitAlgorithm::kFixedWindow);
  EXPECT_EQ(c.rate_limits[2].window, Seconds(1));
  EXPECT_EQ(c.rate_limits[2].fail_mode, FailMode::kLocal);
  EXPECT_EQ(c.rate_limits[3].algorithm, RateLimitAlgorithm::kSlidingWindowCounter);
  EXPECT_EQ(c.rate_limits[3].window, Seconds(60));  // default
}

TEST(ConfigLoader, RateLimitFailures) {
  EXPECT_EQ(error_with_provider("rate_limits:\n  - {scope: key, window: 60}\n"),
            "test.yaml: rate_limits[0]: expected requests or tokens (or both), got neither");
  EXPECT_EQ(error_with_provider("rate_limits:\n  - {scope: user, requests: 1}\n"),
            "test.yaml: rate_limits[0].scope: expected one of key|tenant|model|ip|global, got "
            "'user'");
  EXPECT_EQ(error_with_provider("rate_limits:\n  - {scope: [key, key], requests: 1}\n"),
            "test.yaml: rate_limits[0].scope: expected each scope once, got a repeated scope");
  EXPECT_EQ(error_with_provider("rate_limits:\n  - {requests: 1, window: 0}\n"),
            "test.yaml: rate_limits[0].window: expected a value > 0, got 0s");
  EXPECT_EQ(error_with_provider("rate_limits:\n  - {requests: 0}\n"),
            "test.yaml: rate_limits[0].requests: expected a value > 0, got 0");
  EXPECT_EQ(error_with_provider("rate_limits:\n  - {requests: 5, burst: 10}\n"),
            "test.yaml: rate_limits[0].burst: expected burst only with algorithm token-bucket, "
            "got 10");
  EXPECT_EQ(error_with_provider("rate_limits:\n  - {requests: 5, fail_mode: maybe}\n"),
            "test.yaml: rate_limits[0].fail_mode: expected one of open|closed|local, got 'maybe'");
  EXPECT_EQ(error_with_provider("rate_limits:\n  - {requests: -5}\n"),
            "test.yaml: rate_limits[0].requests: expected a non-negative integer, got '-5'");
}

TEST(ConfigLoader, KeyRateLimitsAndRateLimitOptions) {
  const Config c = load_with_provider(R"(
keys:
  - key_sha256: "0000000000000000000000000000000000000000000000000000000000000001"
    rate_limits:
      - {requests: 5, window: 10s, algorithm: fixed-window}
  - key_sha256: "0000000000000000000000000000000000000000000000000000000000000002"
rate_limit_options:
  instances: 3
  default_output_tokens: 1000
  output_tokens: {gpt-4o: 16384}
  cache_hits_consume_tokens: true
  settle_delay: 20ms
)")
                       .config;
  ASSERT_EQ(c.keys.size(), 2u);
  ASSERT_EQ(c.keys[0].rate_limits.size(), 1u);
  EXPECT_EQ(c.keys[0].rate_limits[0].requests, 5u);
  EXPECT_EQ(c.keys[0].rate_limits[0].algorithm, RateLimitAlgorithm::kFixedWindow);
  EXPECT_TRUE(c.keys[1].rate_limits.empty());
  EXPECT_EQ(c.rate_limit_options.instances, 3u);
  EXPECT_EQ(c.rate_limit_options.default_output_tokens, 1000u);
  EXPECT_EQ(c.rate_limit_options.output_tokens.at("gpt-4o"), 16384u);
  EXPECT_TRUE(c.rate_limit_options.cache_hits_consume_tokens);
  EXPECT_EQ(c.rate_limit_options.settle_delay, std::chrono::milliseconds(20));

  const Config d = load_with_provider("").config;
  EXPECT_EQ(d.rate_limit_options.instances, 1u);
  EXPECT_EQ(d.rate_limit_options.default_output_tokens, 4096u);
  EXPECT_FALSE(d.rate_limit_options.cache_hits_consume_tokens);
  EXPECT_EQ(d.rate_limit_options.settle_delay, std::chrono::milliseconds(5));
  EXPECT_EQ(load_with_provider("rate_limit_options: {settle_delay: 0ms}\n")
                .config.rate_limit_options.settle_delay,
            std::chrono::milliseconds(0));
  EXPECT_EQ(error_with_provider("rate_limit_options: {settle_delay: 2s}\n"),
            "test.yaml: rate_limit_options.settle_delay: expected a duration of at most 1s, got "
            "2000ms");

  EXPECT_EQ(error_with_provider("keys:\n  - key: a\n    rate_limits: [{window: 5}]\n"),
            "test.yaml: keys[0].rate_limits[0]: expected requests or tokens (or both), got "
            "neither");
  EXPECT_EQ(error_with_provider("rate_limit_options: {instances: 0}\n"),
            "test.yaml: rate_limit_options.instances: expected a value > 0, got 0");
  EXPECT_EQ(error_with_provider("rate_limit_options: {output_tokens: {m: 0}}\n"),
            "test.yaml: rate_limit_options.output_tokens.m: expected a value > 0, got 0");
  EXPECT_EQ(error_with_provider("rate_limit_options: {instance: 2}\n"),
            "test.yaml: rate_limit_options.instance: expected one of the keys instances, "
            "default_output_tokens, output_tokens, cache_hits_consume_tokens, settle_delay, got "
            "unknown key 'instance' (did you mean 'instances'?)");
}

TEST(ConfigLoader, Logging) {
  const Config c = load_with_provider(
                       "logging: {level: DEBUG, access_log: false, access_log_path: /tmp/a.log}\n")
                       .config;
  EXPECT_EQ(c.logging.level, LogLevel::kDebug);
  EXPECT_FALSE(c.logging.access_log);
  EXPECT_EQ(c.logging.access_log_path, "/tmp/a.log");
  EXPECT_EQ(error_with_provider("logging: {level: verbose}\n"),
            "test.yaml: logging.level: expected one of trace|debug|info|warn|error|off, got "
            "'verbose'");
}

TEST(ConfigLoader, Booleans) {
  for (std::string yes : {"true", "True", "yes", "on"}) {
    EXPECT_TRUE(
        load_with_provider("logging: {access_log: " + yes + "}\n").config.logging.access_log);
  }
  for (std::string no : {"false", "FALSE", "no", "off"}) {
    EXPECT_FALSE(
        load_with_provider("logging: {access_log: " + no + "}\n").config.logging.access_log);
  }
  EXPECT_EQ(error_with_provider("logging: {access_log: 1}\n"),
            "test.yaml: logging.access_log: expected true or false, got '1'");
}

// ---------------------------------------------------------------------------------------
// Environment expansion

std::string expand(std::string_view value, Env env = {}) {
  return expand_env(value, "f.yaml: k", fixed_env(std::move(env)));
}

std::string expand_error(std::string_view value, Env env = {}) {
  return error_of_call([&] { expand(value, env); });
}

TEST(EnvExpansion, Variables) {
  const Env env{{"A", "alpha"}, {"B_2", "beta"}, {"EMPTY", ""}};
  EXPECT_EQ(expand("plain", env), "plain");
  EXPECT_EQ(expand("${A}", env), "alpha");
  EXPECT_EQ(expand("x-${A}-${B_2}-y", env), "x-alpha-beta-y");
  EXPECT_EQ(expand("${EMPTY}", env), "");
  EXPECT_EQ(expand("", env), "");
}

TEST(EnvExpansion, Defaults) {
  const Env env{{"A", "alpha"}, {"EMPTY", ""}};
  EXPECT_EQ(expand("${A:-d}", env), "alpha");
  EXPECT_EQ(expand("${UNSET:-d}", env), "d");
  EXPECT_EQ(expand("${EMPTY:-d}", env), "d");  // as in the shell: unset or empty
  EXPECT_EQ(expand("${UNSET:-}", env), "");
  EXPECT_EQ(expand("${UNSET:-http://h:1/v1}", env), "http://h:1/v1");
  EXPECT_EQ(expand("${UNSET:-${A}}", env), "alpha");
  EXPECT_EQ(expand("${UNSET:-${ALSO_UNSET:-deep}}", env), "deep");
}

TEST(EnvExpansion, DollarDollarIsALiteralDollar) {
  EXPECT_EQ(expand("$$"), "$");
  EXPECT_EQ(expand("a$$b"), "a$b");
  EXPECT_EQ(expand("$${A}"), "${A}");
  EXPECT_EQ(expand("cost $5 and $"), "cost $5 and $");
}

TEST(EnvExpansion, ValuesAreNotReExpanded) {
  EXPECT_EQ(expand("${A}", {{"A", "${B}$$"}, {"B", "no"}}), "${B}$$");
}

TEST(EnvExpansion, UnsetVariableFails) {
  EXPECT_EQ(expand_error("${MISSING}"),
            "f.yaml: k: expected environment variable MISSING to be set (or ${MISSING:-default}), "
            "got it unset");
}

TEST(EnvExpansion, MalformedReferencesFail) {
  EXPECT_EQ(expand_error("${A"), "f.yaml: k: expected '}' closing '${', got '${A'");
  EXPECT_EQ(expand_error("${}"),
            "f.yaml: k: expected a variable like ${NAME} or ${NAME:-default}, got '${}'");
  EXPECT_EQ(expand_error("${1A}"),
            "f.yaml: k: expected a variable like ${NAME} or ${NAME:-default}, got '${1A}'");
  EXPECT_EQ(expand_error("${A-B}"),
            "f.yaml: k: expected a variable like ${NAME} or ${NAME:-default}, got '${A-B}'");
}

TEST(EnvExpansion, UnsetVariableInDocumentNamesFileAndKey) {
  EXPECT_EQ(error_with_provider("admin:\n  token: ${ADMIN_TOKEN}\n"),
            "test.yaml: admin.token: expected environment variable ADMIN_TOKEN to be set (or "
            "${ADMIN_TOKEN:-default}), got it unset");
}

TEST(EnvExpansion, EnvironmentCannotInjectYaml) {
  const Config c = load_with_provider("admin:\n  token: \"${T}\"\n",
                                      {{"T", "x\nlisten: 0.0.0.0:1\nthreads: [9]"}})
                       .config;
  EXPECT_EQ(c.admin.token, "x\nlisten: 0.0.0.0:1\nthreads: [9]");
  EXPECT_EQ(c.listen.str(), "127.0.0.1:8080");
}

TEST(EnvExpansion, AppliesToTypedScalars) {
  const Config c = load_with_provider("threads: ${THREADS:-2}\ncache: {enabled: '${CACHE}'}\n",
                                      {{"CACHE", "false"}})
                       .config;
  EXPECT_EQ(c.threads, 2);
  EXPECT_FALSE(c.cache.enabled);
  EXPECT_EQ(error_with_provider("threads: ${THREADS}\n", {{"THREADS", "many"}}),
            "test.yaml: threads: expected an integer, got 'many'");
}

// ---------------------------------------------------------------------------------------
// Durations and sizes

TEST(Durations, Good) {
  const std::map<std::string, Millis> good{{"60", Millis(60'000)},  {"60s", Millis(60'000)},
                                           {"5m", Millis(300'000)}, {"1h", Millis(3'600'000)},
                                           {"250ms", Millis(250)},  {"0", Millis(0)},
                                           {"5S", Millis(5'000)}};
  for (const auto& [text, value] : good) {
    EXPECT_EQ(parse_duration(text, "w"), value) << text;
  }
}

TEST(Durations, Bad) {
  for (std::string text : {"", "soon", "-1", "1.5s", "5d", "5 s", "s", "ms5", "+3",
                           "99999999999999999999", "9999999999999999h"}) {
    EXPECT_EQ(error_of_call([&] { parse_duration(text, "f.yaml: k"); }),
              "f.yaml: k: expected a duration like 5s, 250ms or 5, got '" + text + "'");
  }
}

TEST(Durations, ErrorNamesFileAndKeyPath) {
  EXPECT_EQ(error_of(R"(
providers:
  - {name: a, base_url: "http://127.0.0.1:1"}
  - name: b
    base_url: "http://127.0.0.1:2"
    timeouts: {connect: soon}
)"),
            "test.yaml: providers[1].timeouts.connect: expected a duration like 5s, 250ms or 5, "
            "got 'soon'");
}

TEST(Sizes, Good) {
  const std::map<std::string, std::size_t> good{
      {"1024", 1024},         {"8MiB", 8u << 20}, {"64KiB", 64u << 10},
      {"1GiB", 1u << 30},     {"8MB", 8'000'000}, {"2KB", 2'000},
      {"1gb", 1'000'000'000}, {"10B", 10},        {"64kib", 64u << 10}};
  for (const auto& [text, value] : good) {
    EXPECT_EQ(
        load_with_provider("limits: {max_body_bytes: " + text + "}\n").config.limits.max_body_bytes,
        value)
        << text;
  }
}

TEST(Sizes, Bad) {
  for (std::string text : {"big", "8 MiB", "8TiB", "-1", "1.5MiB", "MiB", "99999999999GiB"}) {
    EXPECT_EQ(error_with_provider("limits: {max_body_bytes: '" + text + "'}\n"),
              "test.yaml: limits.max_body_bytes: expected a size like 8MiB, 64KiB, 8MB or 1024, "
              "got '" +
                  text + "'");
  }
}

// ---------------------------------------------------------------------------------------
// Structure errors

TEST(StructureErrors, UnknownTopLevelKey) {
  const std::string error = error_with_provider("thread: 4\n");
  EXPECT_EQ(error.rfind("test.yaml: thread: expected one of the keys listen, threads, ", 0), 0u)
      << error;
  EXPECT_NE(error.find(", got unknown key 'thread' (did you mean 'threads'?)"), std::string::npos)
      << error;
}

TEST(StructureErrors, UnknownNestedKeyNamesThePath) {
  EXPECT_EQ(error_of(R"(
providers:
  - name: a
    base_url: "http://127.0.0.1:1"
    timeouts: {connect: 1s, warp: 2s}
)"),
            "test.yaml: providers[0].timeouts.warp: expected one of the keys connect, first_byte, "
            "idle, total, got unknown key 'warp'");
  EXPECT_EQ(error_with_provider("cache:\n  l1: {size: 3}\n"),
            "test.yaml: cache.l1.size: expected one of the keys enabled, max_bytes, got unknown "
            "key 'size'");
  EXPECT_EQ(error_with_provider("models:\n  m: {provider: mock, fallback: [x]}\n"),
            "test.yaml: models.m.fallback: expected one of the keys provider, model, fallbacks, "
            "got unknown key 'fallback' (did you mean 'fallbacks'?)");
}

TEST(StructureErrors, WrongTypes) {
  EXPECT_EQ(error_with_provider("listen: {host: a}\n"),
            "test.yaml: listen: expected HOST:PORT like 127.0.0.1:8080 or [::1]:8080, got a map");
  EXPECT_EQ(error_of("providers: {name: a}\n"), "test.yaml: providers: expected a list, got a map");
  EXPECT_EQ(error_with_provider("limits: 5\n"), "test.yaml: limits: expected a map, got '5'");
  EXPECT_EQ(error_with_provider("threads: [1]\n"),
            "test.yaml: threads: expected an integer, got a list");
  EXPECT_EQ(error_with_provider("redis: {urls: [[a]]}\n"),
            "test.yaml: redis.urls[0]: expected a string, got a list");
  EXPECT_EQ(error_of("- a\n- b\n"), "test.yaml: top level: expected a map, got a list");
  EXPECT_EQ(error_with_provider("threads: 99999999999\n"),
            "test.yaml: threads: expected an integer, got '99999999999'");
}

TEST(StructureErrors, UnknownKeyInAListItem) {
  EXPECT_EQ(error_with_provider("keys:\n  - {key: a, tennant: x}\n"),
            "test.yaml: keys[0].tennant: expected one of the keys key, key_sha256, name, tenant, "
            "models, cache, rate_limits, budget, got unknown key 'tennant' (did you mean 'tenant'?)");
  EXPECT_EQ(error_with_provider("rate_limits:\n  - {requests: 1, limit: 2}\n"),
            "test.yaml: rate_limits[0].limit: expected one of the keys scope, algorithm, requests, "
            "tokens, window, burst, fail_mode, got unknown key 'limit'");
}

TEST(StructureErrors, NonStringKeysAndValues) {
  EXPECT_EQ(error_with_provider("? [a]\n: 1\n"),
            "test.yaml: top level: expected string keys, got a key that is a list");
  EXPECT_EQ(
      error_of("providers:\n  - {name: a, base_url: 'http://localhost', headers: {X: [1]}}\n"),
      "test.yaml: providers[0].headers.X: expected a string, got a list");
  EXPECT_EQ(error_of("providers:\n  - {name: a, base_url: 'http://localhost', headers: [X]}\n"),
            "test.yaml: providers[0].headers: expected a map, got a list");
}

TEST(StructureErrors, AnchorsAndAliasesWork) {
  const Config c = load(R"(
providers:
  - name: a
    base_url: "http://127.0.0.1:1/v1"
    timeouts: &fast {connect: 1s, first_byte: 2s}
  - name: b
    base_url: "http://127.0.0.1:2/v1"
    timeouts: *fast
)")
                       .config;
  EXPECT_EQ(c.providers[1].timeouts.first_byte, Millis(2000));
}

TEST(StructureErrors, DuplicateKey) {
  EXPECT_EQ(error_with_provider("threads: 1\nthreads: 2\n"),
            "test.yaml: threads: expected each key once, got it twice");
}

TEST(StructureErrors, YamlSyntaxErrorNamesFileAndLine) {
  const std::string error = error_of("listen: 127.0.0.1:8080\nadmin:\n  listen: [unclosed\n");
  EXPECT_EQ(error.rfind("test.yaml: line ", 0), 0u) << error;
  EXPECT_NE(error.find("expected valid YAML, got a syntax error"), std::string::npos) << error;
  const std::string tab = error_of("a: 1\nb: 2\n  c: 3\n");
  EXPECT_EQ(tab.rfind("test.yaml: line 3, column ", 0), 0u) << tab;
}

TEST(StructureErrors, BadHostPort) {
  for (std::string text : {"8080", ":8080", "h:", "h:70000", "h:-1", "::1:80", "h:port"}) {
    EXPECT_EQ(
        error_of_call([&] { parse_host_port(text, "f: listen"); }),
        "f: listen: expected HOST:PORT like 127.0.0.1:8080 or [::1]:8080, got '" + text + "'");
  }
  EXPECT_EQ(parse_host_port("localhost:65535", "w").str(), "localhost:65535");
}

TEST(StructureErrors, MissingFileNamesIt) {
  const std::string error =
      error_of_call([] { load_config_file("/nonexistent/redline.yaml", fixed_env({})); });
  EXPECT_EQ(
      error.rfind("/nonexistent/redline.yaml: expected a readable configuration file, got '", 0),
      0u)
      << error;
}

TEST(StructureErrors, LoadsFromFile) {
  test::TempDir dir;
  const auto path = dir.write("r.yaml", "threads: 3\n" + std::string(kProvider));
  const LoadResult result = load_config_file(path.string(), fixed_env({}));
  EXPECT_EQ(result.config.threads, 3);
  EXPECT_EQ(result.config.source, path.string());
  const auto bad = dir.write("bad.yaml", "threads: x\n" + std::string(kProvider));
  EXPECT_EQ(error_of_call([&] { load_config_file(bad.string(), fixed_env({})); }),
            bad.string() + ": threads: expected an integer, got 'x'");
}

// ---------------------------------------------------------------------------------------
// Providers: disabling and the at-least-one rule

TEST(Providers, EmptyKeyDisablesRemoteProviderWithWarning) {
  const LoadResult result = load(R"(
providers:
  - {name: remote, base_url: "https://api.openai.com/v1", api_key: "${OPENAI_API_KEY:-}"}
  - {name: local, base_url: "http://127.0.0.1:8081/v1"}
models:
  gpt-4o: remote
)");
  ASSERT_EQ(result.config.providers.size(), 2u);
  EXPECT_FALSE(result.config.providers[0].enabled);
  EXPECT_TRUE(result.config.providers[1].enabled);
  ASSERT_EQ(result.warnings.size(), 2u);
  EXPECT_NE(result.warnings[0].find("'remote'"), std::string::npos) << result.warnings[0];
  EXPECT_NE(result.warnings[0].find("disabled"), std::string::npos) << result.warnings[0];
  EXPECT_EQ(result.warnings[0].rfind("test.yaml: providers[0]", 0), 0u) << result.warnings[0];
  EXPECT_NE(result.warnings[1].find("models.gpt-4o"), std::string::npos) << result.warnings[1];
}

TEST(Providers, LoopbackProvidersNeedNoKey) {
  for (std::string url : {"http://127.0.0.1:8081/v1", "http://localhost:8081", "http://[::1]:1",
                          "https://LOCALHOST/v1", "http://127.0.0.2:80"}) {
    const LoadResult result =
        load("providers:\n  - {name: p, base_url: '" + url + "', api_key: ''}\n");
    EXPECT_TRUE(result.config.providers[0].enabled) << url;
    EXPECT_TRUE(result.warnings.empty()) << url;
  }
}

TEST(Providers, KeyFromEnvironmentEnablesRemoteProvider) {
  const LoadResult result = load(
      "providers:\n  - {name: p, base_url: 'https://api.openai.com/v1', "
      "api_key: '${OPENAI_API_KEY:-}'}\n",
      {{"OPENAI_API_KEY", "sk-x"}});
  EXPECT_TRUE(result.config.providers[0].enabled);
  EXPECT_TRUE(result.warnings.empty());
}

TEST(Providers, NoProviderFails) {
  EXPECT_EQ(error_of("threads: 1\n"),
            "test.yaml: providers: expected at least one provider, got none");
  EXPECT_EQ(error_of(""), "test.yaml: providers: expected at least one provider, got none");
}

TEST(Providers, OnlyDisabledProvidersFail) {
  EXPECT_EQ(error_of("providers:\n  - {name: a, base_url: 'https://a.example/v1'}\n"
                     "  - {name: b, base_url: 'https://b.example/v1', api_key: ''}\n"),
            "test.yaml: providers: expected at least one provider with an api_key (or a base_url "
            "on this machine), got none enabled (disabled: a, b)");
}

TEST(Providers, NamesMustBeUnique) {
  EXPECT_EQ(error_of("providers:\n  - {name: a, base_url: 'http://127.0.0.1:1'}\n"
                     "  - {name: a, base_url: 'http://127.0.0.1:2'}\n"),
            "test.yaml: providers[1].name: expected a unique provider name, got 'a'");
}

TEST(Providers, BaseUrlMustBeHttp) {
  for (std::string url : {"", "ftp://h/v1", "api.openai.com/v1", "http://", "https://h:0/v1",
                          "http://h/v1#frag", "not a url"}) {
    EXPECT_EQ(error_of("providers:\n  - {name: a, api_key: k, base_url: '" + url + "'}\n"),
              "test.yaml: providers[0].base_url: expected an http:// or https:// URL with a host, "
              "got '" +
                  url + "'")
        << url;
  }
}

TEST(Providers, HeadersAreChecked) {
  EXPECT_EQ(error_of("providers:\n  - {name: a, base_url: 'http://localhost', "
                     "headers: {'Bad Name': x}}\n"),
            "test.yaml: providers[0].headers.Bad Name: expected an HTTP header name, got 'Bad "
            "Name'");
  EXPECT_EQ(error_of("providers:\n  - {name: a, base_url: 'http://localhost', "
                     "headers: {X-A: '${V}'}}\n",
                     {{"V", "a\r\nInjected: yes"}}),
            "test.yaml: providers[0].headers.X-A: expected a header value without CR, LF or NUL, "
            "got a value containing one");
}

TEST(Providers, RetryAndTimeoutRules) {
  EXPECT_EQ(error_of("providers:\n  - {name: a, base_url: 'http://localhost', "
                     "retry: {max_attempts: 0}}\n"),
            "test.yaml: providers[0].retry.max_attempts: expected a value > 0, got 0");
  EXPECT_EQ(error_of("providers:\n  - {name: a, base_url: 'http://localhost', "
                     "retry: {base_backoff: 5s, max_backoff: 1s}}\n"),
            "test.yaml: providers[0].retry.max_backoff: expected a duration >= "
            "retry.base_backoff (5000ms), got 1000ms");
  EXPECT_EQ(error_of("providers:\n  - {name: a, base_url: 'http://localhost', "
                     "timeouts: {idle: 0}}\n"),
            "test.yaml: providers[0].timeouts.idle: expected a value > 0, got 0ms");
}

// ---------------------------------------------------------------------------------------
// validate()

TEST(Validate, ValidConfigPasses) {
  EXPECT_EQ(validate_error(valid_config()), "no error");
}

TEST(Validate, DefaultConfigHasNoProvider) {
  const Config defaults;
  EXPECT_EQ(validate_error(defaults),
            "config: providers: expected at least one provider, got none");
}

TEST(Validate, Threads) {
  Config c = valid_config();
  c.threads = -1;
  EXPECT_EQ(validate_error(c), "code: threads: expected a value >= 0, got -1");
}

TEST(Validate, LimitsMustBePositive) {
  Config c = valid_config();
  c.limits.max_body_bytes = 0;
  EXPECT_EQ(validate_error(c), "code: limits.max_body_bytes: expected a value > 0, got 0");
  c = valid_config();
  c.limits.header_timeout = Millis(0);
  EXPECT_EQ(validate_error(c), "code: limits.header_timeout: expected a value > 0, got 0ms");
  EXPECT_EQ(error_with_provider("limits: {max_connections: 0}\n"),
            "test.yaml: limits.max_connections: expected a value > 0, got 0");
}

TEST(ConfigLoader, EdgeKeysPerIpCapAndTrustedProxies) {
  const Config defaults = load_with_provider("").config;
  EXPECT_EQ(defaults.limits.max_connections_per_ip, 1024u);
  EXPECT_TRUE(defaults.limits.trusted_proxies.empty());
  const Config c = load_with_provider(
                       "limits: {max_connections_per_ip: 0}\n"
                       "trusted_proxies: [10.0.0.0/8, 'fd00::/8', 192.168.1.7, '::1']\n")
                       .config;
  EXPECT_EQ(c.limits.max_connections_per_ip, 0u);  // 0 = off is allowed
  EXPECT_EQ(c.limits.trusted_proxies,
            (std::vector<std::string>{"10.0.0.0/8", "fd00::/8", "192.168.1.7", "::1"}));
  const Config one = load_with_provider("trusted_proxies: 127.0.0.1/32\n").config;
  EXPECT_EQ(one.limits.trusted_proxies, std::vector<std::string>{"127.0.0.1/32"});
}

TEST(Validate, TrustedProxiesMustBeAddressesOrCidrs) {
  for (const char* bad : {"10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0/8", "proxy.local",
                          "10.0.0.0/8x", "/8"}) {
    EXPECT_EQ(error_with_provider("trusted_proxies: ['" + std::string(bad) + "']\n"),
              "test.yaml: trusted_proxies[0]: expected an IP address or CIDR like 10.0.0.0/8 "
              "or fd00::/8, got '" +
                  std::string(bad) + "'")
        << bad;
  }
  EXPECT_NE(error_with_provider("limits: {max_connections_per_ip: -1}\n")
                .find("limits.max_connections_per_ip: expected a non-negative integer"),
            std::string::npos);
}

TEST(Validate, AdminMustNotShareTheProxyAddress) {
  Config c = valid_config();
  c.admin.listen = c.listen;
  EXPECT_EQ(validate_error(c),
            "code: admin.listen: expected an address other than listen's, got '127.0.0.1:8080'");
  c.listen.port = 0;
  c.admin.listen.port = 0;  // two ephemeral ports never clash
  EXPECT_EQ(validate_error(c), "no error");
}

TEST(Validate, RedisUrls) {
  for (std::string url : {"redis://h:6379", "rediss://h:6380", "redis://u:p@h:1/3",
                          "redis://:p@10.0.0.1:7000/", "redis://[::1]:6379"}) {
    Config c = valid_config();
    c.redis.urls = {url};
    EXPECT_EQ(validate_error(c), "no error") << url;
  }
  for (std::string url : {"http://h:6379", "redis://h", "redis://:6379", "redis://h:6379/x",
                          "redis://h:6379?db=1", "h:6379", "redis://h:0"}) {
    Config c = valid_config();
    c.redis.urls = {url};
    EXPECT_EQ(validate_error(c),
              "code: redis.urls[0]: expected a URL like redis://[user:pass@]host:port[/db] or "
              "rediss://..., got '" +
                  url + "'")
        << url;
  }
  Config c = valid_config();
  c.redis.urls.clear();
  EXPECT_EQ(validate_error(c),
            "code: redis.urls: expected at least one redis:// or rediss:// URL, got none");
}

TEST(Validate, RedisPasswordIsRedacted) {
  Config c = valid_config();
  c.redis.urls = {"redis://user:secret@h:6379/x"};
  const std::string error = validate_error(c);
  EXPECT_EQ(error.find("secret"), std::string::npos) << error;
  EXPECT_NE(error.find("'redis://user:***@h:6379/x'"), std::string::npos) << error;
}

TEST(Validate, ClusterHasOnlyDatabaseZero) {
  Config c = valid_config();
  c.redis.mode = RedisMode::kCluster;
  c.redis.urls = {"redis://a:7000", "redis://b:7001/2"};
  EXPECT_EQ(validate_error(c),
            "code: redis.urls[1]: expected no database number in cluster mode (a cluster has "
            "only db 0), got 'redis://b:7001/2'");
}

TEST(Validate, CacheRedisIsCheckedToo) {
  EXPECT_EQ(
      error_with_provider("cache:\n  redis: {urls: ['memcached://h:1']}\n"),
      "test.yaml: cache.redis.urls[0]: expected a URL like redis://[user:pass@]host:port[/db] "
      "or rediss://..., got 'memcached://h:1'");
}

TEST(Validate, KeyHashShape) {
  Config c = valid_config();
  KeyConfig key;
  key.sha256_hex = "ABC";
  c.keys.push_back(key);
  EXPECT_EQ(validate_error(c),
            "code: keys[0].key_sha256: expected 64 lower-case hex digits (a SHA-256), got 'ABC'");
}

// ---------------------------------------------------------------------------------------
// Command-line overrides

TEST(Overrides, AddressesRedisThreadsLogLevel) {
  Config c = valid_config();
  CliOverrides o;
  o.listen = "0.0.0.0:0";
  o.admin_listen = "127.0.0.1:0";
  o.redis_urls = {"redis://a:7000", "redis://b:7001"};
  o.redis_mode = "cluster";
  o.threads = 2;
  o.log_level = "warn";
  apply_overrides(c, o);
  EXPECT_EQ(c.listen.str(), "0.0.0.0:0");
  EXPECT_EQ(c.admin.listen.str(), "127.0.0.1:0");
  EXPECT_EQ(c.redis.urls, (std::vector<std::string>{"redis://a:7000", "redis://b:7001"}));
  EXPECT_EQ(c.redis.mode, RedisMode::kCluster);
  EXPECT_EQ(c.threads, 2);
  EXPECT_EQ(c.logging.level, LogLevel::kWarn);
}

TEST(Overrides, NothingSetChangesNothing) {
  Config c = valid_config();
  apply_overrides(c, {});
  EXPECT_EQ(c.listen.str(), "127.0.0.1:8080");
  EXPECT_EQ(c.providers.size(), 1u);
}

TEST(Overrides, UpstreamSetsFirstOpenAIProvider) {
  Config c = load(R"(
providers:
  - {name: an, type: anthropic, base_url: "http://127.0.0.1:1"}
  - {name: first, base_url: "http://127.0.0.1:2/v1"}
  - {name: second, base_url: "http://127.0.0.1:3/v1"}
)")
                 .config;
  CliOverrides o;
  o.upstream = "http://127.0.0.1:9999/v1/";
  apply_overrides(c, o);
  ASSERT_EQ(c.providers.size(), 3u);
  EXPECT_EQ(c.providers[0].base_url, "http://127.0.0.1:1");
  EXPECT_EQ(c.providers[1].base_url, "http://127.0.0.1:9999/v1");
  EXPECT_EQ(c.providers[2].base_url, "http://127.0.0.1:3/v1");
}

TEST(Overrides, UpstreamCreatesDefaultProvider) {
  Config c =
      load("providers:\n  - {name: an, type: anthropic, base_url: 'http://localhost:1'}\n").config;
  CliOverrides o;
  o.upstream = "http://127.0.0.1:8081/v1";
  apply_overrides(c, o);
  ASSERT_EQ(c.providers.size(), 2u);
  EXPECT_EQ(c.providers[1].name, "default");
  EXPECT_EQ(c.providers[1].type, ProviderType::kOpenAI);
  EXPECT_EQ(c.providers[1].base_url, "http://127.0.0.1:8081/v1");
  EXPECT_TRUE(c.providers[1].enabled);
}

TEST(Overrides, UpstreamToLoopbackEnablesAKeylessProvider) {
  Config c = load(
                 "providers:\n  - {name: oa, base_url: 'https://api.openai.com/v1'}\n"
                 "  - {name: an, type: anthropic, base_url: 'http://localhost:1'}\n")
                 .config;
  ASSERT_FALSE(c.providers[0].enabled);
  CliOverrides o;
  o.upstream = "http://localhost:8081/v1";
  apply_overrides(c, o);
  EXPECT_TRUE(c.providers[0].enabled);
}

TEST(Overrides, BadValuesFailWithTheFlag) {
  Config c = valid_config();
  CliOverrides o;
  o.listen = "nowhere";
  EXPECT_EQ(error_of_call([&] { apply_overrides(c, o); }),
            "command line: --listen: expected HOST:PORT like 127.0.0.1:8080 or [::1]:8080, got "
            "'nowhere'");
  o = {};
  o.redis_mode = "sentinel";
  EXPECT_EQ(error_of_call([&] { apply_overrides(c, o); }),
            "command line: --redis-mode: expected one of standalone|cluster, got 'sentinel'");
  o = {};
  o.log_level = "loud";
  EXPECT_EQ(error_of_call([&] { apply_overrides(c, o); }),
            "command line: --log-level: expected one of trace|debug|info|warn|error|off, got "
            "'loud'");
}

TEST(Overrides, ResultIsValidated) {
  Config c = valid_config();
  CliOverrides o;
  o.threads = -3;
  EXPECT_EQ(error_of_call([&] { apply_overrides(c, o); }),
            "code: threads: expected a value >= 0, got -3");
  EXPECT_EQ(c.threads, 0);  // a failed override leaves the config as it was
  o = {};
  o.redis_urls = {"redis://nohost"};
  EXPECT_EQ(error_of_call([&] { apply_overrides(c, o); }),
            "code: redis.urls[0]: expected a URL like redis://[user:pass@]host:port[/db] or "
            "rediss://..., got 'redis://nohost'");
  o = {};
  o.upstream = "ftp://x";
  EXPECT_EQ(error_of_call([&] { apply_overrides(c, o); }),
            "code: providers[0].base_url: expected an http:// or https:// URL with a host, got "
            "'ftp://x'");
}

// ---------------------------------------------------------------------------------------
// Shipped configuration files

// The variables the shipped examples reference, with plausible values.
const Env kShippedEnv{{"OPENAI_API_KEY", "sk-test"},
                      {"ANTHROPIC_API_KEY", "sk-ant-test"},
                      {"REDLINE_ADMIN_TOKEN", "admin-token"},
                      {"REDIS_PASSWORD", "hunter2"},
                      {"TENANT_ACME_KEY", "sk-acme"}};

std::vector<std::filesystem::path> shipped_files() {
  std::vector<std::filesystem::path> files;
  const std::filesystem::path root = REDLINE_SOURCE_DIR;
  for (const auto& dir : {root / "config", root / "config" / "examples"}) {
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      const auto ext = entry.path().extension();
      if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml")) {
        files.push_back(entry.path());
      }
    }
  }
  return files;
}

TEST(ShippedConfigs, EveryFileLoadsWithoutWarnings) {
  const auto files = shipped_files();
  EXPECT_GE(files.size(), 3u);
  for (const auto& file : files) {
    try {
      const LoadResult result = load_config_file(file.string(), fixed_env(kShippedEnv));
      EXPECT_TRUE(result.warnings.empty()) << file << ": " << result.warnings.front();
    } catch (const ConfigError& e) {
      ADD_FAILURE() << e.what();
    }
  }
}

TEST(ShippedConfigs, DefaultConfigServesTheMockWithNoEnvironment) {
  const std::string path = std::string(REDLINE_SOURCE_DIR) + "/config/redline.yaml";
  const LoadResult result = load_config_file(path, fixed_env({}));
  const Config& c = result.config;
  EXPECT_TRUE(result.warnings.empty());
  EXPECT_EQ(c.listen.str(), "127.0.0.1:8080");
  EXPECT_EQ(c.admin.listen.str(), "127.0.0.1:9090");
  EXPECT_EQ(c.redis.urls, std::vector<std::string>{"redis://127.0.0.1:6379"});
  ASSERT_EQ(c.providers.size(), 2u);
  EXPECT_EQ(c.providers[0].name, "openai");
  EXPECT_EQ(c.providers[0].base_url, "http://127.0.0.1:8081/v1");
  EXPECT_TRUE(c.providers[0].enabled);
  EXPECT_EQ(c.providers[1].name, "claude");
  EXPECT_EQ(c.providers[1].type, ProviderType::kAnthropic);
  EXPECT_EQ(c.providers[1].base_url, "http://127.0.0.1:8081");
  EXPECT_TRUE(c.providers[1].enabled);
  ASSERT_NE(c.find_model("claude-sonnet-4-5"), nullptr);
  EXPECT_EQ(c.find_model("claude-sonnet-4-5")->provider, "claude");
  EXPECT_EQ(c.find_model("claude-3-5-haiku-latest")->provider, "claude");
  EXPECT_TRUE(c.keys.empty());
  EXPECT_TRUE(c.rate_limits.empty());
}

TEST(ShippedConfigs, DefaultConfigFollowsTheEnvironment) {
  const std::string path = std::string(REDLINE_SOURCE_DIR) + "/config/redline.yaml";
  const LoadResult result =
      load_config_file(path, fixed_env({{"REDLINE_UPSTREAM", "https://api.openai.com/v1"},
                                        {"REDLINE_ANTHROPIC_UPSTREAM", "https://api.anthropic.com"},
                                        {"OPENAI_API_KEY", "sk-x"}}));
  EXPECT_EQ(result.config.providers[0].base_url, "https://api.openai.com/v1");
  EXPECT_TRUE(result.config.providers[0].enabled);
  EXPECT_FALSE(result.config.providers[1].enabled);  // remote and keyless
  ASSERT_FALSE(result.warnings.empty());
  EXPECT_NE(result.warnings[0].find("'claude'"), std::string::npos);
}

TEST(ShippedConfigs, ProductionExampleNeedsItsSecrets) {
  const std::string path = std::string(REDLINE_SOURCE_DIR) + "/config/examples/production.yaml";
  const Config c = load_config_file(path, fixed_env(kShippedEnv)).config;
  EXPECT_EQ(c.redis.mode, RedisMode::kCluster);
  ASSERT_TRUE(c.cache.redis.has_value());
  EXPECT_EQ(c.keys.size(), 2u);
  EXPECT_EQ(c.keys[0].sha256_hex, sha256_hex("sk-acme"));
  EXPECT_TRUE(c.providers[0].headers.empty());  // OPENAI_ORG unset: header dropped
  Env missing = kShippedEnv;
  missing.erase("REDIS_PASSWORD");
  EXPECT_EQ(error_of_call([&] { load_config_file(path, fixed_env(missing)); }),
            path +
                ": redis.urls[0]: expected environment variable REDIS_PASSWORD to be set (or "
                "${REDIS_PASSWORD:-default}), got it unset");
}

TEST(StateFeatures, KeysBudgetsPricesSessionsAndKeyStore) {
  const Config c = load_with_provider(
      "keys:\n  - {key: a, budget: {limit: 2.5, period: day}}\n"
      "prices:\n  gpt-4o-mini: {input: 0.15, output: 0.6}\n"
      "budgets:\n  tenants:\n    acme: {limit: 100}\n"
      "sessions: {ttl: 1h, max_messages: 10, max_bytes: 64KiB}\n"
      "key_store: {grace: 30s, lookup_timeout: 100ms, key_prefix: sk-x-}\n").config;
  ASSERT_TRUE(c.keys[0].budget.has_value());
  EXPECT_DOUBLE_EQ(c.keys[0].budget->limit_usd, 2.5);
  EXPECT_EQ(c.keys[0].budget->period, BudgetPeriod::kDay);
  EXPECT_DOUBLE_EQ(c.prices.at("gpt-4o-mini").output_per_mtok, 0.6);
  EXPECT_EQ(c.budgets.tenants.at("acme").period, BudgetPeriod::kMonth);  // the default
  EXPECT_EQ(c.sessions.ttl, Seconds(3600));
  EXPECT_EQ(c.sessions.max_messages, 10u);
  EXPECT_EQ(c.sessions.max_bytes, 64u * 1024);
  EXPECT_EQ(c.key_store.grace, Seconds(30));
  EXPECT_EQ(c.key_store.lookup_timeout, Millis(100));
  EXPECT_EQ(c.key_store.key_prefix, "sk-x-");
}

TEST(StateFeatures, BadValuesNameTheField) {
  EXPECT_EQ(error_with_provider("keys:\n  - {key: a, budget: {period: day}}\n"),
            "test.yaml: keys[0].budget: expected a budget with a limit (US dollars per period), "
            "got no limit");
  EXPECT_EQ(error_with_provider("budgets:\n  tenants:\n    a: {limit: -1}\n"),
            "test.yaml: budgets.tenants.a.limit: expected a number of US dollars > 0, got '-1'");
  EXPECT_EQ(error_with_provider("keys:\n  - {key: a, budget: {limit: 1, period: year}}\n"),
            "test.yaml: keys[0].budget.period: expected one of day|week|month, got 'year'");
  EXPECT_EQ(error_with_provider("prices:\n  m: {input: cheap}\n"),
            "test.yaml: prices.m.input: expected a number of US dollars >= 0, got 'cheap'");
  EXPECT_EQ(error_with_provider("sessions: {max_messages: 0}\n"),
            "test.yaml: sessions.max_messages: expected a value > 0, got 0");
}

TEST(StateFeatures, AdminWithoutTokenOnlyOnLoopback) {
  EXPECT_EQ(error_with_provider("admin: {listen: '0.0.0.0:9090'}\n"),
            "test.yaml: admin.token: expected a token when admin.listen is not a loopback "
            "address, got no token with admin.listen '0.0.0.0:9090'");
  EXPECT_EQ(load_with_provider("admin: {listen: '0.0.0.0:9090', token: t}\n").config.admin.token, "t");
}

TEST(StateFeatures, AdminBodiesParseLikeTheConfig) {
  const auto policies = parse_rate_limits(
      R"([{"scope": ["key", "model"], "algorithm": "token-bucket", "requests": 5, "window": 60}])",
      "body");
  ASSERT_EQ(policies.size(), 1u);
  EXPECT_EQ(policies[0].algorithm, RateLimitAlgorithm::kTokenBucket);
  EXPECT_EQ(policies[0].scopes.size(), 2u);
  EXPECT_EQ(error_of_call([] { parse_rate_limits(R"([{"window": "soon"}])", "body"); }),
            "body: [0].window: expected a whole number of seconds like 60, 60s or 5m, got 'soon'");
  EXPECT_EQ(parse_budget(R"({"limit": 3, "period": "week"})", "body").period, BudgetPeriod::kWeek);
  EXPECT_EQ(period_name(BudgetPeriod::kWeek), "week");
}

}  // namespace
}  // namespace redline::config
