// Rate-limit response headers: OpenAI's x-ratelimit-* set (durations like "6m0s") and the
// IETF RateLimit / RateLimit-Policy fields of draft-ietf-httpapi-ratelimit-headers-10
// (structured-field lists of named items: "name";q=..;w=.. and "name";r=..;t=..).
// Pure formatting: the limiter decides which policy's numbers go in.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace redline::ratelimit {

struct Header {
  std::string name;  // lower case
  std::string value;
  bool operator==(const Header&) const = default;
};

// One quantity's numbers from one policy (the most restrictive one for that quantity).
struct QuotaStatus {
  std::string policy_id;
  uint64_t limit = 0;
  uint64_t remaining = 0;
  uint64_t window_s = 0;
  uint64_t reset_ms = 0;  // until the limit is fully available again (OpenAI "reset")
  uint64_t next_ms = 0;   // until more quota becomes available (IETF "t")
};

// OpenAI's duration format (Go's time.Duration at millisecond resolution): "0s", "120ms",
// "1s", "1.5s", "6m0s", "1h2m3s", "1h0m0.25s".
std::string format_duration(uint64_t ms);

// Seconds rounded up, for delay-seconds fields (retry-after, IETF t).
constexpr uint64_t ceil_seconds(uint64_t ms) {
  return (ms + 999) / 1000;
}

// Structured-field string item: "text" with \ and " escaped (ids are plain ASCII anyway).
std::string sf_string(std::string_view text);

// The IETF item names: "<policy-id>-requests" / "<policy-id>-tokens".
std::string ietf_name(const QuotaStatus& q, std::string_view quantity);

// Appends x-ratelimit-{limit,remaining,reset}-<quantity> for each present quantity, then
// RateLimit-Policy and RateLimit listing the present quantities (requests first; the tokens
// item carries qu="tokens").
void append_quota_headers(const std::optional<QuotaStatus>& requests,
                          const std::optional<QuotaStatus>& tokens, std::vector<Header>& out);

}  // namespace redline::ratelimit
