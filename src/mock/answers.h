// What the mock provider says: the deterministic answer text (words picked by a hash of
// the request body), and the OpenAI- and Anthropic-shaped bodies and SSE events that
// carry it. Pure functions over strings; no I/O, no routing, no fault injection.
#pragma once

#include "common/json_text.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace redline::mock {

// Whose wire format an answer or an error follows.
enum class Api { kOpenAI, kAnthropic };

// The model endpoints that read a JSON body.
enum class Endpoint { kChat, kCompletions, kEmbeddings, kMessages, kResponses };

// What a model request asks for, read once from its JSON body.
struct ModelRequest {
  std::string model;
  bool stream = false;
  bool include_usage = false;          // stream_options.include_usage
  int64_t max_tokens = -1;             // max_tokens / max_completion_tokens (responses:
                                       // max_output_tokens); -1 when absent
  int dimensions = 8;                  // embeddings
  bool base64 = false;                 // embeddings: encoding_format == "base64"
  std::vector<uint64_t> input_hashes;  // embeddings: one hash per input
  // responses, chat, messages: the tool to call instead of answering in text. Set when the
  // request has (function / custom) tools and its last input item or message is a user message
  // whose text names one of them (the first named in `tools` order); a tool result
  // (function_call_output, role "tool", a tool_result block) gets a text answer.
  std::string tool_call;
};

inline constexpr int kDefaultDimensions = 8;
inline constexpr int kMaxDimensions = 8192;

// Reads `body` as `endpoint` expects. Returns an error message, empty on success.
std::string parse_model_request(Endpoint endpoint, std::string_view body, ModelRequest& out);

// The deterministic answer: `words` words from a fixed list, chosen by a hash of the
// request body. Same body, same words; a different body, different words.
class Answer {
 public:
  Answer(std::string_view request_body, int words);
  int words() const { return words_; }
  // The i-th word, without separators.
  std::string_view word(int i) const;
  // The words joined by single spaces.
  void append_text(std::string& out) const;

 private:
  uint64_t seed_;
  int words_;
};

// Usage: prompt/input tokens are body bytes / 4 (at least 1); completion/output
// tokens are the number of words.
uint64_t prompt_tokens(std::string_view request_body);

// Everything one reply needs besides the words.
struct ReplyMeta {
  std::string_view unique;      // unique per response; ids are "<prefix><unique>"
  std::string_view model_json;  // the requested model, already a quoted JSON string
  int64_t created = 0;          // unix seconds
  uint64_t input_tokens = 0;
  bool truncated = false;  // max_tokens cut the answer: "length" / "max_tokens"
};

using redline::append_json_string;  // common/json_text.h

// Non-streaming bodies, appended to `out`.
void chat_completion_body(const ReplyMeta& meta, const Answer& answer, std::string& out);
void text_completion_body(const ReplyMeta& meta, const Answer& answer, std::string& out);
void message_body(const ReplyMeta& meta, const Answer& answer, std::string& out);
// OpenAI Responses API (POST /v1/responses): a Response object with one message item (the
// words as output_text), or one function_call item calling `tool_call` with arguments "{}"
// when it is not empty. Usage: input_tokens as for chat, output_tokens = words (1 for a call).
void response_body(const ReplyMeta& meta, const Answer& answer, std::string_view tool_call,
                   std::string& out);
// A tool call instead of text (ModelRequest::tool_call), with arguments kToolArguments.
// Chat: message.tool_calls [{id "call_<unique>", type function, function {name, arguments}}],
// content null, finish_reason "tool_calls". Messages: content [{type tool_use, id
// "toolu_<unique>", name, input}], stop_reason "tool_use". Output tokens: 1.
inline constexpr std::string_view kToolArguments = R"({"q":"mock"})";
void chat_tool_call_body(const ReplyMeta& meta, std::string_view tool_call, std::string& out);
void message_tool_use_body(const ReplyMeta& meta, std::string_view tool_call, std::string& out);
void embeddings_body(const ModelRequest& request, std::string_view model_json,
                     uint64_t input_tokens, std::string& out);
// GET /v1/models, and GET /v1/models/{id} (empty when the id is unknown).
std::string_view models_body();
std::string model_body(std::string_view id);

// Collects SSE events for one response, each framed as its own HTTP chunk when
// `chunked`, and remembers where each event ends so the sender can space them out.
class SseSink {
 public:
  SseSink(std::string& out, std::vector<std::size_t>& ends, bool chunked)
      : out_(out), ends_(ends), chunked_(chunked) {}
  // "event: NAME\n" (when NAME is not empty) "data: DATA\n\n".
  void emit(std::string_view name, std::string_view data);

 private:
  std::string& out_;
  std::vector<std::size_t>& ends_;
  bool chunked_;
};

// Streaming answers. OpenAI: role delta, one delta per word, the finish chunk, the usage
// chunk when asked, then [DONE]. Anthropic: message_start, content_block_start, ping,
// one text_delta per word, content_block_stop, message_delta, message_stop.
void chat_completion_events(const ReplyMeta& meta, const Answer& answer, bool include_usage,
                            SseSink& sink);
void text_completion_events(const ReplyMeta& meta, const Answer& answer, bool include_usage,
                            SseSink& sink);
void message_events(const ReplyMeta& meta, const Answer& answer, SseSink& sink);
// The tool calls streamed: chat: role delta, a tool_calls delta with id, type and name (empty
// arguments), one with the arguments, the finish chunk ("tool_calls"), the usage chunk when
// asked, [DONE]. Messages: message_start, content_block_start (tool_use, input {}),
// content_block_delta (input_json_delta), content_block_stop, message_delta ("tool_use"),
// message_stop.
void chat_tool_call_events(const ReplyMeta& meta, std::string_view tool_call, bool include_usage,
                           SseSink& sink);
void message_tool_use_events(const ReplyMeta& meta, std::string_view tool_call, SseSink& sink);
// Responses: response.created, response.in_progress, output_item.added, content_part.added,
// one output_text.delta per word, output_text.done, content_part.done, output_item.done and
// response.completed (response.incomplete when max_output_tokens cut it); a function call has
// function_call_arguments.delta/.done instead of the content events. Every event is
// "event: TYPE" with a `sequence_number` counting from 0; the last one carries the same object
// response_body() returns.
void response_events(const ReplyMeta& meta, const Answer& answer, std::string_view tool_call,
                     SseSink& sink);

// A provider-shaped error body. OpenAI: {"error":{"message","type","param","code"}};
// Anthropic: {"type":"error","error":{"type","message"}}. The type follows the status.
std::string error_body(Api api, int status, std::string_view message);

}  // namespace redline::mock
