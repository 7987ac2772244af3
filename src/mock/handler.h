// Decides what the mock answers to one parsed request: routing, per-request overrides
// (x-mock-*), the key check, injected faults and the introspection endpoints. The result
// is a Plan; sending it (timers, chunks, stalls, resets) is session.h's job, not this one's.
#pragma once

#include <array>
#include <atomic>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mock/answers.h"
#include "mock/mock_server.h"
#include "mock/stats.h"

namespace redline::mock {

using Request = boost::beast::http::request<boost::beast::http::string_body>;

// What the session does with one request. Reused across requests on a connection
// (clear() keeps the buffers' capacity), so answering needs no fresh allocations.
struct Plan {
  enum class Kind {
    kRespond,  // status + headers + body in one write
    kStream,   // SSE: `body` holds the events, each ending at event_ends[i]
    kReset,    // close the connection without a word
  };
  Kind kind = Kind::kRespond;
  int status = 200;
  std::string_view content_type = "application/json";
  std::string body;
  std::vector<std::size_t> event_ends;
  std::string request_id;
  int retry_after = -1;  // seconds; < 0: no header
  std::chrono::milliseconds latency{0};
  std::chrono::milliseconds stream_delay{0};
  int stall_after = -1;  // < 0: never stall
  bool keep_alive = true;
  bool http11 = true;  // chunked streaming; HTTP/1.0 streams end by closing

  void clear();
};

// One worker thread's own state; only that thread writes it (counters are read elsewhere).
struct ThreadState {
  Counters counters;
  uint32_t index = 0;
  uint64_t next_id = 0;
};

// State every thread shares: read-only options plus the few cells tests need across
// threads (fail-first budget, last request). `threads` is fixed before any thread runs.
struct SharedState {
  explicit SharedState(MockOptions o) : options(std::move(o)) {}
  const MockOptions options;
  uint32_t nonce = 0;  // makes generated ids differ between mock instances
  std::atomic<uint64_t> fail_first_seen{0};
  LastRequest last_request;
  std::vector<ThreadState*> threads;
};

class Handler {
 public:
  Handler(SharedState& shared, ThreadState& thread) : shared_(shared), thread_(thread) {}

  const MockOptions& options() const { return shared_.options; }
  // Fills `plan` (cleared first) with the answer to `request`.
  void handle(const Request& request, Plan& plan);
  // An OpenAI-shaped error for a request that could not be parsed; closes afterwards.
  void reject(int status, std::string_view message, Plan& plan);

 private:
  struct Overrides;
  void model_request(const Request& request, std::string_view path, const Overrides& ov,
                     Plan& plan);
  void answer(Endpoint endpoint, Api api, const Request& request, int words, Plan& plan);
  void introspection(const Request& request, std::string_view path, Plan& plan);
  void error(Api api, int status, std::string_view message, Plan& plan);
  // A short id unique to this response among all threads and mock instances.
  std::string_view next_unique();

  SharedState& shared_;
  ThreadState& thread_;
  // Per-request scratch; handle() runs start to end on this handler's own thread.
  std::array<char, 32> unique_{};
  std::size_t unique_size_ = 0;
  std::string model_json_;
  LastRequest::HeaderViews header_views_;
};

}  // namespace redline::mock
