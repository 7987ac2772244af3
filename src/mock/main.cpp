// redline-mock: the mock LLM provider as a program for tests, benchmarks and `make run`.
// It only turns CLI flags into MockOptions, runs a MockServer and exits 0 on SIGTERM or
// SIGINT; everything it serves is described in mock_server.h and handler.h.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>

#include "mock/mock_server.h"

namespace {

// "HOST:PORT", "[v6]:PORT" or ":PORT" (all interfaces).
bool parse_listen(const std::string& listen, redline::mock::MockOptions& options) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  try {
    std::size_t used = 0;
    port = std::stoi(listen.substr(colon + 1), &used);
    if (used != listen.size() - colon - 1) return false;
  } catch (const std::exception&) {
    return false;
  }
  if (port < 0 || port > 65535) return false;
  options.host = host.empty() ? "0.0.0.0" : host;
  options.port = static_cast<uint16_t>(port);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  redline::mock::MockOptions options;
  std::string listen = "127.0.0.1:8081";
  bool no_record = false;

  CLI::App app{"redline-mock: an OpenAI- and Anthropic-compatible fake LLM provider"};
  app.add_option("--listen", listen, "HOST:PORT to listen on")->capture_default_str();
  app.add_option("--threads", options.threads, "worker threads (0: one per core)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  app.add_option("--latency-ms", options.latency_ms, "delay before answering a model request")
      ->check(CLI::Range(0, 3600 * 1000));
  app.add_option("--stream-delay-ms", options.stream_delay_ms, "delay between SSE events")
      ->check(CLI::Range(0, 3600 * 1000))
      ->capture_default_str();
  app.add_option("--fail-status", options.fail_status,
                 "answer every model request with this status and a provider-shaped error")
      ->check(CLI::Range(400, 599));
  app.add_option("--fail-first", options.fail_first,
                 "only the first N model requests fail (--fail-status, else 500)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--retry-after", options.retry_after, "retry-after seconds on injected failures")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--reset", options.reset, "close model requests' connections without answering");
  app.add_option("--stall-after", options.stall_after,
                 "streams send N events, then stall without closing")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--require-key", options.require_key,
                 "require 'Authorization: Bearer KEY' (OpenAI) or 'x-api-key: KEY' (Anthropic)");
  auto* cert = app.add_option("--tls-cert", options.tls_cert, "PEM certificate chain: serve HTTPS")
                   ->check(CLI::ExistingFile);
  auto* key = app.add_option("--tls-key", options.tls_key, "PEM private key for --tls-cert")
                  ->check(CLI::ExistingFile);
  cert->needs(key);
  key->needs(cert);
  app.add_option("--words", options.words, "answer length in words")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  app.add_flag("--no-record", no_record, "do not keep the last request (for benchmarks)");
  CLI11_PARSE(app, argc, argv);

  if (!parse_listen(listen, options)) {
    std::fprintf(stderr, "redline-mock: --listen wants HOST:PORT, got '%s'\n", listen.c_str());
    return 1;
  }
  options.record = !no_record;

  // Block the stop signals before any thread starts, so only sigwait below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  redline::mock::MockServer server(options);
  try {
    server.start();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "redline-mock: cannot start on %s: %s\n", listen.c_str(), e.what());
    return 1;
  }
  unsigned threads = options.threads > 0 ? static_cast<unsigned>(options.threads)
                                         : std::max(1u, std::thread::hardware_concurrency());
  spdlog::info("redline-mock listening on {}:{} ({}, {} thread{})", options.host, server.port(),
               options.tls_cert.empty() ? "http" : "https", threads, threads == 1 ? "" : "s");

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("redline-mock: signal {}, stopping", sig);
  server.stop();
  return 0;
}
