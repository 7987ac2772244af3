// Token usage as providers report it, read from a complete answer (JSON body or the SSE
// events of a stream) in either API's shape. Used to settle token rate limits and budgets
// with what the provider actually counted.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace redline::proxy {

struct Usage {
  uint64_t input_tokens = 0;   // OpenAI prompt_tokens, Anthropic input_tokens (+ cache tokens)
  uint64_t output_tokens = 0;  // OpenAI completion_tokens, Anthropic output_tokens
  uint64_t total() const { return input_tokens + output_tokens; }
  bool operator==(const Usage&) const = default;
};

// The `usage` object of an OpenAI (chat, completions, embeddings, responses) or Anthropic
// answer body; nullopt when the body has none.
std::optional<Usage> usage_from_body(std::string_view body);

// The usage carried by a stream's events: OpenAI's usage chunk, or Anthropic's message_start
// usage updated by message_delta. nullopt when no event carries usage.
std::optional<Usage> usage_from_events(std::span<const std::string> events);

}  // namespace redline::proxy
