// RateLimiter: decides whether a request may pass every rate-limit policy that scopes it, in
// one round trip of latency to Redis (one script call per slot, sent per node in parallel),
// reserves its estimated tokens and settles them with the actual usage afterwards. When Redis
// cannot answer, each policy's fail_mode applies (open, closed, local). One RateLimiter per
// thread, on that thread's redis::Client; the process-wide parts (local fallback counters,
// degraded-mode logging) live in a SharedLimiterState that every thread's limiter shares.
// It does not parse requests, pick response codes' bodies' wording beyond its message, or
// know where in the pipeline it runs.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/container/small_vector.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "ratelimit/headers.h"
#include "ratelimit/local_limiter.h"
#include "ratelimit/policy.h"
#include "ratelimit/script.h"
#include "redis/client.h"

namespace redline::ratelimit {

template <typename T>
using Awaitable = redis::Awaitable<T>;

// Settings that are not policies. Defaults are safe for one instance in production.
struct LimiterOptions {
  // Gateway instances sharing the limits: with fail_mode local each instance enforces
  // limit / instances (at least 1) per policy on its own.
  uint64_t instances = 1;
  // Output tokens reserved for a request that sets no max_tokens, and per-model overrides.
  uint64_t default_output_tokens = 4096;
  std::map<std::string, uint64_t, std::less<>> output_tokens_by_model;
  // settle_cache_hit(): charge a cached answer its tokens (true) or refund them (false).
  bool cache_hits_consume_tokens = false;
  // Tests only: the time (microseconds since the epoch) the script and the local limiter use
  // instead of Redis TIME and the system clock. Production never sets it.
  std::optional<int64_t> fixed_now_us;
  // At most one log line per degraded mode (open, closed, local) per interval.
  std::chrono::milliseconds log_interval{10'000};
  // settle() with a delay: the settlement waits up to this long in the limiter and rides on
  // this thread's next check of the same slot (one script call instead of two); what no
  // check took by then is sent on its own. 0: every settle() sends at once and waits for
  // Redis (the default here; the gateway's config default is 5 ms).
  std::chrono::milliseconds settle_delay{0};

  // The output-token cap for `model` (per-model override, else the default).
  uint64_t output_cap(std::string_view model) const;
  static LimiterOptions from_config(const config::RateLimitOptions& o);
};

// Tokens to reserve before the provider answers: prompt bytes / 4 (rounded up) plus
// max_tokens when the request sets it, else the output cap.
uint64_t estimate_tokens(std::string_view body_bytes, std::optional<uint64_t> max_tokens,
                         uint64_t default_output_cap);

// Every way a check ends. Counters (LimiterStats) and the x-redline-ratelimit header use
// outcome_name().
enum class Outcome : uint8_t {
  kUnlimited,      // no policy scopes the request: admitted, no headers
  kAdmitted,       // Redis admitted every policy
  kRefused,        // Redis refused a policy: 429 + retry-after
  kFailOpen,       // admitted; Redis was unreachable for a fail_mode open policy
  kLocalAdmitted,  // admitted; a fail_mode local policy was decided in-process
  kLocalRefused,   // 429 from the in-process fallback of a fail_mode local policy
  kFailClosed,     // 503; Redis was unreachable for a fail_mode closed policy
};
inline constexpr size_t kOutcomeCount = 7;
std::string_view outcome_name(Outcome o);  // "fail_open", ...

// What settle() needs about one token reservation.
struct ReservedState {
  StateRef state;      // keys, algorithm, limit, window, burst, cost (= the estimate), handle
  bool local = false;  // decided by the local fallback (settled in-process)
  uint64_t local_limit = 0;
};

// The token reservations of one admitted request. settle() (or settle_cache_hit()) once.
struct Reservation {
  std::vector<ReservedState> states;
  uint64_t estimated_tokens = 0;
  bool settled = false;
  bool empty() const { return states.empty(); }
};

struct Decision {
  Outcome outcome = Outcome::kUnlimited;
  bool admitted() const {
    return outcome != Outcome::kRefused && outcome != Outcome::kLocalRefused &&
           outcome != Outcome::kFailClosed;
  }
  // 200 when admitted, else 429 (refused) or 503 (fail_mode closed without Redis).
  int status() const;

  // The refusing policy (refusals), or the closed policy without Redis (503).
  std::string policy_id;
  std::string policy;                       // its description
  Quantity quantity = Quantity::kRequests;  // what it ran out of
  std::string message;                      // human sentence for the error body
  uint64_t retry_after = 0;                 // seconds (429 only; also in `headers`)

  // The most restrictive policy per quantity (absent: no policy of that quantity decided).
  std::optional<QuotaStatus> requests;
  std::optional<QuotaStatus> tokens;
  // Headers for the response, admitted or not: x-ratelimit-*, RateLimit-Policy, RateLimit,
  // retry-after (429), x-redline-ratelimit (degraded outcomes only).
  std::vector<Header> headers;
  Reservation reservation;

  // OpenAI-shaped body for a refusal: type "requests"/"tokens" (as OpenAI sends),
  // code "rate_limit_exceeded"; 503: type "api_error", code "rate_limiter_unavailable".
  std::string error_body() const;
};

// Plain atomic counters, one set per RateLimiter (a later metrics module sums the threads).
// One list, so names are written once.
#define REDLINE_RATELIMIT_STATS(X)                                                \
  X(checks, "check() calls")                                                      \
  X(unlimited, "checks no policy applied to")                                     \
  X(admitted, "admitted by Redis")                                                \
  X(refused, "refused by Redis (429)")                                            \
  X(fail_open, "admitted without Redis for a fail_mode open policy")              \
  X(local_admitted, "admitted with a fail_mode local policy decided in-process")  \
  X(local_refused, "refused by the in-process fallback (429)")                    \
  X(fail_closed, "refused without Redis for a fail_mode closed policy (503)")     \
  X(script_calls, "rate-limit script calls sent (check, refund, settle)")         \
  X(redis_errors, "script calls that failed (timeout, connection, server error)") \
  X(refunds, "limiter states given back because another policy refused")          \
  X(settlements, "settle() calls that changed a reservation")                     \
  X(settle_errors, "settlements Redis could not apply")

struct LimiterStats {
#define REDLINE_RATELIMIT_STAT_FIELD(name, help) uint64_t name = 0;
  REDLINE_RATELIMIT_STATS(REDLINE_RATELIMIT_STAT_FIELD)
#undef REDLINE_RATELIMIT_STAT_FIELD
  // Calls fn(name, help, value) for every counter.
  template <typename Fn>
  void for_each(Fn&& fn) const {
#define REDLINE_RATELIMIT_STAT_VISIT(name, help) fn(#name, help, name);
    REDLINE_RATELIMIT_STATS(REDLINE_RATELIMIT_STAT_VISIT)
#undef REDLINE_RATELIMIT_STAT_VISIT
  }
};

// Process-wide: the local fallback counters (shared so limit / instances holds per process)
// and the throttle of degraded-mode log lines. Create one and hand it to every thread's
// RateLimiter.
class SharedLimiterState {
 public:
  LocalLimiter& local() { return local_; }
  // Logs (spdlog warn) that `mode` is in force for `policy_id` because of `error`, at most
  // once per interval per mode; counts what it suppressed.
  void log_degraded(config::FailMode mode, std::string_view policy_id, std::string_view error,
                    std::chrono::milliseconds interval);
  // Logs once (info) when Redis answers again after a degraded period.
  void log_recovered();
  uint64_t degraded_logs() const { return logged_.load(std::memory_order_relaxed); }

 private:
  LocalLimiter local_;
  std::array<std::atomic<int64_t>, 3> last_log_ms_{};
  std::array<std::atomic<uint64_t>, 3> suppressed_{};
  std::atomic<bool> degraded_{false};
  std::atomic<uint64_t> logged_{0};
};

// A request's check prepared but not sent: the script commands (one per slot) to send, e.g.
// in the same pipeline as the cache lookup. Pass the replies to RateLimiter::complete().
class CheckPlan {
 public:
  CheckPlan() = default;
  // Move-only: its states point into its own policy list.
  CheckPlan(CheckPlan&&) = default;
  CheckPlan& operator=(CheckPlan&&) = default;
  CheckPlan(const CheckPlan&) = delete;
  CheckPlan& operator=(const CheckPlan&) = delete;

  std::span<const redis::Command> commands() const { return {commands_.data(), commands_.size()}; }
  bool empty() const { return states_.empty(); }

 private:
  friend class RateLimiter;
  template <typename T, size_t N>
  using Small = boost::container::small_vector<T, N>;
  enum class Source : uint8_t { kRedis, kLocal, kOpen, kClosed };
  struct State {
    const CompiledPolicy* policy = nullptr;
    Quantity quantity = Quantity::kRequests;
    StateRef ref;
    size_t group = 0;
    Source source = Source::kRedis;
    StateResult result;
    bool committed = false;
    uint64_t local_limit = 0;
  };
  std::vector<CompiledPolicy> own_;  // the key's own policies, compiled for this request
  // Inline room for the usual plan (a few policies, one slot): no allocation for the lists.
  Small<State, 4> states_;
  Small<Small<uint32_t, 4>, 2> groups_;  // indices into states_, one per command
  Small<redis::Command, 2> commands_;
  Small<uint32_t, 2> carried_;  // per command: held settlements it carries (settle_delay)
  uint64_t estimated_tokens = 0;
};

class RateLimiter {
 public:
  // `client` belongs to the calling thread and must outlive the limiter. `shared` is the
  // process-wide state (nullptr: a private one, fine for tests and single-thread use).
  RateLimiter(redis::Client& client, std::span<const config::RateLimitPolicy> policies,
              LimiterOptions options = {}, std::shared_ptr<SharedLimiterState> shared = nullptr);
  ~RateLimiter();
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Decides a request against the global policies plus `extra_policies` (the key's own).
  Awaitable<Decision> check(const RequestFacts& facts,
                            std::span<const config::RateLimitPolicy> extra_policies = {});

  // check() in two steps, for callers that pipeline the script calls with other commands.
  // complete() takes one reply per plan.commands() entry, in order.
  CheckPlan plan(const RequestFacts& facts,
                 std::span<const config::RateLimitPolicy> extra_policies = {}) const;
  Awaitable<Decision> complete(CheckPlan& plan, std::span<redis::Result<redis::Reply>> replies);

  // Charges or refunds, on every token policy, the difference between the reservation's
  // estimate and `actual_tokens` (never below zero). Marks it settled; a second call and an
  // empty reservation do nothing. Redis errors are counted and logged, never thrown.
  // With options().settle_delay > 0 it returns at once: the settlement is carried by the
  // next check() of its slot, or sent when the delay has passed (pending_settlements()).
  Awaitable<void> settle(Reservation& reservation, uint64_t actual_tokens);
  // settle() without a coroutine when settle_delay > 0: holds the settlement (starting the
  // delayed send on `executor` if none is running) and returns true; false (nothing done)
  // when settle_delay is 0.
  bool settle_held(Reservation& reservation, uint64_t actual_tokens,
                   const boost::asio::any_io_executor& executor);
  // What a cached answer is charged: its usage when cache hits consume tokens, else 0.
  uint64_t cache_hit_charge(uint64_t cached_usage_tokens) const;
  // For an answer served from the cache: settle(actual) when cache hits consume tokens,
  // else refund the whole estimate.
  Awaitable<void> settle_cache_hit(Reservation& reservation, uint64_t cached_usage_tokens);

  LimiterStats stats() const;
  // Settlements held back by settle_delay: not yet sent, or sent on their own and not yet
  // answered (one carried by a check counts as that request's). Safe from any thread.
  size_t pending_settlements() const { return pending_count_.load(std::memory_order_relaxed); }
  // Tests only: moves the fixed time (LimiterOptions::fixed_now_us) between calls.
  void set_fixed_now_us(std::optional<int64_t> now_us) { options_.fixed_now_us = now_us; }
  const std::vector<CompiledPolicy>& policies() const { return policies_; }
  const LimiterOptions& options() const { return options_; }
  SharedLimiterState& shared() { return *shared_; }

 private:
  enum Stat : size_t {
#define REDLINE_RATELIMIT_STAT_ENUM(name, help) k_##name,
    REDLINE_RATELIMIT_STATS(REDLINE_RATELIMIT_STAT_ENUM)
#undef REDLINE_RATELIMIT_STAT_ENUM
        kStatCount
  };
  void bump(Stat s, uint64_t n = 1) {
    counters_[s].fetch_add(n, std::memory_order_relaxed);
  }
  std::optional<int64_t> now_us() const {
    return options_.fixed_now_us;
  }
  int64_t now_ms() const;
  void add_states(CheckPlan& plan, const CompiledPolicy& policy, const RequestFacts& facts) const;
  void fail_over(CheckPlan& plan, size_t group, const redis::Error& error);
  Decision decide(CheckPlan& plan);
  Awaitable<void> refund(CheckPlan& plan);
  // The settle commands for `states` (one per slot) with `new_costs`; counted as script calls.
  using SettleCalls = boost::container::small_vector<redis::Command, 2>;
  SettleCalls settle_calls(std::span<const StateRef* const> states,
                           std::span<const uint64_t> new_costs);
  // Sends settle_calls(states, new_costs) as one batch; the replies, in order (the caller
  // passes them to note_settled).
  Awaitable<std::vector<redis::Result<redis::Reply>>> send_settles(
      std::span<const StateRef* const> states, std::span<const uint64_t> new_costs);
  // Marks `reservation` settled, applies the difference to its locally decided states and
  // calls on_redis(state) for each state Redis must adjust (its cost differs from
  // actual_tokens); counts the settlement when anything changed.
  template <typename OnRedis>
  void split_settlement(Reservation& reservation, uint64_t actual_tokens, OnRedis&& on_redis);
  // Logs (at most once per log_interval) that a settlement was lost to `error`.
  void warn_settle_failed(const redis::Error& error) const;
  // Counts and logs the failed settle calls; false when any failed.
  bool note_settled(std::span<const redis::Result<redis::Reply>> results);
  // Indices of `states` per Redis Cluster slot, in order of first appearance (standalone:
  // one group of all).
  using Groups = boost::container::small_vector<boost::container::small_vector<uint32_t, 4>, 2>;
  Groups group_by_slot(std::span<const StateRef* const> states) const;

  // settle_delay: settlements waiting for a check of their slot (or for flush_later).
  struct Held {
    StateRef state;
    uint64_t new_cost = 0;
    uint16_t slot = 0;  // cluster: the slot of state.keys (standalone: 0)
  };
  // The plan's states and groups, without commands.
  CheckPlan plan_states(const RequestFacts& facts,
                        std::span<const config::RateLimitPolicy> extra_policies) const;
  // One check command per group. With `carry` (check() passes held_), each command also
  // carries, and takes out of *carry, the held settlements of its slot (standalone: all).
  void build_commands(CheckPlan& plan, std::vector<Held>* carry) const;
  // Waits settle_delay, then sends what no check carried; repeats while more is held.
  Awaitable<void> flush_later(std::shared_ptr<bool> alive);

  redis::Client& client_;
  std::vector<Held> held_;
  bool flushing_ = false;                   // a flush_later is running
  std::atomic<size_t> pending_count_{0};    // held_ + sent by flush_later, not yet answered
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // false once destroyed
  std::vector<CompiledPolicy> policies_;
  LimiterOptions options_;
  std::shared_ptr<SharedLimiterState> shared_;
  std::array<std::atomic<uint64_t>, kStatCount> counters_{};
};

}  // namespace redline::ratelimit
