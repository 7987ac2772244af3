// Shared pieces of the Chat <-> Messages translation (see shapes.h).
#include "translate/shapes.h"

#include <fmt/format.h>

#include <chrono>

#include "common/error_body.h"
#include "common/json_text.h"
#include "common/random_ids.h"

namespace redline::translate::detail {
namespace {

std::string random_suffix() {
  return fmt::format("{:016x}{:08x}", common::random_u64(),
                     static_cast<uint32_t>(common::random_u64()));
}

// The id's part after `prefix` (the whole id when it has another prefix).
std::string suffix_of(std::string_view id, std::string_view prefix) {
  if (id.starts_with(prefix)) id.remove_prefix(prefix.size());
  return id.empty() ? random_suffix() : std::string(id);
}

}  // namespace

const json::value* present(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && !v->is_null() ? v : nullptr;
}

std::string_view string_field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string_view(v->get_string()) : std::string_view{};
}

std::optional<uint64_t> count_field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (const int64_t* i = v->if_int64(); i != nullptr && *i >= 0) return static_cast<uint64_t>(*i);
  if (const uint64_t* u = v->if_uint64()) return *u;
  return std::nullopt;
}

std::string chat_id_from(std::string_view message_id) {
  std::string id = "chatcmpl-";
  id += suffix_of(message_id, "msg_");
  return id;
}

std::string message_id_from(std::string_view chat_id) {
  std::string id = "msg_";
  id += suffix_of(chat_id, "chatcmpl-");
  return id;
}

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string_view finish_reason_for(std::string_view stop_reason) {
  if (stop_reason == "max_tokens" || stop_reason == "model_context_window_exceeded") {
    return "length";
  }
  if (stop_reason == "tool_use") return "tool_calls";
  if (stop_reason == "refusal") return "content_filter";
  return "stop";  // end_turn, stop_sequence, pause_turn
}

std::string_view stop_reason_for(std::string_view finish_reason) {
  if (finish_reason == "length") return "max_tokens";
  if (finish_reason == "tool_calls" || finish_reason == "function_call") return "tool_use";
  if (finish_reason == "content_filter") return "refusal";
  return "end_turn";  // stop
}

void Usage::add_messages(const json::object& usage) {
  if (auto n = count_field(usage, "input_tokens")) input = *n;
  if (auto n = count_field(usage, "cache_read_input_tokens")) cache_read = *n;
  if (auto n = count_field(usage, "cache_creation_input_tokens")) cache_creation = *n;
  if (auto n = count_field(usage, "output_tokens")) output = *n;
}

void Usage::add_chat(const json::object& usage) {
  uint64_t prompt = input + cache_read + cache_creation;
  if (auto n = count_field(usage, "prompt_tokens")) prompt = *n;
  if (const json::value* d = present(usage, "prompt_tokens_details"); d && d->is_object()) {
    if (auto n = count_field(d->get_object(), "cached_tokens")) cache_read = *n;
  }
  if (cache_read > prompt) cache_read = prompt;
  cache_creation = 0;
  input = prompt - cache_read;
  if (auto n = count_field(usage, "completion_tokens")) output = *n;
}

json::object Usage::chat() const {
  const uint64_t prompt = input + cache_read + cache_creation;
  json::object u;
  u["prompt_tokens"] = prompt;
  u["completion_tokens"] = output;
  u["total_tokens"] = prompt + output;
  if (cache_read > 0) {
    json::object details;
    details["cached_tokens"] = cache_read;
    u["prompt_tokens_details"] = std::move(details);
  }
  return u;
}

json::object Usage::messages() const {
  json::object u;
  u["input_tokens"] = input + cache_creation;
  u["output_tokens"] = output;
  if (cache_read > 0) u["cache_read_input_tokens"] = cache_read;
  return u;
}

std::string_view anthropic_error_type(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 503:
    case 529:
      return "overloaded_error";
    default:
      return status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
  }
}

int status_for_error_type(std::string_view type) {
  if (type == "invalid_request_error") return 400;
  if (type == "authentication_error") return 401;
  if (type == "permission_error") return 403;
  if (type == "not_found_error") return 404;
  if (type == "request_too_large") return 413;
  if (type == "rate_limit_error" || type == "insufficient_quota") return 429;
  if (type == "overloaded_error") return 529;
  if (type == "timeout_error") return 504;
  return 500;
}

namespace {

// The length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629: no overlongs,
// no surrogates, nothing above U+10FFFF), or 0.
std::size_t utf8_sequence(std::string_view s) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b0 = byte(0);
  if (b0 < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (s.size() < n || byte(1) < lo || byte(1) > hi) return 0;
  for (std::size_t i = 2; i < n; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return n;
}

}  // namespace

std::string utf8_prefix(std::string_view text, std::size_t max_bytes) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  while (!text.empty()) {
    const std::size_t n = utf8_sequence(text);
    const std::string_view piece = n == 0 ? kReplacement : text.substr(0, n);
    if (out.size() + piece.size() > max_bytes) break;
    out += piece;
    text.remove_prefix(n == 0 ? 1 : n);
  }
  return out;
}

}  // namespace redline::translate::detail
