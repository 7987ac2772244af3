// Assembles the rate-limit script from its embedded .lua parts and encodes/decodes its calls
// (argument layout documented in ratelimit_main.lua).
#include "ratelimit/script.h"

#include <algorithm>

#include "ratelimit/policy.h"
#include "redline_scripts.h"

namespace redline::ratelimit {

namespace {

std::string assembled_source() {
  std::string s;
  for (std::string_view part :
       {scripts::ratelimit_common, scripts::fixed_window, scripts::sliding_window_log,
        scripts::sliding_window_counter, scripts::token_bucket, scripts::ratelimit_main}) {
    s += part;
    s += '\n';
  }
  return s;
}

// "EVALSHA <sha>", encoded once: every call starts as a copy of it.
const redis::Command& evalsha_prefix() {
  static const redis::Command prefix("EVALSHA", limiter_script().sha());
  return prefix;
}

// The items of `states` (7 fields each; a settle turns each reservation into new_costs[i]).
void add_items(redis::Command& c, std::span<const StateRef* const> states,
               std::span<const uint64_t> new_costs) {
  c.add(states.size());
  for (size_t i = 0; i < states.size(); ++i) {
    const StateRef& s = *states[i];
    c.add(algorithm_code(s.algorithm));
    c.add(s.limit);
    c.add(s.window_ms);
    c.add(s.burst);
    c.add(s.cost);
    c.add(s.handle);
    c.add(i < new_costs.size() ? new_costs[i] : s.cost);
  }
}

size_t key_count(std::span<const StateRef* const> states) {
  size_t n = 0;
  for (const StateRef* s : states) {
    n += s->keys.size();
  }
  return n;
}

void add_keys(redis::Command& c, std::span<const StateRef* const> states) {
  for (const StateRef* s : states) {
    for (const auto& k : s->keys) {
      c.add(k);
    }
  }
}

redis::Command build(std::string_view op, std::span<const StateRef* const> states,
                     std::span<const uint64_t> new_costs, std::optional<int64_t> now_us,
                     std::span<const StateRef* const> carried = {},
                     std::span<const uint64_t> carried_costs = {}) {
  redis::Command c = evalsha_prefix();
  c.add(key_count(states) + key_count(carried));
  add_keys(c, states);
  add_keys(c, carried);
  c.add(op);
  if (now_us) {
    c.add(*now_us);
  } else {
    c.add(std::string_view());
  }
  add_items(c, states, new_costs);
  if (!carried.empty()) {
    add_items(c, carried, carried_costs);
  }
  return c;
}

}  // namespace

const redis::Script& limiter_script() {
  static const redis::Script script(assembled_source());
  return script;
}

redis::Command check_command(std::span<const StateRef* const> states,
                             std::optional<int64_t> now_us,
                             std::span<const StateRef* const> carried,
                             std::span<const uint64_t> carried_costs) {
  return build("check", states, {}, now_us, carried, carried_costs);
}

redis::Command settle_command(std::span<const StateRef* const> states,
                              std::span<const uint64_t> new_costs, std::optional<int64_t> now_us) {
  return build("settle", states, new_costs, now_us);
}

bool parse_check_reply(const redis::Reply& reply, std::span<StateResult> out, bool& all_admitted) {
  constexpr size_t kFields = 6;
  const size_t n = out.size();
  if (reply.type() != redis::Type::kArray || reply.size() != 1 + n * kFields) {
    return false;
  }
  const auto& e = reply.elements();
  for (const auto& v : e) {
    if (v.type() != redis::Type::kInteger) {
      return false;
    }
  }
  auto non_negative = [](int64_t v) { return static_cast<uint64_t>(std::max<int64_t>(0, v)); };
  all_admitted = e[0].integer() == 1;
  for (size_t i = 0; i < n; ++i) {
    const size_t b = 1 + i * kFields;
    StateResult& r = out[i];
    r.admitted = e[b].integer() == 1;
    r.remaining = non_negative(e[b + 1].integer());
    r.reset_ms = non_negative(e[b + 2].integer());
    r.next_ms = non_negative(e[b + 3].integer());
    r.retry_ms = e[b + 4].integer();
    r.handle = e[b + 5].integer();
  }
  return true;
}

std::optional<CheckReply> parse_check_reply(const redis::Reply& reply, size_t n) {
  CheckReply out;
  out.states.resize(n);
  if (!parse_check_reply(reply, out.states, out.admitted)) {
    return std::nullopt;
  }
  return out;
}

}  // namespace redline::ratelimit
