// Header formatting for rate-limit answers (see headers.h). Numbers are written with
// std::to_chars straight into the value they belong to; names are static.
#include "ratelimit/headers.h"

#include <algorithm>
#include <array>
#include <charconv>

namespace redline::ratelimit {

namespace {

void append_uint(std::string& out, uint64_t v) {
  char buf[20];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(end - buf));
}

std::string uint_string(uint64_t v) {
  char buf[20];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, static_cast<size_t>(end - buf));
}

// sf_string() appended to `out`.
void append_sf_string(std::string& out, std::string_view text) {
  out += '"';
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  out += '"';
}

// x-ratelimit-{limit,remaining,reset}-<quantity>, indexed [quantity][field].
constexpr std::array<std::array<std::string_view, 3>, 2> kOpenAiNames = {{
    {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"},
    {"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"},
}};

}  // namespace

void append_duration(std::string& out, uint64_t ms) {
  if (ms == 0) {
    out += "0s";
    return;
  }
  if (ms < 1000) {
    append_uint(out, ms);
    out += "ms";
    return;
  }
  const uint64_t h = ms / 3'600'000;
  const uint64_t m = ms / 60'000 % 60;
  const uint64_t s = ms / 1000 % 60;
  const uint64_t frac = ms % 1000;
  if (h > 0) {
    append_uint(out, h);
    out += 'h';
  }
  if (h > 0 || m > 0) {
    append_uint(out, m);
    out += 'm';
  }
  append_uint(out, s);
  if (frac > 0) {
    // Three digits, trailing zeros dropped: 250 -> ".25", 5 -> ".005".
    char digits[4] = {'.', static_cast<char>('0' + frac / 100),
                      static_cast<char>('0' + frac / 10 % 10), static_cast<char>('0' + frac % 10)};
    size_t n = 4;
    while (digits[n - 1] == '0') {
      --n;
    }
    out.append(digits, n);
  }
  out += 's';
}

std::string format_duration(uint64_t ms) {
  std::string out;
  append_duration(out, ms);
  return out;
}

std::string sf_string(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  append_sf_string(out, text);
  return out;
}

std::string ietf_name(const QuotaStatus& q, std::string_view quantity) {
  std::string out;
  out.reserve(q.policy_id.size() + 1 + quantity.size());
  out += q.policy_id;
  out += '-';
  out += quantity;
  return out;
}

void append_quota_headers(const std::optional<QuotaStatus>& requests,
                          const std::optional<QuotaStatus>& tokens, std::vector<Header>& out) {
  struct Entry {
    const QuotaStatus* q;
    size_t index;  // 0 requests, 1 tokens
  };
  std::array<Entry, 2> present{};
  size_t n = 0;
  if (requests) {
    present[n++] = {&*requests, 0};
  }
  if (tokens) {
    present[n++] = {&*tokens, 1};
  }
  if (n == 0) {
    return;
  }
  // Room for these, retry-after and x-redline-ratelimit: the vector grows once.
  out.reserve(out.size() + 3 * n + 4);
  size_t names = 0;  // bytes of the quoted IETF item names, for the reservations below
  for (size_t i = 0; i < n; ++i) {
    const Entry& e = present[i];
    const auto& name = kOpenAiNames[e.index];
    out.push_back({name[0], uint_string(e.q->limit)});
    out.push_back({name[1], uint_string(e.q->remaining)});
    std::string reset;
    append_duration(reset, e.q->reset_ms);
    out.push_back({name[2], std::move(reset)});
    names += e.q->policy_id.size() + 12;  // quotes, '-', "requests" (escapes are rare)
  }
  std::string policy;
  std::string state;
  policy.reserve(names + n * 48);
  state.reserve(names + n * 48);
  for (size_t i = 0; i < n; ++i) {
    const Entry& e = present[i];
    if (i > 0) {
      policy += ", ";
      state += ", ";
    }
    // The item name sf_string("<policy-id>-<quantity>"): the quantity needs no escapes.
    const size_t name_at = policy.size();
    append_sf_string(policy, e.q->policy_id);
    policy.pop_back();  // the closing quote comes after the quantity
    policy += e.index == 0 ? "-requests\"" : "-tokens\"";
    const std::string_view name(policy.data() + name_at, policy.size() - name_at);
    state += name;
    policy += ";q=";
    append_uint(policy, e.q->limit);
    if (e.index == 1) {
      policy += ";qu=\"tokens\"";
    }
    policy += ";w=";
    append_uint(policy, std::max<uint64_t>(1, e.q->window_s));
    state += ";r=";
    append_uint(state, e.q->remaining);
    state += ";t=";
    append_uint(state, ceil_seconds(e.q->next_ms));
  }
  out.push_back({"ratelimit-policy", std::move(policy)});
  out.push_back({"ratelimit", std::move(state)});
}

}  // namespace redline::ratelimit
