// Request translation, Chat Completions <-> Messages (translate_request in translate.h). Every
// top-level field is either translated, dropped because it cannot change the answer (listed
// in kHarmless*), accepted only at its neutral value, or refused with an Untranslatable that
// names it; a field this code does not know is refused too, so nothing is silently lost.
// docs/api.md has the table. It does not validate what the provider validates anyway (ranges
// other than temperature's, non-empty messages, ...).
#include <fmt/format.h>

#include <array>
#include <string>
#include <utility>
#include <vector>

#include "common/json_text.h"
#include "translate/shapes.h"
#include "translate/translate.h"

namespace redline::translate {
namespace {

using namespace detail;  // NOLINT(google-build-using-namespace): internal helpers

// Thrown by the helpers below, caught once in translate_request.
struct Refusal {
  Untranslatable what;
};

[[noreturn]] void refuse(std::string param, std::string_view reason) {
  std::string message = fmt::format("{}: {}", param, reason);
  throw Refusal{{std::move(message), std::move(param)}};
}

constexpr std::string_view kToMessages = "cannot be translated to the Anthropic Messages API";
constexpr std::string_view kToChat = "cannot be translated to the OpenAI Chat Completions API";

std::string path(std::string_view base, std::size_t index) {
  return fmt::format("{}[{}]", base, index);
}
std::string path(std::string_view base, std::string_view key) {
  return fmt::format("{}.{}", base, key);
}

// --- Typed access that refuses what it cannot read ----------------------------------------------

const json::object& as_object(const json::value& v, const std::string& param) {
  if (!v.is_object()) refuse(param, "must be an object");
  return v.get_object();
}

const json::array& as_array(const json::value& v, const std::string& param) {
  if (!v.is_array()) refuse(param, "must be an array");
  return v.get_array();
}

std::string_view as_string(const json::value& v, const std::string& param) {
  if (!v.is_string()) refuse(param, "must be a string");
  return v.get_string();
}

bool as_bool(const json::value& v, const std::string& param) {
  if (!v.is_bool()) refuse(param, "must be a boolean");
  return v.get_bool();
}

double as_number(const json::value& v, const std::string& param) {
  if (!v.is_number()) refuse(param, "must be a number");
  return v.to_number<double>();
}

// A positive integer, kept as given (int64 or uint64).
json::value as_token_count(const json::value& v, const std::string& param) {
  if (const int64_t* i = v.if_int64(); i != nullptr && *i > 0) return v;
  if (v.is_uint64()) return v;
  refuse(param, "must be a positive integer");
}

// The named field of an object that must be there.
const json::value& required(const json::object& o, std::string_view key, const std::string& at) {
  const json::value* v = present(o, key);
  if (v == nullptr) refuse(path(at, key), "is required");
  return *v;
}

// A number that is only accepted at its neutral value: dropping a sampling hint would change
// the answer without telling the caller.
void neutral_number(const json::value& v, const std::string& param, double neutral,
                    std::string_view target) {
  if (v.is_null()) return;
  if (as_number(v, param) != neutral) {
    refuse(param, fmt::format("only {} (neutral) {}", neutral, target));
  }
}

json::object text_block(std::string_view text) {
  json::object b;
  b["type"] = "text";
  b["text"] = text;
  return b;
}

json::object text_part(std::string_view text) {
  return text_block(text);
}  // same shape

// ================================================================================================
// Chat Completions -> Messages
// ================================================================================================

// One Messages turn being built; consecutive same-role turns are merged.
struct Turn {
  std::string role;
  json::array blocks;
  bool plain = false;  // a single string content: written back as a string
};

class ChatToMessages {
 public:
  explicit ChatToMessages(const RequestOptions& options) : options_(options) {}

  std::string run(const json::object& req) {
    const json::value* messages = nullptr;
    const json::value* max_tokens = nullptr;
    const json::value* max_completion_tokens = nullptr;
    const json::value* tools = nullptr;
    const json::value* tool_choice = nullptr;
    bool parallel = true;
    json::object out;
    json::object metadata;
    for (const json::key_value_pair& kv : req) {
      const std::string key = kv.key();
      const json::value& v = kv.value();
      if (key == "model" || key == "metadata" || key == "store" || key == "prompt_cache_key" ||
          key == "stream_options") {
        // model: replaced by the upstream model. metadata / store: OpenAI's stored-completions
        // dashboard, no effect on the answer. prompt_cache_key: a cache routing hint.
        // stream_options: usage is always in an Anthropic stream; the gateway honours
        // include_usage when it translates the stream back.
      } else if (key == "messages") {
        messages = &v;
      } else if (key == "max_tokens") {
        max_tokens = &v;
      } else if (key == "max_completion_tokens") {
        max_completion_tokens = &v;
      } else if (key == "temperature") {
        if (v.is_null()) continue;
        const double t = as_number(v, key);
        if (t > 1.0) {
          refuse(key, fmt::format("{} is above 1.0, the Anthropic Messages API's maximum (it is "
                                  "not clamped: that would change the sampling asked for)",
                                  t));
        }
        out["temperature"] = v;
      } else if (key == "top_p") {
        if (v.is_null()) continue;
        as_number(v, key);
        out["top_p"] = v;
      } else if (key == "stop") {
        if (v.is_null()) continue;
        json::array stops;
        if (v.is_string()) {
          stops.push_back(v);
        } else {
          std::size_t i = 0;
          for (const json::value& s : as_array(v, key)) {
            as_string(s, path(key, i++));
            stops.push_back(s);
          }
        }
        if (!stops.empty()) out["stop_sequences"] = std::move(stops);
      } else if (key == "stream") {
        if (!v.is_null()) out["stream"] = as_bool(v, key);
      } else if (key == "tools") {
        if (!v.is_null()) tools = &v;
      } else if (key == "tool_choice") {
        if (!v.is_null()) tool_choice = &v;
      } else if (key == "parallel_tool_calls") {
        if (!v.is_null()) parallel = as_bool(v, key);
      } else if (key == "user" || key == "safety_identifier") {
        // Both identify the end user; safety_identifier (the newer name) wins.
        if (v.is_null()) continue;
        if (key == "user" && metadata.contains("user_id")) continue;
        metadata["user_id"] = as_string(v, key);
      } else if (key == "n") {
        if (!v.is_null() && !(v.is_number() && v.to_number<double>() == 1.0)) {
          refuse(key, "only n=1 can be translated to an Anthropic model");
        }
      } else if (key == "logprobs") {
        if (!v.is_null() && as_bool(v, key)) {
          refuse(key, "log probabilities are not available from an Anthropic model");
        }
      } else if (key == "top_logprobs") {
        if (!v.is_null())
          refuse(key, "log probabilities are not available from an Anthropic model");
      } else if (key == "presence_penalty" || key == "frequency_penalty") {
        neutral_number(v, key, 0.0, kToMessages);
      } else if (key == "logit_bias") {
        if (!v.is_null() && !as_object(v, key).empty()) refuse(key, kToMessages);
      } else if (key == "response_format") {
        if (v.is_null()) continue;
        const json::object& rf = as_object(v, key);
        const std::string_view type = string_field(rf, "type");
        if (type != "text") {
          refuse(path(key, "type"), fmt::format("\"{}\" {} (only \"text\")", type, kToMessages));
        }
      } else if (key == "modalities") {
        if (v.is_null()) continue;
        for (const json::value& m : as_array(v, key)) {
          if (!(m.is_string() && m.get_string() == "text")) {
            refuse(key, "only [\"text\"] can be translated to an Anthropic model");
          }
        }
      } else if (key == "seed") {
        if (!v.is_null()) refuse(key, fmt::format("deterministic sampling {}", kToMessages));
      } else if (key == "service_tier") {
        if (v.is_null()) continue;
        const std::string_view tier = as_string(v, key);
        if (tier == "auto") {
          out["service_tier"] = "auto";
        } else if (tier == "default") {
          out["service_tier"] = "standard_only";
        } else {
          refuse(key, fmt::format("\"{}\" {} (only \"auto\" and \"default\")", tier, kToMessages));
        }
      } else if (key == "functions" || key == "function_call") {
        if (!v.is_null()) refuse(key, "deprecated function calling is not translated; use tools");
      } else {
        // audio, prediction, reasoning_effort, verbosity, web_search_options, and anything new.
        if (!v.is_null()) refuse(key, kToMessages);
      }
    }

    const json::value* max = max_completion_tokens != nullptr && !max_completion_tokens->is_null()
                                 ? max_completion_tokens
                                 : max_tokens;
    if (max != nullptr && !max->is_null()) {
      out["max_tokens"] =
          as_token_count(*max, max == max_tokens ? "max_tokens" : "max_completion_tokens");
    } else {
      out["max_tokens"] = options_.default_max_tokens;
    }
    if (messages == nullptr) refuse("messages", "is required");
    add_messages(as_array(*messages, "messages"));
    if (!system_.empty()) {
      if (system_.size() == 1 && system_plain_) {
        out["system"] = system_[0].get_object().at("text");
      } else {
        out["system"] = std::move(system_);
      }
    }
    json::array turns;
    for (Turn& t : turns_) {
      json::object m;
      m["role"] = t.role;
      if (t.plain && t.blocks.size() == 1) {
        m["content"] = t.blocks[0].get_object().at("text");
      } else {
        m["content"] = std::move(t.blocks);
      }
      turns.push_back(std::move(m));
    }
    out["messages"] = std::move(turns);
    const bool have_tools = tools != nullptr && !as_array(*tools, "tools").empty();
    if (have_tools) out["tools"] = translate_tools(tools->get_array());
    json::object choice;
    if (tool_choice != nullptr) choice = translate_tool_choice(*tool_choice);
    if (have_tools && !parallel && string_field(choice, "type") != "none") {
      if (choice.empty()) choice["type"] = "auto";
      choice["disable_parallel_tool_use"] = true;
    }
    // Without tools, "auto" and "none" say nothing; anything else is the provider's to refuse.
    const std::string_view choice_type = string_field(choice, "type");
    if (!choice.empty() && (have_tools || (choice_type != "auto" && choice_type != "none"))) {
      out["tool_choice"] = std::move(choice);
    }
    if (!metadata.empty()) out["metadata"] = std::move(metadata);
    json::object ordered;  // model first, as people write it
    ordered["model"] = options_.upstream_model;
    for (json::key_value_pair& kv : out) ordered[kv.key()] = std::move(kv.value());
    return json_text(ordered);
  }

 private:
  void add_turn(std::string_view role, json::array blocks, bool plain) {
    if (blocks.empty()) return;  // Anthropic refuses empty turns; an empty one says nothing
    if (!turns_.empty() && turns_.back().role == role) {
      Turn& last = turns_.back();
      for (json::value& b : blocks) last.blocks.push_back(std::move(b));
      last.plain = false;
      return;
    }
    turns_.push_back(Turn{std::string(role), std::move(blocks), plain});
  }

  // Text-only content (system, developer and tool messages): a string or text parts.
  json::array text_content(const json::value& content, const std::string& at, bool& plain) {
    json::array blocks;
    plain = content.is_string();
    if (content.is_null()) return blocks;
    if (content.is_string()) {
      if (!content.get_string().empty()) blocks.push_back(text_block(content.get_string()));
      return blocks;
    }
    std::size_t j = 0;
    for (const json::value& pv : as_array(content, at)) {
      const std::string p = path(at, j++);
      const json::object& part = as_object(pv, p);
      const std::string_view type = string_field(part, "type");
      if (type != "text") {
        refuse(path(p, "type"),
               fmt::format("only text parts can be translated here, not \"{}\"", type));
      }
      const std::string_view text = as_string(required(part, "text", p), path(p, "text"));
      if (!text.empty()) blocks.push_back(text_block(text));
    }
    return blocks;
  }

  static json::object image_block(const json::object& part, const std::string& at) {
    const json::object& image = as_object(required(part, "image_url", at), path(at, "image_url"));
    const std::string url_path = path(path(at, "image_url"), "url");
    const std::string_view url = as_string(required(image, "url", path(at, "image_url")), url_path);
    if (const json::value* detail = present(image, "detail")) {
      if (!(detail->is_string() && detail->get_string() == "auto")) {
        refuse(path(path(at, "image_url"), "detail"),
               "only \"auto\" can be translated (Anthropic has no image detail setting)");
      }
    }
    json::object source;
    if (url.starts_with("data:")) {
      const std::size_t comma = url.find(',');
      const std::string_view head = url.substr(5, comma == std::string_view::npos ? 0 : comma - 5);
      if (comma == std::string_view::npos || !head.ends_with(";base64")) {
        refuse(url_path, "only base64 data: URLs can be translated");
      }
      source["type"] = "base64";
      source["media_type"] = head.substr(0, head.size() - 7);
      source["data"] = url.substr(comma + 1);
    } else if (url.starts_with("https://") || url.starts_with("http://")) {
      source["type"] = "url";
      source["url"] = url;
    } else {
      refuse(url_path, "only data: and http(s): URLs can be translated");
    }
    json::object b;
    b["type"] = "image";
    b["source"] = std::move(source);
    return b;
  }

  json::array user_content(const json::value& content, const std::string& at, bool& plain) {
    plain = content.is_string();
    if (content.is_string() || content.is_null()) return text_content(content, at, plain);
    json::array blocks;
    std::size_t j = 0;
    for (const json::value& pv : as_array(content, at)) {
      const std::string p = path(at, j++);
      const json::object& part = as_object(pv, p);
      const std::string_view type = string_field(part, "type");
      if (type == "text") {
        const std::string_view text = as_string(required(part, "text", p), path(p, "text"));
        if (!text.empty()) blocks.push_back(text_block(text));
      } else if (type == "image_url") {
        blocks.push_back(image_block(part, p));
      } else {
        refuse(path(p, "type"), fmt::format("content part \"{}\" {}", type, kToMessages));
      }
    }
    return blocks;
  }

  json::array assistant_content(const json::object& m, const std::string& at, bool& plain) {
    for (std::string_view key : {"refusal", "audio", "function_call", "name"}) {
      if (present(m, key) != nullptr) refuse(path(at, key), kToMessages);
    }
    json::array blocks;
    plain = false;
    if (const json::value* content = m.if_contains("content")) {
      if (content->is_array()) {
        std::size_t j = 0;
        for (const json::value& pv : content->get_array()) {
          const std::string p = path(path(at, "content"), j++);
          const json::object& part = as_object(pv, p);
          if (string_field(part, "type") != "text") {
            refuse(path(p, "type"), fmt::format("assistant content part \"{}\" {}",
                                                string_field(part, "type"), kToMessages));
          }
          const std::string_view text = as_string(required(part, "text", p), path(p, "text"));
          if (!text.empty()) blocks.push_back(text_block(text));
        }
      } else {
        blocks = text_content(*content, path(at, "content"), plain);
      }
    }
    const json::value* calls = present(m, "tool_calls");
    if (calls == nullptr) return blocks;
    plain = false;
    std::size_t k = 0;
    const std::string calls_path = path(at, "tool_calls");
    for (const json::value& cv : as_array(*calls, calls_path)) {
      const std::string p = path(calls_path, k++);
      const json::object& call = as_object(cv, p);
      if (const std::string_view type = string_field(call, "type"); type != "function") {
        refuse(path(p, "type"), fmt::format("tool call type \"{}\" {}", type, kToMessages));
      }
      const json::object& fn = as_object(required(call, "function", p), path(p, "function"));
      const std::string fn_path = path(p, "function");
      json::object b;
      b["type"] = "tool_use";
      b["id"] = as_string(required(call, "id", p), path(p, "id"));
      b["name"] = as_string(required(fn, "name", fn_path), path(fn_path, "name"));
      const json::value* args = present(fn, "arguments");
      const std::string args_path = path(fn_path, "arguments");
      const std::string_view text =
          args == nullptr ? std::string_view{} : as_string(*args, args_path);
      if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
        b["input"] = json::object();
      } else {
        std::optional<json::object> input = reader_.parse_object(text);
        if (!input) refuse(args_path, "must be a JSON object to become tool_use input");
        b["input"] = std::move(*input);
      }
      blocks.push_back(std::move(b));
    }
    return blocks;
  }

  void add_messages(const json::array& messages) {
    std::size_t i = 0;
    for (const json::value& mv : messages) {
      const std::string at = path("messages", i++);
      const json::object& m = as_object(mv, at);
      const std::string_view role = as_string(required(m, "role", at), path(at, "role"));
      const json::value* content = m.if_contains("content");
      static const json::value kNull;
      const json::value& c = content != nullptr ? *content : kNull;
      bool plain = false;
      if (role != "assistant" && present(m, "name") != nullptr) {
        refuse(path(at, "name"), fmt::format("participant names {}", kToMessages));
      }
      if (role == "system" || role == "developer") {
        json::array blocks = text_content(c, path(at, "content"), plain);
        // Hoisted to the top-level system prompt, in order (Messages has no system turns).
        system_plain_ = system_plain_ && plain && system_.empty() && blocks.size() <= 1;
        for (json::value& b : blocks) system_.push_back(std::move(b));
      } else if (role == "user") {
        // Built first: `plain` is set by the call (argument order is unspecified).
        json::array blocks = user_content(c, path(at, "content"), plain);
        add_turn("user", std::move(blocks), plain);
      } else if (role == "assistant") {
        json::array blocks = assistant_content(m, at, plain);
        add_turn("assistant", std::move(blocks), plain);
      } else if (role == "tool") {
        json::object b;
        b["type"] = "tool_result";
        b["tool_use_id"] = as_string(required(m, "tool_call_id", at), path(at, "tool_call_id"));
        json::array blocks = text_content(c, path(at, "content"), plain);
        if (plain && blocks.size() == 1) {
          b["content"] = blocks[0].get_object().at("text");
        } else if (!blocks.empty()) {
          b["content"] = std::move(blocks);
        }
        json::array one;
        one.push_back(std::move(b));
        add_turn("user", std::move(one), false);
      } else {
        refuse(path(at, "role"), fmt::format("role \"{}\" {}", role, kToMessages));
      }
    }
  }

  static json::array translate_tools(const json::array& tools) {
    json::array out;
    std::size_t i = 0;
    for (const json::value& tv : tools) {
      const std::string p = path("tools", i++);
      const json::object& tool = as_object(tv, p);
      if (const std::string_view type = string_field(tool, "type"); type != "function") {
        refuse(path(p, "type"), fmt::format("tool type \"{}\" {}", type, kToMessages));
      }
      const std::string fp = path(p, "function");
      const json::object& fn = as_object(required(tool, "function", p), fp);
      json::object t;
      t["name"] = as_string(required(fn, "name", fp), path(fp, "name"));
      if (const json::value* d = present(fn, "description")) {
        t["description"] = as_string(*d, path(fp, "description"));
      }
      if (const json::value* s = present(fn, "parameters")) {
        as_object(*s, path(fp, "parameters"));
        t["input_schema"] = *s;
      } else {
        t["input_schema"] = {{"type", "object"}, {"properties", json::object()}};
      }
      if (const json::value* strict = present(fn, "strict");
          strict && as_bool(*strict, path(fp, "strict"))) {
        refuse(path(fp, "strict"), fmt::format("strict schema adherence {}", kToMessages));
      }
      out.push_back(std::move(t));
    }
    return out;
  }

  static json::object translate_tool_choice(const json::value& v) {
    json::object choice;
    if (v.is_string()) {
      const std::string_view s = v.get_string();
      if (s == "auto" || s == "none") {
        choice["type"] = s;
      } else if (s == "required") {
        choice["type"] = "any";
      } else {
        refuse("tool_choice", fmt::format("\"{}\" {}", s, kToMessages));
      }
      return choice;
    }
    const json::object& o = as_object(v, "tool_choice");
    if (string_field(o, "type") != "function") {
      refuse("tool_choice.type", fmt::format("\"{}\" {}", string_field(o, "type"), kToMessages));
    }
    const json::object& fn =
        as_object(required(o, "function", "tool_choice"), "tool_choice.function");
    choice["type"] = "tool";
    choice["name"] =
        as_string(required(fn, "name", "tool_choice.function"), "tool_choice.function.name");
    return choice;
  }

  const RequestOptions& options_;
  JsonReader reader_;
  json::array system_;
  bool system_plain_ = true;
  std::vector<Turn> turns_;
};

// ================================================================================================
// Messages -> Chat Completions
// ================================================================================================

class MessagesToChat {
 public:
  explicit MessagesToChat(const RequestOptions& options) : options_(options) {}

  std::string run(const json::object& req) {
    json::object out;
    out["model"] = options_.upstream_model;
    const json::value* messages = nullptr;
    const json::value* system = nullptr;
    const json::value* tools = nullptr;
    const json::value* tool_choice = nullptr;
    json::value max_tokens = options_.default_max_tokens;
    bool stream = false;
    json::object rest;  // translated fields, after messages
    for (const json::key_value_pair& kv : req) {
      const std::string key = kv.key();
      const json::value& v = kv.value();
      if (key == "model") {
        // replaced by the upstream model
      } else if (key == "messages") {
        messages = &v;
      } else if (key == "system") {
        if (!v.is_null()) system = &v;
      } else if (key == "max_tokens") {
        if (!v.is_null()) max_tokens = as_token_count(v, key);
      } else if (key == "temperature" || key == "top_p") {
        if (v.is_null()) continue;
        as_number(v, key);
        rest[key] = v;
      } else if (key == "stop_sequences") {
        if (v.is_null()) continue;
        std::size_t i = 0;
        for (const json::value& s : as_array(v, key)) as_string(s, path(key, i++));
        if (!v.get_array().empty()) rest["stop"] = v;
      } else if (key == "stream") {
        if (!v.is_null()) stream = as_bool(v, key);
      } else if (key == "tools") {
        if (!v.is_null()) tools = &v;
      } else if (key == "tool_choice") {
        if (!v.is_null()) tool_choice = &v;
      } else if (key == "metadata") {
        if (v.is_null()) continue;
        for (const json::key_value_pair& m : as_object(v, key)) {
          if (m.key() != "user_id") refuse(path(key, m.key()), kToChat);
          if (!m.value().is_null()) rest["user"] = as_string(m.value(), "metadata.user_id");
        }
      } else if (key == "top_k") {
        if (!v.is_null()) refuse(key, fmt::format("top-k sampling {}", kToChat));
      } else if (key == "thinking") {
        if (v.is_null()) continue;
        if (string_field(as_object(v, key), "type") != "disabled") {
          refuse(key, fmt::format("extended thinking {}", kToChat));
        }
      } else if (key == "service_tier") {
        if (v.is_null()) continue;
        const std::string_view tier = as_string(v, key);
        if (tier == "auto") {
          rest["service_tier"] = "auto";
        } else if (tier == "standard_only") {
          rest["service_tier"] = "default";
        } else {
          refuse(key, fmt::format("\"{}\" {}", tier, kToChat));
        }
      } else {
        // container, mcp_servers, context_management, and anything new.
        if (!v.is_null()) refuse(key, kToChat);
      }
    }
    if (messages == nullptr) refuse("messages", "is required");
    json::array chat;
    if (system != nullptr) {
      json::object m;
      m["role"] = "system";
      m["content"] = system_content(*system);
      chat.push_back(std::move(m));
    }
    add_messages(as_array(*messages, "messages"), chat);
    out["messages"] = std::move(chat);
    out["max_completion_tokens"] = max_tokens;
    for (json::key_value_pair& kv : rest) out[kv.key()] = std::move(kv.value());
    if (stream) {
      out["stream"] = true;
      out["stream_options"] = {{"include_usage", true}};
    }
    const bool have_tools = tools != nullptr && !as_array(*tools, "tools").empty();
    if (have_tools) out["tools"] = translate_tools(tools->get_array());
    if (tool_choice != nullptr) {
      const json::object& tc = as_object(*tool_choice, "tool_choice");
      const std::string_view type = string_field(tc, "type");
      json::value choice;
      if (type == "auto" || type == "none") {
        choice = type;
      } else if (type == "any") {
        choice = "required";
      } else if (type == "tool") {
        json::object fn;
        fn["name"] = as_string(required(tc, "name", "tool_choice"), "tool_choice.name");
        choice = {{"type", "function"}, {"function", std::move(fn)}};
      } else {
        refuse("tool_choice.type", fmt::format("\"{}\" {}", type, kToChat));
      }
      // Without tools, "auto" and "none" say nothing (and OpenAI refuses a tool_choice alone).
      if (have_tools || (type != "auto" && type != "none")) out["tool_choice"] = std::move(choice);
      const json::value* dp = present(tc, "disable_parallel_tool_use");
      if (dp != nullptr && as_bool(*dp, "tool_choice.disable_parallel_tool_use") && have_tools &&
          type != "none") {
        out["parallel_tool_calls"] = false;
      }
    }
    return json_text(out);
  }

 private:
  static json::value system_content(const json::value& v) {
    if (v.is_string()) return v;  // "" too: the caller said "no system prompt" explicitly
    json::array parts;
    std::size_t i = 0;
    for (const json::value& bv : as_array(v, "system")) {
      const std::string p = path("system", i++);
      const json::object& b = as_object(bv, p);
      if (string_field(b, "type") != "text") {
        refuse(path(p, "type"),
               fmt::format("system block \"{}\" {}", string_field(b, "type"), kToChat));
      }
      parts.push_back(text_part(as_string(required(b, "text", p), path(p, "text"))));
    }
    return parts;
  }

  static json::object image_part(const json::object& b, const std::string& at) {
    const std::string sp = path(at, "source");
    const json::object& source = as_object(required(b, "source", at), sp);
    const std::string_view type = string_field(source, "type");
    std::string url;
    if (type == "base64") {
      url = fmt::format("data:{};base64,{}",
                        as_string(required(source, "media_type", sp), path(sp, "media_type")),
                        as_string(required(source, "data", sp), path(sp, "data")));
    } else if (type == "url") {
      url = as_string(required(source, "url", sp), path(sp, "url"));
    } else {
      refuse(path(sp, "type"), fmt::format("image source \"{}\" {}", type, kToChat));
    }
    json::object part;
    part["type"] = "image_url";
    part["image_url"] = {{"url", url}};
    return part;
  }

  // Text-only content of a tool result: a string or text parts.
  static json::value tool_result_content(const json::object& b, const std::string& at) {
    const json::value* c = present(b, "content");
    if (c == nullptr) return "";
    if (c->is_string()) return *c;
    json::array parts;
    std::size_t i = 0;
    const std::string cp = path(at, "content");
    for (const json::value& pv : as_array(*c, cp)) {
      const std::string p = path(cp, i++);
      const json::object& part = as_object(pv, p);
      if (string_field(part, "type") != "text") {
        refuse(path(p, "type"),
               fmt::format("tool result block \"{}\" {}", string_field(part, "type"), kToChat));
      }
      parts.push_back(text_part(as_string(required(part, "text", p), path(p, "text"))));
    }
    return parts;
  }

  void add_messages(const json::array& messages, json::array& chat) {
    std::size_t i = 0;
    for (const json::value& mv : messages) {
      const std::string at = path("messages", i++);
      const json::object& m = as_object(mv, at);
      const std::string_view role = as_string(required(m, "role", at), path(at, "role"));
      if (role != "user" && role != "assistant") {
        refuse(path(at, "role"), fmt::format("role \"{}\" {}", role, kToChat));
      }
      const std::string cp = path(at, "content");
      const json::value& content = required(m, "content", at);
      if (content.is_string()) {
        chat.push_back({{"role", role}, {"content", content}});
        continue;
      }
      json::array parts;       // user: text and image parts; assistant: text parts
      json::array tool_calls;  // assistant
      std::size_t j = 0;
      for (const json::value& bv : as_array(content, cp)) {
        const std::string p = path(cp, j++);
        const json::object& b = as_object(bv, p);
        const std::string_view type = string_field(b, "type");
        if (type == "text") {
          parts.push_back(text_part(as_string(required(b, "text", p), path(p, "text"))));
        } else if (type == "image" && role == "user") {
          parts.push_back(image_part(b, p));
        } else if (type == "tool_result" && role == "user") {
          if (const json::value* e = present(b, "is_error");
              e != nullptr && as_bool(*e, path(p, "is_error"))) {
            refuse(path(p, "is_error"), fmt::format("an error flag on a tool result {}", kToChat));
          }
          // Chat wants tool results right after the assistant's calls: before the user's text.
          json::object t;
          t["role"] = "tool";
          t["tool_call_id"] = as_string(required(b, "tool_use_id", p), path(p, "tool_use_id"));
          t["content"] = tool_result_content(b, p);
          chat.push_back(std::move(t));
        } else if (type == "tool_use" && role == "assistant") {
          const json::value& input = required(b, "input", p);
          json::object fn;
          fn["name"] = as_string(required(b, "name", p), path(p, "name"));
          fn["arguments"] = json_text(input);
          json::object call;
          call["id"] = as_string(required(b, "id", p), path(p, "id"));
          call["type"] = "function";
          call["function"] = std::move(fn);
          tool_calls.push_back(std::move(call));
        } else {
          refuse(path(p, "type"), fmt::format("{} content block \"{}\" {}", role, type, kToChat));
        }
      }
      if (parts.empty() && tool_calls.empty()) continue;
      json::object out;
      out["role"] = role;
      if (role == "assistant" && parts.size() == 1) {
        out["content"] = parts[0].get_object().at("text");
      } else if (parts.empty()) {
        out["content"] = nullptr;
      } else {
        out["content"] = std::move(parts);
      }
      if (!tool_calls.empty()) out["tool_calls"] = std::move(tool_calls);
      chat.push_back(std::move(out));
    }
  }

  static json::array translate_tools(const json::array& tools) {
    json::array out;
    std::size_t i = 0;
    for (const json::value& tv : tools) {
      const std::string p = path("tools", i++);
      const json::object& tool = as_object(tv, p);
      if (const json::value* type = present(tool, "type");
          type != nullptr && !(type->is_string() && type->get_string() == "custom")) {
        refuse(path(p, "type"),
               fmt::format("server tool \"{}\" {}", string_field(tool, "type"), kToChat));
      }
      if (const json::value* strict = present(tool, "strict");
          strict != nullptr && as_bool(*strict, path(p, "strict"))) {
        refuse(path(p, "strict"), fmt::format("strict schema adherence {}", kToChat));
      }
      json::object fn;
      fn["name"] = as_string(required(tool, "name", p), path(p, "name"));
      if (const json::value* d = present(tool, "description")) {
        fn["description"] = as_string(*d, path(p, "description"));
      }
      const json::value& schema = required(tool, "input_schema", p);
      as_object(schema, path(p, "input_schema"));
      fn["parameters"] = schema;
      json::object t;
      t["type"] = "function";
      t["function"] = std::move(fn);
      out.push_back(std::move(t));
    }
    return out;
  }

  const RequestOptions& options_;
};

}  // namespace

std::variant<std::string, Untranslatable> translate_request(Api from, Api to, std::string_view body,
                                                            const RequestOptions& options) {
  JsonReader reader;
  std::optional<json::object> req = reader.parse_object(body);
  if (!req) return Untranslatable{"the request body is not a JSON object", ""};
  try {
    if (from == to) {
      (*req)["model"] = options.upstream_model;
      return json_text(*req);
    }
    if (from == Api::kChat) return ChatToMessages(options).run(*req);
    return MessagesToChat(options).run(*req);
  } catch (Refusal& r) {
    return std::move(r.what);
  }
}

}  // namespace redline::translate
