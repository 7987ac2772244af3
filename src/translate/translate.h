// OpenAI Chat Completions <-> Anthropic Messages translation, both directions, so any model
// is reachable through either API (docs/api.md has the field-by-field table). Pure functions
// and one stateful stream translator; no I/O. The pipeline translates per hop: a request whose
// client API differs from its provider's API is translated before it is sent, and the answer
// (JSON, SSE event by event, or an error) back into the caller's shape.
//
// Events are in the stored form of cache/sse.h: one event's lines without the closing blank
// line, e.g. `data: {...}` or `event: message_start\ndata: {...}`.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace redline::translate {

enum class Api { kChat, kMessages };  // POST /v1/chat/completions | POST /v1/messages

// A request field that cannot be translated: the pipeline answers 400 with this message
// (naming the field, e.g. "n: only n=1 can be translated to an Anthropic model") and the
// caller's error shape; `param` is the field path ("n", "messages[2].content[0].type").
struct Untranslatable {
  std::string message;
  std::string param;
};

struct RequestOptions {
  std::string upstream_model;          // the model name the provider gets
  uint64_t default_max_tokens = 4096;  // Messages requires max_tokens; Chat may omit it
};

// The request body for the provider's API. Chat -> Messages: system/developer messages to
// `system`, multi-part content (text, image_url data: and https: URLs), tools / tool_choice /
// assistant tool_calls / role "tool" results, stop -> stop_sequences, temperature, top_p,
// max_tokens / max_completion_tokens (default when absent), stream, user -> metadata.user_id.
// Messages -> Chat: the reverse (system -> a system message, content blocks, tool_use /
// tool_result, stop_sequences, top_k refused, ...). Streams always ask for usage
// (stream_options.include_usage) when the target is Chat.
std::variant<std::string, Untranslatable> translate_request(Api from, Api to, std::string_view body,
                                                            const RequestOptions& options);

// A complete 200 answer of the provider's API (`from`) in the caller's API (`to`): content,
// tool calls, finish/stop reason, usage, ids ("chatcmpl-..." / "msg_..." derived from the
// provider's id), `model` set to `client_model`. nullopt when the body is not a valid answer.
std::optional<std::string> translate_response(Api from, Api to, std::string_view body,
                                              std::string_view client_model);

// A provider error (its status and body, any shape) as the caller's error body: OpenAI
// {"error":{"message","type","code","param"}} or Anthropic {"type":"error","error":{"type",
// "message"}}, with the type mapped by status (400 invalid_request_error, 401
// authentication_error, 403 permission_error, 404 not_found_error, 429 rate_limit_error,
// 529/503 overloaded_error / api_error, ...) and the provider's message kept.
std::string translate_error(Api to, int status, std::string_view body);

// Translates a provider's SSE stream event by event, never buffering more than one event:
// Messages -> Chat: message_start -> a role chunk; content_block_delta text -> content
// chunks; tool_use blocks -> tool_calls chunks (id and name first, then argument deltas);
// message_delta -> the finish_reason chunk (+ usage chunk when `include_usage`);
// message_stop -> "data: [DONE]"; error events -> an OpenAI error chunk then [DONE].
// Chat -> Messages: the first chunk -> message_start (+ content_block_start), content and
// tool_call deltas -> content_block_start/_delta/_stop, finish_reason -> message_delta with
// stop_reason, the usage chunk -> usage of message_delta, [DONE] -> message_stop.
class StreamTranslator {
 public:
  StreamTranslator(Api from, Api to, std::string client_model, bool include_usage);
  ~StreamTranslator();
  StreamTranslator(StreamTranslator&&) noexcept;
  StreamTranslator& operator=(StreamTranslator&&) noexcept;

  // Appends the caller-form events for one provider event to `out` (possibly none).
  void feed(std::string_view event, std::vector<std::string>& out);
  // True once the caller-form terminal event was produced.
  bool finished() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace redline::translate
