// OpenAI Responses API (POST /v1/responses) for every model behind the gateway: parsing and
// validating a request, expanding a `previous_response_id` chain kept by the gateway into the
// request's `input`, the body sent on to an OpenAI-type provider (pass-through) or the Chat
// Completions body for the others (src/translate takes it on to Anthropic Messages), and the way
// back: a chat.completion (or its chunk stream, event by event) as a Response object (or the
// Responses streaming events). Pure functions over JSON text; no I/O, no routing, no storage
// (store.h keeps the chain).
//
// Shapes follow what the official openai-node SDK (6.x) reads: Response, ResponseOutputMessage,
// ResponseFunctionToolCall, ResponseUsage and the ResponseStreamEvent union. A stream ending
// with finish_reason "length" ends with `response.incomplete` (as OpenAI sends it), every other
// complete stream with `response.completed`.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace redline::responses {

// A refused request: the pipeline answers 400 invalid_request_error with `param` and `message`.
struct RequestError {
  std::string param;    // the field, e.g. "tools[1].type", "input[2].content[0].type"
  std::string message;  // names the field too
};

// A request as parsed from its body. `body` keeps every field as sent (for the pass-through);
// the typed fields are what the conversions read.
struct ResponsesRequest {
  std::string model;
  // The input as items: a string input is one {"type":"message","role":"user","content":s}.
  // Accepted items: message (role user|assistant|system|developer; content a string or parts
  // input_text, input_image, input_file, output_text, refusal), function_call {call_id, name,
  // arguments}, function_call_output {call_id, output}, and reasoning (passed through to
  // OpenAI-type providers, left out of Chat Completions).
  boost::json::array input;
  std::optional<std::string> instructions;
  boost::json::array tools;        // function tools only, as sent
  boost::json::value tool_choice;  // null when absent
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int64_t> max_output_tokens;
  bool stream = false;
  std::optional<std::string> previous_response_id;  // kept after expand() for the echo
  std::optional<bool> store;
  boost::json::value metadata;  // null when absent
  std::optional<std::string> user;
  std::optional<bool> parallel_tool_calls;
  boost::json::value text;   // the `text` config ({format, verbosity}); null when absent
  boost::json::object body;  // the whole request as sent
  bool expanded = false;     // expand() ran: `input` holds the whole chain
};

// Parses and validates a request body. Unknown fields, tools other than function tools
// (web_search, file_search, computer_use_preview, mcp, ...), item and content types not listed
// above, background:true and conversation/prompt are refused with the field named.
std::variant<ResponsesRequest, RequestError> parse_request(std::string_view body);

// The request of a turn with `previous_response_id`: `chain` (the stored items of the previous
// response: its whole input chain, then its output items — StoredResponse::chain()) in front of
// this turn's input. Instructions are not inherited (OpenAI semantics: they apply per request).
// Chain items lose their `id` (ids of another provider or of the gateway mean nothing upstream
// with store:false) and reasoning items without encrypted_content are dropped (they cannot be
// replayed without the provider's storage). nullopt when `chain` is not a JSON array of objects.
std::optional<ResponsesRequest> expand(const ResponsesRequest& request, std::string_view chain);
ResponsesRequest expand(const ResponsesRequest& request, const boost::json::array& chain);

// An assistant's text as a Responses content part: {"type":"output_text","annotations":[],
// "text":...}.
boost::json::object output_text_part(std::string_view text);

// The body for an OpenAI-type provider's /v1/responses: the request as sent, with `input` = the
// full item list, no previous_response_id, store:false.
std::string to_openai_body(const ResponsesRequest& expanded);

// The Chat Completions body for the request (model = upstream_model): instructions -> a system
// message first; items -> messages (consecutive function_call items -> one assistant message
// with tool_calls, joined to the assistant message right before them; function_call_output ->
// role "tool"; reasoning items left out); function tools -> chat tools; tool_choice mapped;
// temperature, top_p, user, parallel_tool_calls (with tools) kept; max_output_tokens ->
// max_tokens; text.format json_schema/json_object -> response_format; stream -> stream with
// stream_options.include_usage. An error names the item that cannot be expressed in chat.
std::variant<std::string, RequestError> to_chat_request(const ResponsesRequest& expanded,
                                                        std::string_view upstream_model);

// A new response id, "resp_" + 32 hex digits (random).
std::string new_response_id();

// The Response object for a chat.completion body (its first choice): a message item with the
// text (and refusal) unless the answer only calls tools, then one function_call item per tool
// call; status "completed", or "incomplete" with incomplete_details for finish_reason "length"
// (max_output_tokens) and "content_filter"; usage mapped; the request's settings echoed. Item ids
// derive from response_id ("msg_<suffix>", "fc_<suffix>_<n>"), so a streamed answer converts to
// the same object. nullopt when `chat_completion_body` is not a chat completion (error body, no
// choices).
std::optional<std::string> from_chat_response(std::string_view chat_completion_body,
                                              std::string_view response_id,
                                              const ResponsesRequest& request);

// Chat Completions chunk events in (sse.h stored form, "data: {...}" ... "data: [DONE]"),
// Responses streaming events out ("event: <type>\ndata: {...}", each with `type` and a
// sequence_number counting from 0). Sequence: response.created, response.in_progress, then per
// output item output_item.added, [content_part.added, output_text.delta..., output_text.done,
// content_part.done | function_call_arguments.delta..., function_call_arguments.done],
// output_item.done, and at [DONE] response.completed (or response.incomplete) with the full
// response, usage included. An error chunk, or finish() before [DONE], ends it with
// response.failed. The final response equals from_chat_response() of the assembled answer.
class ChatToResponsesStream {
 public:
  ChatToResponsesStream(std::string response_id, const ResponsesRequest& request);
  ~ChatToResponsesStream();
  ChatToResponsesStream(const ChatToResponsesStream&) = delete;
  ChatToResponsesStream& operator=(const ChatToResponsesStream&) = delete;

  // Converts one chat event, appending the Responses events it produces to `out`. Comments and
  // events after the end are ignored.
  void feed(std::string_view chat_event, std::vector<std::string>& out);
  // The upstream stream ended: when no terminal event was produced yet, appends response.failed.
  void finish(std::vector<std::string>& out);

  // True once response.completed / response.incomplete / response.failed was produced.
  bool done() const;
  bool failed() const;
  // The final Response object (JSON text) once completed or incomplete; nullopt otherwise.
  const std::optional<std::string>& final_response() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The output items (JSON array text) of a Response object, nullopt when it has none.
std::optional<std::string> output_items_of(std::string_view response_object);

// The `response` of a pass-through stream's response.completed (or response.incomplete) event,
// as JSON text; nullopt when the stream has neither (failed, cut).
std::optional<std::string> response_from_events(std::span<const std::string> events);

}  // namespace redline::responses
