// libFuzzer target for the YAML config loader: arbitrary bytes are a config file. It must
// return a Config or throw config::ConfigError (the one documented failure) and nothing
// else: no crash, no abort, no other exception. A loaded config must also pass validate()
// again (the loader validated it) and survive a second load of the same text.
// Seed corpus: fuzz/corpus/config/ (the repo's example configs and edge cases).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "config/config_loader.h"

namespace {
// A fixed environment: KEY and PORT set, everything else unset, so ${...} paths run.
std::optional<std::string> fuzz_env(const std::string& name) {
  if (name == "KEY") return std::string("sk-fuzz");
  if (name == "PORT") return std::string("8080");
  if (name == "EMPTY") return std::string();
  return std::nullopt;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto loaded = redline::config::load_config_string(text, "fuzz.yaml", fuzz_env);
    redline::config::validate(loaded.config);
    auto again = redline::config::load_config_string(text, "fuzz.yaml", fuzz_env);
    if (again.config.providers.size() != loaded.config.providers.size()) std::abort();
  } catch (const redline::config::ConfigError& e) {
    if (std::string_view(e.what()).empty()) std::abort();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "config_fuzz: undocumented exception: %s\n", e.what());
    std::abort();
  }
  return 0;
}
