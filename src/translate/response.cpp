// Answer and error translation, Chat Completions <-> Messages (translate_response and
// translate_error in translate.h). A complete answer is rebuilt in the caller's shape: text,
// tool calls, finish/stop reason, usage, id and model. Content the caller's API has no place
// for (thinking blocks, which only a refused request could have asked for) is left out.
#include <fmt/format.h>

#include <string>
#include <utility>

#include "common/error_body.h"
#include "common/json_text.h"
#include "translate/shapes.h"
#include "translate/translate.h"

namespace redline::translate {
namespace {

using namespace detail;  // NOLINT(google-build-using-namespace): internal helpers

// Messages answer -> chat.completion.
std::optional<std::string> message_to_chat(const json::object& m, std::string_view client_model) {
  const json::value* content = m.if_contains("content");
  if (content == nullptr || !content->is_array()) return std::nullopt;
  if (const json::value* t = m.if_contains("type");
      t != nullptr && !(t->is_string() && t->get_string() == "message")) {
    return std::nullopt;
  }
  std::string text;
  json::array calls;
  for (const json::value& bv : content->get_array()) {
    if (!bv.is_object()) return std::nullopt;
    const json::object& b = bv.get_object();
    const std::string_view type = string_field(b, "type");
    if (type == "text") {
      text += string_field(b, "text");
    } else if (type == "tool_use") {
      const json::value* input = b.if_contains("input");
      json::object fn;
      fn["name"] = string_field(b, "name");
      fn["arguments"] = input != nullptr ? json_text(*input) : std::string("{}");
      json::object call;
      call["id"] = string_field(b, "id");
      call["type"] = "function";
      call["function"] = std::move(fn);
      calls.push_back(std::move(call));
    }
  }
  json::object message;
  message["role"] = "assistant";
  if (text.empty() && !calls.empty()) {
    message["content"] = nullptr;
  } else {
    message["content"] = text;
  }
  message["refusal"] = nullptr;
  if (!calls.empty()) message["tool_calls"] = std::move(calls);
  json::object choice;
  choice["index"] = 0;
  choice["message"] = std::move(message);
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_reason_for(string_field(m, "stop_reason"));
  Usage usage;
  if (const json::value* u = present(m, "usage"); u != nullptr && u->is_object()) {
    usage.add_messages(u->get_object());
  }
  json::object out;
  out["id"] = chat_id_from(string_field(m, "id"));
  out["object"] = "chat.completion";
  out["created"] = now_seconds();
  out["model"] = client_model;
  json::array choices;
  choices.push_back(std::move(choice));
  out["choices"] = std::move(choices);
  out["usage"] = usage.chat();
  return json_text(out);
}

// Tool call arguments as Messages input: the parsed JSON; {} when empty; the text itself as a
// JSON string when a model wrote arguments that are not JSON (kept, not lost).
json::value tool_input(JsonReader& reader, std::string_view arguments) {
  if (arguments.find_first_not_of(" \t\r\n") == std::string_view::npos) return json::object();
  std::optional<json::value> v = reader.parse(arguments);
  return v ? std::move(*v) : json::value(arguments);
}

// chat.completion -> Messages answer (its first choice: n > 1 is never translated).
std::optional<std::string> chat_to_message(const json::object& c, std::string_view client_model) {
  const json::value* choices = c.if_contains("choices");
  if (choices == nullptr || !choices->is_array() || choices->get_array().empty()) {
    return std::nullopt;
  }
  const json::value& first = choices->get_array()[0];
  if (!first.is_object()) return std::nullopt;
  const json::value* mv = first.get_object().if_contains("message");
  if (mv == nullptr || !mv->is_object()) return std::nullopt;
  const json::object& m = mv->get_object();
  JsonReader reader;
  json::array content;
  std::string_view finish = string_field(first.get_object(), "finish_reason");
  if (const std::string_view text = string_field(m, "content"); !text.empty()) {
    json::object b;
    b["type"] = "text";
    b["text"] = text;
    content.push_back(std::move(b));
  }
  if (const std::string_view refusal = string_field(m, "refusal"); !refusal.empty()) {
    json::object b;
    b["type"] = "text";
    b["text"] = refusal;
    content.push_back(std::move(b));
    finish = "content_filter";
  }
  if (const json::value* calls = present(m, "tool_calls"); calls != nullptr) {
    if (!calls->is_array()) return std::nullopt;
    for (const json::value& cv : calls->get_array()) {
      if (!cv.is_object()) return std::nullopt;
      const json::object& call = cv.get_object();
      const json::value* fv = call.if_contains("function");
      if (fv == nullptr || !fv->is_object()) continue;  // a non-function tool: never asked for
      json::object b;
      b["type"] = "tool_use";
      b["id"] = string_field(call, "id");
      b["name"] = string_field(fv->get_object(), "name");
      b["input"] = tool_input(reader, string_field(fv->get_object(), "arguments"));
      content.push_back(std::move(b));
    }
  }
  Usage usage;
  if (const json::value* u = present(c, "usage"); u != nullptr && u->is_object()) {
    usage.add_chat(u->get_object());
  }
  json::object out;
  out["id"] = message_id_from(string_field(c, "id"));
  out["type"] = "message";
  out["role"] = "assistant";
  out["model"] = client_model;
  out["content"] = std::move(content);
  out["stop_reason"] = stop_reason_for(finish);
  out["stop_sequence"] = nullptr;
  out["usage"] = usage.messages();
  return json_text(out);
}

// The message, type and code of a provider error body of either shape; the body's own text
// (bounded) when it is neither.
struct ProviderError {
  std::string message;
  std::string anthropic_type;  // the type of an Anthropic-shaped body
  json::value code;            // OpenAI "code", or null
  json::value param;           // OpenAI "param", or null
};

constexpr std::size_t kMaxRawMessage = 1024;

ProviderError read_error(int status, std::string_view body) {
  ProviderError e;
  JsonReader reader;
  if (std::optional<json::object> root = reader.parse_object(body)) {
    const json::value* err = root->if_contains("error");
    if (err != nullptr && err->is_object()) {
      const json::object& eo = err->get_object();
      e.message = string_field(eo, "message");
      if (string_field(*root, "type") == "error") e.anthropic_type = string_field(eo, "type");
      if (const json::value* code = present(eo, "code")) e.code = *code;
      if (const json::value* param = present(eo, "param")) e.param = *param;
    } else if (err != nullptr && err->is_string()) {
      e.message = err->get_string();
    } else {
      e.message = string_field(*root, "message");
    }
  } else {
    e.message = utf8_prefix(body, kMaxRawMessage);
  }
  if (e.message.empty()) e.message = fmt::format("the provider answered HTTP {}", status);
  return e;
}

}  // namespace

std::optional<std::string> translate_response(Api from, Api to, std::string_view body,
                                              std::string_view client_model) {
  JsonReader reader;
  std::optional<json::object> root = reader.parse_object(body);
  if (!root) return std::nullopt;
  if (from == to) {
    (*root)["model"] = client_model;
    return json_text(*root);
  }
  return from == Api::kMessages ? message_to_chat(*root, client_model)
                                : chat_to_message(*root, client_model);
}

std::string translate_error(Api to, int status, std::string_view body) {
  ProviderError e = read_error(status, body);
  json::object err;
  if (to == Api::kMessages) {
    err["type"] = anthropic_error_type(status);
    err["message"] = e.message;
    json::object root;
    root["type"] = "error";
    root["error"] = std::move(err);
    return json_text(root);
  }
  err["message"] = e.message;
  err["type"] = error_type_for_status(status);
  // An Anthropic error type (overloaded_error, ...) says more than the status: kept as code.
  if (!e.code.is_null()) {
    err["code"] = e.code;
  } else if (!e.anthropic_type.empty()) {
    err["code"] = e.anthropic_type;
  } else {
    err["code"] = nullptr;
  }
  err["param"] = e.param;
  json::object root;
  root["error"] = std::move(err);
  return json_text(root);
}

}  // namespace redline::translate
