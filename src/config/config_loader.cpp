// Reads Redline's YAML configuration into config::Config: per-scalar `${VAR}` expansion,
// typed values (durations, sizes, enums), unknown- and duplicate-key detection, and the
// command-line overrides. Cross-field rules live in config_validate.cpp, not here.
#include "config/config_loader.h"

#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <boost/url/parse.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <utility>

namespace redline::config {
namespace {

// ---------------------------------------------------------------------------------------
// Errors: every message reads "<where>: expected <what>, got <got>".

[[noreturn]] void fail(std::string_view where, std::string_view expected, std::string_view got) {
  throw ConfigError(std::string(where) + ": expected " + std::string(expected) + ", got " +
                    std::string(got));
}

std::string quoted(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.append(1, '\'').append(text).append(1, '\'');
  return out;
}

// Unwraps a parsed value or fails naming the text that did not parse.
template <class T>
T require(std::optional<T> value, std::string_view where, std::string_view expected,
          std::string_view text) {
  if (!value) {
    fail(where, expected, quoted(text));
  }
  return *std::move(value);
}

constexpr std::string_view kCommandLine = "command line";
constexpr std::string_view kDurationWhat = "a duration like 5s, 250ms or 5";
constexpr std::string_view kSecondsWhat = "a whole number of seconds like 60, 60s or 5m";
constexpr std::string_view kSizeWhat = "a size like 8MiB, 64KiB, 8MB or 1024";
constexpr std::string_view kHostPortWhat = "HOST:PORT like 127.0.0.1:8080 or [::1]:8080";

// ---------------------------------------------------------------------------------------
// Scalar parsers: text -> value, nullopt when the text is malformed.

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Plain decimal integer of type T (sign only where T is signed), range-checked.
template <class T>
std::optional<T> parse_integer(std::string_view text) {
  T value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) {
    return std::nullopt;
  }
  return value;
}

struct Unit {
  std::string_view suffix;
  uint64_t scale;
};

// A non-negative integer followed by a unit suffix (case-insensitive); a bare number is
// multiplied by `bare`. This is the one routine behind durations and sizes.
std::optional<uint64_t> parse_scaled(std::string_view text, std::initializer_list<Unit> units,
                                     uint64_t bare) {
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) {
    ++digits;
  }
  auto number = parse_integer<uint64_t>(text.substr(0, digits));
  if (!number) {
    return std::nullopt;
  }
  const std::string_view suffix = text.substr(digits);
  uint64_t scale = suffix.empty() ? bare : 0;
  for (const Unit& unit : units) {
    if (iequals(suffix, unit.suffix)) {
      scale = unit.scale;
    }
  }
  if (scale == 0 || *number > std::numeric_limits<int64_t>::max() / scale) {
    return std::nullopt;
  }
  return *number * scale;
}

std::optional<Millis> duration_value(std::string_view text) {
  auto ms = parse_scaled(text, {{"ms", 1}, {"s", 1'000}, {"m", 60'000}, {"h", 3'600'000}}, 1'000);
  if (!ms) {
    return std::nullopt;
  }
  return Millis(static_cast<Millis::rep>(*ms));
}

std::optional<Seconds> seconds_value(std::string_view text) {
  auto ms = duration_value(text);
  if (!ms || ms->count() % 1'000 != 0) {
    return std::nullopt;
  }
  return std::chrono::duration_cast<Seconds>(*ms);
}

std::optional<std::size_t> size_value(std::string_view text) {
  return parse_scaled(text,
                      {{"B", 1},
                       {"KB", 1'000},
                       {"MB", 1'000'000},
                       {"GB", 1'000'000'000},
                       {"KiB", uint64_t{1} << 10},
                       {"MiB", uint64_t{1} << 20},
                       {"GiB", uint64_t{1} << 30}},
                      1);
}

// Name tables for enums (and booleans), matched case-insensitively.
template <class E>
using Names = std::initializer_list<std::pair<std::string_view, E>>;

const Names<bool> kBools = {{"true", true}, {"false", false}, {"yes", true},
                            {"no", false},  {"on", true},     {"off", false}};
const Names<RedisMode> kRedisModes = {{"standalone", RedisMode::kStandalone},
                                      {"cluster", RedisMode::kCluster}};
const Names<ProviderType> kProviderTypes = {{"openai", ProviderType::kOpenAI},
                                            {"anthropic", ProviderType::kAnthropic}};
const Names<CacheMode> kCacheModes = {{"cache-aside", CacheMode::kCacheAside},
                                      {"write-through", CacheMode::kWriteThrough},
                                      {"write-behind", CacheMode::kWriteBehind},
                                      {"refresh-ahead", CacheMode::kRefreshAhead}};
const Names<RateLimitScope> kScopes = {{"key", RateLimitScope::kKey},
                                       {"tenant", RateLimitScope::kTenant},
                                       {"model", RateLimitScope::kModel},
                                       {"ip", RateLimitScope::kIp},
                                       {"global", RateLimitScope::kGlobal}};
const Names<RateLimitAlgorithm> kAlgorithms = {
    {"sliding-window-log", RateLimitAlgorithm::kSlidingWindowLog},
    {"sliding-window-counter", RateLimitAlgorithm::kSlidingWindowCounter},
    {"token-bucket", RateLimitAlgorithm::kTokenBucket},
    {"fixed-window", RateLimitAlgorithm::kFixedWindow}};
const Names<FailMode> kFailModes = {
    {"open", FailMode::kOpen}, {"closed", FailMode::kClosed}, {"local", FailMode::kLocal}};
const Names<BudgetPeriod> kPeriods = {
    {"day", BudgetPeriod::kDay}, {"week", BudgetPeriod::kWeek}, {"month", BudgetPeriod::kMonth}};
const Names<LogLevel> kLogLevels = {{"trace", LogLevel::kTrace}, {"debug", LogLevel::kDebug},
                                    {"info", LogLevel::kInfo},   {"warn", LogLevel::kWarn},
                                    {"error", LogLevel::kError}, {"off", LogLevel::kOff}};

template <class E>
std::optional<E> lookup(Names<E> names, std::string_view text) {
  for (const auto& [name, value] : names) {
    if (iequals(name, text)) {
      return value;
    }
  }
  return std::nullopt;
}

template <class E>
std::string one_of(Names<E> names) {
  std::string out = "one of ";
  for (const auto& entry : names) {
    if (&entry != names.begin()) {
      out += '|';
    }
    out += entry.first;
  }
  return out;
}

// Parses `text` as one of `names`, or fails at `where`.
template <class E>
E enum_value(Names<E> names, std::string_view text, std::string_view where) {
  return require(lookup(names, text), where, one_of(names), text);
}

std::string without_trailing_slashes(std::string url) {
  while (url.ends_with('/') && !url.ends_with("://")) {
    url.pop_back();
  }
  return url;
}

bool is_loopback_url(std::string_view url) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) {
    return false;
  }
  switch (parsed->host_type()) {
    case boost::urls::host_type::ipv4:
      return parsed->host_ipv4_address().is_loopback();
    case boost::urls::host_type::ipv6:
      return parsed->host_ipv6_address().is_loopback();
    case boost::urls::host_type::name:
      return iequals(parsed->encoded_host(), "localhost");
    default:
      return false;
  }
}

// A provider needs a key unless it is on this machine (the bundled mock needs none).
// Returns the new `enabled`; shared by the loader and the --upstream override.
bool refresh_enabled(ProviderConfig& provider) {
  provider.enabled = !provider.api_key.empty() || is_loopback_url(provider.base_url);
  return provider.enabled;
}

// Edit distance, for "did you mean" on unknown keys.
std::size_t distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// ---------------------------------------------------------------------------------------
// YAML walking: a node with its key path; scalars are env-expanded when read.

struct Context {
  std::string source;
  EnvLookup env;
};

class Value {
 public:
  Value(const Context& ctx, const YAML::Node& node, std::string path)
      : ctx_(&ctx), node_(node), path_(std::move(path)) {}

  // Absent and null (`key:` or `key: ~`) both mean "keep the default".
  bool present() const { return node_.IsDefined() && !node_.IsNull(); }
  bool is_map() const { return node_.IsMap(); }
  bool is_list() const { return node_.IsSequence(); }
  const YAML::Node& node() const { return node_; }
  const Context& ctx() const { return *ctx_; }

  std::string where() const { return ctx_->source + ": " + (path_.empty() ? "top level" : path_); }

  std::string describe() const {
    if (node_.IsMap()) {
      return "a map";
    }
    if (node_.IsSequence()) {
      return "a list";
    }
    if (node_.IsScalar()) {
      return quoted(node_.Scalar());
    }
    return "null";
  }

  [[noreturn]] void fail(std::string_view expected) const { fail(expected, describe()); }
  [[noreturn]] void fail(std::string_view expected, std::string_view got) const {
    config::fail(where(), expected, got);
  }

  // The env-expanded text of a scalar; anything else fails as "expected <expected>".
  std::string scalar(std::string_view expected) const {
    if (!node_.IsScalar()) {
      fail(expected);
    }
    return expand_env(node_.Scalar(), where(), ctx_->env);
  }

  // The general typed read: expand, then `parse` the text or fail naming it.
  template <class Parse>
  auto parse(std::string_view expected, Parse&& fn) const {
    const std::string text = scalar(expected);
    return require(fn(text), where(), expected, text);
  }

  Value child(const std::string& key, const YAML::Node& node) const {
    return Value(*ctx_, node, path_.empty() ? key : path_ + "." + key);
  }

  // The items of a list; null is an empty list.
  std::vector<Value> items() const {
    std::vector<Value> out;
    if (!present()) {
      return out;
    }
    if (!node_.IsSequence()) {
      fail("a list");
    }
    for (std::size_t i = 0; i < node_.size(); ++i) {
      out.emplace_back(*ctx_, node_[i], path_ + "[" + std::to_string(i) + "]");
    }
    return out;
  }

 private:
  const Context* ctx_;
  YAML::Node node_;
  std::string path_;
};

// A YAML map read key by key. Every key asked for becomes known; finish() rejects the first
// key nobody asked for, so the list of accepted keys is written exactly once, by the reads.
class Map {
 public:
  explicit Map(const Value& value) : self_(value) {
    if (!value.present()) {
      return;
    }
    if (!value.is_map()) {
      value.fail("a map");
    }
    for (const auto& item : value.node()) {
      if (!item.first.IsScalar()) {
        value.fail("string keys", "a key that is " + Value(value.ctx(), item.first, "").describe());
      }
      std::string key = item.first.Scalar();
      for (const auto& seen : entries_) {
        if (seen.key == key) {
          value.child(key, item.second).fail("each key once", "it twice");
        }
      }
      entries_.push_back({std::move(key), item.second, false});
    }
  }

  Value get(std::string_view key) {
    known_.emplace_back(key);
    for (auto& entry : entries_) {
      if (entry.key == key) {
        entry.used = true;
        return self_.child(entry.key, entry.node);
      }
    }
    return self_.child(std::string(key), YAML::Node(YAML::NodeType::Undefined));
  }

  // Reads `key` into `out` through `read` when present; otherwise `out` keeps its default.
  template <class T, class Read>
  void read(std::string_view key, T& out, Read&& read) {
    Value value = get(key);
    if (value.present()) {
      out = read(value);
    }
  }

  // A nested section: `body(Map&)` reads its keys, then unknown keys are rejected.
  template <class Body>
  void section(std::string_view key, Body&& body);

  // Every entry, for free-form maps (models, headers), in document order.
  std::vector<std::pair<std::string, Value>> entries() {
    std::vector<std::pair<std::string, Value>> out;
    for (auto& entry : entries_) {
      entry.used = true;
      out.emplace_back(entry.key, self_.child(entry.key, entry.node));
    }
    return out;
  }

  void finish() const {
    for (const auto& entry : entries_) {
      if (entry.used) {
        continue;
      }
      std::string expected = "one of the keys ";
      std::string suggestion;
      for (const auto& known : known_) {
        if (&known != &known_.front()) {
          expected += ", ";
        }
        expected += known;
        if (suggestion.empty() && distance(known, entry.key) <= 2) {
          suggestion = known;
        }
      }
      std::string got = "unknown key " + quoted(entry.key);
      if (!suggestion.empty()) {
        got += " (did you mean " + quoted(suggestion) + "?)";
      }
      self_.child(entry.key, entry.node).fail(expected, got);
    }
  }

 private:
  struct Entry {
    std::string key;
    YAML::Node node;
    bool used;
  };

  Value self_;
  std::vector<Entry> entries_;
  std::vector<std::string> known_;
};

// Reads a whole value as a map: `body(Map&)` reads its keys, then unknown keys are rejected.
template <class Body>
void read_map(const Value& value, Body&& body) {
  Map map(value);
  body(map);
  map.finish();
}

template <class Body>
void Map::section(std::string_view key, Body&& body) {
  read_map(get(key), std::forward<Body>(body));
}

// ---------------------------------------------------------------------------------------
// Typed readers: thin wrappers over Value::parse.

std::string as_string(const Value& v) {
  return v.scalar("a string");
}
std::string as_base_url(const Value& v) {
  return without_trailing_slashes(as_string(v));
}
bool as_bool(const Value& v) {
  return v.parse("true or false", [](std::string_view t) { return lookup(kBools, t); });
}
Millis as_duration(const Value& v) {
  return v.parse(kDurationWhat, duration_value);
}
Seconds as_seconds(const Value& v) {
  return v.parse(kSecondsWhat, seconds_value);
}
std::size_t as_size(const Value& v) {
  return v.parse(kSizeWhat, size_value);
}
std::size_t as_count(const Value& v) {
  return v.parse("a non-negative integer", parse_integer<std::size_t>);
}
uint64_t as_u64(const Value& v) {
  return v.parse("a non-negative integer", parse_integer<uint64_t>);
}
int as_int(const Value& v) {
  return v.parse("an integer", parse_integer<int>);
}
uint32_t as_count_u32(const Value& v) {
  return v.parse("a non-negative integer below 2^32", parse_integer<uint32_t>);
}
// A number in [0, 1].
double as_fraction(const Value& v) {
  return v.parse("a number between 0 and 1", [](std::string_view t) -> std::optional<double> {
    double d = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), d);
    if (ec != std::errc() || p != t.data() + t.size() || !(d >= 0.0 && d <= 1.0)) {
      return std::nullopt;
    }
    return d;
  });
}
// A finite number >= 0 (prices) or > 0 (budget limits), in US dollars.
std::optional<double> parse_amount(std::string_view t) {
  double d = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), d);
  if (ec != std::errc() || p != t.data() + t.size() || !std::isfinite(d) || d < 0) {
    return std::nullopt;
  }
  return d;
}
double as_price(const Value& v) {
  return v.parse("a number of US dollars >= 0", parse_amount);
}
double as_limit_usd(const Value& v) {
  return v.parse("a number of US dollars > 0", [](std::string_view t) -> std::optional<double> {
    auto d = parse_amount(t);
    return d && *d > 0 ? d : std::nullopt;
  });
}
HostPort as_host_port(const Value& v) {
  return parse_host_port(v.scalar(kHostPortWhat), v.where());
}

template <class E>
auto as_enum(Names<E> names) {
  return [names](const Value& v) {
    return v.parse(one_of(names), [names](std::string_view t) { return lookup(names, t); });
  };
}

template <class Read>
auto list_of(Read read) {
  return [read](const Value& v) {
    std::vector<decltype(read(v))> out;
    for (const Value& item : v.items()) {
      out.push_back(read(item));
    }
    return out;
  };
}

// A single value or a list of them (`scope: key` or `scope: [key, model]`).
template <class Read>
auto one_or_list(Read read) {
  return [read](const Value& v) {
    return v.is_list() ? list_of(read)(v) : std::vector<decltype(read(v))>{read(v)};
  };
}

std::map<std::string, uint64_t> as_u64_map(const Value& v) {
  std::map<std::string, uint64_t> out;
  for (const auto& [key, value] : Map(v).entries()) {
    out[key] = as_u64(value);
  }
  return out;
}

std::map<std::string, std::string> as_string_map(const Value& v) {
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : Map(v).entries()) {
    out[key] = as_string(value);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Sections.

// `redis:` and `cache.redis:`; keys left out keep RedisConfig's defaults.
RedisConfig as_redis(const Value& v) {
  RedisConfig r;
  read_map(v, [&](Map& m) {
    m.read("mode", r.mode, as_enum(kRedisModes));
    m.read("urls", r.urls, one_or_list(as_string));
    m.read("connect_timeout", r.connect_timeout, as_duration);
    m.read("command_timeout", r.command_timeout, as_duration);
    m.read("read_from_replicas", r.read_from_replicas, as_bool);
    m.read("ca_file", r.ca_file, as_string);
  });
  return r;
}

ProviderConfig read_provider(const Value& v) {
  ProviderConfig p;
  read_map(v, [&](Map& m) {
    m.read("name", p.name, as_string);
    m.read("type", p.type, as_enum(kProviderTypes));
    m.read("base_url", p.base_url, as_base_url);
    m.read("api_key", p.api_key, as_string);
    m.read("anthropic_version", p.anthropic_version, as_string);
    m.section("timeouts", [&](Map& t) {
      t.read("connect", p.timeouts.connect, as_duration);
      t.read("first_byte", p.timeouts.first_byte, as_duration);
      t.read("idle", p.timeouts.idle, as_duration);
      t.read("total", p.timeouts.total, as_duration);
    });
    m.section("retry", [&](Map& r) {
      r.read("max_attempts", p.retry.max_attempts, as_int);
      r.read("base_backoff", p.retry.base_backoff, as_duration);
      r.read("max_backoff", p.retry.max_backoff, as_duration);
      r.read("max_retry_after", p.retry.max_retry_after, as_duration);
    });
    m.section("circuit", [&](Map& c) {
      c.read("failures", p.circuit.failures, as_count_u32);
      c.read("open_for", p.circuit.open_for, as_duration);
    });
    m.read("max_idle_connections", p.max_idle_connections, as_count);
    m.read("ca_file", p.ca_file, as_string);
    m.read("tls_verify", p.tls_verify, as_bool);
    m.read("headers", p.headers, as_string_map);
  });
  // A header whose value expands empty is not sent (`X-Org: "${ORG:-}"` is optional).
  std::erase_if(p.headers, [](const auto& header) { return header.second.empty(); });
  return p;
}

// `name: provider` or `name: {provider, model, fallbacks}`.
ModelRoute read_model(const std::string& name, const Value& v) {
  ModelRoute route;
  route.name = name;
  if (!v.is_map()) {
    route.provider = v.scalar("a provider name or a map with provider, model, fallbacks");
    return route;
  }
  read_map(v, [&](Map& m) {
    m.read("provider", route.provider, as_string);
    m.read("model", route.upstream_model, as_string);
    m.read("fallbacks", route.fallbacks, one_or_list(as_string));
  });
  return route;
}

bool is_sha256_hex(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c)) != 0;
         });
}

std::string lower(std::string text) {
  for (char& c : text) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return text;
}

RateLimitPolicy read_rate_limit(const Value& v);  // below; keys carry their own policies too

Budget read_budget(const Value& v) {
  Budget b;
  bool has_limit = false;
  read_map(v, [&](Map& m) {
    std::optional<double> limit;
    m.read("limit", limit, as_limit_usd);
    m.read("period", b.period, as_enum(kPeriods));
    if (limit) {
      b.limit_usd = *limit;
      has_limit = true;
    }
  });
  if (!has_limit) v.fail("a budget with a limit (US dollars per period)", "no limit");
  return b;
}

ModelPrice read_price(const Value& v) {
  ModelPrice p;
  read_map(v, [&](Map& m) {
    m.read("input", p.input_per_mtok, as_price);
    m.read("output", p.output_per_mtok, as_price);
  });
  return p;
}

template <class T, class Read>
auto map_of(Read read) {
  return [read](const Value& v) {
    std::map<std::string, T> out;
    for (const auto& [name, value] : Map(v).entries()) out.emplace(name, read(value));
    return out;
  };
}

KeyConfig read_key(const Value& v) {
  KeyConfig k;
  std::optional<std::string> plain;
  std::optional<std::string> hashed;
  read_map(v, [&](Map& m) {
    m.read("key", plain, as_string);
    m.read("key_sha256", hashed, [](const Value& h) {
      return lower(h.parse("64 hex digits (a SHA-256)", [](std::string_view t) {
        return is_sha256_hex(t) ? std::optional<std::string>(t) : std::nullopt;
      }));
    });
    m.read("name", k.name, as_string);
    m.read("tenant", k.tenant, as_string);
    m.read("models", k.models, one_or_list(as_string));
    m.read("cache", k.cache, as_bool);
    m.read("rate_limits", k.rate_limits, list_of(read_rate_limit));
    m.read("budget", k.budget, read_budget);
  });
  if (plain.has_value() == hashed.has_value()) {
    v.fail("exactly one of key or key_sha256", plain ? "both" : "neither");
  }
  if (plain && plain->empty()) {
    v.child("key", {}).fail("a non-empty key", "''");
  }
  k.sha256_hex = plain ? sha256_hex(*plain) : *hashed;
  return k;
}

RateLimitPolicy read_rate_limit(const Value& v) {
  RateLimitPolicy p;
  read_map(v, [&](Map& m) {
    m.read("scope", p.scopes, one_or_list(as_enum(kScopes)));
    m.read("algorithm", p.algorithm, as_enum(kAlgorithms));
    m.read("requests", p.requests, as_u64);
    m.read("tokens", p.tokens, as_u64);
    m.read("window", p.window, as_seconds);
    m.read("burst", p.burst, as_u64);
    m.read("fail_mode", p.fail_mode, as_enum(kFailModes));
  });
  return p;
}

std::vector<ModelRoute> as_models(const Value& v) {
  std::vector<ModelRoute> out;
  for (const auto& [name, value] : Map(v).entries()) {
    out.push_back(read_model(name, value));
  }
  return out;
}

Config read_config(const Value& root) {
  Config c;
  c.source = root.ctx().source;
  read_map(root, [&](Map& m) {
    m.read("listen", c.listen, as_host_port);
    m.read("threads", c.threads, as_int);
    m.read("drain_timeout", c.drain_timeout, as_duration);
    m.section("limits", [&](Map& l) {
      l.read("max_header_bytes", c.limits.max_header_bytes, as_size);
      l.read("max_header_count", c.limits.max_header_count, as_count);
      l.read("max_body_bytes", c.limits.max_body_bytes, as_size);
      l.read("header_timeout", c.limits.header_timeout, as_duration);
      l.read("body_timeout", c.limits.body_timeout, as_duration);
      l.read("idle_timeout", c.limits.idle_timeout, as_duration);
      l.read("send_timeout", c.limits.send_timeout, as_duration);
      l.read("max_connections", c.limits.max_connections, as_count);
      l.read("max_connections_per_ip", c.limits.max_connections_per_ip, as_count);
    });
    m.read("trusted_proxies", c.limits.trusted_proxies, one_or_list(as_string));
    m.section("admin", [&](Map& a) {
      a.read("listen", c.admin.listen, as_host_port);
      a.read("token", c.admin.token, as_string);
      a.read("redis_poll_interval", c.admin.redis_poll_interval, as_duration);
      a.read("redis_poll_timeout", c.admin.redis_poll_timeout, as_duration);
    });
    m.read("redis", c.redis, as_redis);
    m.read("providers", c.providers, list_of(read_provider));
    m.read("models", c.models, as_models);
    m.read("keys", c.keys, list_of(read_key));
    m.section("cache", [&](Map& k) {
      k.read("enabled", c.cache.enabled, as_bool);
      k.read("mode", c.cache.mode, as_enum(kCacheModes));
      k.read("ttl", c.cache.ttl, as_seconds);
      k.section("l1", [&](Map& l1) {
        l1.read("enabled", c.cache.l1_enabled, as_bool);
        l1.read("max_bytes", c.cache.l1_max_bytes, as_size);
      });
      k.read("compress_min_bytes", c.cache.compress_min_bytes, as_size);
      k.read("max_entry_bytes", c.cache.max_entry_bytes, as_size);
      k.read("cache_nonzero_temperature", c.cache.cache_nonzero_temperature, as_bool);
      k.read("redis", c.cache.redis, as_redis);
      k.read("lookup_timeout", c.cache.lookup_timeout, as_duration);
      k.read("store_timeout", c.cache.store_timeout, as_duration);
      k.read("max_ttl", c.cache.max_ttl, as_seconds);
      k.section("coalesce", [&](Map& co) {
        co.read("enabled", c.cache.coalesce, as_bool);
        co.read("wait", c.cache.coalesce_wait, as_duration);
        co.read("lock_ttl", c.cache.coalesce_lock_ttl, as_duration);
      });
      k.section("write_behind", [&](Map& wb) {
        wb.read("queue", c.cache.write_behind_queue, as_count);
        wb.read("batch", c.cache.write_behind_batch, as_count);
      });
      k.section("refresh_ahead", [&](Map& ra) {
        ra.read("min_hits", c.cache.refresh_min_hits, as_count_u32);
        ra.read("ttl_fraction", c.cache.refresh_ttl_fraction, as_fraction);
      });
    });
    m.read("rate_limits", c.rate_limits, list_of(read_rate_limit));
    m.section("rate_limit_options", [&](Map& o) {
      o.read("instances", c.rate_limit_options.instances, as_count);
      o.read("default_output_tokens", c.rate_limit_options.default_output_tokens, as_u64);
      o.read("output_tokens", c.rate_limit_options.output_tokens, as_u64_map);
      o.read("cache_hits_consume_tokens", c.rate_limit_options.cache_hits_consume_tokens, as_bool);
      o.read("settle_delay", c.rate_limit_options.settle_delay, as_duration);
    });
    m.section("key_store", [&](Map& k) {
      k.read("enabled", c.key_store.enabled, as_bool);
      k.read("grace", c.key_store.grace, as_seconds);
      k.read("lookup_timeout", c.key_store.lookup_timeout, as_duration);
      k.read("max_cached", c.key_store.max_cached, as_count);
      k.read("key_prefix", c.key_store.key_prefix, as_string);
    });
    m.read("prices", c.prices, map_of<ModelPrice>(read_price));
    m.section("budgets", [&](Map& b) {
      b.read("tenants", c.budgets.tenants, map_of<Budget>(read_budget));
    });
    m.section("sessions", [&](Map& s) {
      s.read("enabled", c.sessions.enabled, as_bool);
      s.read("ttl", c.sessions.ttl, as_seconds);
      s.read("max_messages", c.sessions.max_messages, as_count);
      s.read("max_bytes", c.sessions.max_bytes, as_size);
      s.read("max_id_bytes", c.sessions.max_id_bytes, as_count);
    });
    m.section("responses", [&](Map& r) {
      r.read("enabled", c.responses.enabled, as_bool);
      r.read("ttl", c.responses.ttl, as_seconds);
      r.read("max_chain_bytes", c.responses.max_chain_bytes, as_size);
    });
    m.section("logging", [&](Map& l) {
      l.read("level", c.logging.level, as_enum(kLogLevels));
      l.read("access_log", c.logging.access_log, as_bool);
      l.read("access_log_path", c.logging.access_log_path, as_string);
    });
  });
  return c;
}

YAML::Node parse_yaml(std::string_view yaml, const std::string& source) {
  try {
    return YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    std::string where = source;
    if (!e.mark.is_null()) {
      where += ": line " + std::to_string(e.mark.line + 1) + ", column " +
               std::to_string(e.mark.column + 1);
    }
    fail(where, "valid YAML", "a syntax error (" + e.msg + ")");
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Public API.

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) {
      return std::nullopt;
    }
    return std::string(value);
  };
}

std::string expand_env(std::string_view value, const std::string& where, const EnvLookup& env) {
  std::string out;
  out.reserve(value.size());
  std::size_t i = 0;
  while (i < value.size()) {
    if (value[i] != '$' || i + 1 == value.size() || (value[i + 1] != '$' && value[i + 1] != '{')) {
      out += value[i++];
      continue;
    }
    if (value[i + 1] == '$') {
      out += '$';
      i += 2;
      continue;
    }
    // "${": find the matching '}' (braces inside a default must balance).
    std::size_t end = i + 2;
    for (int depth = 1; end < value.size(); ++end) {
      depth += value[end] == '{' ? 1 : value[end] == '}' ? -1 : 0;
      if (depth == 0) {
        break;
      }
    }
    if (end == value.size()) {
      fail(where, "'}' closing '${'", quoted(value));
    }
    const std::string_view body = value.substr(i + 2, end - i - 2);
    const std::size_t sep = body.find(":-");
    const std::string name(body.substr(0, sep));
    const bool valid_name = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
                            std::all_of(name.begin(), name.end(), [](char c) {
                              return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
                            });
    if (!valid_name) {
      fail(where, "a variable like ${NAME} or ${NAME:-default}",
           quoted(value.substr(i, end - i + 1)));
    }
    const std::optional<std::string> found = env(name);
    if (sep == std::string_view::npos) {
      if (!found) {
        std::string expected = "environment variable ";
        expected.append(name).append(" to be set (or ${").append(name).append(":-default})");
        fail(where, expected, "it unset");
      }
      out += *found;  // never re-expanded: an environment value is data, not syntax
    } else if (found && !found->empty()) {
      out += *found;
    } else {
      out += expand_env(body.substr(sep + 2), where, env);
    }
    i = end + 1;
  }
  return out;
}

HostPort parse_host_port(std::string_view text, const std::string& where) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    fail(where, kHostPortWhat, quoted(text));
  }
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);  // [::1]:8080 -> ::1
  } else if (host.find(':') != std::string_view::npos) {
    fail(where, kHostPortWhat, quoted(text));  // a bare IPv6 address needs brackets
  }
  const auto port = parse_integer<uint16_t>(text.substr(colon + 1));
  if (host.empty() || !port) {
    fail(where, kHostPortWhat, quoted(text));
  }
  return HostPort{std::string(host), *port};
}

Millis parse_duration(std::string_view text, const std::string& where) {
  return require(duration_value(text), where, kDurationWhat, text);
}

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("sha256_hex: EVP_Digest failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(std::size_t{length} * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0x0f];
  }
  return out;
}

LoadResult load_config_string(std::string_view yaml, const std::string& source,
                              const EnvLookup& env) {
  const Context ctx{source, env};
  LoadResult result;
  result.config = read_config(Value(ctx, parse_yaml(yaml, source), ""));
  Config& config = result.config;
  for (std::size_t i = 0; i < config.providers.size(); ++i) {
    ProviderConfig& provider = config.providers[i];
    if (!refresh_enabled(provider)) {
      result.warnings.push_back(source + ": providers[" + std::to_string(i) + "]: provider '" +
                                provider.name +
                                "' is disabled: its api_key is empty and its base_url is not on "
                                "this machine");
    }
  }
  validate(config);
  for (const auto& route : config.models) {
    const ProviderConfig* provider = config.find_provider(route.provider);
    if (provider != nullptr && !provider->enabled) {
      result.warnings.push_back(source + ": models." + route.name + ": model '" + route.name +
                                "' routes to disabled provider '" + provider->name +
                                "'; its requests will fail unless a fallback answers");
    }
  }
  return result;
}

LoadResult load_config_file(const std::string& path, const EnvLookup& env) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    fail(path, "a readable configuration file", quoted(std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    fail(path, "a readable configuration file", "a read error");
  }
  return load_config_string(text.str(), path, env);
}

std::vector<RateLimitPolicy> parse_rate_limits(std::string_view text, const std::string& where) {
  const Context ctx{where, [](const std::string&) { return std::optional<std::string>(); }};
  return list_of(read_rate_limit)(Value(ctx, parse_yaml(text, where), ""));
}

Budget parse_budget(std::string_view text, const std::string& where) {
  const Context ctx{where, [](const std::string&) { return std::optional<std::string>(); }};
  return read_budget(Value(ctx, parse_yaml(text, where), ""));
}

std::string_view period_name(BudgetPeriod p) {
  for (const auto& [name, value] : kPeriods) {
    if (value == p) return name;
  }
  return "month";
}

void apply_overrides(Config& target, const CliOverrides& overrides) {
  Config config = target;  // all or nothing: `target` is untouched when an override fails
  const auto where = [](std::string_view flag) {
    return std::string(kCommandLine) + ": " + std::string(flag);
  };
  if (overrides.listen) {
    config.listen = parse_host_port(*overrides.listen, where("--listen"));
  }
  if (overrides.admin_listen) {
    config.admin.listen = parse_host_port(*overrides.admin_listen, where("--admin-listen"));
  }
  if (!overrides.redis_urls.empty()) {
    config.redis.urls = overrides.redis_urls;
  }
  if (overrides.redis_mode) {
    config.redis.mode = enum_value(kRedisModes, *overrides.redis_mode, where("--redis-mode"));
  }
  if (overrides.upstream) {
    auto it = std::find_if(config.providers.begin(), config.providers.end(),
                           [](const ProviderConfig& p) { return p.type == ProviderType::kOpenAI; });
    if (it == config.providers.end()) {
      it = config.providers.emplace(config.providers.end());
      it->name = "default";
      it->type = ProviderType::kOpenAI;
    }
    it->base_url = without_trailing_slashes(*overrides.upstream);
    refresh_enabled(*it);
  }
  if (overrides.threads) {
    config.threads = *overrides.threads;
  }
  if (overrides.log_level) {
    config.logging.level = enum_value(kLogLevels, *overrides.log_level, where("--log-level"));
  }
  validate(config);
  target = std::move(config);
}

}  // namespace redline::config
