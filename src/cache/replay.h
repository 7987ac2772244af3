// Conversions between the two forms of one cached answer, so a single entry serves streaming
// and non-streaming requests alike: assemble_* turns the recorded SSE events of a streamed
// answer into the JSON body a non-streaming call would have returned, synthesize_* turns a
// stored JSON body into the events a streaming call would have received. Covered: OpenAI Chat
// Completions, OpenAI legacy Completions (/v1/completions) and Anthropic Messages, shaped as
// the official SDKs (openai-node's ChatCompletionStream, @anthropic-ai/sdk's MessageStream)
// accumulate them. It does not decide what is cached, and does no I/O.
//
// Events are in the stored form of sse.h: one event's lines without the closing blank line,
// e.g. "data: {...}" or "event: message_stop\ndata: {...}".
//
// Numbers keep their value exactly: integers stay integers at any 64-bit size, and any other
// number is written as the shortest text that reads back as the same double (an integral
// double keeps a ".0"). Fields the code does not know are carried over where the SDKs would
// keep them (the last non-null value wins), and never make assembly fail.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace redline::cache {

// The APIs whose answers can be replayed in the other form.
enum class ReplayApi {
  kChatCompletions,  // POST /v1/chat/completions
  kCompletions,      // POST /v1/completions (legacy)
  kMessages,         // POST /v1/messages (Anthropic)
};

// --- OpenAI Chat Completions ----------------------------------------------------------------

// The chat.completion body for a complete stream of chat.completion.chunk events ending with
// "data: [DONE]": choices by index with the message (role; content concatenated, null when
// there is none or only tool calls; refusal; tool_calls merged by index, arguments
// concatenated), logprobs (arrays concatenated, or null) and finish_reason; usage from the
// usage chunk; system_fingerprint and service_tier when the stream had them. Comment and
// other data-less events are skipped; nothing after [DONE] is read. nullopt when the stream
// is not complete and valid: no [DONE], a chunk that is not a JSON object, an error chunk,
// no choice, or a choice without a finish_reason.
std::optional<std::string> assemble_chat_completion(std::span<const std::string> events);

// The chunk events a streaming call would have received for a stored chat.completion body.
// Per choice: a role chunk, content, refusal and tool-call chunks, then a chunk with an empty
// delta and the finish_reason. Every chunk carries id, object "chat.completion.chunk",
// created, model, and service_tier and system_fingerprint when the body had them. With
// include_usage (and a body that has usage) every chunk also has "usage":null and a last
// chunk with "choices":[] carries the body's usage. The last event is "data: [DONE]". Empty when
// `body` is not a chat completion (not JSON, no choices array, a choice without a message object).
std::vector<std::string> synthesize_chat_completion_events(std::string_view body,
                                                           bool include_usage);

// True for the usage-only chunk of an OpenAI stream ("choices":[] and a usage object). Cheap
// for every other event: it only parses data that mentions "usage".
bool is_usage_only_chunk(std::string_view event);

// The events for a client that did (include_usage) or did not ask for usage in its stream:
// without it, usage-only chunks are dropped and a trailing "usage":null field is removed from
// the others. Works for chat and legacy completion streams alike.
std::vector<std::string> filter_chat_events(std::span<const std::string> events,
                                            bool include_usage);

// --- OpenAI legacy Completions ----------------------------------------------------------------

// The text_completion body for a complete stream of text_completion chunks ending with
// "data: [DONE]": choices[].text concatenated, logprobs arrays concatenated (or null),
// finish_reason, usage. nullopt under the same conditions as assemble_chat_completion.
std::optional<std::string> assemble_completion(std::span<const std::string> events);

// The chunk events for a stored text_completion body: per choice a text chunk and a final
// chunk with the finish_reason; usage as for chat; then "data: [DONE]". Empty when `body` is
// not a completion.
std::vector<std::string> synthesize_completion_events(std::string_view body, bool include_usage);

// --- Anthropic Messages ------------------------------------------------------------------------

// The Messages API body for a complete event stream (message_start ... message_stop): the
// message_start message with its content blocks in index order (text from text_delta, with
// citations; tool_use and server tool blocks with input parsed from the concatenated
// input_json_delta, {} when there was none; thinking from thinking_delta and signature_delta;
// other blocks as started), stop_reason and stop_sequence from message_delta, and usage =
// message_start usage updated by message_delta's non-null usage fields. ping and unknown
// events are skipped. nullopt when there is no message_start or message_stop, on an error
// event, a delta or stop for a block never started, a block never stopped, or tool input
// that is not JSON.
std::optional<std::string> assemble_message(std::span<const std::string> events);

// The events for a stored Messages API body: message_start (the message with empty content,
// null stop_reason/stop_sequence and the body's usage), per content block
// content_block_start / content_block_delta(s) / content_block_stop, message_delta (stop
// reason, stop sequence, output_tokens), message_stop. Each is "event: NAME\ndata: {json}".
// Empty when `body` is not a message (not JSON, no content array).
std::vector<std::string> synthesize_message_events(std::string_view body);

// --- By API -----------------------------------------------------------------------------------

// assemble_chat_completion / assemble_completion / assemble_message for `api`.
std::optional<std::string> assemble_answer(ReplayApi api, std::span<const std::string> events);

// synthesize_chat_completion_events / synthesize_completion_events / synthesize_message_events
// for `api` (Anthropic streams always carry usage; include_usage is ignored for them).
std::vector<std::string> synthesize_events(ReplayApi api, std::string_view body,
                                           bool include_usage);

// True when `event` is the last event of a complete stream of `api`: [DONE] or message_stop.
bool is_stream_end(ReplayApi api, std::string_view event);

}  // namespace redline::cache
