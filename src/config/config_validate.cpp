// Cross-field checks on a parsed Config: addresses, provider names and URLs, model routes
// and self-referencing fallbacks, key hashes, limits, Redis URLs and rate-limit policies. It reads the
// structs only, so a Config built in code obeys the same rules as one loaded from YAML.
#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/url/parse.hpp>
#include <cctype>
#include <charconv>
#include <set>
#include <string>
#include <type_traits>

#include "config/config_loader.h"

namespace redline::config {
namespace {

std::string quoted(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.append(1, '\'').append(text).append(1, '\'');
  return out;
}
std::string show(Millis value) {
  return std::to_string(value.count()) + "ms";
}
std::string show(Seconds value) {
  return std::to_string(value.count()) + "s";
}
template <class T>
requires std::is_arithmetic_v<T> std::string show(T value) {
  return std::to_string(value);
}

// Hides the password of a URL like redis://user:secret@host:6379 in messages.
std::string redacted(std::string_view url) {
  const std::size_t scheme = url.find("://");
  const std::size_t at = url.rfind('@');
  if (scheme == std::string_view::npos || at == std::string_view::npos || at < scheme) {
    return std::string(url);
  }
  const std::size_t colon = url.substr(0, at).find(':', scheme + 3);
  if (colon == std::string_view::npos) {
    return std::string(url);
  }
  return std::string(url.substr(0, colon + 1)) + "***" + std::string(url.substr(at));
}

bool valid_port(const boost::urls::url_view& url) {
  if (!url.has_port()) {
    return true;
  }
  uint16_t port = 0;
  const auto text = std::string_view(url.port());
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  return ec == std::errc() && end == text.data() + text.size() && port != 0;
}

// http:// or https:// with a host and no fragment.
bool is_http_url(std::string_view text) {
  auto url = boost::urls::parse_uri(text);
  if (!url) {
    return false;
  }
  const auto scheme = url->scheme_id();
  return (scheme == boost::urls::scheme::http || scheme == boost::urls::scheme::https) &&
         !url->encoded_host().empty() && valid_port(*url) && !url->has_fragment();
}

// redis://[user:pass@]host:port[/db] or rediss://...: the database number, or nullopt.
std::optional<unsigned> redis_db(std::string_view text) {
  auto url = boost::urls::parse_uri(text);
  if (!url) {
    return std::nullopt;
  }
  const std::string_view scheme = url->scheme();
  if ((scheme != "redis" && scheme != "rediss") || url->encoded_host().empty() ||
      !url->has_port() || !valid_port(*url) || url->has_query() || url->has_fragment()) {
    return std::nullopt;
  }
  std::string_view path = url->encoded_path();
  if (!path.empty() && path.front() == '/') {
    path.remove_prefix(1);
  }
  if (path.empty()) {
    return 0u;
  }
  unsigned db = 0;
  auto [end, ec] = std::from_chars(path.data(), path.data() + path.size(), db);
  if (ec != std::errc() || end != path.data() + path.size()) {
    return std::nullopt;
  }
  return db;
}

bool is_http_token(std::string_view name) {
  static constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || kExtra.find(c) != std::string_view::npos;
  });
}

// "10.0.0.0/8", "fd00::/8" or a plain address (the same test as http::TrustedProxies).
bool valid_cidr(std::string_view text) {
  boost::system::error_code ec;
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    boost::asio::ip::make_address(text, ec);
    return !ec;
  }
  const auto addr = boost::asio::ip::make_address(text.substr(0, slash), ec);
  if (ec) return false;
  const auto bits = text.substr(slash + 1);
  unsigned prefix = 0;
  auto [end, perr] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
  if (perr != std::errc() || end != bits.data() + bits.size() || bits.empty()) return false;
  return prefix <= (addr.is_v4() ? 32u : 128u);
}

bool is_lower_sha256(std::string_view hex) {
  return hex.size() == 64 && std::all_of(hex.begin(), hex.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string joined(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const auto& item : items) {
    out += (out.empty() ? "" : std::string(sep)) + item;
  }
  return out;
}

// Throws "<source>: <path>: expected <expected>, got <got>" when a rule does not hold.
class Checker {
 public:
  explicit Checker(const Config& config)
      : source_(config.source.empty() ? "config" : config.source) {}

  void expect(bool ok, const std::string& path, std::string_view expected,
              std::string_view got) const {
    if (!ok) {
      throw ConfigError(source_ + ": " + path + ": expected " + std::string(expected) + ", got " +
                        std::string(got));
    }
  }

  template <class T>
  void positive(T value, const std::string& path) const {
    expect(value > T{}, path, "a value > 0", show(value));
  }

  template <class T>
  void non_negative(T value, const std::string& path) const {
    expect(value >= T{}, path, "a value >= 0", show(value));
  }

 private:
  std::string source_;
};

void check_address(const Checker& check, const HostPort& address, const std::string& path) {
  check.expect(!address.host.empty(), path, "HOST:PORT with a host", quoted(address.str()));
}

void check_limits(const Checker& check, const HttpLimits& l) {
  check.positive(l.max_header_bytes, "limits.max_header_bytes");
  check.positive(l.max_header_count, "limits.max_header_count");
  check.positive(l.max_body_bytes, "limits.max_body_bytes");
  check.positive(l.header_timeout, "limits.header_timeout");
  check.positive(l.body_timeout, "limits.body_timeout");
  check.positive(l.idle_timeout, "limits.idle_timeout");
  check.positive(l.send_timeout, "limits.send_timeout");
  check.positive(l.max_connections, "limits.max_connections");
  for (std::size_t i = 0; i < l.trusted_proxies.size(); ++i) {
    check.expect(valid_cidr(l.trusted_proxies[i]), "trusted_proxies[" + std::to_string(i) + "]",
                 "an IP address or CIDR like 10.0.0.0/8 or fd00::/8",
                 quoted(l.trusted_proxies[i]));
  }
}

void check_redis(const Checker& check, const RedisConfig& redis, const std::string& path) {
  check.expect(!redis.urls.empty(), path + ".urls", "at least one redis:// or rediss:// URL",
               "none");
  for (std::size_t i = 0; i < redis.urls.size(); ++i) {
    const std::string at = path + ".urls[" + std::to_string(i) + "]";
    const auto db = redis_db(redis.urls[i]);
    check.expect(db.has_value(), at,
                 "a URL like redis://[user:pass@]host:port[/db] or rediss://...",
                 quoted(redacted(redis.urls[i])));
    check.expect(redis.mode != RedisMode::kCluster || *db == 0, at,
                 "no database number in cluster mode (a cluster has only db 0)",
                 quoted(redacted(redis.urls[i])));
  }
  check.positive(redis.connect_timeout, path + ".connect_timeout");
  check.positive(redis.command_timeout, path + ".command_timeout");
}

void check_provider(const Checker& check, const ProviderConfig& p, const std::string& path) {
  check.expect(!p.name.empty(), path + ".name", "a non-empty name", "''");
  check.expect(p.type == ProviderType::kOpenAI || p.type == ProviderType::kAnthropic,
               path + ".type", "one of openai|anthropic", show(static_cast<int>(p.type)));
  check.expect(is_http_url(p.base_url), path + ".base_url",
               "an http:// or https:// URL with a host", quoted(p.base_url));
  if (p.type == ProviderType::kAnthropic) {
    check.expect(!p.anthropic_version.empty(), path + ".anthropic_version",
                 "a version like 2023-06-01", "''");
  }
  check.positive(p.timeouts.connect, path + ".timeouts.connect");
  check.positive(p.timeouts.first_byte, path + ".timeouts.first_byte");
  check.positive(p.timeouts.idle, path + ".timeouts.idle");
  check.positive(p.timeouts.total, path + ".timeouts.total");
  check.positive(p.retry.max_attempts, path + ".retry.max_attempts");
  check.non_negative(p.retry.base_backoff, path + ".retry.base_backoff");
  check.expect(p.retry.max_backoff >= p.retry.base_backoff, path + ".retry.max_backoff",
               "a duration >= retry.base_backoff (" + show(p.retry.base_backoff) + ")",
               show(p.retry.max_backoff));
  check.non_negative(p.retry.max_retry_after, path + ".retry.max_retry_after");
  for (const auto& [name, value] : p.headers) {
    const std::string at = std::string(path).append(".headers.").append(name);
    check.expect(is_http_token(name), at, "an HTTP header name", quoted(name));
    check.expect(value.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos, at,
                 "a header value without CR, LF or NUL", "a value containing one");
  }
}

void check_providers(const Checker& check, const Config& config) {
  std::vector<std::string> names;
  std::vector<std::string> disabled;
  for (std::size_t i = 0; i < config.providers.size(); ++i) {
    const ProviderConfig& p = config.providers[i];
    const std::string path = "providers[" + std::to_string(i) + "]";
    check_provider(check, p, path);
    check.expect(std::count(names.begin(), names.end(), p.name) == 0, path + ".name",
                 "a unique provider name", quoted(p.name));
    names.push_back(p.name);
    if (!p.enabled) {
      disabled.push_back(p.name);
    }
  }
  check.expect(!names.empty(), "providers", "at least one provider", "none");
  check.expect(disabled.size() < names.size(), "providers",
               "at least one provider with an api_key (or a base_url on this machine)",
               "none enabled (disabled: " + joined(disabled, ", ") + ")");
}

void check_models(const Checker& check, const Config& config) {
  std::vector<std::string> providers;
  for (const auto& p : config.providers) {
    providers.push_back(p.name);
  }
  const std::string known = "the name of a configured provider (" + joined(providers, ", ") + ")";
  std::set<std::string> names;
  for (const auto& route : config.models) {
    const std::string path = "models." + route.name;
    check.expect(!route.name.empty(), "models", "non-empty model names", "''");
    check.expect(names.insert(route.name).second, path, "each model once", "it twice");
    check.expect(config.find_provider(route.provider) != nullptr, path + ".provider", known,
                 quoted(route.provider));
    for (std::size_t j = 0; j < route.fallbacks.size(); ++j) {
      check.expect(config.find_model(route.fallbacks[j]) != nullptr,
                   path + ".fallbacks[" + std::to_string(j) + "]",
                   "the name of a model listed under models", quoted(route.fallbacks[j]));
    }
  }
  // Mutual fallbacks (a -> b, b -> a) are fine: a request tries each model at most once.
  // A model that names itself is a typo.
  for (const auto& route : config.models) {
    const bool self = std::find(route.fallbacks.begin(), route.fallbacks.end(), route.name) !=
                      route.fallbacks.end();
    check.expect(!self, "models." + route.name + ".fallbacks",
                 "fallbacks other than the model itself", quoted(route.name));
  }
}

void check_keys(const Checker& check, const Config& config) {
  for (std::size_t i = 0; i < config.keys.size(); ++i) {
    const KeyConfig& key = config.keys[i];
    const std::string path = "keys[" + std::to_string(i) + "]";
    check.expect(is_lower_sha256(key.sha256_hex), path + ".key_sha256",
                 "64 lower-case hex digits (a SHA-256)", quoted(key.sha256_hex));
    check.expect(!key.tenant.empty(), path + ".tenant", "a non-empty tenant", "''");
    for (std::size_t j = 0; j < i; ++j) {
      check.expect(config.keys[j].sha256_hex != key.sha256_hex, path, "a unique key",
                   "the same key as keys[" + std::to_string(j) + "]");
    }
  }
}

void check_cache(const Checker& check, const CacheConfig& cache) {
  check.positive(cache.ttl, "cache.ttl");
  if (cache.l1_enabled) {
    check.positive(cache.l1_max_bytes, "cache.l1.max_bytes");
  }
  check.positive(cache.max_entry_bytes, "cache.max_entry_bytes");
  check.positive(cache.lookup_timeout, "cache.lookup_timeout");
  check.positive(cache.store_timeout, "cache.store_timeout");
  check.positive(cache.max_ttl, "cache.max_ttl");
  check.positive(cache.coalesce_lock_ttl, "cache.coalesce.lock_ttl");
  check.positive(cache.write_behind_queue, "cache.write_behind.queue");
  check.positive(cache.write_behind_batch, "cache.write_behind.batch");
  if (cache.redis) {
    check_redis(check, *cache.redis, "cache.redis");
  }
}

void check_rate_limit(const Checker& check, const RateLimitPolicy& p, const std::string& path) {
  check.expect(!p.scopes.empty(), path + ".scope", "at least one scope", "none");
  const std::set<RateLimitScope> unique(p.scopes.begin(), p.scopes.end());
  check.expect(unique.size() == p.scopes.size(), path + ".scope", "each scope once",
               "a repeated scope");
  check.expect(p.requests || p.tokens, path, "requests or tokens (or both)", "neither");
  if (p.requests) {
    check.positive(*p.requests, path + ".requests");
  }
  if (p.tokens) {
    check.positive(*p.tokens, path + ".tokens");
  }
  check.positive(p.window, path + ".window");
  if (p.burst) {
    check.expect(p.algorithm == RateLimitAlgorithm::kTokenBucket, path + ".burst",
                 "burst only with algorithm token-bucket", show(*p.burst));
    check.positive(*p.burst, path + ".burst");
  }
}

void check_rate_limits(const Checker& check, const Config& config) {
  for (std::size_t i = 0; i < config.rate_limits.size(); ++i) {
    check_rate_limit(check, config.rate_limits[i], "rate_limits[" + std::to_string(i) + "]");
  }
  for (std::size_t i = 0; i < config.keys.size(); ++i) {
    const auto& own = config.keys[i].rate_limits;
    for (std::size_t j = 0; j < own.size(); ++j) {
      check_rate_limit(check, own[j],
                       "keys[" + std::to_string(i) + "].rate_limits[" + std::to_string(j) + "]");
    }
  }
  const RateLimitOptions& o = config.rate_limit_options;
  check.positive(o.instances, "rate_limit_options.instances");
  check.positive(o.default_output_tokens, "rate_limit_options.default_output_tokens");
  // Held longer, a settlement keeps its estimate charged for other instances too long.
  check.non_negative(o.settle_delay, "rate_limit_options.settle_delay");
  check.expect(o.settle_delay <= Millis(1000), "rate_limit_options.settle_delay",
               "a duration of at most 1s", show(o.settle_delay));
  for (const auto& [model, cap] : o.output_tokens) {
    check.positive(cap, "rate_limit_options.output_tokens." + model);
  }
}

}  // namespace

bool loopback_host(const std::string& host) {
  return host == "127.0.0.1" || host == "::1" || host == "localhost" ||
         host.rfind("127.", 0) == 0;
}

void check_state_features(const Checker& check, const Config& config) {
  check.positive(config.key_store.grace.count() + 1, "key_store.grace");
  check.positive(config.key_store.lookup_timeout, "key_store.lookup_timeout");
  check.positive(config.key_store.max_cached, "key_store.max_cached");
  check.expect(!config.key_store.key_prefix.empty() && config.key_store.key_prefix.size() <= 32,
               "key_store.key_prefix", "1 to 32 characters", quoted(config.key_store.key_prefix));
  check.positive(config.sessions.ttl, "sessions.ttl");
  check.positive(config.sessions.max_messages, "sessions.max_messages");
  check.positive(config.sessions.max_bytes, "sessions.max_bytes");
  check.positive(config.sessions.max_id_bytes, "sessions.max_id_bytes");
  check.positive(config.responses.ttl, "responses.ttl");
  check.positive(config.responses.max_chain_bytes, "responses.max_chain_bytes");
}

void validate(const Config& config) {
  const Checker check(config);
  check_address(check, config.listen, "listen");
  check.non_negative(config.threads, "threads");
  check.non_negative(config.drain_timeout, "drain_timeout");
  check_limits(check, config.limits);
  check_address(check, config.admin.listen, "admin.listen");
  check.expect(config.admin.listen.port == 0 || config.admin.listen.str() != config.listen.str(),
               "admin.listen", "an address other than listen's", quoted(config.admin.listen.str()));
  check.positive(config.admin.redis_poll_interval, "admin.redis_poll_interval");
  check.positive(config.admin.redis_poll_timeout, "admin.redis_poll_timeout");
  // The admin API manages keys and reads sessions: without a token, loopback only.
  check.expect(!config.admin.token.empty() || loopback_host(config.admin.listen.host),
               "admin.token", "a token when admin.listen is not a loopback address",
               "no token with admin.listen " + quoted(config.admin.listen.str()));
  check_redis(check, config.redis, "redis");
  check_providers(check, config);
  check_models(check, config);
  check_keys(check, config);
  check_cache(check, config.cache);
  check_rate_limits(check, config);
  check_state_features(check, config);
}

}  // namespace redline::config
