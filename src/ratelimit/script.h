// The rate-limit Lua script as C++ sees it: the assembled source (common helpers + the four
// algorithms + ratelimit_main.lua), the EVALSHA commands that check or settle a group of
// limiter states living in one slot, and the parsed replies. No decisions are made here.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "config/config.h"
#include "redis/script.h"

namespace redline::ratelimit {

// One limiter state: one policy, one quantity, one subject.
struct StateRef {
  config::RateLimitAlgorithm algorithm = config::RateLimitAlgorithm::kFixedWindow;
  std::vector<std::string> keys;  // state_keys(): 1, or 2 for sliding-window-log
  uint64_t limit = 0;
  uint64_t window_ms = 0;
  uint64_t burst = 0;
  uint64_t cost = 0;   // units this request reserves (check) or reserved (settle)
  int64_t handle = 0;  // settle: what check() returned for this state
};

// What the script said about one state.
struct StateResult {
  bool admitted = false;  // this state alone would admit the request
  uint64_t remaining = 0;
  uint64_t reset_ms = 0;  // until the state is back at its full limit
  uint64_t next_ms = 0;   // until one more unit becomes available
  int64_t retry_ms = 0;   // until the cost fits; -1 when it never can (cost > limit/burst)
  int64_t handle = 0;     // reservation handle for settle (committed states only)
};

struct CheckReply {
  bool admitted = false;  // every state admitted, and all were consumed
  std::vector<StateResult> states;
};

// The assembled script, built once per process.
const redis::Script& limiter_script();

// EVALSHA ... 'check': decide and (when all admit) consume. `now_us` fixes the time (tests).
// `carried` are earlier reservations (same slot) settled to carried_costs[i] in the same
// call, before the decision.
redis::Command check_command(std::span<const StateRef* const> states,
                             std::optional<int64_t> now_us = std::nullopt,
                             std::span<const StateRef* const> carried = {},
                             std::span<const uint64_t> carried_costs = {});
// EVALSHA ... 'settle': turn each state's reservation of `cost` into new_costs[i].
redis::Command settle_command(std::span<const StateRef* const> states,
                              std::span<const uint64_t> new_costs,
                              std::optional<int64_t> now_us = std::nullopt);

// Parses a check reply for `n` states; nullopt when the reply has the wrong shape.
std::optional<CheckReply> parse_check_reply(const redis::Reply& reply, size_t n);
// The same into `out` (one entry per state) without allocating; false on the wrong shape.
bool parse_check_reply(const redis::Reply& reply, std::span<StateResult> out, bool& all_admitted);

}  // namespace redline::ratelimit
