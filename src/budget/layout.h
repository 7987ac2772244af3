// The state-Redis layout of spend accounting (README.md here): hash names and field names in
// one place, so record(), check(), report() and the tests never spell them twice. It does no
// I/O and knows nothing about budgets or prices.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace redline::budget::layout {

// Whose spend a hash counts: a virtual key ("k") or a tenant ("t").
enum class Scope { kKey, kTenant };

inline constexpr std::string_view kPrefix = "sp:";
// A hash lives this long past the end of its period, so past periods can still be reported.
inline constexpr int64_t kRetentionMs = 90LL * 86'400'000;

// Fields of one subject-period hash. Money in micro-dollars, tokens and counts as integers.
inline constexpr std::string_view kSpent = "spent";  // cost of answers from the provider
inline constexpr std::string_view kSaved = "saved";  // what cache hits would have cost
inline constexpr std::string_view kIn = "in";        // input tokens (provider answers only)
inline constexpr std::string_view kOut = "out";      // output tokens (provider answers only)
inline constexpr std::string_view kReq = "req";      // answers recorded (hits included)
inline constexpr std::string_view kHits = "hits";    // cache hits
// Per-model fields are "<kSpent>:<model>" and "<kSaved>:<model>" (the model name verbatim).
inline constexpr char kModelSeparator = ':';

// Percent-encodes the bytes that would make a hash name ambiguous or change its cluster slot:
// ':' (the separator), '%' (the escape itself), '{' and '}' (hash tags), and bytes outside
// printable ASCII. "acme" stays "acme"; "a:b" becomes "a%3Ab". Injective.
std::string escape_id(std::string_view id);

// "sp:k:<escaped key id>:<period id>" or "sp:t:<escaped tenant>:<period id>".
std::string hash_key(Scope scope, std::string_view id, std::string_view period_id);

// "spent:<model>" / "saved:<model>".
std::string model_field(std::string_view base, std::string_view model);

}  // namespace redline::budget::layout
