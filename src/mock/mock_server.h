// The mock LLM provider as a library: an OpenAI- and Anthropic-compatible fake that
// tests run in-process on port 0 and the redline-mock binary wraps with CLI flags. It
// owns the listening sockets and worker threads; what a request means is in handler.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace redline::mock {

// Read once at start(), never changed while serving. Per-request headers
// (x-mock-status, x-mock-latency-ms, ...) override the fault and timing fields.
struct MockOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: the kernel picks one; read it back with MockServer::port()
  int threads = 1;    // one io_context and one SO_REUSEPORT listener each; 0: one per core

  int latency_ms = 0;       // delay before answering a model request
  int stream_delay_ms = 0;  // delay between SSE events
  int words = 12;           // answer length (capped by the request's max_tokens)

  int fail_status = 0;   // answer model requests with this status (0: no injected status)
  int fail_first = 0;    // > 0: only the first N model requests fail (fail_status or 500)
  int retry_after = -1;  // seconds, added as retry-after to injected failures (< 0: none)
  bool reset = false;    // close model requests' connections without answering
  int stall_after = -1;  // streams send this many events, then stall open (< 0: never)

  std::string require_key;  // "Authorization: Bearer KEY" (OpenAI) / "x-api-key: KEY"

  std::string tls_cert;  // PEM chain and key: serve HTTPS instead of HTTP
  std::string tls_key;

  bool record = true;  // keep the last model request for GET /mock/last-request

  std::size_t body_limit = std::size_t{64} << 20;
  uint32_t header_limit = 64 * 1024;
};

class MockServer {
 public:
  explicit MockServer(MockOptions options);
  ~MockServer();
  MockServer(const MockServer&) = delete;
  MockServer& operator=(const MockServer&) = delete;

  // Binds every listener (the first on options.port, the rest on the port it got) and
  // starts the threads. Throws std::system_error when binding or TLS setup fails.
  void start();
  // The bound port; valid after start().
  uint16_t port() const;
  // Stops accepting, drops open connections and joins the threads. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace redline::mock
