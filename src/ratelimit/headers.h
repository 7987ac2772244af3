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

// A header name: one of the fixed lower-case names this module sends, held as a view of
// static storage, so a decision allocates nothing for its names. Converts to std::string
// where one is taken (e.g. http::Exchange::add_response_header), compares with string views.
class HeaderName {
 public:
  constexpr HeaderName() = default;
  constexpr HeaderName(const char* text) : text_(text) {}       // NOLINT: implicit, literals
  constexpr HeaderName(std::string_view text) : text_(text) {}  // NOLINT: static storage only
  operator std::string() const { return std::string(text_); }   // NOLINT: implicit
  constexpr std::string_view view() const { return text_; }
  constexpr bool operator==(const HeaderName&) const = default;

 private:
  std::string_view text_;
};

struct Header {
  HeaderName name;  // lower case
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
// The same, appended to `out`.
void append_duration(std::string& out, uint64_t ms);

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
