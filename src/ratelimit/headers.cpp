// Header formatting for rate-limit answers (see headers.h).
#include "ratelimit/headers.h"

namespace redline::ratelimit {

std::string format_duration(uint64_t ms) {
  if (ms == 0) {
    return "0s";
  }
  if (ms < 1000) {
    return std::to_string(ms) + "ms";
  }
  const uint64_t h = ms / 3'600'000;
  const uint64_t m = ms / 60'000 % 60;
  const uint64_t s = ms / 1000 % 60;
  const uint64_t frac = ms % 1000;
  std::string out;
  if (h > 0) {
    out += std::to_string(h) + "h";
  }
  if (h > 0 || m > 0) {
    out += std::to_string(m) + "m";
  }
  out += std::to_string(s);
  if (frac > 0) {
    std::string digits = std::to_string(frac);
    digits.insert(0, 3 - digits.size(), '0');
    while (digits.back() == '0') {
      digits.pop_back();
    }
    out += "." + digits;
  }
  out += "s";
  return out;
}

std::string sf_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  out += '"';
  return out;
}

std::string ietf_name(const QuotaStatus& q, std::string_view quantity) {
  return q.policy_id + "-" + std::string(quantity);
}

void append_quota_headers(const std::optional<QuotaStatus>& requests,
                          const std::optional<QuotaStatus>& tokens, std::vector<Header>& out) {
  struct Entry {
    const QuotaStatus* q;
    std::string_view quantity;
  };
  std::vector<Entry> present;
  if (requests) {
    present.push_back({&*requests, "requests"});
  }
  if (tokens) {
    present.push_back({&*tokens, "tokens"});
  }
  if (present.empty()) {
    return;
  }
  for (const auto& e : present) {
    const std::string suffix(e.quantity);
    out.push_back({"x-ratelimit-limit-" + suffix, std::to_string(e.q->limit)});
    out.push_back({"x-ratelimit-remaining-" + suffix, std::to_string(e.q->remaining)});
    out.push_back({"x-ratelimit-reset-" + suffix, format_duration(e.q->reset_ms)});
  }
  std::string policy;
  std::string state;
  for (const auto& e : present) {
    if (!policy.empty()) {
      policy += ", ";
      state += ", ";
    }
    const std::string name = sf_string(ietf_name(*e.q, e.quantity));
    policy += name + ";q=" + std::to_string(e.q->limit);
    if (e.quantity == "tokens") {
      policy += ";qu=\"tokens\"";
    }
    policy += ";w=" + std::to_string(std::max<uint64_t>(1, e.q->window_s));
    state += name + ";r=" + std::to_string(e.q->remaining) +
             ";t=" + std::to_string(ceil_seconds(e.q->next_ms));
  }
  out.push_back({"ratelimit-policy", std::move(policy)});
  out.push_back({"ratelimit", std::move(state)});
}

}  // namespace redline::ratelimit
