// Stream <-> body conversions for cached answers (see replay.h). JSON is read with simdjson
// (correctly rounded doubles, exact 64-bit integers) into Boost.JSON values, which keep key
// order and are easy to edit, and written back by the small writer below, which prints
// doubles as their shortest round-trip text. The merge rules follow what the official SDKs do
// when they accumulate a stream, so an assembled body is what a client would have built.
#include "cache/replay.h"

#include "common/json_text.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>
#include <utility>

#include "cache/sse.h"

namespace redline::cache {
namespace {

namespace json = boost::json;

using redline::JsonReader;  // common/json_text.h

// (JSON and SSE events out: json_text and sse_event, common/json_text.h.)

// --- Small accessors and merge rules ----------------------------------------------------------

bool contains(std::span<const std::string_view> keys, std::string_view key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

// A non-negative integer index; nullopt for anything else.
std::optional<int64_t> index_value(const json::value& v) {
  if (const int64_t* i = v.if_int64(); i != nullptr && *i >= 0) return *i;
  if (const uint64_t* u = v.if_uint64(); u != nullptr && *u <= INT64_MAX) {
    return static_cast<int64_t>(*u);
  }
  return std::nullopt;
}

// The "index" field of `o`, `fallback` when it is absent; nullopt when it is not an index.
std::optional<int64_t> index_field(const json::object& o, int64_t fallback) {
  const json::value* v = o.if_contains("index");
  if (v == nullptr) return fallback;
  return index_value(*v);
}

std::string_view string_field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string_view(v->get_string()) : std::string_view{};
}

// Values that a stream may send before it knows the real one (Azure's first chunk has
// "id":"", "model":"" and "created":0).
bool is_placeholder(const json::value& v) {
  return v.is_null() || (v.is_string() && v.get_string().empty()) ||
         (v.is_int64() && v.get_int64() == 0);
}

// Keeps the first meaningful value of a field that every chunk repeats (id, created, model).
void keep_first(json::object& into, std::string_view key, const json::value& v) {
  json::value* slot = into.if_contains(key);
  if (slot == nullptr) {
    into[key] = v;
  } else if (is_placeholder(*slot) && !v.is_null()) {
    *slot = v;
  }
}

// Any other field: the last non-null value wins (null only while nothing else was seen).
void keep_last(json::object& into, std::string_view key, const json::value& v) {
  if (!v.is_null()) {
    into[key] = v;
  } else if (!into.contains(key)) {
    into[key] = nullptr;
  }
}

// Folds one streamed delta object into its accumulated form: string fields named in
// `concatenated` are appended; nested objects are folded the same way (with "arguments" and
// "input" concatenated, as function calls stream them); an empty string does not erase a
// value already given (a later delta's "name": ""); any other non-null value replaces.
constexpr std::array<std::string_view, 2> kNestedConcatenated = {"arguments", "input"};

void fold_delta(json::object& into, const json::object& delta,
                std::span<const std::string_view> concatenated,
                std::span<const std::string_view> skip = {}) {
  for (const json::key_value_pair& kv : delta) {
    const std::string_view key = kv.key();
    const json::value& v = kv.value();
    if (contains(skip, key)) continue;
    if (v.is_null()) {
      if (!into.contains(key)) into[key] = nullptr;
      continue;
    }
    json::value& slot = into[key];
    if (v.is_string() && contains(concatenated, key)) {
      if (slot.is_string()) {
        slot.get_string().append(v.get_string());
      } else {
        slot = v;
      }
    } else if (v.is_object() && slot.is_object()) {
      fold_delta(slot.get_object(), v.get_object(), kNestedConcatenated);
    } else if (!(v.is_string() && v.get_string().empty() && !slot.is_null())) {
      slot = v;
    }
  }
}

// Merges streamed logprobs: arrays (chat "content"/"refusal", legacy "tokens", "top_logprobs",
// ...) are concatenated, a null does not erase, anything else replaces.
void merge_logprobs(json::value& into, const json::value& lp) {
  if (lp.is_null()) return;
  if (!into.is_object() || !lp.is_object()) {
    into = lp;
    return;
  }
  json::object& target = into.get_object();
  for (const json::key_value_pair& kv : lp.get_object()) {
    const json::value& v = kv.value();
    if (v.is_null()) {
      if (!target.contains(kv.key())) target[kv.key()] = nullptr;
      continue;
    }
    json::value& slot = target[kv.key()];
    if (v.is_array() && slot.is_array()) {
      json::array& a = slot.get_array();
      for (const json::value& item : v.get_array()) a.push_back(item);
    } else {
      slot = v;
    }
  }
}

// Copies the fields of `from` not named in `known` onto `to`, in order.
void copy_unknown(json::object& to, const json::object& from,
                  std::span<const std::string_view> known) {
  for (const json::key_value_pair& kv : from) {
    if (!contains(known, kv.key())) to[kv.key()] = kv.value();
  }
}

// --- OpenAI: chunks -> body -------------------------------------------------------------------

constexpr std::array<std::string_view, 9> kChunkKnown = {
    "id",         "object", "created",      "model",
    "choices",    "usage",  "service_tier", "system_fingerprint",
    "obfuscation"};
// The choice fields each shape handles itself; any other choice field is carried over.
constexpr std::array<std::string_view, 5> kChatChoiceOwn = {"index", "delta", "message", "logprobs",
                                                            "finish_reason"};
constexpr std::array<std::string_view, 4> kTextChoiceOwn = {"index", "text", "logprobs",
                                                            "finish_reason"};
constexpr std::array<std::string_view, 3> kTextChoiceSkip = {"index", "logprobs", "finish_reason"};
constexpr std::array<std::string_view, 4> kMessageConcatenated = {"content", "refusal",
                                                                  "reasoning_content", "reasoning"};
constexpr std::array<std::string_view, 1> kTextConcatenated = {"text"};
constexpr std::array<std::string_view, 1> kToolCallsKey = {"tool_calls"};
constexpr std::array<std::string_view, 1> kIndexKey = {"index"};

// Accumulates the chunks of one OpenAI stream (chat or legacy completions).
class OpenAIAssembler {
 public:
  explicit OpenAIAssembler(bool chat) : chat_(chat) {}

  bool add(std::span<const std::string> events) {
    for (const std::string& event : events) {
      const std::string data = event_data(event);
      if (data.empty()) continue;  // comments, keep-alives
      if (data == "[DONE]") {
        done_ = true;
        break;
      }
      std::optional<json::object> chunk = reader_.parse_object(data);
      if (!chunk || !add_chunk(*chunk)) return false;
    }
    return done_;
  }

  std::optional<std::string> finish() const {
    if (!done_ || choices_.empty()) return std::nullopt;
    json::array choices;
    for (const auto& [index, c] : choices_) {
      if (c.finish_reason.is_null()) return std::nullopt;
      choices.push_back(chat_ ? chat_choice(index, c) : text_choice(index, c));
    }
    json::object body;
    copy_field(body, "id");
    body["object"] = chat_ ? "chat.completion" : "text_completion";
    copy_field(body, "created");
    copy_field(body, "model");
    body["choices"] = std::move(choices);
    if (!usage_.is_null()) body["usage"] = usage_;
    copy_field(body, "service_tier");
    copy_field(body, "system_fingerprint");
    copy_unknown(body, top_, kChunkKnown);
    return json_text(body);
  }

 private:
  struct Choice {
    json::object fields;  // chat: the message; legacy: text and the choice's other fields
    json::object extras;  // chat: the choice's fields other than kChatChoiceOwn
    std::map<int64_t, json::object> tool_calls;
    json::value logprobs;  // null until a chunk has some
    json::value finish_reason;
  };

  bool add_chunk(const json::object& chunk) {
    if (chunk.contains("error")) return false;  // an error reported mid-stream
    for (const json::key_value_pair& kv : chunk) {
      const std::string_view key = kv.key();
      if (key == "choices") {
        if (!kv.value().is_array()) return false;
        for (const json::value& c : kv.value().get_array()) {
          if (!c.is_object() || !add_choice(c.get_object())) return false;
        }
      } else if (key == "id" || key == "created" || key == "model") {
        keep_first(top_, key, kv.value());
      } else if (key == "usage") {
        if (!kv.value().is_null()) usage_ = kv.value();
      } else if (key != "object" && key != "obfuscation") {
        keep_last(top_, key, kv.value());
      }
    }
    return true;
  }

  bool add_choice(const json::object& c) {
    const std::optional<int64_t> index = index_field(c, 0);
    if (!index) return false;
    Choice& choice = choices_[*index];
    if (const json::value* lp = c.if_contains("logprobs")) merge_logprobs(choice.logprobs, *lp);
    if (const json::value* fr = c.if_contains("finish_reason"); fr != nullptr && !fr->is_null()) {
      choice.finish_reason = *fr;
    }
    if (!chat_) {
      fold_delta(choice.fields, c, kTextConcatenated, kTextChoiceSkip);
      return true;
    }
    for (const json::key_value_pair& kv : c) {
      if (!contains(kChatChoiceOwn, kv.key())) keep_last(choice.extras, kv.key(), kv.value());
    }
    const json::value* delta = c.if_contains("delta");
    if (delta == nullptr || !delta->is_object()) return true;
    fold_delta(choice.fields, delta->get_object(), kMessageConcatenated, kToolCallsKey);
    const json::value* calls = delta->get_object().if_contains("tool_calls");
    if (calls == nullptr || calls->is_null()) return true;
    if (!calls->is_array()) return false;
    int64_t position = 0;
    for (const json::value& call : calls->get_array()) {
      if (!call.is_object()) return false;
      const std::optional<int64_t> call_index = index_field(call.get_object(), position++);
      if (!call_index) return false;
      fold_delta(choice.tool_calls[*call_index], call.get_object(), {}, kIndexKey);
    }
    return true;
  }

  void copy_field(json::object& body, std::string_view key) const {
    if (const json::value* v = top_.if_contains(key)) body[key] = *v;
  }

  static json::object tool_call(const json::object& merged) {
    json::object call;
    const json::value* id = merged.if_contains("id");
    call["id"] = id != nullptr && id->is_string() ? *id : json::value("");
    const std::string_view type = string_field(merged, "type");
    call["type"] = type.empty() ? "function" : type;
    copy_unknown(call, merged, std::array<std::string_view, 2>{"id", "type"});
    if (type.empty() || type == "function") {
      json::value& fn = call["function"];
      if (!fn.is_object()) fn = json::object();
      for (std::string_view k : {"name", "arguments"}) {
        if (!fn.get_object()[k].is_string()) fn.get_object()[k] = "";
      }
    }
    return call;
  }

  static json::object chat_choice(int64_t index, const Choice& c) {
    const json::object& m = c.fields;
    json::object message;
    const std::string_view role = string_field(m, "role");
    message["role"] = role.empty() ? "assistant" : role;
    const bool calls = !c.tool_calls.empty() || m.contains("function_call");
    const json::value* content = m.if_contains("content");
    if (content == nullptr || (calls && content->is_string() && content->get_string().empty())) {
      message["content"] = nullptr;
    } else {
      message["content"] = *content;
    }
    const json::value* refusal = m.if_contains("refusal");
    message["refusal"] = refusal != nullptr ? *refusal : json::value(nullptr);
    copy_unknown(message, m, std::array<std::string_view, 3>{"role", "content", "refusal"});
    if (!c.tool_calls.empty()) {
      json::array calls_out;
      for (const auto& [call_index, merged] : c.tool_calls) calls_out.push_back(tool_call(merged));
      message["tool_calls"] = std::move(calls_out);
    }
    json::object choice;
    choice["index"] = index;
    choice["message"] = std::move(message);
    choice["logprobs"] = c.logprobs;
    choice["finish_reason"] = c.finish_reason;
    copy_unknown(choice, c.extras, kChatChoiceOwn);
    return choice;
  }

  static json::object text_choice(int64_t index, const Choice& c) {
    json::object choice;
    const json::value* text = c.fields.if_contains("text");
    choice["text"] = text != nullptr && text->is_string() ? *text : json::value("");
    choice["index"] = index;
    choice["logprobs"] = c.logprobs;
    choice["finish_reason"] = c.finish_reason;
    copy_unknown(choice, c.fields, kTextChoiceOwn);
    return choice;
  }

  bool chat_;
  JsonReader reader_;
  bool done_ = false;
  json::object top_;  // id, created, model, and every field not handled apart
  json::value usage_;
  std::map<int64_t, Choice> choices_;
};

std::optional<std::string> assemble_openai(std::span<const std::string> events, bool chat) {
  OpenAIAssembler a(chat);
  if (!a.add(events)) return std::nullopt;
  return a.finish();
}

// --- OpenAI: body -> chunks -------------------------------------------------------------------

constexpr std::array<std::string_view, 8> kBodyKnown = {
    "id", "object", "created", "model", "choices", "usage", "service_tier", "system_fingerprint"};
constexpr std::array<std::string_view, 4> kStreamedMessageText = {"content", "reasoning_content",
                                                                  "reasoning", "refusal"};

// Writes the chunks of one synthesized OpenAI stream: each carries the body's id, created,
// model, service_tier and system_fingerprint; the body's other top-level fields ride on the
// first chunk only (accumulating clients keep them).
class ChunkWriter {
 public:
  // Usage fields appear only when asked for and the body has usage to report.
  ChunkWriter(const json::object& body, std::string_view object, bool include_usage)
      : body_(body), usage_(body.if_contains("usage")) {
    if (usage_ != nullptr && usage_->is_null()) usage_ = nullptr;
    if (!include_usage) usage_ = nullptr;
    for (std::string_view key :
         {"id", "object", "created", "model", "service_tier", "system_fingerprint"}) {
      if (key == "object") {
        head_["object"] = object;
      } else if (const json::value* v = body.if_contains(key)) {
        head_[key] = *v;
      }
    }
  }

  void emit(json::object choice) {
    json::object chunk = head_;
    json::array choices;
    choices.push_back(std::move(choice));
    chunk["choices"] = std::move(choices);
    if (usage_ != nullptr) chunk["usage"] = nullptr;
    if (events_.empty()) copy_unknown(chunk, body_, kBodyKnown);
    events_.push_back(sse_event({}, chunk));
  }

  std::vector<std::string> finish() {
    if (usage_ != nullptr) {
      json::object chunk = head_;
      chunk["choices"] = json::array();
      chunk["usage"] = *usage_;
      events_.push_back(sse_event({}, chunk));
    }
    events_.emplace_back("data: [DONE]");
    return std::move(events_);
  }

 private:
  const json::object& body_;
  const json::value* usage_;  // null: no usage fields in the stream
  json::object head_;
  std::vector<std::string> events_;
};

json::object chat_chunk_choice(int64_t index, json::object delta, json::value logprobs,
                               json::value finish_reason) {
  json::object c;
  c["index"] = index;
  c["delta"] = std::move(delta);
  c["logprobs"] = std::move(logprobs);
  c["finish_reason"] = std::move(finish_reason);
  return c;
}

// One choice of a chat.completion as chunks: role (with the message's other fields), the
// streamed texts, tool calls, then the finish. The logprobs ride on the first text chunk.
bool chat_choice_chunks(const json::object& choice, int64_t position, ChunkWriter& w) {
  const json::value* mv = choice.if_contains("message");
  if (mv == nullptr || !mv->is_object()) return false;
  const json::object& m = mv->get_object();
  const std::optional<int64_t> index = index_field(choice, position);
  if (!index) return false;
  const json::value* lpv = choice.if_contains("logprobs");
  json::value logprobs = lpv != nullptr ? *lpv : json::value(nullptr);

  json::object first;
  const std::string_view role = string_field(m, "role");
  first["role"] = role.empty() ? "assistant" : role;
  for (std::string_view key : kStreamedMessageText) {
    const json::value* v = m.if_contains(key);
    if (v != nullptr) first[key] = v->is_string() ? json::value("") : *v;
  }
  if (!first.contains("content")) first["content"] = nullptr;
  if (!first.contains("refusal")) first["refusal"] = nullptr;
  copy_unknown(first, m,
               std::array<std::string_view, 6>{"role", "content", "reasoning_content", "reasoning",
                                               "refusal", "tool_calls"});
  w.emit(chat_chunk_choice(*index, std::move(first), nullptr, nullptr));

  // Reasoning first, as providers stream it, then the answer, then a refusal.
  for (std::string_view key : {"reasoning_content", "reasoning", "content", "refusal"}) {
    const std::string_view text = string_field(m, key);
    if (text.empty()) continue;
    json::object delta;
    delta[key] = text;
    const bool carries_logprobs = key == "content" || key == "refusal";
    w.emit(chat_chunk_choice(*index, std::move(delta),
                             carries_logprobs ? std::exchange(logprobs, nullptr) : nullptr,
                             nullptr));
  }

  if (const json::value* calls = m.if_contains("tool_calls");
      calls != nullptr && !calls->is_null()) {
    if (!calls->is_array()) return false;
    int64_t k = 0;
    for (const json::value& call : calls->get_array()) {
      if (!call.is_object()) return false;
      json::object streamed;
      streamed["index"] = k++;
      copy_unknown(streamed, call.get_object(), kIndexKey);
      json::array one;
      one.push_back(std::move(streamed));
      json::object delta;
      delta["tool_calls"] = std::move(one);
      w.emit(chat_chunk_choice(*index, std::move(delta), nullptr, nullptr));
    }
  }

  const json::value* fr = choice.if_contains("finish_reason");
  json::object last = chat_chunk_choice(*index, json::object(), std::move(logprobs),
                                        fr != nullptr ? *fr : json::value(nullptr));
  copy_unknown(last, choice, kChatChoiceOwn);
  w.emit(std::move(last));
  return true;
}

// One choice of a text_completion as chunks: the text (with logprobs), then the finish.
bool text_choice_chunks(const json::object& choice, int64_t position, ChunkWriter& w) {
  const std::optional<int64_t> index = index_field(choice, position);
  if (!index) return false;
  const json::value* text = choice.if_contains("text");
  if (text != nullptr && !text->is_string() && !text->is_null()) return false;
  const json::value* lp = choice.if_contains("logprobs");
  const bool has_text = text != nullptr && text->is_string() && !text->get_string().empty();
  const bool has_logprobs = lp != nullptr && !lp->is_null();
  if (has_text || has_logprobs) {
    json::object c;
    c["text"] = has_text ? *text : json::value("");
    c["index"] = *index;
    c["logprobs"] = has_logprobs ? *lp : json::value(nullptr);
    c["finish_reason"] = nullptr;
    w.emit(std::move(c));
  }
  json::object c;
  c["text"] = "";
  c["index"] = *index;
  c["logprobs"] = nullptr;
  const json::value* fr = choice.if_contains("finish_reason");
  c["finish_reason"] = fr != nullptr ? *fr : json::value(nullptr);
  copy_unknown(c, choice, kTextChoiceOwn);
  w.emit(std::move(c));
  return true;
}

std::vector<std::string> synthesize_openai(std::string_view body, bool chat, bool include_usage) {
  JsonReader reader;
  const std::optional<json::object> root = reader.parse_object(body);
  if (!root) return {};
  const std::string_view object = chat ? "chat.completion" : "text_completion";
  if (const json::value* o = root->if_contains("object");
      o != nullptr && !(o->is_string() && o->get_string() == object)) {
    return {};
  }
  const json::value* choices = root->if_contains("choices");
  if (choices == nullptr || !choices->is_array()) return {};
  ChunkWriter w(*root, chat ? "chat.completion.chunk" : "text_completion", include_usage);
  int64_t position = 0;
  for (const json::value& c : choices->get_array()) {
    if (!c.is_object()) return {};
    const bool ok = chat ? chat_choice_chunks(c.get_object(), position, w)
                         : text_choice_chunks(c.get_object(), position, w);
    if (!ok) return {};
    ++position;
  }
  return w.finish();
}

// --- Anthropic: events -> body ----------------------------------------------------------------

class MessageAssembler {
 public:
  bool add(std::span<const std::string> events) {
    for (const std::string& event : events) {
      const std::string data = event_data(event);
      if (data.empty()) continue;
      std::optional<json::object> e = reader_.parse_object(data);
      if (!e) return false;
      std::string_view type = string_field(*e, "type");
      if (type.empty()) type = event_type(event);
      if (type == "message_stop") {
        done_ = true;
        break;
      }
      if (!add_event(type, *e)) return false;
    }
    return done_;
  }

  std::optional<std::string> finish() {
    if (!started_ || !done_) return std::nullopt;
    json::array content;
    for (auto& [index, block] : blocks_) {
      if (!block.stopped) return std::nullopt;
      content.push_back(std::move(block.block));
    }
    message_["content"] = std::move(content);
    return json_text(message_);
  }

 private:
  struct Block {
    json::object block;
    std::string partial_json;  // input_json_delta pieces
    bool stopped = false;
  };

  bool add_event(std::string_view type, const json::object& e) {
    if (type == "error") return false;
    if (type == "message_start") {
      const json::value* m = e.if_contains("message");
      if (started_ || m == nullptr || !m->is_object()) return false;
      message_ = m->get_object();
      started_ = true;
      return true;
    }
    if (type == "content_block_start") {
      const json::value* cb = e.if_contains("content_block");
      const std::optional<int64_t> index = index_field(e, -1);
      if (!started_ || !index || *index < 0 || cb == nullptr || !cb->is_object()) return false;
      auto [it, inserted] = blocks_.try_emplace(*index);
      if (!inserted) return false;
      it->second.block = cb->get_object();
      return true;
    }
    if (type == "content_block_delta" || type == "content_block_stop") {
      Block* block = find_open_block(e);
      if (block == nullptr) return false;
      if (type == "content_block_stop") return stop_block(*block);
      const json::value* d = e.if_contains("delta");
      return d != nullptr && d->is_object() && add_delta(*block, d->get_object());
    }
    if (type == "message_delta") {
      if (!started_) return false;
      if (const json::value* d = e.if_contains("delta"); d != nullptr && d->is_object()) {
        for (const json::key_value_pair& kv : d->get_object()) message_[kv.key()] = kv.value();
      }
      const json::value* u = e.if_contains("usage");
      if (u == nullptr || !u->is_object()) return true;
      for (const json::key_value_pair& kv : u->get_object()) {
        if (kv.value().is_null()) continue;
        json::value& usage = message_["usage"];
        if (!usage.is_object()) usage = json::object();
        usage.get_object()[kv.key()] = kv.value();
      }
      return true;
    }
    return true;  // ping and events this code does not know
  }

  Block* find_open_block(const json::object& e) {
    const std::optional<int64_t> index = index_field(e, -1);
    if (!index || *index < 0) return nullptr;
    const auto it = blocks_.find(*index);
    if (it == blocks_.end() || it->second.stopped) return nullptr;
    return &it->second;
  }

  static void append_text(json::object& block, std::string_view key, const json::value* piece) {
    if (piece == nullptr || !piece->is_string()) return;
    json::value& slot = block[key];
    if (slot.is_string()) {
      slot.get_string().append(piece->get_string());
    } else {
      slot = *piece;
    }
  }

  static bool add_delta(Block& block, const json::object& d) {
    const std::string_view type = string_field(d, "type");
    if (type == "text_delta") {
      append_text(block.block, "text", d.if_contains("text"));
    } else if (type == "thinking_delta") {
      append_text(block.block, "thinking", d.if_contains("thinking"));
    } else if (type == "signature_delta") {
      if (const json::value* s = d.if_contains("signature")) block.block["signature"] = *s;
    } else if (type == "input_json_delta") {
      const json::value* p = d.if_contains("partial_json");
      if (p == nullptr || !p->is_string()) return false;
      block.partial_json.append(p->get_string());
    } else if (type == "citations_delta") {
      const json::value* c = d.if_contains("citation");
      if (c == nullptr) return false;
      json::value& citations = block.block["citations"];
      if (!citations.is_array()) citations = json::array();
      citations.get_array().push_back(*c);
    }
    return true;
  }

  bool stop_block(Block& block) {
    block.stopped = true;
    if (block.partial_json.empty()) return true;
    std::optional<json::value> input = reader_.parse(block.partial_json);
    if (!input) return false;
    block.block["input"] = std::move(*input);
    block.partial_json.clear();
    return true;
  }

  JsonReader reader_;
  bool started_ = false;
  bool done_ = false;
  json::object message_;
  std::map<int64_t, Block> blocks_;
};

// --- Anthropic: body -> events ----------------------------------------------------------------

class MessageWriter {
 public:
  void emit(std::string_view type, json::object fields) {
    json::object e;
    e["type"] = type;
    for (json::key_value_pair& kv : fields) e[kv.key()] = std::move(kv.value());
    events_.push_back(sse_event(type, e));
  }

  void delta(int64_t index, std::string_view type, std::string_view key, json::value v) {
    json::object d;
    d["type"] = type;
    d[key] = std::move(v);
    emit("content_block_delta", {{"index", index}, {"delta", std::move(d)}});
  }

  std::vector<std::string> finish() { return std::move(events_); }

 private:
  std::vector<std::string> events_;
};

// One content block as start / deltas / stop, shaped as the API streams each type.
bool block_events(const json::value& bv, int64_t index, MessageWriter& w) {
  if (!bv.is_object()) return false;
  const json::object& b = bv.get_object();
  const std::string_view type = string_field(b, "type");
  json::object start = b;
  std::vector<std::pair<std::string_view, json::value>> deltas;  // (delta type, payload)
  // A streamed text field starts empty and arrives as one delta.
  auto stream_text = [&](std::string_view key, std::string_view delta_type) {
    const json::value* text = b.if_contains(key);
    if (text == nullptr || !text->is_string()) return;
    start[key] = "";
    if (!text->get_string().empty()) deltas.emplace_back(delta_type, *text);
  };
  if (type == "text") {
    if (const json::value* cites = b.if_contains("citations"); cites && cites->is_array()) {
      start["citations"] = json::array();
      for (const json::value& c : cites->get_array()) deltas.emplace_back("citations_delta", c);
    }
    stream_text("text", "text_delta");
  } else if (type == "thinking") {
    stream_text("thinking", "thinking_delta");
    if (const json::value* s = b.if_contains("signature")) {
      start.erase("signature");
      deltas.emplace_back("signature_delta", *s);
    }
  } else if (const json::value* input = b.if_contains("input")) {
    // tool_use, server_tool_use, mcp_tool_use: the input arrives as JSON text.
    start["input"] = json::object();
    const bool empty_object = input->is_object() && input->get_object().empty();
    if (!empty_object) deltas.emplace_back("input_json_delta", json::value(json_text(*input)));
  }
  w.emit("content_block_start", {{"index", index}, {"content_block", std::move(start)}});
  for (auto& [delta_type, payload] : deltas) {
    std::string_view key = "text";
    if (delta_type == "citations_delta") key = "citation";
    if (delta_type == "thinking_delta") key = "thinking";
    if (delta_type == "signature_delta") key = "signature";
    if (delta_type == "input_json_delta") key = "partial_json";
    w.delta(index, delta_type, key, std::move(payload));
  }
  w.emit("content_block_stop", {{"index", index}});
  return true;
}

std::vector<std::string> synthesize_anthropic(std::string_view body) {
  JsonReader reader;
  const std::optional<json::object> root = reader.parse_object(body);
  if (!root) return {};
  if (const json::value* t = root->if_contains("type");
      t != nullptr && !(t->is_string() && t->get_string() == "message")) {
    return {};
  }
  const json::value* content = root->if_contains("content");
  if (content == nullptr || !content->is_array()) return {};

  MessageWriter w;
  // message_start: the message without its content and (when it has them) its stop fields.
  json::object start = *root;
  start["content"] = json::array();
  json::object delta;
  for (std::string_view key : {"stop_reason", "stop_sequence"}) {
    if (json::value* v = start.if_contains(key)) {
      delta[key] = std::exchange(*v, nullptr);
    }
  }
  w.emit("message_start", {{"message", std::move(start)}});
  int64_t index = 0;
  for (const json::value& block : content->get_array()) {
    if (!block_events(block, index++, w)) return {};
  }
  // message_delta: the stop fields, and output_tokens when the body has a usage object.
  json::object message_delta;
  message_delta["delta"] = std::move(delta);
  if (const json::value* u = root->if_contains("usage"); u != nullptr && u->is_object()) {
    json::object usage;
    if (const json::value* out = u->get_object().if_contains("output_tokens")) {
      usage["output_tokens"] = *out;
    }
    message_delta["usage"] = std::move(usage);
  }
  w.emit("message_delta", std::move(message_delta));
  w.emit("message_stop", {});
  return w.finish();
}

}  // namespace

std::optional<std::string> assemble_chat_completion(std::span<const std::string> events) {
  return assemble_openai(events, /*chat=*/true);
}

std::vector<std::string> synthesize_chat_completion_events(std::string_view body,
                                                           bool include_usage) {
  return synthesize_openai(body, /*chat=*/true, include_usage);
}

bool is_usage_only_chunk(std::string_view event) {
  // Most events are not: a text test first (every chunk of a stream asked for usage has
  // "usage":null, and a parse of each cost more than the rest of the stream's relay).
  if (!event_may_have_member(event, "usage", '{') ||
      !event_may_have_member(event, "choices", '[', true)) {
    return false;
  }
  const std::string data = event_data(event);
  boost::system::error_code ec;
  const json::value v = json::parse(data, ec);
  if (ec || !v.is_object()) return false;
  const json::value* choices = v.get_object().if_contains("choices");
  const json::value* usage = v.get_object().if_contains("usage");
  return choices != nullptr && choices->is_array() && choices->get_array().empty() &&
         usage != nullptr && usage->is_object();
}

std::vector<std::string> filter_chat_events(std::span<const std::string> events,
                                            bool include_usage) {
  if (include_usage) return {events.begin(), events.end()};
  // Only a `,"usage":null` that closes the top-level object is removed: the event's last line
  // is then its data's end, and that text cannot occur inside a JSON string.
  constexpr std::string_view kNullUsage = R"(,"usage":null})";
  std::vector<std::string> out;
  out.reserve(events.size());
  for (const std::string& e : events) {
    if (is_usage_only_chunk(e)) continue;
    std::string_view view = e;
    if (view.ends_with(kNullUsage)) {
      out.emplace_back(view.substr(0, view.size() - kNullUsage.size())).push_back('}');
    } else {
      out.push_back(e);
    }
  }
  return out;
}

std::optional<std::string> assemble_completion(std::span<const std::string> events) {
  return assemble_openai(events, /*chat=*/false);
}

std::vector<std::string> synthesize_completion_events(std::string_view body, bool include_usage) {
  return synthesize_openai(body, /*chat=*/false, include_usage);
}

std::optional<std::string> assemble_message(std::span<const std::string> events) {
  MessageAssembler a;
  if (!a.add(events)) return std::nullopt;
  return a.finish();
}

std::vector<std::string> synthesize_message_events(std::string_view body) {
  return synthesize_anthropic(body);
}

std::optional<std::string> assemble_answer(ReplayApi api, std::span<const std::string> events) {
  switch (api) {
    case ReplayApi::kChatCompletions:
      return assemble_chat_completion(events);
    case ReplayApi::kCompletions:
      return assemble_completion(events);
    case ReplayApi::kMessages:
      return assemble_message(events);
  }
  return std::nullopt;
}

std::vector<std::string> synthesize_events(ReplayApi api, std::string_view body,
                                           bool include_usage) {
  switch (api) {
    case ReplayApi::kChatCompletions:
      return synthesize_chat_completion_events(body, include_usage);
    case ReplayApi::kCompletions:
      return synthesize_completion_events(body, include_usage);
    case ReplayApi::kMessages:
      return synthesize_message_events(body);
  }
  return {};
}

bool is_stream_end(ReplayApi api, std::string_view event) {
  return api == ReplayApi::kMessages ? is_anthropic_stop(event) : is_openai_done(event);
}

}  // namespace redline::cache
