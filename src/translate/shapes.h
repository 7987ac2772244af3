// What both translation directions share: reading JSON (simdjson, exact numbers) into
// Boost.JSON values, field accessors, and the small vocabularies that map one-to-one between
// the two APIs (ids, finish/stop reasons, usage, error types). Internal to src/translate/; the
// public interface is translate.h.
#pragma once

#include <simdjson.h>

#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/json_text.h"

namespace redline::translate::detail {

namespace json = boost::json;

// Deeper documents are refused; also bounds every recursion over a parsed value.
inline constexpr std::size_t kMaxJsonDepth = 256;

using redline::JsonReader;  // common/json_text.h (kMaxJsonDepth bounds recursion here too)

// The field's value when present and not null, else nullptr.
const json::value* present(const json::object& o, std::string_view key);
// The field's string value, or "" when absent or not a string.
std::string_view string_field(const json::object& o, std::string_view key);
// A non-negative integer field, or nullopt when absent or anything else.
std::optional<uint64_t> count_field(const json::object& o, std::string_view key);

// Ids: "msg_X" <-> "chatcmpl-X" (the provider id's suffix is kept); a fresh random suffix when
// the provider sent none.
std::string chat_id_from(std::string_view message_id);
std::string message_id_from(std::string_view chat_id);

// Seconds since the epoch, for "created".
int64_t now_seconds();

// Messages stop_reason -> Chat finish_reason: end_turn, stop_sequence, pause_turn -> "stop";
// max_tokens, model_context_window_exceeded -> "length"; tool_use -> "tool_calls"; refusal ->
// "content_filter". Unknown reasons -> "stop".
std::string_view finish_reason_for(std::string_view stop_reason);
// Chat finish_reason -> Messages stop_reason: stop -> "end_turn", length -> "max_tokens",
// tool_calls / function_call -> "tool_use", content_filter -> "refusal". Unknown -> "end_turn".
std::string_view stop_reason_for(std::string_view finish_reason);

// Token counts in one neutral form.
struct Usage {
  uint64_t input = 0;           // Messages input_tokens: not from the cache
  uint64_t cache_read = 0;      // Messages cache_read_input_tokens / Chat cached_tokens
  uint64_t cache_creation = 0;  // Messages cache_creation_input_tokens
  uint64_t output = 0;

  // Reads a Messages usage object; fields absent or null keep their current value.
  void add_messages(const json::object& usage);
  // Reads a Chat usage object (prompt_tokens includes cached tokens).
  void add_chat(const json::object& usage);
  // {prompt_tokens, completion_tokens, total_tokens[, prompt_tokens_details{cached_tokens}]}
  json::object chat() const;
  // {input_tokens, output_tokens[, cache_read_input_tokens]} (cache creation counts as input)
  json::object messages() const;
};

// Error vocabularies. Anthropic: invalid_request_error, authentication_error,
// permission_error, not_found_error, request_too_large, rate_limit_error, api_error,
// overloaded_error. OpenAI: common/error_body.h's error_type_for_status.
std::string_view anthropic_error_type(int status);
// The HTTP status an error type of either vocabulary stands for (500 when unknown).
int status_for_error_type(std::string_view type);

// Up to `max_bytes` of `text` as valid UTF-8 (for a provider's raw, non-JSON error body): a
// byte that does not begin a well-formed sequence becomes U+FFFD, and a sequence is never cut.
std::string utf8_prefix(std::string_view text, std::size_t max_bytes);

}  // namespace redline::translate::detail
