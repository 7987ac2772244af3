// Loads Redline's YAML configuration into config::Config: `${VAR}` / `${VAR:-default}`
// expansion inside scalar values, durations ("60", "60s", "5m", "250ms"), sizes, enums,
// and validation that names the file, the key and what was expected. Unknown keys fail.
// It does not open sockets or touch Redis; that is the app's start-up check.
#pragma once

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace redline::config {

// Thrown for every invalid configuration. what() reads like
//   "redline.yaml: providers[1].timeouts.connect: expected a duration like 5s, 250ms or 5, got 'soon'"
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Looks up an environment variable; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup process_env();

// Non-fatal findings (e.g. a provider disabled because its key expanded empty).
struct LoadResult {
  Config config;
  std::vector<std::string> warnings;
};

LoadResult load_config_file(const std::string& path, const EnvLookup& env = process_env());
LoadResult load_config_string(std::string_view yaml, const std::string& source,
                              const EnvLookup& env = process_env());

// Expands ${VAR} and ${VAR:-default} in one scalar; `where` names file and key for errors.
// "$$" is a literal '$'. An unset ${VAR} without default is a ConfigError.
std::string expand_env(std::string_view value, const std::string& where, const EnvLookup& env);

// Command-line overrides (DESIGN.md §2), applied after the file, then re-validated.
struct CliOverrides {
  std::optional<std::string> listen;        // HOST:PORT
  std::optional<std::string> admin_listen;  // HOST:PORT
  std::vector<std::string> redis_urls;      // replaces redis.urls when non-empty
  std::optional<std::string> redis_mode;    // standalone | cluster
  std::optional<std::string> upstream;      // base URL of the default openai provider
  std::optional<int> threads;
  std::optional<std::string> log_level;
};
void apply_overrides(Config& config, const CliOverrides& overrides);

// Checks cross-field rules (model routes name existing providers, fallbacks exist,
// ports valid, ...). Called by the loaders and after apply_overrides.
void validate(const Config& config);

// Reads a list of rate-limit policies / one budget written as in the config file, from YAML
// or JSON text (JSON is YAML): the admin API's key bodies. ConfigError names `where` and the
// field, e.g. "keys body: rate_limits[0].window: expected a duration ...". No ${VAR} expansion.
std::vector<RateLimitPolicy> parse_rate_limits(std::string_view text, const std::string& where);
Budget parse_budget(std::string_view text, const std::string& where);
std::string_view period_name(BudgetPeriod p);  // "day" | "week" | "month"

// Helpers shared with the CLI: "host:port" -> HostPort; durations; SHA-256 hex of a key.
HostPort parse_host_port(std::string_view text, const std::string& where);
Millis parse_duration(std::string_view text, const std::string& where);
std::string sha256_hex(std::string_view data);

}  // namespace redline::config
