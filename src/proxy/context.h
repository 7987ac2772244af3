// The per-request context that every phase reads and writes: identity, route, model,
// timings and the outcome. One object per request, owned by the handler's coroutine.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "auth/authenticator.h"
#include "http/server.h"
#include "proxy/router.h"

namespace redline::proxy {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using Clock = std::chrono::steady_clock;

struct RequestContext {
  explicit RequestContext(http::Exchange& ex) : exchange(ex) {}

  http::Exchange& exchange;
  std::string request_id;
  Clock::time_point start = Clock::now();

  Endpoint endpoint = Endpoint::kNotFound;
  auth::Identity identity;
  std::string model;  // as the client asked
  bool stream = false;
  std::vector<Hop> hops;

  // Outcome, filled as phases run.
  const Provider* provider = nullptr;  // the one that answered
  int attempts = 0;
  std::string upstream_failure;  // last transport failure name, if any
  std::string error_code;        // our error code when the gateway answered itself
  Clock::time_point upstream_start{};
  Clock::time_point upstream_first_byte{};
  Clock::time_point upstream_end{};
};

// A phase's decision to answer the request itself.
struct Reject {
  Reject(int s, std::string m, std::string c, std::string ra = {})
      : status(s), message(std::move(m)), code(std::move(c)), retry_after(std::move(ra)) {}
  int status = 0;
  std::string message;
  std::string code;
  std::string retry_after;
};

}  // namespace redline::proxy
