// Policy ids, descriptions, subjects and key names (see policy.h). Pure string work.
#include "ratelimit/policy.h"

#include <xxhash.h>

#include <algorithm>
#include <map>

namespace redline::ratelimit {

using config::RateLimitAlgorithm;
using config::RateLimitScope;

std::string_view algorithm_name(RateLimitAlgorithm a) {
  switch (a) {
    case RateLimitAlgorithm::kSlidingWindowLog:
      return "sliding-window-log";
    case RateLimitAlgorithm::kSlidingWindowCounter:
      return "sliding-window-counter";
    case RateLimitAlgorithm::kTokenBucket:
      return "token-bucket";
    case RateLimitAlgorithm::kFixedWindow:
      return "fixed-window";
  }
  return "unknown";
}

std::string_view algorithm_code(RateLimitAlgorithm a) {
  switch (a) {
    case RateLimitAlgorithm::kSlidingWindowLog:
      return "swl";
    case RateLimitAlgorithm::kSlidingWindowCounter:
      return "swc";
    case RateLimitAlgorithm::kTokenBucket:
      return "tb";
    case RateLimitAlgorithm::kFixedWindow:
      return "fw";
  }
  return "unknown";
}

std::string_view scope_name(RateLimitScope s) {
  switch (s) {
    case RateLimitScope::kKey:
      return "key";
    case RateLimitScope::kTenant:
      return "tenant";
    case RateLimitScope::kModel:
      return "model";
    case RateLimitScope::kIp:
      return "ip";
    case RateLimitScope::kGlobal:
      return "global";
  }
  return "unknown";
}

std::string_view fail_mode_name(config::FailMode m) {
  switch (m) {
    case config::FailMode::kOpen:
      return "open";
    case config::FailMode::kClosed:
      return "closed";
    case config::FailMode::kLocal:
      return "local";
  }
  return "unknown";
}

uint64_t burst_for(const config::RateLimitPolicy& p, Quantity q) {
  const std::optional<uint64_t>& limit = q == Quantity::kRequests ? p.requests : p.tokens;
  if (!limit) {
    return 0;
  }
  if (!p.burst || p.algorithm != RateLimitAlgorithm::kTokenBucket) {
    return *limit;
  }
  if (q == Quantity::kRequests || !p.requests) {
    return *p.burst;
  }
  // Tokens of a policy that also limits requests: the same ratio as the request bucket.
  const auto scaled =
      (static_cast<unsigned __int128>(*p.tokens) * *p.burst + *p.requests - 1) / *p.requests;
  return static_cast<uint64_t>(std::max<unsigned __int128>(1, scaled));
}

uint64_t CompiledPolicy::limit(Quantity q) const {
  const std::optional<uint64_t>& l = q == Quantity::kRequests ? def.requests : def.tokens;
  return l.value_or(0);
}

uint64_t CompiledPolicy::burst(Quantity q) const {
  return burst_for(def, q);
}

namespace {

std::string base_id(const config::RateLimitPolicy& p) {
  std::string id;
  for (size_t i = 0; i < p.scopes.size(); ++i) {
    if (i > 0) {
      id += '+';
    }
    id += scope_name(p.scopes[i]);
  }
  id += '-';
  id += std::to_string(p.window.count());
  id += "s-";
  id += algorithm_code(p.algorithm);
  return id;
}

}  // namespace

std::string describe(const config::RateLimitPolicy& p) {
  std::string d;
  if (p.requests) {
    d += std::to_string(*p.requests) + " requests";
  }
  if (p.tokens) {
    if (!d.empty()) {
      d += " and ";
    }
    d += std::to_string(*p.tokens) + " tokens";
  }
  d += " per " + std::to_string(p.window.count()) + "s";
  bool global = true;
  std::string scopes;
  for (auto s : p.scopes) {
    if (s == RateLimitScope::kGlobal) {
      continue;
    }
    if (!scopes.empty()) {
      scopes += " and ";
    }
    scopes += scope_name(s);
    global = false;
  }
  d += global ? " in total" : " per " + scopes;
  d += " (";
  d += algorithm_name(p.algorithm);
  d += ")";
  return d;
}

std::vector<CompiledPolicy> compile_policies(std::span<const config::RateLimitPolicy> policies,
                                             bool own) {
  std::vector<CompiledPolicy> out;
  out.reserve(policies.size());
  std::map<std::string, int> seen;
  for (const auto& p : policies) {
    std::string id = (own ? "own-" : "") + base_id(p);
    const int n = ++seen[id];
    if (n > 1) {
      id += '-';
      id += std::to_string(n);
    }
    CompiledPolicy c;
    c.def = p;
    c.id = std::move(id);
    c.description = describe(p);
    for (Quantity q : {Quantity::kRequests, Quantity::kTokens}) {
      c.limits[static_cast<size_t>(q)] = c.limit(q);
      c.bursts[static_cast<size_t>(q)] = c.burst(q);
    }
    c.key_prefix = "rl:{" + c.id;
    c.has_subject = std::any_of(p.scopes.begin(), p.scopes.end(),
                                [](RateLimitScope s) { return s != RateLimitScope::kGlobal; });
    out.push_back(std::move(c));
  }
  return out;
}

void append_scope_value(std::string& out, std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  const size_t start = out.size();
  for (unsigned char c : value) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '-' || c == '.' || c == '_' || c == '@' || c == '/' || c == '+';
    if (plain) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  if (out.size() - start > 96) {
    const uint64_t h = XXH3_64bits(value.data(), value.size());
    out.resize(start);
    out += '~';
    for (size_t i = 0; i < 16; ++i) {
      out += "0123456789abcdef"[(h >> (60 - 4 * i)) & 0xf];
    }
  }
}

std::string escape_scope_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  append_scope_value(out, value);
  return out;
}

bool append_subject(std::string& out, const config::RateLimitPolicy& p, const RequestFacts& facts) {
  bool first = true;
  for (auto s : p.scopes) {
    std::string_view v;
    switch (s) {
      case RateLimitScope::kKey:
        v = facts.key_id;
        break;
      case RateLimitScope::kTenant:
        v = facts.tenant;
        break;
      case RateLimitScope::kModel:
        v = facts.model;
        break;
      case RateLimitScope::kIp:
        v = facts.ip;
        break;
      case RateLimitScope::kGlobal:
        continue;
    }
    if (v.empty()) {
      return false;
    }
    if (!first) {
      out += ',';
    }
    append_scope_value(out, v);
    first = false;
  }
  return true;
}

std::optional<std::string> subject_of(const config::RateLimitPolicy& p, const RequestFacts& facts) {
  std::string subject;
  if (!append_subject(subject, p, facts)) {
    return std::nullopt;
  }
  return subject;
}

std::string key_base(std::string_view policy_id, std::string_view subject) {
  std::string k;
  k.reserve(6 + policy_id.size() + subject.size());
  k += "rl:{";
  k += policy_id;
  if (!subject.empty()) {
    k += ':';
    k += subject;
  }
  k += '}';
  return k;
}

std::string state_key(std::string_view base, Quantity q) {
  std::string k(base);
  k += q == Quantity::kRequests ? ":req" : ":tok";
  return k;
}

std::vector<std::string> state_keys(std::string_view state, config::RateLimitAlgorithm a) {
  std::vector<std::string> keys{std::string(state)};
  if (a == RateLimitAlgorithm::kSlidingWindowLog) {
    keys.push_back(std::string(state) + ":meta");
  }
  return keys;
}

}  // namespace redline::ratelimit
