// The per-request context that every phase reads and writes: identity, route, model,
// timings and the outcome. One object per request, owned by the handler's coroutine.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "auth/authenticator.h"
#include "budget/budget.h"
#include "cache/cache_key.h"
#include "cache/cache_store.h"
#include "http/server.h"
#include "proxy/router.h"
#include "proxy/usage.h"
#include "ratelimit/limiter.h"
#include "session/session_store.h"

namespace redline::proxy {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using Clock = std::chrono::steady_clock;

// The usage of the answer a request got. A cache hit hands over its entry instead of a parsed
// usage: the answer is parsed only if something reads it (a token limit, a budget, the access
// log), so the many hits that nothing asks about skip a JSON parse of the answer.
class UsageSlot {
 public:
  UsageSlot& operator=(std::optional<Usage> u) {
    value_ = u;
    pending_.reset();
    return *this;
  }
  void defer(cache::Entry entry) {
    pending_ = std::move(entry);
    value_.reset();
  }
  const std::optional<Usage>& get() const {
    if (pending_) {
      value_ = pending_->streamed ? usage_from_events(pending_->events)
                                  : usage_from_body(pending_->body);
      pending_.reset();
    }
    return value_;
  }
  explicit operator bool() const { return get().has_value(); }
  const Usage& operator*() const { return *get(); }
  const Usage* operator->() const { return &*get(); }

 private:
  mutable std::optional<cache::Entry> pending_;
  mutable std::optional<Usage> value_;
};

// What the upstream phase did: filled by the Forwarder (for a shared call, on the flight's
// copy and then copied to each client's context).
struct UpstreamOutcome {
  const Provider* provider = nullptr;  // the one that answered
  int attempts = 0;
  std::string upstream_failure;  // last transport failure name, if any
  std::string error_code;        // our error code when the gateway answered itself
  Clock::time_point upstream_start{};
  Clock::time_point upstream_first_byte{};
  Clock::time_point upstream_end{};
};

struct RequestContext : UpstreamOutcome {
  explicit RequestContext(http::Exchange& ex) : exchange(ex) {}

  http::Exchange& exchange;
  std::string request_id;
  Clock::time_point start = Clock::now();

  Endpoint endpoint = Endpoint::kNotFound;
  auth::Identity identity;
  std::string model;  // as the client asked
  bool stream = false;
  std::vector<Hop> hops;

  bool include_usage = false;       // stream_options.include_usage
  bool has_stream_options = false;  // the body has a stream_options member (any value)
  std::optional<double> temperature;
  std::optional<uint64_t> max_tokens;  // max_tokens / max_completion_tokens / max_output_tokens

  // Rate limits: the tokens reserved before the call, settled with `usage` after it.
  ratelimit::Reservation reservation;
  std::string_view ratelimit_outcome;  // "" when no policy applied
  std::string ratelimit_policy;        // the refusing (or degraded) policy's id
  UsageSlot usage;                     // as the provider (or the cached answer) reported it

  // Cache phase.
  cache::CacheStatus cache_status = cache::CacheStatus::kBypass;
  cache::Tier cache_tier = cache::Tier::kNone;
  bool cacheable = false;       // a cache key was computed
  bool cache_refresh = false;   // cache-control: no-cache
  bool cache_bypassed = false;  // cacheable, but no-store / key opt-out / temperature rule
  uint32_t cache_ttl = 0;
  std::string cache_namespace;
  uint64_t cache_generation = 0;
  cache::CacheKey cache_key;

  // Conversation session (x-redline-session): the merged body is what goes on (cache key,
  // provider, token estimate); the turn is appended after the answer.
  std::string session_id;  // "" = no session
  session::Api session_api = session::Api::kChat;
  session::Merged session_turn;
  bool session_appended = false;  // the turn was stored (or found to have no reply): once
  // Budgets: whose money this request spends; set when spend is recorded or checked.
  std::optional<budget::Subject> spender;

  // Redis round trips of latency this request waited for before its answer (concurrent
  // operations count once): redline_redis_round_trips_total.
  uint32_t redis_round_trips = 0;

  // The answer as the client got it, kept only when a later phase needs it (sessions); the
  // endpoint says which API's stream it is.
  bool capture_answer = false;
  bool answer_streamed = false;
  std::string answer_body;
  std::vector<std::string> answer_events;

  // The request body as it goes on: the client's, or with the session's history in front.
  const std::string& body() const {
    return session_id.empty() ? exchange.request().body() : session_turn.body;
  }
};

// A phase's decision to answer the request itself.
struct Reject {
  Reject(int s, std::string m, std::string c, std::string ra = {})
      : status(s), message(std::move(m)), code(std::move(c)), retry_after(std::move(ra)) {}
  int status = 0;
  std::string message;
  std::string code;
  std::string retry_after;
  std::string body;  // a complete error body to send instead of one built from the above
};

}  // namespace redline::proxy
