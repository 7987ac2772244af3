// Responses API conversions (see responses.h): request parsing and validation, chain expansion,
// the pass-through body, Responses -> Chat Completions, and chat answers (bodies or chunk
// streams) -> Response objects and streaming events. One builder writes every Response object,
// so a streamed answer and its assembled body convert to the same JSON.
#include "responses/responses.h"

#include <fmt/format.h>

#include <array>
#include <boost/json.hpp>

#include "cache/sse.h"
#include "common/json_text.h"
#include "common/random_ids.h"

namespace redline::responses {

namespace json = boost::json;

namespace {

// --- small JSON helpers ------------------------------------------------------------------------

std::optional<json::value> parse_json(std::string_view text) {
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 512;  // tool schemas nest deep
  json::value v = json::parse(text, ec, {}, opts);
  if (ec) return std::nullopt;
  return v;
}

std::string_view str_or(const json::object& o, std::string_view key,
                        std::string_view fallback = {}) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string_view(v->get_string()) : fallback;
}

bool is_string_field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string();
}

std::optional<int64_t> as_int(const json::value& v) {
  if (const auto* i = v.if_int64()) return *i;
  if (const auto* u = v.if_uint64()) {
    if (*u <= static_cast<uint64_t>(INT64_MAX)) return static_cast<int64_t>(*u);
  }
  if (const auto* d = v.if_double()) {
    if (*d == static_cast<double>(static_cast<int64_t>(*d))) return static_cast<int64_t>(*d);
  }
  return std::nullopt;
}

std::optional<double> as_number(const json::value& v) {
  if (!v.is_number()) return std::nullopt;
  return v.to_number<double>();
}

RequestError err(std::string param, std::string_view what) {
  std::string message = param + ": " + std::string(what);
  return RequestError{std::move(param), std::move(message)};
}

std::string at(std::string_view base, std::size_t i) {
  return fmt::format("{}[{}]", base, i);
}

// --- request validation --------------------------------------------------------------------------

constexpr std::array<std::string_view, 25> kKnownFields = {"model",
                                                           "input",
                                                           "instructions",
                                                           "tools",
                                                           "tool_choice",
                                                           "temperature",
                                                           "top_p",
                                                           "max_output_tokens",
                                                           "stream",
                                                           "stream_options",
                                                           "previous_response_id",
                                                           "store",
                                                           "metadata",
                                                           "user",
                                                           "parallel_tool_calls",
                                                           "text",
                                                           "include",
                                                           "truncation",
                                                           "reasoning",
                                                           "service_tier",
                                                           "prompt_cache_key",
                                                           "safety_identifier",
                                                           "background",
                                                           "top_logprobs",
                                                           "max_tool_calls"};

bool known_field(std::string_view key) {
  for (auto k : kKnownFields) {
    if (k == key) return true;
  }
  return false;
}

std::optional<RequestError> check_part(const json::value& v, const std::string& where) {
  const json::object* p = v.if_object();
  if (p == nullptr) return err(where, "expected an object");
  const std::string_view type = str_or(*p, "type");
  if (type == "input_text" || type == "output_text") {
    if (!is_string_field(*p, "text")) return err(where + ".text", "expected a string");
  } else if (type == "refusal") {
    if (!is_string_field(*p, "refusal")) return err(where + ".refusal", "expected a string");
  } else if (type == "input_image") {
    if (!is_string_field(*p, "image_url") && !is_string_field(*p, "file_id")) {
      return err(where + ".image_url", "expected a string");
    }
  } else if (type == "input_file") {
    if (!is_string_field(*p, "file_data") && !is_string_field(*p, "file_id") &&
        !is_string_field(*p, "file_url")) {
      return err(where + ".file_data", "expected a string");
    }
  } else {
    return err(where + ".type",
               fmt::format("content type '{}' is not supported", type.empty() ? "(none)" : type));
  }
  return std::nullopt;
}

// Checks one input item; a message without a type gets "type":"message".
std::optional<RequestError> check_item(json::value& v, const std::string& where) {
  json::object* item = v.if_object();
  if (item == nullptr) return err(where, "expected an object");
  if (!item->contains("type") && item->contains("role")) item->emplace("type", "message");
  const std::string_view type = str_or(*item, "type");
  if (type == "message") {
    const std::string_view role = str_or(*item, "role");
    if (role != "user" && role != "assistant" && role != "system" && role != "developer") {
      return err(where + ".role", "expected one of user, assistant, system, developer");
    }
    const json::value* content = item->if_contains("content");
    if (content == nullptr || !(content->is_string() || content->is_array())) {
      return err(where + ".content", "expected a string or an array");
    }
    if (content->is_array()) {
      const json::array& parts = content->get_array();
      for (std::size_t j = 0; j < parts.size(); ++j) {
        if (auto e = check_part(parts[j], at(where + ".content", j))) return e;
      }
    }
  } else if (type == "function_call") {
    for (std::string_view k : {"call_id", "name", "arguments"}) {
      if (!is_string_field(*item, k)) return err(where + "." + std::string(k), "expected a string");
    }
  } else if (type == "function_call_output") {
    if (!is_string_field(*item, "call_id")) return err(where + ".call_id", "expected a string");
    const json::value* out = item->if_contains("output");
    if (out == nullptr || !(out->is_string() || out->is_array())) {
      return err(where + ".output", "expected a string or an array");
    }
  } else if (type != "reasoning") {
    return err(where + ".type",
               fmt::format("item type '{}' is not supported", type.empty() ? "(none)" : type));
  }
  return std::nullopt;
}

std::optional<RequestError> check_tool_choice(const json::value& v) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) {
    const std::string_view s = v.get_string();
    if (s == "auto" || s == "none" || s == "required") return std::nullopt;
    return err("tool_choice", "expected auto, none, required or a function");
  }
  const json::object* o = v.if_object();
  if (o == nullptr) return err("tool_choice", "expected a string or an object");
  if (str_or(*o, "type") != "function") {
    return err("tool_choice.type",
               fmt::format("tool choice '{}' is not supported", str_or(*o, "type")));
  }
  if (!is_string_field(*o, "name")) return err("tool_choice.name", "expected a string");
  return std::nullopt;
}

// --- output items and the Response object ----------------------------------------------------

struct ToolCall {
  std::string call_id;
  std::string name;
  std::string arguments;
};

// What a chat answer says, whether read from a body or accumulated from chunks.
struct ChatAnswer {
  int64_t created = 0;
  std::string text;
  std::optional<std::string> refusal;
  std::vector<ToolCall> calls;
  std::string finish_reason;
  json::value usage;  // the chat usage object, or null
};

bool has_message(const ChatAnswer& a) {
  return !a.text.empty() || a.refusal.has_value() || a.calls.empty();
}

std::string_view id_suffix(std::string_view response_id) {
  return response_id.starts_with("resp_") ? response_id.substr(5) : response_id;
}

std::string message_id(std::string_view response_id) {
  return fmt::format("msg_{}", id_suffix(response_id));
}

std::string call_item_id(std::string_view response_id, std::size_t n) {
  return fmt::format("fc_{}_{}", id_suffix(response_id), n);
}

json::object refusal_part(std::string_view refusal) {
  return json::object{{"type", "refusal"}, {"refusal", refusal}};
}

json::object message_item(const ChatAnswer& a, std::string_view id, std::string_view status) {
  json::array content;
  if (!a.text.empty() || !a.refusal) content.emplace_back(output_text_part(a.text));
  if (a.refusal) content.emplace_back(refusal_part(*a.refusal));
  return json::object{{"id", id},
                      {"type", "message"},
                      {"status", status},
                      {"content", std::move(content)},
                      {"role", "assistant"}};
}

json::object call_item(const ToolCall& c, std::string_view id, std::string_view status) {
  return json::object{{"id", id},
                      {"type", "function_call"},
                      {"status", status},
                      {"arguments", c.arguments},
                      {"call_id", c.call_id},
                      {"name", c.name}};
}

std::string_view status_of(const ChatAnswer& a) {
  return a.finish_reason == "length" || a.finish_reason == "content_filter" ? "incomplete"
                                                                            : "completed";
}

json::value usage_of(const json::value& chat_usage) {
  const json::object* u = chat_usage.if_object();
  if (u == nullptr) return nullptr;
  auto num = [](const json::object& o, std::string_view k) -> int64_t {
    const json::value* v = o.if_contains(k);
    return v != nullptr ? as_int(*v).value_or(0) : 0;
  };
  auto nested = [&](std::string_view obj, std::string_view k) -> int64_t {
    const json::value* v = u->if_contains(obj);
    return v != nullptr && v->is_object() ? num(v->get_object(), k) : 0;
  };
  const int64_t in = num(*u, "prompt_tokens");
  const int64_t out = num(*u, "completion_tokens");
  const json::value* total = u->if_contains("total_tokens");
  return json::object{
      {"input_tokens", in},
      {"input_tokens_details",
       {{"cached_tokens", nested("prompt_tokens_details", "cached_tokens")}}},
      {"output_tokens", out},
      {"output_tokens_details",
       {{"reasoning_tokens", nested("completion_tokens_details", "reasoning_tokens")}}},
      {"total_tokens", total != nullptr ? as_int(*total).value_or(in + out) : in + out}};
}

// The request settings a Response object echoes, with OpenAI's defaults.
struct Echo {
  std::string model;
  json::object fields;  // in Response field order, inserted around the answer fields
};

Echo echo_of(const ResponsesRequest& r) {
  Echo e;
  e.model = r.model;
  const json::object& b = r.body;
  json::object& f = e.fields;
  f["instructions"] = r.instructions ? json::value(*r.instructions) : json::value(nullptr);
  f["max_output_tokens"] =
      r.max_output_tokens ? json::value(*r.max_output_tokens) : json::value(nullptr);
  f["parallel_tool_calls"] = r.parallel_tool_calls.value_or(true);
  f["previous_response_id"] =
      r.previous_response_id ? json::value(*r.previous_response_id) : json::value(nullptr);
  const json::value* reasoning = b.if_contains("reasoning");
  f["reasoning"] = reasoning != nullptr && reasoning->is_object()
                       ? *reasoning
                       : json::value(json::object{{"effort", nullptr}, {"summary", nullptr}});
  f["store"] = r.store.value_or(true);
  f["temperature"] = r.temperature.value_or(1.0);
  f["text"] =
      r.text.is_object() ? r.text : json::value(json::object{{"format", {{"type", "text"}}}});
  f["tool_choice"] = r.tool_choice.is_null() ? json::value("auto") : r.tool_choice;
  f["tools"] = r.tools;
  f["top_p"] = r.top_p.value_or(1.0);
  const json::value* truncation = b.if_contains("truncation");
  f["truncation"] =
      truncation != nullptr && truncation->is_string() ? *truncation : json::value("disabled");
  if (r.user) f["user"] = *r.user;
  f["metadata"] = r.metadata.is_object() ? r.metadata : json::value(json::object());
  return e;
}

enum class Phase { kInProgress, kFinal, kFailed };

// The Response object. kInProgress: no output, no usage; kFinal: the answer; kFailed: what was
// produced so far, with `error`.
json::object build_response(const ChatAnswer& a, std::string_view response_id, const Echo& echo,
                            Phase phase, std::string_view error_message = {}) {
  std::string_view status = phase == Phase::kInProgress ? "in_progress"
                            : phase == Phase::kFailed   ? "failed"
                                                        : status_of(a);
  json::object r;
  r["id"] = response_id;
  r["object"] = "response";
  r["created_at"] = a.created;
  r["status"] = status;
  r["background"] = false;
  r["error"] = phase == Phase::kFailed
                   ? json::value(json::object{{"code", "server_error"}, {"message", error_message}})
                   : json::value(nullptr);
  if (phase == Phase::kFinal && status == "incomplete") {
    r["incomplete_details"] = json::object{
        {"reason", a.finish_reason == "length" ? "max_output_tokens" : "content_filter"}};
  } else {
    r["incomplete_details"] = nullptr;
  }
  r["instructions"] = echo.fields.at("instructions");
  r["max_output_tokens"] = echo.fields.at("max_output_tokens");
  r["model"] = echo.model;
  json::array output;
  if (phase != Phase::kInProgress) {
    const std::string_view item_status = phase == Phase::kFailed ? "incomplete" : status;
    if (has_message(a)) output.emplace_back(message_item(a, message_id(response_id), item_status));
    for (std::size_t i = 0; i < a.calls.size(); ++i) {
      output.emplace_back(call_item(a.calls[i], call_item_id(response_id, i), item_status));
    }
  }
  r["output"] = std::move(output);
  for (const auto& kv : echo.fields) {
    if (!r.contains(kv.key())) r[kv.key()] = kv.value();
  }
  r["usage"] = phase == Phase::kInProgress ? json::value(nullptr) : usage_of(a.usage);
  return r;
}

// Reads a chat.completion body's first choice.
std::optional<ChatAnswer> read_chat_answer(std::string_view body) {
  auto parsed = parse_json(body);
  if (!parsed || !parsed->is_object()) return std::nullopt;
  const json::object& o = parsed->get_object();
  if (o.contains("error")) return std::nullopt;
  const json::value* choices = o.if_contains("choices");
  if (choices == nullptr || !choices->is_array() || choices->get_array().empty() ||
      !choices->get_array()[0].is_object()) {
    return std::nullopt;
  }
  const json::object& choice = choices->get_array()[0].get_object();
  const json::value* message = choice.if_contains("message");
  if (message == nullptr || !message->is_object()) return std::nullopt;
  const json::object& m = message->get_object();
  ChatAnswer a;
  if (const json::value* c = o.if_contains("created")) a.created = as_int(*c).value_or(0);
  a.text = str_or(m, "content");
  if (is_string_field(m, "refusal")) a.refusal = std::string(str_or(m, "refusal"));
  if (const json::value* tcs = m.if_contains("tool_calls"); tcs != nullptr && tcs->is_array()) {
    for (const auto& tc : tcs->get_array()) {
      if (!tc.is_object()) continue;
      ToolCall call;
      call.call_id = str_or(tc.get_object(), "id");
      if (const json::value* fn = tc.get_object().if_contains("function");
          fn != nullptr && fn->is_object()) {
        call.name = str_or(fn->get_object(), "name");
        call.arguments = str_or(fn->get_object(), "arguments");
      }
      a.calls.push_back(std::move(call));
    }
  }
  a.finish_reason = str_or(choice, "finish_reason");
  if (const json::value* u = o.if_contains("usage")) a.usage = *u;
  return a;
}

// --- Chat Completions request ------------------------------------------------------------------

std::string joined_text(const json::value& content) {
  if (content.is_string()) return std::string(content.get_string());
  std::string out;
  for (const auto& p : content.get_array()) {
    const json::object& part = p.get_object();
    const std::string_view type = str_or(part, "type");
    if (type == "input_text" || type == "output_text") out += str_or(part, "text");
  }
  return out;
}

std::variant<json::value, RequestError> chat_part(const json::object& part,
                                                  const std::string& where) {
  const std::string_view type = str_or(part, "type");
  if (type == "input_text" || type == "output_text") {
    return json::value(json::object{{"type", "text"}, {"text", str_or(part, "text")}});
  }
  if (type == "input_image") {
    if (!is_string_field(part, "image_url")) {
      return err(where, "an image given by file_id cannot be sent to this model");
    }
    json::object image{{"url", str_or(part, "image_url")}};
    if (is_string_field(part, "detail")) image["detail"] = str_or(part, "detail");
    return json::value(json::object{{"type", "image_url"}, {"image_url", std::move(image)}});
  }
  if (type == "input_file") {
    if (!is_string_field(part, "file_data") && !is_string_field(part, "file_id")) {
      return err(where, "a file given by file_url cannot be sent to this model");
    }
    json::object file;
    for (std::string_view k : {"file_data", "file_id", "filename"}) {
      if (is_string_field(part, k)) file[k] = str_or(part, k);
    }
    return json::value(json::object{{"type", "file"}, {"file", std::move(file)}});
  }
  return err(where, fmt::format("content type '{}' cannot be sent to this model", type));
}

std::optional<RequestError> add_message(const json::object& item, const std::string& where,
                                        json::array& messages) {
  std::string_view role = str_or(item, "role");
  const json::value& content = item.at("content");
  if (role == "assistant") {
    json::object m{{"role", "assistant"}, {"content", joined_text(content)}};
    if (content.is_array()) {
      for (const auto& p : content.get_array()) {
        if (str_or(p.get_object(), "type") == "refusal") {
          m["refusal"] = str_or(p.get_object(), "refusal");
        }
      }
    }
    messages.emplace_back(std::move(m));
    return std::nullopt;
  }
  if (role == "system" || role == "developer") {
    if (content.is_array()) {
      for (std::size_t j = 0; j < content.get_array().size(); ++j) {
        const std::string_view t = str_or(content.get_array()[j].get_object(), "type");
        if (t != "input_text" && t != "output_text") {
          return err(at(where + ".content", j),
                     fmt::format("content type '{}' is not allowed in a {} message", t, role));
        }
      }
    }
    messages.emplace_back(json::object{{"role", "system"}, {"content", joined_text(content)}});
    return std::nullopt;
  }
  if (content.is_string()) {
    messages.emplace_back(json::object{{"role", "user"}, {"content", content}});
    return std::nullopt;
  }
  json::array parts;
  const json::array& in = content.get_array();
  for (std::size_t j = 0; j < in.size(); ++j) {
    auto part = chat_part(in[j].get_object(), at(where + ".content", j));
    if (auto* e = std::get_if<RequestError>(&part)) return std::move(*e);
    parts.emplace_back(std::move(std::get<json::value>(part)));
  }
  messages.emplace_back(json::object{{"role", "user"}, {"content", std::move(parts)}});
  return std::nullopt;
}

std::string tool_output_text(const json::value& output) {
  return joined_text(output);
}

// --- stream events -------------------------------------------------------------------------------


}  // namespace

json::object output_text_part(std::string_view text) {
  return json::object{{"type", "output_text"}, {"annotations", json::array()}, {"text", text}};
}

// --- parse_request -------------------------------------------------------------------------------

std::variant<ResponsesRequest, RequestError> parse_request(std::string_view body) {
  auto parsed = parse_json(body);
  if (!parsed) return RequestError{"body", "body: invalid JSON"};
  if (!parsed->is_object()) return RequestError{"body", "body: expected a JSON object"};
  ResponsesRequest r;
  r.body = std::move(parsed->get_object());
  json::object& b = r.body;
  for (const auto& kv : b) {
    if (!known_field(kv.key())) {
      return err(std::string(kv.key()), "unknown or unsupported field");
    }
  }
  if (!is_string_field(b, "model")) return err("model", "expected a string");
  r.model = str_or(b, "model");

  json::value* input = b.if_contains("input");
  if (input == nullptr || input->is_null()) return err("input", "required");
  if (input->is_string()) {
    r.input.emplace_back(
        json::object{{"type", "message"}, {"role", "user"}, {"content", input->get_string()}});
  } else if (input->is_array()) {
    json::array& items = input->get_array();
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (auto e = check_item(items[i], at("input", i))) return std::move(*e);
    }
    r.input = items;
  } else {
    return err("input", "expected a string or an array");
  }

  if (const json::value* v = b.if_contains("instructions"); v != nullptr && !v->is_null()) {
    if (!v->is_string()) return err("instructions", "expected a string");
    r.instructions = std::string(v->get_string());
  }
  if (const json::value* v = b.if_contains("tools"); v != nullptr && !v->is_null()) {
    if (!v->is_array()) return err("tools", "expected an array");
    const json::array& tools = v->get_array();
    for (std::size_t i = 0; i < tools.size(); ++i) {
      const json::object* t = tools[i].if_object();
      if (t == nullptr) return err(at("tools", i), "expected an object");
      const std::string_view type = str_or(*t, "type");
      if (type != "function") {
        return err(at("tools", i) + ".type",
                   fmt::format("tool type '{}' is not supported; only function tools are",
                               type.empty() ? "(none)" : type));
      }
      if (!is_string_field(*t, "name")) return err(at("tools", i) + ".name", "expected a string");
      if (const json::value* p = t->if_contains("parameters");
          p != nullptr && !p->is_null() && !p->is_object()) {
        return err(at("tools", i) + ".parameters", "expected an object");
      }
    }
    r.tools = tools;
  }
  if (const json::value* v = b.if_contains("tool_choice")) {
    if (auto e = check_tool_choice(*v)) return std::move(*e);
    r.tool_choice = *v;
  }
  for (std::string_view k : {"temperature", "top_p"}) {
    if (const json::value* v = b.if_contains(k); v != nullptr && !v->is_null()) {
      auto n = as_number(*v);
      if (!n) return err(std::string(k), "expected a number");
      (k == "temperature" ? r.temperature : r.top_p) = *n;
    }
  }
  if (const json::value* v = b.if_contains("max_output_tokens"); v != nullptr && !v->is_null()) {
    auto n = as_int(*v);
    if (!n || *n < 1) return err("max_output_tokens", "expected a positive integer");
    r.max_output_tokens = *n;
  }
  for (std::string_view k : {"stream", "store", "parallel_tool_calls", "background"}) {
    if (const json::value* v = b.if_contains(k); v != nullptr && !v->is_null()) {
      if (!v->is_bool()) return err(std::string(k), "expected a boolean");
      if (k == "stream") r.stream = v->get_bool();
      if (k == "store") r.store = v->get_bool();
      if (k == "parallel_tool_calls") r.parallel_tool_calls = v->get_bool();
      if (k == "background" && v->get_bool())
        return err("background", "background mode is not supported");
    }
  }
  for (std::string_view k : {"previous_response_id", "user", "prompt_cache_key",
                             "safety_identifier", "service_tier", "truncation"}) {
    if (const json::value* v = b.if_contains(k); v != nullptr && !v->is_null()) {
      if (!v->is_string()) return err(std::string(k), "expected a string");
      if (k == "previous_response_id") r.previous_response_id = std::string(v->get_string());
      if (k == "user") r.user = std::string(v->get_string());
    }
  }
  for (std::string_view k : {"metadata", "text", "reasoning", "stream_options"}) {
    if (const json::value* v = b.if_contains(k); v != nullptr && !v->is_null()) {
      if (!v->is_object()) return err(std::string(k), "expected an object");
      if (k == "metadata") r.metadata = *v;
      if (k == "text") r.text = *v;
    }
  }
  if (const json::value* v = b.if_contains("include"); v != nullptr && !v->is_null()) {
    if (!v->is_array()) return err("include", "expected an array");
  }
  if (r.text.is_object()) {
    if (const json::value* f = r.text.get_object().if_contains("format");
        f != nullptr && !f->is_null()) {
      const std::string_view type = f->is_object() ? str_or(f->get_object(), "type") : "";
      if (type != "text" && type != "json_object" && type != "json_schema") {
        return err("text.format.type", "expected text, json_object or json_schema");
      }
    }
  }
  return r;
}

// --- expand
// ----------------------------------------------------------------------------------------

ResponsesRequest expand(const ResponsesRequest& request, const json::array& chain) {
  ResponsesRequest out = request;
  json::array items;
  items.reserve(chain.size() + request.input.size());
  for (const auto& v : chain) {
    if (!v.is_object()) continue;
    json::object item = v.get_object();
    if (str_or(item, "type") == "reasoning" && !is_string_field(item, "encrypted_content")) {
      continue;
    }
    item.erase("id");
    items.emplace_back(std::move(item));
  }
  for (const auto& v : request.input) items.push_back(v);
  out.input = std::move(items);
  out.expanded = true;
  return out;
}

std::optional<ResponsesRequest> expand(const ResponsesRequest& request, std::string_view chain) {
  auto parsed = parse_json(chain);
  if (!parsed || !parsed->is_array()) return std::nullopt;
  for (const auto& v : parsed->get_array()) {
    if (!v.is_object()) return std::nullopt;
  }
  return expand(request, parsed->get_array());
}

// --- to_openai_body ----------------------------------------------------------------------------

std::string to_openai_body(const ResponsesRequest& expanded) {
  json::object body = expanded.body;
  body["input"] = expanded.input;
  body.erase("previous_response_id");
  body["store"] = false;
  return json_text(body);
}

// --- to_chat_request -------------------------------------------------------------------------

std::variant<std::string, RequestError> to_chat_request(const ResponsesRequest& expanded,
                                                        std::string_view upstream_model) {
  json::array messages;
  if (expanded.instructions) {
    messages.emplace_back(json::object{{"role", "system"}, {"content", *expanded.instructions}});
  }
  // The assistant message that function_call items join, while nothing else came after it.
  std::optional<std::size_t> open_assistant;
  for (std::size_t i = 0; i < expanded.input.size(); ++i) {
    const std::string where = at("input", i);
    const json::object& item = expanded.input[i].get_object();
    const std::string_view type = str_or(item, "type");
    if (type == "message") {
      if (auto e = add_message(item, where, messages)) return std::move(*e);
      open_assistant.reset();
      if (str_or(item, "role") == "assistant") open_assistant = messages.size() - 1;
    } else if (type == "function_call") {
      if (!open_assistant) {
        messages.emplace_back(json::object{{"role", "assistant"}, {"content", nullptr}});
        open_assistant = messages.size() - 1;
      }
      json::object& m = messages[*open_assistant].get_object();
      if (!m.contains("tool_calls")) {
        m["tool_calls"] = json::array();
        // An assistant message that calls tools and says nothing has no content.
        if (m["content"].is_string() && m["content"].get_string().empty()) m["content"] = nullptr;
      }
      m["tool_calls"].get_array().emplace_back(json::object{
          {"id", str_or(item, "call_id")},
          {"type", "function"},
          {"function",
           {{"name", str_or(item, "name")}, {"arguments", str_or(item, "arguments")}}}});
    } else if (type == "function_call_output") {
      messages.emplace_back(json::object{{"role", "tool"},
                                         {"tool_call_id", str_or(item, "call_id")},
                                         {"content", tool_output_text(item.at("output"))}});
      open_assistant.reset();
    } else if (type == "reasoning") {
      continue;  // another provider's reasoning: nothing chat can carry
    } else {
      return err(where + ".type", fmt::format("item type '{}' cannot be sent to this model", type));
    }
  }

  json::object chat;
  chat["model"] = upstream_model;
  chat["messages"] = std::move(messages);
  if (!expanded.tools.empty()) {
    json::array tools;
    for (const auto& t : expanded.tools) {
      const json::object& tool = t.get_object();
      json::object fn{{"name", str_or(tool, "name")}};
      for (std::string_view k : {"description", "parameters", "strict"}) {
        if (const json::value* v = tool.if_contains(k); v != nullptr && !v->is_null()) fn[k] = *v;
      }
      tools.emplace_back(json::object{{"type", "function"}, {"function", std::move(fn)}});
    }
    chat["tools"] = std::move(tools);
    if (expanded.parallel_tool_calls) chat["parallel_tool_calls"] = *expanded.parallel_tool_calls;
  }
  if (expanded.tool_choice.is_string()) {
    chat["tool_choice"] = expanded.tool_choice;
  } else if (expanded.tool_choice.is_object()) {
    chat["tool_choice"] =
        json::object{{"type", "function"},
                     {"function", {{"name", str_or(expanded.tool_choice.get_object(), "name")}}}};
  }
  if (expanded.temperature) chat["temperature"] = *expanded.temperature;
  if (expanded.top_p) chat["top_p"] = *expanded.top_p;
  if (expanded.max_output_tokens) chat["max_tokens"] = *expanded.max_output_tokens;
  if (expanded.user) chat["user"] = *expanded.user;
  if (expanded.text.is_object()) {
    const json::value* f = expanded.text.get_object().if_contains("format");
    const json::object* format = f != nullptr ? f->if_object() : nullptr;
    const std::string_view type = format != nullptr ? str_or(*format, "type") : "";
    if (type == "json_object") {
      chat["response_format"] = json::object{{"type", "json_object"}};
    } else if (type == "json_schema") {
      json::object schema;
      for (std::string_view k : {"name", "description", "schema", "strict"}) {
        if (const json::value* v = format->if_contains(k); v != nullptr && !v->is_null()) {
          schema[k] = *v;
        }
      }
      chat["response_format"] =
          json::object{{"type", "json_schema"}, {"json_schema", std::move(schema)}};
    }
  }
  if (expanded.stream) {
    chat["stream"] = true;
    chat["stream_options"] = json::object{{"include_usage", true}};
  }
  return json_text(chat);
}

// --- ids and answers -----------------------------------------------------------------------------

std::string new_response_id() {
  return fmt::format("resp_{:016x}{:016x}", common::random_u64(), common::random_u64());
}

std::optional<std::string> from_chat_response(std::string_view chat_completion_body,
                                              std::string_view response_id,
                                              const ResponsesRequest& request) {
  auto answer = read_chat_answer(chat_completion_body);
  if (!answer) return std::nullopt;
  return json_text(build_response(*answer, response_id, echo_of(request), Phase::kFinal));
}

std::optional<std::string> output_items_of(std::string_view response_object) {
  auto parsed = parse_json(response_object);
  if (!parsed || !parsed->is_object()) return std::nullopt;
  const json::value* output = parsed->get_object().if_contains("output");
  if (output == nullptr || !output->is_array()) return std::nullopt;
  return json_text(*output);
}

std::optional<std::string> response_from_events(std::span<const std::string> events) {
  for (auto it = events.rbegin(); it != events.rend(); ++it) {
    const std::string data = cache::event_data(*it);
    if (data.find("response.completed") == std::string::npos &&
        data.find("response.incomplete") == std::string::npos) {
      continue;
    }
    auto parsed = parse_json(data);
    if (!parsed || !parsed->is_object()) continue;
    const std::string_view type = str_or(parsed->get_object(), "type");
    if (type != "response.completed" && type != "response.incomplete") continue;
    const json::value* response = parsed->get_object().if_contains("response");
    if (response == nullptr || !response->is_object()) return std::nullopt;
    return json_text(*response);
  }
  return std::nullopt;
}

// --- ChatToResponsesStream -------------------------------------------------------------------

struct ChatToResponsesStream::State {
  std::string response_id;
  Echo echo;
  ChatAnswer answer;
  int64_t sequence = 0;
  bool started = false;
  bool items_closed = false;  // finish_reason seen: every item is done
  bool terminal = false;
  bool failed = false;
  std::optional<std::string> final;

  // The open message item, if any: its output index and content parts in order.
  struct Message {
    std::size_t output_index = 0;
    int text_part = -1;     // content index of the output_text part, -1 before it exists
    int refusal_part = -1;  // content index of the refusal part
    int parts = 0;
  };
  std::optional<Message> message;
  bool message_done = false;
  // Function calls: chat tool index -> answer.calls ordinal, and which is still open.
  std::vector<std::pair<int64_t, std::size_t>> call_by_index;
  std::optional<std::size_t> open_call;
  std::size_t next_output_index = 0;
  std::vector<std::size_t> call_output_index;  // by ordinal

  void emit(std::string_view type, json::object data, std::vector<std::string>& out) {
    json::object ev;
    ev["type"] = type;
    ev["sequence_number"] = sequence++;
    for (auto& kv : data) ev[kv.key()] = std::move(kv.value());
    out.push_back(sse_event(type, ev));
  }

  std::string_view item_status() const {
    // An item closed before the finish_reason is complete; at the finish it takes its status.
    return items_closed ? status_of(answer) : std::string_view("completed");
  }

  void start(const json::object& chunk, std::vector<std::string>& out) {
    if (const json::value* c = chunk.if_contains("created")) {
      answer.created = as_int(*c).value_or(0);
    }
    started = true;
    emit("response.created",
         {{"response", build_response(answer, response_id, echo, Phase::kInProgress)}}, out);
    emit("response.in_progress",
         {{"response", build_response(answer, response_id, echo, Phase::kInProgress)}}, out);
  }

  void open_message(std::vector<std::string>& out) {
    if (message || message_done) return;
    close_call(out);
    message = Message{next_output_index++, -1, -1, 0};
    emit("response.output_item.added",
         {{"output_index", message->output_index},
          {"item",
           {{"id", message_id(response_id)},
            {"type", "message"},
            {"status", "in_progress"},
            {"content", json::array()},
            {"role", "assistant"}}}},
         out);
  }

  json::object part_event(int content_index) const {
    return {{"item_id", message_id(response_id)},
            {"output_index", message->output_index},
            {"content_index", content_index}};
  }

  void text_delta(std::string_view delta, std::vector<std::string>& out) {
    open_message(out);
    if (!message) return;  // the message item was already closed
    if (message->text_part < 0) {
      message->text_part = message->parts++;
      json::object e = part_event(message->text_part);
      e["part"] = output_text_part("");
      emit("response.content_part.added", std::move(e), out);
    }
    answer.text += delta;
    json::object e = part_event(message->text_part);
    e["delta"] = delta;
    e["logprobs"] = json::array();
    emit("response.output_text.delta", std::move(e), out);
  }

  void refusal_delta(std::string_view delta, std::vector<std::string>& out) {
    open_message(out);
    if (!message) return;
    if (message->refusal_part < 0) {
      message->refusal_part = message->parts++;
      answer.refusal.emplace();
      json::object e = part_event(message->refusal_part);
      e["part"] = refusal_part("");
      emit("response.content_part.added", std::move(e), out);
    }
    *answer.refusal += delta;
    json::object e = part_event(message->refusal_part);
    e["delta"] = delta;
    emit("response.refusal.delta", std::move(e), out);
  }

  void close_message(std::vector<std::string>& out) {
    if (!message) return;
    if (message->parts == 0) {  // an empty answer still has its (empty) text
      message->text_part = message->parts++;
      json::object e = part_event(message->text_part);
      e["part"] = output_text_part("");
      emit("response.content_part.added", std::move(e), out);
    }
    for (int p = 0; p < message->parts; ++p) {
      json::object e = part_event(p);
      if (p == message->text_part) {
        e["text"] = answer.text;
        e["logprobs"] = json::array();
        emit("response.output_text.done", std::move(e), out);
        json::object d = part_event(p);
        d["part"] = output_text_part(answer.text);
        emit("response.content_part.done", std::move(d), out);
      } else {
        e["refusal"] = *answer.refusal;
        emit("response.refusal.done", std::move(e), out);
        json::object d = part_event(p);
        d["part"] = refusal_part(*answer.refusal);
        emit("response.content_part.done", std::move(d), out);
      }
    }
    emit("response.output_item.done",
         {{"output_index", message->output_index},
          {"item", message_item(answer, message_id(response_id), item_status())}},
         out);
    message.reset();
    message_done = true;
  }

  void close_call(std::vector<std::string>& out) {
    if (!open_call) return;
    const std::size_t n = *open_call;
    const ToolCall& c = answer.calls[n];
    emit("response.function_call_arguments.done",
         {{"item_id", call_item_id(response_id, n)},
          {"output_index", call_output_index[n]},
          {"name", c.name},
          {"arguments", c.arguments}},
         out);
    emit("response.output_item.done",
         {{"output_index", call_output_index[n]},
          {"item", call_item(c, call_item_id(response_id, n), item_status())}},
         out);
    open_call.reset();
  }

  void tool_call_delta(const json::object& tc, std::vector<std::string>& out) {
    const int64_t index = tc.contains("index") ? as_int(tc.at("index")).value_or(0) : 0;
    const json::object* fn = nullptr;
    if (const json::value* f = tc.if_contains("function"); f != nullptr && f->is_object()) {
      fn = &f->get_object();
    }
    std::optional<std::size_t> ordinal;
    for (const auto& [i, n] : call_by_index) {
      if (i == index) ordinal = n;
    }
    if (!ordinal) {
      close_message(out);
      close_call(out);
      ordinal = answer.calls.size();
      call_by_index.emplace_back(index, *ordinal);
      ToolCall c;
      c.call_id = str_or(tc, "id");
      if (fn != nullptr) c.name = str_or(*fn, "name");
      answer.calls.push_back(std::move(c));
      call_output_index.push_back(next_output_index++);
      open_call = *ordinal;
      const ToolCall& added = answer.calls.back();
      json::object item = call_item(added, call_item_id(response_id, *ordinal), "in_progress");
      emit("response.output_item.added",
           {{"output_index", call_output_index[*ordinal]}, {"item", std::move(item)}}, out);
    } else {
      ToolCall& c = answer.calls[*ordinal];
      if (c.call_id.empty()) c.call_id = str_or(tc, "id");
      if (fn != nullptr && c.name.empty()) c.name = str_or(*fn, "name");
    }
    const std::string_view args = fn != nullptr ? str_or(*fn, "arguments") : "";
    if (!args.empty()) {
      answer.calls[*ordinal].arguments += args;
      emit("response.function_call_arguments.delta",
           {{"item_id", call_item_id(response_id, *ordinal)},
            {"output_index", call_output_index[*ordinal]},
            {"delta", args}},
           out);
    }
  }

  void close_items(std::vector<std::string>& out) {
    if (!message && !message_done && answer.calls.empty()) open_message(out);
    items_closed = true;
    close_message(out);
    close_call(out);
  }

  void fail(std::string_view why, std::vector<std::string>& out) {
    if (!started) start(json::object(), out);
    terminal = true;
    failed = true;
    emit("response.failed",
         {{"response", build_response(answer, response_id, echo, Phase::kFailed, why)}}, out);
  }

  void complete(std::vector<std::string>& out) {
    if (answer.finish_reason.empty()) {
      fail("the upstream stream ended without a finish_reason", out);
      return;
    }
    json::object r = build_response(answer, response_id, echo, Phase::kFinal);
    final = json_text(r);
    terminal = true;
    const std::string_view type =
        status_of(answer) == "incomplete" ? "response.incomplete" : "response.completed";
    emit(type, {{"response", std::move(r)}}, out);
  }
};

ChatToResponsesStream::ChatToResponsesStream(std::string response_id,
                                             const ResponsesRequest& request)
    : state_(std::make_unique<State>()) {
  state_->response_id = std::move(response_id);
  state_->echo = echo_of(request);
}

ChatToResponsesStream::~ChatToResponsesStream() = default;

void ChatToResponsesStream::feed(std::string_view chat_event, std::vector<std::string>& out) {
  State& s = *state_;
  if (s.terminal || cache::is_comment_only(chat_event)) return;
  if (cache::is_openai_done(chat_event)) {
    s.complete(out);
    return;
  }
  const std::string data = cache::event_data(chat_event);
  if (data.empty()) return;
  auto parsed = parse_json(data);
  if (!parsed || !parsed->is_object()) {
    s.fail("the upstream sent a chunk that is not a JSON object", out);
    return;
  }
  const json::object& chunk = parsed->get_object();
  if (const json::value* e = chunk.if_contains("error"); e != nullptr && !e->is_null()) {
    std::string message = "the upstream failed";
    if (e->is_object() && is_string_field(e->get_object(), "message")) {
      message = str_or(e->get_object(), "message");
    }
    s.fail(message, out);
    return;
  }
  if (!s.started) s.start(chunk, out);
  if (const json::value* u = chunk.if_contains("usage"); u != nullptr && u->is_object()) {
    s.answer.usage = *u;
  }
  const json::value* choices = chunk.if_contains("choices");
  if (choices == nullptr || !choices->is_array()) return;
  for (const auto& cv : choices->get_array()) {
    const json::object* choice = cv.if_object();
    if (choice == nullptr) continue;
    if (const json::value* i = choice->if_contains("index"); i != nullptr && as_int(*i) != 0) {
      continue;  // n > 1 is not a Responses concept: the first choice only
    }
    if (s.items_closed) continue;
    if (const json::value* d = choice->if_contains("delta"); d != nullptr && d->is_object()) {
      const json::object& delta = d->get_object();
      if (const std::string_view text = str_or(delta, "content"); !text.empty()) {
        s.text_delta(text, out);
      }
      if (is_string_field(delta, "refusal")) s.refusal_delta(str_or(delta, "refusal"), out);
      if (const json::value* tcs = delta.if_contains("tool_calls");
          tcs != nullptr && tcs->is_array()) {
        for (const auto& tc : tcs->get_array()) {
          if (tc.is_object()) s.tool_call_delta(tc.get_object(), out);
        }
      }
    }
    if (const json::value* f = choice->if_contains("finish_reason");
        f != nullptr && f->is_string()) {
      s.answer.finish_reason = f->get_string();
      s.close_items(out);
    }
  }
}

void ChatToResponsesStream::finish(std::vector<std::string>& out) {
  if (!state_->terminal) state_->fail("the upstream stream ended early", out);
}

bool ChatToResponsesStream::done() const {
  return state_->terminal;
}
bool ChatToResponsesStream::failed() const {
  return state_->failed;
}
const std::optional<std::string>& ChatToResponsesStream::final_response() const {
  return state_->final;
}

}  // namespace redline::responses
