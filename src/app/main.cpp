// redline: the gateway binary. Parses the command line (DESIGN.md §2), loads and
// validates the config, applies overrides, and runs the Gateway until SIGTERM/SIGINT,
// which drain it: stop accepting, finish in-flight requests up to drain_timeout, exit 0.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <string>

#ifdef REDLINE_WITH_MIMALLOC
#include <mimalloc.h>
#endif

#include "app/gateway.h"
#include "config/config_loader.h"

namespace {

spdlog::level::level_enum to_spdlog(redline::config::LogLevel l) {
  using redline::config::LogLevel;
  switch (l) {
    case LogLevel::kTrace: return spdlog::level::trace;
    case LogLevel::kDebug: return spdlog::level::debug;
    case LogLevel::kInfo: return spdlog::level::info;
    case LogLevel::kWarn: return spdlog::level::warn;
    case LogLevel::kError: return spdlog::level::err;
    case LogLevel::kOff: return spdlog::level::off;
  }
  return spdlog::level::info;
}

// The allocator behind malloc: mimalloc when the build links it (CMake's REDLINE_MIMALLOC),
// and whether it really took malloc over (a block from malloc lies in mimalloc's heap).
std::string allocator_description() {
#ifdef REDLINE_WITH_MIMALLOC
  const int v = mi_version();
  void* probe = std::malloc(64);
  const bool redirected = mi_is_in_heap_region(probe);
  std::free(probe);
  return "mimalloc " + std::to_string(v / 100) + "." + std::to_string(v % 100 / 10) + "." +
         std::to_string(v % 10) + (redirected ? "" : " (linked, but malloc is not redirected)");
#else
  return "system malloc";
#endif
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"Redline: an AI API gateway on Redis"};
  std::string config_path = "config/redline.yaml";
  redline::config::CliOverrides o;
  bool check_only = false;
  bool version = false;
  std::string listen, admin_listen, redis_mode, upstream, log_level;
  int threads = -1;
  cli.add_option("-c,--config", config_path, "YAML configuration file")->capture_default_str();
  cli.add_option("--listen", listen, "proxy address HOST:PORT (overrides listen)");
  cli.add_option("--admin-listen", admin_listen, "admin address HOST:PORT (overrides admin.listen)");
  cli.add_option("--redis", o.redis_urls, "Redis URL, repeatable (overrides redis.urls)");
  cli.add_option("--redis-mode", redis_mode, "standalone | cluster (overrides redis.mode)");
  cli.add_option("--upstream", upstream, "base URL of the default OpenAI-compatible provider");
  cli.add_option("--threads", threads, "worker threads, 0 = one per core (overrides threads)");
  cli.add_option("--log-level", log_level, "trace | debug | info | warn | error | off");
  cli.add_flag("--check-config", check_only, "validate the configuration and exit 0 or 1");
  cli.add_flag("--version", version, "print the version and exit");
  CLI11_PARSE(cli, argc, argv);

  if (version) {
    std::cout << "redline " << REDLINE_VERSION << "\nallocator: " << allocator_description()
              << "\n";
    return 0;
  }
  if (!listen.empty()) o.listen = listen;
  if (!admin_listen.empty()) o.admin_listen = admin_listen;
  if (!redis_mode.empty()) o.redis_mode = redis_mode;
  if (!upstream.empty()) o.upstream = upstream;
  if (threads >= 0) o.threads = threads;
  if (!log_level.empty()) o.log_level = log_level;

  redline::config::LoadResult loaded;
  try {
    loaded = redline::config::load_config_file(config_path);
    redline::config::apply_overrides(loaded.config, o);
  } catch (const std::exception& e) {
    std::cerr << "redline: invalid configuration: " << e.what() << "\n";
    return 1;
  }
  spdlog::set_level(to_spdlog(loaded.config.logging.level));
  for (const auto& w : loaded.warnings) spdlog::warn("{}", w);
  if (check_only) {
    std::cout << "redline: configuration " << config_path << " is valid\n";
    return 0;
  }
  spdlog::info("allocator: {}", allocator_description());

  // Signals are taken synchronously by a dedicated thread, so no handler runs on a worker.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<redline::app::Gateway> gateway;
  try {
    gateway = std::make_unique<redline::app::Gateway>(loaded.config);
    gateway->start();
  } catch (const std::exception& e) {
    spdlog::error("redline: cannot start: {}", e.what());
    return 1;
  }
  const auto drain_timeout = loaded.config.drain_timeout;
  std::thread signals([&] {
    int sig = 0;
    sigwait(&set, &sig);
    spdlog::info("signal {}: draining (up to {} ms)", sig, drain_timeout.count());
    gateway->drain_and_stop(drain_timeout);
  });
  gateway->wait();
  signals.join();
  spdlog::info("redline stopped");
  return 0;
}
