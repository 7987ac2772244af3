// RateLimiter: plans the script calls of a request (one per slot), reads the replies, applies
// fail modes per policy when Redis cannot answer, refunds what a refused request reserved,
// builds the headers from the most restrictive policy, and settles token reservations.
#include "ratelimit/limiter.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/error_body.h"
#include "redis/cluster.h"

namespace redline::ratelimit {

// ---------------------------------------------------------------------------------------
// Options, estimates, names.

uint64_t LimiterOptions::output_cap(std::string_view model) const {
  auto it = output_tokens_by_model.find(model);
  return it == output_tokens_by_model.end() ? default_output_tokens : it->second;
}

LimiterOptions LimiterOptions::from_config(const config::RateLimitOptions& o) {
  LimiterOptions out;
  out.instances = std::max<uint64_t>(1, o.instances);
  out.default_output_tokens = o.default_output_tokens;
  out.output_tokens_by_model.insert(o.output_tokens.begin(), o.output_tokens.end());
  out.cache_hits_consume_tokens = o.cache_hits_consume_tokens;
  out.settle_delay = o.settle_delay;
  return out;
}

uint64_t estimate_tokens(std::string_view body_bytes, std::optional<uint64_t> max_tokens,
                         uint64_t default_output_cap) {
  return (body_bytes.size() + 3) / 4 + max_tokens.value_or(default_output_cap);
}

std::string_view outcome_name(Outcome o) {
  switch (o) {
    case Outcome::kUnlimited:
      return "unlimited";
    case Outcome::kAdmitted:
      return "admitted";
    case Outcome::kRefused:
      return "refused";
    case Outcome::kFailOpen:
      return "fail_open";
    case Outcome::kLocalAdmitted:
      return "local_admitted";
    case Outcome::kLocalRefused:
      return "local_refused";
    case Outcome::kFailClosed:
      return "fail_closed";
  }
  return "unknown";
}

int Decision::status() const {
  if (admitted()) {
    return 200;
  }
  return outcome == Outcome::kFailClosed ? 503 : 429;
}

std::string Decision::error_body() const {
  if (outcome == Outcome::kFailClosed) {
    return openai_error_body(message, "api_error", "rate_limiter_unavailable");
  }
  return openai_error_body(message, quantity_name(quantity), "rate_limit_exceeded");
}

// ---------------------------------------------------------------------------------------
// Process-wide state: throttled logging of degraded modes.

namespace {

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void SharedLimiterState::log_degraded(config::FailMode mode, std::string_view policy_id,
                                      std::string_view error, std::chrono::milliseconds interval) {
  degraded_.store(true, std::memory_order_relaxed);
  const auto i = static_cast<size_t>(mode);
  const int64_t now = steady_ms();
  int64_t last = last_log_ms_[i].load(std::memory_order_relaxed);
  if ((last != 0 && now - last < interval.count()) ||
      !last_log_ms_[i].compare_exchange_strong(last, now, std::memory_order_relaxed)) {
    suppressed_[i].fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const uint64_t more = suppressed_[i].exchange(0, std::memory_order_relaxed);
  logged_.fetch_add(1, std::memory_order_relaxed);
  const char* effect = mode == config::FailMode::kOpen     ? "admitting without a limit"
                       : mode == config::FailMode::kClosed ? "refusing with 503"
                                                           : "limiting in-process";
  spdlog::warn(
      "rate limit: Redis unavailable ({}); fail_mode {} in force for policy {}: {} ({} "
      "more such decisions since the last message)",
      error, fail_mode_name(mode), policy_id, effect, more);
}

void SharedLimiterState::log_recovered() {
  if (degraded_.load(std::memory_order_relaxed) && degraded_.exchange(false)) {
    spdlog::info("rate limit: Redis answers again; limits are shared across instances again");
  }
}

// ---------------------------------------------------------------------------------------
// Planning.

RateLimiter::RateLimiter(redis::Client& client, std::span<const config::RateLimitPolicy> policies,
                         LimiterOptions options, std::shared_ptr<SharedLimiterState> shared)
    : client_(client),
      policies_(compile_policies(policies)),
      options_(std::move(options)),
      shared_(shared ? std::move(shared) : std::make_shared<SharedLimiterState>()) {
  options_.instances = std::max<uint64_t>(1, options_.instances);
}

RateLimiter::~RateLimiter() { *alive_ = false; }

int64_t RateLimiter::now_ms() const {
  if (options_.fixed_now_us) {
    return *options_.fixed_now_us / 1000;
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void RateLimiter::add_states(CheckPlan& plan, const CompiledPolicy& policy,
                             const RequestFacts& facts) const {
  // "rl:{<id>[:<subject>]}" (key_base()), with room for the longest suffix.
  std::string base;
  base.reserve(policy.key_prefix.size() + 16 +
               (policy.has_subject ? facts.key_id.size() + facts.tenant.size() +
                                         facts.model.size() + facts.ip.size()
                                   : 0));
  base += policy.key_prefix;
  if (policy.has_subject) {
    base += ':';
    if (!append_subject(base, policy.def, facts)) {
      return;  // a scope's fact is unknown: the policy does not apply
    }
  }
  base += '}';
  const size_t base_len = base.size();
  const bool log = policy.def.algorithm == config::RateLimitAlgorithm::kSlidingWindowLog;
  const auto last = policy.limits[1] != 0 ? Quantity::kTokens : Quantity::kRequests;
  for (Quantity q : {Quantity::kRequests, Quantity::kTokens}) {
    const uint64_t limit = policy.limits[static_cast<size_t>(q)];
    if (limit == 0) {
      continue;
    }
    // state_key(): the last quantity takes `base` itself, an earlier one a copy.
    std::string key;
    if (q == last) {
      key = std::move(base);
    } else {
      key.reserve(base_len + 9);
      key.append(base, 0, base_len);
    }
    key += q == Quantity::kRequests ? ":req" : ":tok";
    CheckPlan::State& s = plan.states_.emplace_back();
    s.policy = &policy;
    s.quantity = q;
    s.ref.algorithm = policy.def.algorithm;
    // state_keys(): sliding-window-log keeps its sum and sequence in "<state>:meta".
    s.ref.keys.reserve(log ? 2 : 1);
    if (log) {
      std::string meta;
      meta.reserve(key.size() + 5);
      meta += key;
      meta += ":meta";
      s.ref.keys.push_back(std::move(key));
      s.ref.keys.push_back(std::move(meta));
    } else {
      s.ref.keys.push_back(std::move(key));
    }
    s.ref.limit = limit;
    s.ref.window_ms = policy.window_ms();
    s.ref.burst = policy.bursts[static_cast<size_t>(q)];
    s.ref.cost = q == Quantity::kRequests ? 1 : facts.estimated_tokens;
    s.local_limit = std::max<uint64_t>(1, limit / options_.instances);
  }
}

RateLimiter::Groups RateLimiter::group_by_slot(std::span<const StateRef* const> states) const {
  Groups groups;
  if (states.empty()) {
    return groups;
  }
  if (!client_.is_cluster()) {
    auto& all = groups.emplace_back();
    for (size_t i = 0; i < states.size(); ++i) {
      all.push_back(static_cast<uint32_t>(i));
    }
    return groups;
  }
  boost::container::small_vector<uint16_t, 2> slots;  // slots[g]: the slot of group g
  for (size_t i = 0; i < states.size(); ++i) {
    const uint16_t slot = redis::key_slot(states[i]->keys.front());
    const size_t g =
        static_cast<size_t>(std::find(slots.begin(), slots.end(), slot) - slots.begin());
    if (g == slots.size()) {
      slots.push_back(slot);
      groups.emplace_back();
    }
    groups[g].push_back(static_cast<uint32_t>(i));
  }
  return groups;
}

CheckPlan RateLimiter::plan_states(const RequestFacts& facts,
                                   std::span<const config::RateLimitPolicy> extra_policies) const {
  CheckPlan p;
  p.estimated_tokens = facts.estimated_tokens;
  if (!extra_policies.empty()) {
    p.own_ = compile_policies(extra_policies, /*own=*/true);
  }
  for (const auto& policy : policies_) {
    add_states(p, policy, facts);
  }
  for (const auto& policy : p.own_) {
    add_states(p, policy, facts);
  }
  if (p.states_.empty()) {
    return p;
  }
  CheckPlan::Small<const StateRef*, 4> refs;
  for (const auto& s : p.states_) {
    refs.push_back(&s.ref);
  }
  p.groups_ = group_by_slot({refs.data(), refs.size()});
  for (size_t g = 0; g < p.groups_.size(); ++g) {
    for (uint32_t i : p.groups_[g]) {
      p.states_[i].group = g;
    }
  }
  return p;
}

void RateLimiter::build_commands(CheckPlan& p, std::vector<Held>* carry) const {
  CheckPlan::Small<const StateRef*, 4> refs;
  CheckPlan::Small<const StateRef*, 4> carried;
  CheckPlan::Small<uint64_t, 4> carried_costs;
  for (const auto& group : p.groups_) {
    refs.clear();
    for (uint32_t i : group) {
      refs.push_back(&p.states_[i].ref);
    }
    carried.clear();
    carried_costs.clear();
    uint16_t slot = 0;
    if (carry != nullptr && !carry->empty()) {
      if (client_.is_cluster()) slot = redis::key_slot(refs.front()->keys.front());
      for (const Held& h : *carry) {
        if (h.slot == slot) {
          carried.push_back(&h.state);
          carried_costs.push_back(h.new_cost);
        }
      }
    }
    p.commands_.push_back(check_command({refs.data(), refs.size()}, options_.fixed_now_us,
                                        {carried.data(), carried.size()},
                                        {carried_costs.data(), carried_costs.size()}));
    p.carried_.push_back(static_cast<uint32_t>(carried.size()));
    if (!carried.empty()) {
      // The command holds their bytes now.
      std::erase_if(*carry, [slot](const Held& h) { return h.slot == slot; });
    }
  }
}

CheckPlan RateLimiter::plan(const RequestFacts& facts,
                            std::span<const config::RateLimitPolicy> extra_policies) const {
  CheckPlan p = plan_states(facts, extra_policies);
  build_commands(p, nullptr);
  return p;
}

// ---------------------------------------------------------------------------------------
// Deciding.

Awaitable<Decision> RateLimiter::check(const RequestFacts& facts,
                                       std::span<const config::RateLimitPolicy> extra_policies) {
  CheckPlan p = plan_states(facts, extra_policies);
  build_commands(p, &held_);
  size_t carried = 0;
  for (uint32_t n : p.carried_) carried += n;
  if (carried > 0) pending_count_.fetch_sub(carried, std::memory_order_relaxed);
  std::vector<redis::Result<redis::Reply>> replies;
  if (!p.commands_.empty()) {
    std::span<const redis::Command> cmds = p.commands();
    replies = co_await client_.batch(cmds);
  }
  std::span<redis::Result<redis::Reply>> answered = replies;
  co_return co_await complete(p, answered);
}

void RateLimiter::fail_over(CheckPlan& plan, size_t group, const redis::Error& error) {
  const std::string what = error.to_string();
  for (size_t i : plan.groups_[group]) {
    CheckPlan::State& s = plan.states_[i];
    const config::FailMode mode = s.policy->def.fail_mode;
    switch (mode) {
      case config::FailMode::kOpen:
        s.source = CheckPlan::Source::kOpen;
        s.result = StateResult{};
        s.result.admitted = true;
        break;
      case config::FailMode::kClosed:
        s.source = CheckPlan::Source::kClosed;
        s.result = StateResult{};
        break;
      case config::FailMode::kLocal: {
        auto r = shared_->local().acquire(s.ref.keys.front(), s.local_limit, s.ref.window_ms,
                                          s.ref.cost, now_ms());
        s.source = CheckPlan::Source::kLocal;
        s.result.admitted = r.admitted;
        s.result.remaining = r.remaining;
        s.result.reset_ms = r.reset_ms;
        s.result.next_ms = r.reset_ms;
        s.result.retry_ms = r.retry_ms;
        s.result.handle = r.handle;
        s.committed = r.admitted;
        break;
      }
    }
    shared_->log_degraded(mode, s.policy->id, what, options_.log_interval);
  }
}

Awaitable<Decision> RateLimiter::complete(CheckPlan& plan,
                                          std::span<redis::Result<redis::Reply>> answered) {
  bump(k_checks);
  if (plan.states_.empty()) {
    bump(k_unlimited);
    co_return Decision{};
  }
  // The reply of each command, read in place. A missing reply is an error result ("no
  // result"): its policies fail over.
  redis::Result<redis::Reply> no_result;
  CheckPlan::Small<redis::Result<redis::Reply>*, 2> replies;
  for (size_t g = 0; g < plan.commands_.size(); ++g) {
    replies.push_back(g < answered.size() ? &answered[g] : &no_result);
  }
  bump(k_script_calls, plan.commands_.size());

  // First call on a node (or after SCRIPT FLUSH / a failover): EVALSHA -> NOSCRIPT -> EVAL.
  std::vector<size_t> missing;
  std::vector<redis::Command> evals;
  for (size_t g = 0; g < replies.size(); ++g) {
    if (!replies[g]->ok() && redis::is_noscript(replies[g]->error())) {
      missing.push_back(g);
      evals.push_back(limiter_script().as_eval(plan.commands_[g]));
    }
  }
  std::vector<redis::Result<redis::Reply>> retried;
  if (!evals.empty()) {
    std::span<const redis::Command> again = evals;
    retried = co_await client_.batch(again);
    bump(k_script_calls, evals.size());
    for (size_t k = 0; k < missing.size(); ++k) {
      replies[missing[k]] = k < retried.size() ? &retried[k] : &no_result;
    }
  }

  bool all_answered = true;
  CheckPlan::Small<StateResult, 4> parsed;
  for (size_t g = 0; g < plan.groups_.size(); ++g) {
    const auto& group = plan.groups_[g];
    const auto& r = *replies[g];
    if (!r.ok()) {
      bump(k_redis_errors);
      if (g < plan.carried_.size() && plan.carried_[g] > 0) {
        bump(k_settle_errors);
        warn_settle_failed(r.error());
      }
      all_answered = false;
      fail_over(plan, g, r.error());
      continue;
    }
    parsed.resize(group.size());
    bool admitted = false;
    if (!parse_check_reply(*r, {parsed.data(), parsed.size()}, admitted)) {
      bump(k_redis_errors);
      all_answered = false;
      const redis::Error bad{redis::ErrorKind::kProtocolError,
                             "unexpected rate-limit script reply " + r->debug_string()};
      fail_over(plan, g, bad);
      continue;
    }
    for (size_t k = 0; k < group.size(); ++k) {
      CheckPlan::State& s = plan.states_[group[k]];
      s.source = CheckPlan::Source::kRedis;
      s.result = parsed[k];
      s.committed = admitted;
    }
  }
  if (all_answered) {
    shared_->log_recovered();
  }

  bool refused = false;
  for (const auto& s : plan.states_) {
    if (!s.result.admitted) {
      refused = true;
    }
  }
  if (refused) {
    co_await refund(plan);
  }
  co_return decide(plan);
}

Awaitable<void> RateLimiter::refund(CheckPlan& plan) {
  std::vector<const StateRef*> refs;
  std::vector<StateRef> with_handles;
  with_handles.reserve(plan.states_.size());
  for (auto& s : plan.states_) {
    if (!s.committed) {
      continue;
    }
    s.committed = false;
    // What was consumed is back: report the state as it was before this request.
    s.result.remaining =
        std::min(s.result.remaining + s.ref.cost,
                 s.source == CheckPlan::Source::kLocal ? s.local_limit : s.ref.limit);
    bump(k_refunds);
    if (s.source == CheckPlan::Source::kLocal) {
      shared_->local().adjust(s.ref.keys.front(), s.result.handle,
                              -static_cast<int64_t>(s.ref.cost));
      continue;
    }
    StateRef ref = s.ref;
    ref.handle = s.result.handle;
    with_handles.push_back(std::move(ref));
  }
  if (with_handles.empty()) {
    co_return;
  }
  refs.reserve(with_handles.size());
  for (const auto& r : with_handles) {
    refs.push_back(&r);
  }
  const std::vector<uint64_t> zeros(refs.size(), 0);
  const std::span<const StateRef* const> states(refs);
  const std::span<const uint64_t> new_costs(zeros);
  auto results = co_await send_settles(states, new_costs);
  note_settled(results);
}

Decision RateLimiter::decide(CheckPlan& plan) {
  using Source = CheckPlan::Source;
  Decision d;
  bool redis_refused = false, local_refused = false, closed = false, open = false, local = false;
  const CheckPlan::State* refuser = nullptr;
  const CheckPlan::State* closer = nullptr;
  // A retry of -1 (never fits) sorts last: it is the most restrictive answer.
  auto retry_rank = [](const CheckPlan::State* s) {
    return s->result.retry_ms < 0 ? INT64_MAX : s->result.retry_ms;
  };
  for (const auto& s : plan.states_) {
    switch (s.source) {
      case Source::kRedis:
        if (!s.result.admitted) {
          redis_refused = true;
        }
        break;
      case Source::kLocal:
        local = true;
        if (!s.result.admitted) {
          local_refused = true;
        }
        break;
      case Source::kOpen:
        open = true;
        break;
      case Source::kClosed:
        closed = true;
        if (!closer) {
          closer = &s;
        }
        break;
    }
    const bool refuses =
        (s.source == Source::kRedis || s.source == Source::kLocal) && !s.result.admitted;
    if (refuses && (!refuser || retry_rank(&s) > retry_rank(refuser))) {
      refuser = &s;
    }
  }
  if (redis_refused) {
    d.outcome = Outcome::kRefused;
  } else if (local_refused) {
    d.outcome = Outcome::kLocalRefused;
  } else if (closed) {
    d.outcome = Outcome::kFailClosed;
  } else if (open) {
    d.outcome = Outcome::kFailOpen;
  } else if (local) {
    d.outcome = Outcome::kLocalAdmitted;
  } else {
    d.outcome = Outcome::kAdmitted;
  }
  switch (d.outcome) {
    case Outcome::kUnlimited:
      bump(k_unlimited);
      break;
    case Outcome::kAdmitted:
      bump(k_admitted);
      break;
    case Outcome::kRefused:
      bump(k_refused);
      break;
    case Outcome::kFailOpen:
      bump(k_fail_open);
      break;
    case Outcome::kLocalAdmitted:
      bump(k_local_admitted);
      break;
    case Outcome::kLocalRefused:
      bump(k_local_refused);
      break;
    case Outcome::kFailClosed:
      bump(k_fail_closed);
      break;
  }

  // The most restrictive state per quantity: the refusing one if that quantity refused,
  // else the fewest units left (ties: the longest wait until full).
  for (Quantity q : {Quantity::kRequests, Quantity::kTokens}) {
    const CheckPlan::State* best = nullptr;
    for (const auto& s : plan.states_) {
      if (s.quantity != q || (s.source != Source::kRedis && s.source != Source::kLocal)) {
        continue;
      }
      if (!best) {
        best = &s;
        continue;
      }
      const bool s_refuses = !s.result.admitted, b_refuses = !best->result.admitted;
      if (s_refuses != b_refuses) {
        if (s_refuses) {
          best = &s;
        }
        continue;
      }
      if (s_refuses) {
        if (retry_rank(&s) > retry_rank(best)) {
          best = &s;
        }
      } else if (s.result.remaining < best->result.remaining ||
                 (s.result.remaining == best->result.remaining &&
                  s.result.reset_ms > best->result.reset_ms)) {
        best = &s;
      }
    }
    if (!best) {
      continue;
    }
    QuotaStatus status;
    status.policy_id = best->policy->id;
    status.limit = best->source == Source::kLocal ? best->local_limit : best->ref.limit;
    status.remaining = best->result.remaining;
    status.window_s = static_cast<uint64_t>(best->policy->def.window.count());
    status.reset_ms = best->result.reset_ms;
    status.next_ms = best->result.next_ms;
    (q == Quantity::kRequests ? d.requests : d.tokens) = std::move(status);
  }
  append_quota_headers(d.requests, d.tokens, d.headers);

  if (refuser && !d.admitted()) {
    const CheckPlan::State& s = *refuser;
    d.policy_id = s.policy->id;
    d.policy = s.policy->description;
    d.quantity = s.quantity;
    const std::string unit(quantity_name(s.quantity));
    const uint64_t limit = s.source == Source::kLocal ? s.local_limit : s.ref.limit;
    if (s.result.retry_ms < 0) {
      d.retry_after = std::max<uint64_t>(1, static_cast<uint64_t>(s.policy->def.window.count()));
      d.message = "Request needs " + std::to_string(s.ref.cost) + " " + unit + ", more than " +
                  "rate-limit policy " + s.policy->id + " (" + s.policy->description +
                  ") allows at once (" + std::to_string(limit) + "); it cannot be admitted.";
    } else {
      d.retry_after = std::max<uint64_t>(1, ceil_seconds(static_cast<uint64_t>(s.result.retry_ms)));
      d.message = "Rate limit reached for " + unit + " on policy " + s.policy->id + " (" +
                  s.policy->description + "): limit " + std::to_string(limit) + ", remaining " +
                  std::to_string(s.result.remaining) + ", requested " + std::to_string(s.ref.cost) +
                  ". Please try again in " +
                  format_duration(static_cast<uint64_t>(s.result.retry_ms)) + ".";
    }
    if (s.source == Source::kLocal) {
      d.message += " (Decided in-process: the shared limit store is unavailable.)";
    }
    d.headers.push_back({"retry-after", std::to_string(d.retry_after)});
  } else if (d.outcome == Outcome::kFailClosed && closer) {
    d.policy_id = closer->policy->id;
    d.policy = closer->policy->description;
    d.quantity = closer->quantity;
    d.message = "Rate limiting is unavailable (its store cannot be reached) and policy " +
                closer->policy->id + " (" + closer->policy->description +
                ") refuses requests until it is back.";
  }
  if (open || local || closed) {
    d.headers.push_back({"x-redline-ratelimit", "degraded"});
  }

  if (d.admitted()) {
    // The plan is spent: its token states move into the reservation.
    d.reservation.estimated_tokens = plan.estimated_tokens;
    auto reserved = [](const CheckPlan::State& s) {
      return s.quantity == Quantity::kTokens && s.committed;
    };
    const auto n = std::count_if(plan.states_.begin(), plan.states_.end(), reserved);
    d.reservation.states.reserve(static_cast<size_t>(n));
    for (auto& s : plan.states_) {
      if (!reserved(s)) {
        continue;
      }
      ReservedState& r = d.reservation.states.emplace_back();
      r.state = std::move(s.ref);
      r.state.handle = s.result.handle;
      r.local = s.source == Source::kLocal;
      r.local_limit = s.local_limit;
    }
  }
  return d;
}

// ---------------------------------------------------------------------------------------
// Settling.

RateLimiter::SettleCalls RateLimiter::settle_calls(std::span<const StateRef* const> states,
                                                   std::span<const uint64_t> new_costs) {
  SettleCalls cmds;
  if (states.empty()) {
    return cmds;
  }
  if (!client_.is_cluster()) {
    cmds.push_back(settle_command(states, new_costs, options_.fixed_now_us));
  } else {
    CheckPlan::Small<const StateRef*, 4> refs;
    CheckPlan::Small<uint64_t, 4> costs;
    for (const auto& g : group_by_slot(states)) {
      refs.clear();
      costs.clear();
      for (uint32_t i : g) {
        refs.push_back(states[i]);
        costs.push_back(new_costs[i]);
      }
      cmds.push_back(settle_command({refs.data(), refs.size()}, {costs.data(), costs.size()},
                                    options_.fixed_now_us));
    }
  }
  bump(k_script_calls, cmds.size());
  return cmds;
}

Awaitable<std::vector<redis::Result<redis::Reply>>> RateLimiter::send_settles(
    std::span<const StateRef* const> states, std::span<const uint64_t> new_costs) {
  const SettleCalls cmds = settle_calls(states, new_costs);
  std::span<const redis::Command> calls(cmds.data(), cmds.size());
  co_return co_await limiter_script().run_batch(client_, calls);
}

void RateLimiter::warn_settle_failed(const redis::Error& error) const {
  static std::atomic<int64_t> last_log{0};
  const int64_t now = steady_ms();
  int64_t last = last_log.load(std::memory_order_relaxed);
  if (now - last >= options_.log_interval.count() &&
      last_log.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
    spdlog::warn(
        "rate limit: could not settle a token reservation ({}); the estimate stays "
        "charged",
        error.to_string());
  }
}

bool RateLimiter::note_settled(std::span<const redis::Result<redis::Reply>> results) {
  bool ok = true;
  for (const auto& r : results) {
    if (r.ok()) {
      continue;
    }
    ok = false;
    bump(k_redis_errors);
    bump(k_settle_errors);
    warn_settle_failed(r.error());
  }
  return ok;
}

template <typename OnRedis>
void RateLimiter::split_settlement(Reservation& reservation, uint64_t actual_tokens,
                                   OnRedis&& on_redis) {
  reservation.settled = true;
  bool changed = false;
  for (auto& r : reservation.states) {
    if (r.state.cost == actual_tokens) {
      continue;
    }
    changed = true;
    if (r.local) {
      const int64_t delta =
          static_cast<int64_t>(actual_tokens) - static_cast<int64_t>(r.state.cost);
      shared_->local().adjust(r.state.keys.front(), r.state.handle, delta);
      continue;
    }
    on_redis(r.state);
  }
  if (changed) {
    bump(k_settlements);
  }
}

Awaitable<void> RateLimiter::settle(Reservation& reservation, uint64_t actual_tokens) {
  if (options_.settle_delay.count() > 0) {
    auto executor = co_await boost::asio::this_coro::executor;
    settle_held(reservation, actual_tokens, executor);
    co_return;
  }
  if (reservation.settled) {
    co_return;
  }
  CheckPlan::Small<const StateRef*, 4> refs;
  CheckPlan::Small<uint64_t, 4> costs;
  split_settlement(reservation, actual_tokens, [&](StateRef& state) {
    refs.push_back(&state);
    costs.push_back(actual_tokens);
  });
  if (refs.empty()) {
    co_return;
  }
  const std::span<const StateRef* const> states(refs.data(), refs.size());
  const std::span<const uint64_t> new_costs(costs.data(), costs.size());
  auto results = co_await send_settles(states, new_costs);
  note_settled(results);
}

bool RateLimiter::settle_held(Reservation& reservation, uint64_t actual_tokens,
                              const boost::asio::any_io_executor& executor) {
  if (options_.settle_delay.count() == 0) {
    return false;
  }
  if (reservation.settled) {
    return true;
  }
  size_t held = 0;
  split_settlement(reservation, actual_tokens, [&](StateRef& state) {
    // Moved: the reservation is settled and done with its states.
    const uint16_t slot = client_.is_cluster() ? redis::key_slot(state.keys.front()) : uint16_t{0};
    held_.push_back(Held{std::move(state), actual_tokens, slot});
    ++held;
  });
  if (held > 0) {
    pending_count_.fetch_add(held, std::memory_order_relaxed);
    if (!flushing_) {
      flushing_ = true;
      boost::asio::co_spawn(executor, flush_later(alive_), boost::asio::detached);
    }
  }
  return true;
}

uint64_t RateLimiter::cache_hit_charge(uint64_t cached_usage_tokens) const {
  return options_.cache_hits_consume_tokens ? cached_usage_tokens : 0;
}

Awaitable<void> RateLimiter::flush_later(std::shared_ptr<bool> alive) {
  auto executor = co_await boost::asio::this_coro::executor;
  boost::asio::steady_timer timer(executor);
  while (true) {
    timer.expires_after(options_.settle_delay);
    boost::system::error_code ec;
    co_await timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (!*alive) co_return;  // the limiter is gone (a test's io_context outlived it)
    if (held_.empty()) {
      flushing_ = false;
      co_return;
    }
    std::vector<Held> due = std::move(held_);
    held_.clear();
    CheckPlan::Small<const StateRef*, 4> refs;
    CheckPlan::Small<uint64_t, 4> costs;
    for (const Held& h : due) {
      refs.push_back(&h.state);
      costs.push_back(h.new_cost);
    }
    const std::span<const StateRef* const> states(refs.data(), refs.size());
    const std::span<const uint64_t> new_costs(costs.data(), costs.size());
    auto results = co_await send_settles(states, new_costs);
    if (!*alive) co_return;
    note_settled(results);
    pending_count_.fetch_sub(due.size(), std::memory_order_relaxed);
  }
}

Awaitable<void> RateLimiter::settle_cache_hit(Reservation& reservation,
                                              uint64_t cached_usage_tokens) {
  co_await settle(reservation, cache_hit_charge(cached_usage_tokens));
}

LimiterStats RateLimiter::stats() const {
  LimiterStats s;
#define REDLINE_RATELIMIT_STAT_READ(name, help) \
  s.name = counters_[k_##name].load(std::memory_order_relaxed);
  REDLINE_RATELIMIT_STATS(REDLINE_RATELIMIT_STAT_READ)
#undef REDLINE_RATELIMIT_STAT_READ
  return s;
}

}  // namespace redline::ratelimit
