// Assembles the rate-limit script from its embedded .lua parts and encodes/decodes its calls
// (argument layout documented in ratelimit_main.lua).
#include "ratelimit/script.h"

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

redis::Command build(std::string_view op, std::span<const StateRef* const> states,
                     std::span<const uint64_t> new_costs, std::optional<int64_t> now_us) {
  const redis::Script& script = limiter_script();
  size_t nkeys = 0;
  for (const StateRef* s : states) {
    nkeys += s->keys.size();
  }
  redis::Command c("EVALSHA", script.sha(), nkeys);
  for (const StateRef* s : states) {
    for (const auto& k : s->keys) {
      c.add(k);
    }
  }
  c.add(op);
  c.add(now_us ? std::to_string(*now_us) : std::string());
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
  return c;
}

}  // namespace

const redis::Script& limiter_script() {
  static const redis::Script script(assembled_source());
  return script;
}

redis::Command check_command(std::span<const StateRef* const> states,
                             std::optional<int64_t> now_us) {
  return build("check", states, {}, now_us);
}

redis::Command settle_command(std::span<const StateRef* const> states,
                              std::span<const uint64_t> new_costs, std::optional<int64_t> now_us) {
  return build("settle", states, new_costs, now_us);
}

std::optional<CheckReply> parse_check_reply(const redis::Reply& reply, size_t n) {
  constexpr size_t kFields = 6;
  if (reply.type() != redis::Type::kArray || reply.size() != 1 + n * kFields) {
    return std::nullopt;
  }
  for (const auto& e : reply.elements()) {
    if (e.type() != redis::Type::kInteger) {
      return std::nullopt;
    }
  }
  auto at = [&](size_t i) { return reply[i].integer(); };
  auto non_negative = [](int64_t v) { return static_cast<uint64_t>(std::max<int64_t>(0, v)); };
  CheckReply out;
  out.admitted = at(0) == 1;
  out.states.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const size_t b = 1 + i * kFields;
    StateResult r;
    r.admitted = at(b) == 1;
    r.remaining = non_negative(at(b + 1));
    r.reset_ms = non_negative(at(b + 2));
    r.next_ms = non_negative(at(b + 3));
    r.retry_ms = at(b + 4);
    r.handle = at(b + 5);
    out.states.push_back(r);
  }
  return out;
}

}  // namespace redline::ratelimit
