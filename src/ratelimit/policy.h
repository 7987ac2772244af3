// Rate-limit policies as the limiter uses them: a stable id per policy, a human description,
// the request facts a policy is scoped by, and the Redis keys of one policy's subject
// (rl:{<policy-id>:<scope values>}:req|tok). It does no I/O and decides nothing.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace redline::ratelimit {

// What a request carries that policies are scoped by. Empty strings mean "unknown": a policy
// scoped by an unknown fact does not apply to the request (e.g. a per-model limit on
// GET /v1/models). The views must outlive the check() call only.
struct RequestFacts {
  std::string_view key_id;  // stable id of the virtual key, e.g. a prefix of its sha256 hex
  std::string_view tenant;
  std::string_view model;
  std::string_view ip;
  uint64_t estimated_tokens = 0;  // reserved on token policies (see estimate_tokens())
};

// The two quantities a policy can limit; each has its own limiter state and headers.
enum class Quantity : uint8_t { kRequests, kTokens };
constexpr std::string_view quantity_name(Quantity q) {
  return q == Quantity::kRequests ? "requests" : "tokens";
}

std::string_view algorithm_name(config::RateLimitAlgorithm a);  // "sliding-window-log"
std::string_view algorithm_code(config::RateLimitAlgorithm a);  // "swl" (ids, script args)
std::string_view scope_name(config::RateLimitScope s);          // "tenant"
std::string_view fail_mode_name(config::FailMode m);            // "open"

// A policy with the names the limiter, its keys, headers and logs use.
struct CompiledPolicy {
  config::RateLimitPolicy def;
  // "<scopes joined by +>-<window>s-<algorithm code>", e.g. "tenant+model-60s-tb"; policies
  // from a key's own list are prefixed "own-"; a repeat within one list gets "-2", "-3", ...
  // The algorithm and window are part of it because they shape the stored state.
  std::string id;
  // "60 requests and 100000 tokens per 60s per tenant and model (token-bucket)"
  std::string description;

  uint64_t limit(Quantity q) const;  // 0 when the policy does not limit q
  uint64_t burst(Quantity q) const;  // token-bucket size in q's units (see burst_for())
  uint64_t window_ms() const { return static_cast<uint64_t>(def.window.count()) * 1000; }

  // Derived once by compile_policies() for the request path (the limiter reads these, not
  // the functions above): limit and burst per quantity (index: Quantity), "rl:{<id>" (the
  // start of every key, see key_base()), and whether a scope other than global gives the
  // keys a subject.
  std::array<uint64_t, 2> limits{};
  std::array<uint64_t, 2> bursts{};
  std::string key_prefix;
  bool has_subject = false;
};

// Compiles a list of policies; `own` marks a key's own list (ids get the "own-" prefix).
std::vector<CompiledPolicy> compile_policies(std::span<const config::RateLimitPolicy> policies,
                                             bool own = false);

std::string describe(const config::RateLimitPolicy& p);

// Token-bucket size: `burst` when set, else the limit. `burst` is counted in requests when
// the policy limits requests; its token bucket then scales by the same ratio
// (tokens * burst / requests, rounded up). A tokens-only policy counts `burst` in tokens.
uint64_t burst_for(const config::RateLimitPolicy& p, Quantity q);

// The scope values of `facts` for policy `p`, escaped and joined with ',' in the policy's
// scope order ("" for global); nullopt when a scope's fact is empty (policy does not apply).
std::optional<std::string> subject_of(const config::RateLimitPolicy& p, const RequestFacts& facts);

// One scope value made safe inside a hash tag: bytes outside [A-Za-z0-9-._@/+] become %XX
// (so no '}' ends the tag early, no ',' splits values); results longer than 96 bytes are
// replaced by "~" + 16 hex digits of XXH3-64 of the raw value.
std::string escape_scope_value(std::string_view value);
// escape_scope_value() appended to `out`.
void append_scope_value(std::string& out, std::string_view value);
// subject_of() appended to `out`; false (and `out` partly written) when a scope's fact is
// empty.
bool append_subject(std::string& out, const config::RateLimitPolicy& p, const RequestFacts& facts);

// "rl:{<id>:<subject>}" ("rl:{<id>}" for an empty subject): the prefix of every key of one
// policy for one subject; the braces make them one Redis Cluster slot.
std::string key_base(std::string_view policy_id, std::string_view subject);
// The limiter state of one quantity: "<base>:req" / "<base>:tok".
std::string state_key(std::string_view base, Quantity q);
// Every KEYS[] entry of one limiter state (sliding-window-log adds "<state>:meta").
std::vector<std::string> state_keys(std::string_view state, config::RateLimitAlgorithm a);

}  // namespace redline::ratelimit
