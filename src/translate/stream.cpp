// Stream translation, Chat Completions <-> Messages (StreamTranslator in translate.h). Each
// provider event becomes zero or more caller events right away; the translator keeps only
// what later events need (ids, open content block, tool-call numbering, usage and the stop
// reason). The caller events are shaped as the official SDKs accumulate them (cache/replay.h
// assembles both the same way). Events that are not JSON, pings and comments produce nothing;
// nothing is read after the terminal event.
#include <fmt/format.h>

#include <map>
#include <set>
#include <string>
#include <utility>
#include <variant>

#include "cache/sse.h"
#include "common/error_body.h"
#include "common/json_text.h"
#include "translate/shapes.h"
#include "translate/translate.h"

namespace redline::translate {
namespace {

using namespace detail;  // NOLINT(google-build-using-namespace): internal helpers

// --- Messages events -> Chat chunks --------------------------------------------------------------

class MessagesToChatStream {
 public:
  MessagesToChatStream(std::string model, bool include_usage)
      : model_(std::move(model)), include_usage_(include_usage), created_(now_seconds()) {}

  bool finished() const { return finished_; }

  void feed(std::string_view event, std::vector<std::string>& out) {
    if (finished_) return;
    const std::string data = cache::event_data(event);
    if (data.empty()) return;
    std::optional<json::object> e = reader_.parse_object(data);
    if (!e) return;
    std::string_view type = string_field(*e, "type");
    if (type.empty()) type = cache::event_type(event);
    if (type == "message_start") {
      if (started_) return;
      const json::value* m = present(*e, "message");
      if (m != nullptr && m->is_object()) {
        id_ = chat_id_from(string_field(m->get_object(), "id"));
        if (const json::value* u = present(m->get_object(), "usage"); u && u->is_object()) {
          usage_.add_messages(u->get_object());
        }
      }
      start(out);
    } else if (type == "content_block_start") {
      start(out);
      const std::optional<uint64_t> index = count_field(*e, "index");
      const json::value* cb = present(*e, "content_block");
      if (!index || cb == nullptr || !cb->is_object()) return;
      const json::object& block = cb->get_object();
      const std::string_view block_type = string_field(block, "type");
      if (block_type == "text") {
        content(string_field(block, "text"), out);
      } else if (block_type == "tool_use") {
        const int64_t k = next_tool_++;
        tools_[*index] = k;
        json::object fn;
        fn["name"] = string_field(block, "name");
        const json::value* input = present(block, "input");
        const bool has_input =
            input != nullptr && !(input->is_object() && input->get_object().empty());
        fn["arguments"] = has_input ? json_text(*input) : std::string();
        if (has_input) with_arguments_.insert(k);
        json::object call;
        call["index"] = k;
        call["id"] = string_field(block, "id");
        call["type"] = "function";
        call["function"] = std::move(fn);
        tool_chunk(std::move(call), out);
      }
    } else if (type == "content_block_delta") {
      start(out);
      const std::optional<uint64_t> index = count_field(*e, "index");
      const json::value* dv = present(*e, "delta");
      if (!index || dv == nullptr || !dv->is_object()) return;
      const json::object& d = dv->get_object();
      const std::string_view delta_type = string_field(d, "type");
      if (delta_type == "text_delta") {
        content(string_field(d, "text"), out);
      } else if (delta_type == "input_json_delta") {
        const auto tool = tools_.find(*index);
        const std::string_view piece = string_field(d, "partial_json");
        if (tool == tools_.end() || piece.empty()) return;
        with_arguments_.insert(tool->second);
        json::object call;
        call["index"] = tool->second;
        call["function"] = {{"arguments", piece}};
        tool_chunk(std::move(call), out);
      }
    } else if (type == "content_block_stop") {
      // A call without input still has arguments, as OpenAI sends them: "{}" (JSON.parse("")
      // fails in every client).
      const std::optional<uint64_t> index = count_field(*e, "index");
      const auto tool = index ? tools_.find(*index) : tools_.end();
      if (tool == tools_.end() || with_arguments_.contains(tool->second)) return;
      with_arguments_.insert(tool->second);
      json::object call;
      call["index"] = tool->second;
      call["function"] = {{"arguments", "{}"}};
      tool_chunk(std::move(call), out);
    } else if (type == "message_delta") {
      start(out);
      if (const json::value* u = present(*e, "usage"); u != nullptr && u->is_object()) {
        usage_.add_messages(u->get_object());
      }
      const json::value* d = present(*e, "delta");
      const std::string_view stop =
          d != nullptr && d->is_object() ? string_field(d->get_object(), "stop_reason") : "";
      finish(finish_reason_for(stop), out);
    } else if (type == "message_stop") {
      start(out);
      finish("stop", out);
      out.emplace_back("data: [DONE]");
      finished_ = true;
    } else if (type == "error") {
      const json::value* ev = present(*e, "error");
      const json::object empty;
      const json::object& err = ev != nullptr && ev->is_object() ? ev->get_object() : empty;
      const std::string_view error_type = string_field(err, "type");
      json::object o;
      o["message"] = string_field(err, "message");
      o["type"] = error_type_for_status(status_for_error_type(error_type));
      o["code"] = error_type.empty() ? json::value(nullptr) : json::value(error_type);
      o["param"] = nullptr;
      json::object chunk;
      chunk["error"] = std::move(o);
      out.push_back(sse_event({}, chunk));
      out.emplace_back("data: [DONE]");
      finished_ = true;
    }
  }

 private:
  void emit(json::object delta, json::value finish_reason, std::vector<std::string>& out) {
    json::object choice;
    choice["index"] = 0;
    choice["delta"] = std::move(delta);
    choice["logprobs"] = nullptr;
    choice["finish_reason"] = std::move(finish_reason);
    json::object chunk = head();
    json::array choices;
    choices.push_back(std::move(choice));
    chunk["choices"] = std::move(choices);
    if (include_usage_) chunk["usage"] = nullptr;
    out.push_back(sse_event({}, chunk));
  }

  json::object head() const {
    json::object chunk;
    chunk["id"] = id_;
    chunk["object"] = "chat.completion.chunk";
    chunk["created"] = created_;
    chunk["model"] = model_;
    return chunk;
  }

  // The role chunk, once, before anything else (also when message_start never came).
  void start(std::vector<std::string>& out) {
    if (started_) return;
    started_ = true;
    if (id_.empty()) id_ = chat_id_from("");
    json::object delta;
    delta["role"] = "assistant";
    delta["content"] = "";
    delta["refusal"] = nullptr;
    emit(std::move(delta), nullptr, out);
  }

  void content(std::string_view text, std::vector<std::string>& out) {
    if (text.empty()) return;
    json::object delta;
    delta["content"] = text;
    emit(std::move(delta), nullptr, out);
  }

  void tool_chunk(json::object call, std::vector<std::string>& out) {
    json::array calls;
    calls.push_back(std::move(call));
    json::object delta;
    delta["tool_calls"] = std::move(calls);
    emit(std::move(delta), nullptr, out);
  }

  // The finish_reason chunk, then the usage chunk when asked for; once.
  void finish(std::string_view reason, std::vector<std::string>& out) {
    if (finish_sent_) return;
    finish_sent_ = true;
    emit(json::object(), json::string(reason), out);
    if (!include_usage_) return;
    json::object chunk = head();
    chunk["choices"] = json::array();
    chunk["usage"] = usage_.chat();
    out.push_back(sse_event({}, chunk));
  }

  std::string model_;
  bool include_usage_;
  int64_t created_;
  JsonReader reader_;
  std::string id_;
  Usage usage_;
  std::map<uint64_t, int64_t> tools_;  // content block index -> tool call index
  std::set<int64_t> with_arguments_;   // tool calls that sent some arguments
  int64_t next_tool_ = 0;
  bool started_ = false;
  bool finish_sent_ = false;
  bool finished_ = false;
};

// --- Chat chunks -> Messages events --------------------------------------------------------------

class ChatToMessagesStream {
 public:
  explicit ChatToMessagesStream(std::string model) : model_(std::move(model)) {}

  bool finished() const { return finished_; }

  void feed(std::string_view event, std::vector<std::string>& out) {
    if (finished_) return;
    const std::string data = cache::event_data(event);
    if (data.empty()) return;
    if (data == "[DONE]") {
      end(out);
      return;
    }
    std::optional<json::object> chunk = reader_.parse_object(data);
    if (!chunk) return;
    if (const json::value* ev = present(*chunk, "error")) {
      error(*ev, out);
      return;
    }
    start(string_field(*chunk, "id"), out);
    if (const json::value* u = present(*chunk, "usage"); u != nullptr && u->is_object()) {
      usage_.add_chat(u->get_object());
    }
    const json::value* choices = present(*chunk, "choices");
    if (choices == nullptr || !choices->is_array()) return;
    for (const json::value& cv : choices->get_array()) {
      if (!cv.is_object()) continue;
      const json::object& c = cv.get_object();
      if (count_field(c, "index").value_or(0) != 0) continue;  // n > 1 is never asked for
      if (const json::value* dv = present(c, "delta"); dv != nullptr && dv->is_object()) {
        delta(dv->get_object(), out);
      }
      if (const std::string_view fr = string_field(c, "finish_reason"); !fr.empty()) {
        close_block(out);
        stop_reason_ = refused_ ? "refusal" : stop_reason_for(fr);
      }
    }
  }

 private:
  enum class Open { kNone, kText, kTool };

  void emit(std::string_view type, json::object fields, std::vector<std::string>& out) {
    json::object e;
    e["type"] = type;
    for (json::key_value_pair& kv : fields) e[kv.key()] = std::move(kv.value());
    out.push_back(sse_event(type, e));
  }

  void start(std::string_view chat_id, std::vector<std::string>& out) {
    if (started_) return;
    started_ = true;
    json::object m;
    m["id"] = message_id_from(chat_id);
    m["type"] = "message";
    m["role"] = "assistant";
    m["content"] = json::array();
    m["model"] = model_;
    m["stop_reason"] = nullptr;
    m["stop_sequence"] = nullptr;
    m["usage"] = {{"input_tokens", 0}, {"output_tokens", 0}};
    emit("message_start", {{"message", std::move(m)}}, out);
  }

  void open_block(Open kind, json::object block, std::vector<std::string>& out) {
    close_block(out);
    open_ = kind;
    open_index_ = next_block_++;
    emit("content_block_start", {{"index", open_index_}, {"content_block", std::move(block)}}, out);
  }

  void close_block(std::vector<std::string>& out) {
    if (open_ == Open::kNone) return;
    emit("content_block_stop", {{"index", open_index_}}, out);
    open_ = Open::kNone;
  }

  void block_delta(json::object d, std::vector<std::string>& out) {
    emit("content_block_delta", {{"index", open_index_}, {"delta", std::move(d)}}, out);
  }

  void text(std::string_view piece, std::vector<std::string>& out) {
    if (piece.empty()) return;
    if (open_ != Open::kText) open_block(Open::kText, {{"type", "text"}, {"text", ""}}, out);
    block_delta({{"type", "text_delta"}, {"text", piece}}, out);
  }

  void delta(const json::object& d, std::vector<std::string>& out) {
    text(string_field(d, "content"), out);
    // A refusal is text; the stop reason says refusal, as for a whole answer.
    if (const std::string_view refusal = string_field(d, "refusal"); !refusal.empty()) {
      refused_ = true;
      text(refusal, out);
    }
    const json::value* calls = present(d, "tool_calls");
    if (calls == nullptr || !calls->is_array()) return;
    int64_t position = 0;
    for (const json::value& cv : calls->get_array()) {
      if (!cv.is_object()) continue;
      const json::object& call = cv.get_object();
      const int64_t index = static_cast<int64_t>(
          count_field(call, "index").value_or(static_cast<uint64_t>(position)));
      ++position;
      const json::value* fv = present(call, "function");
      const json::object no_function;
      const json::object& fn = fv != nullptr && fv->is_object() ? fv->get_object() : no_function;
      if (!tools_started_.contains(index)) {
        tools_started_.insert({index, true});
        json::object block;
        block["type"] = "tool_use";
        block["id"] = string_field(call, "id");
        block["name"] = string_field(fn, "name");
        block["input"] = json::object();
        open_block(Open::kTool, std::move(block), out);
        open_tool_ = index;
      }
      // OpenAI streams one call after the other; a piece for a call whose block was closed
      // cannot be placed (an Anthropic block never reopens).
      const std::string_view args = string_field(fn, "arguments");
      if (args.empty() || open_ != Open::kTool || open_tool_ != index) continue;
      block_delta({{"type", "input_json_delta"}, {"partial_json", args}}, out);
    }
  }

  void end(std::vector<std::string>& out) {
    start("", out);
    close_block(out);
    json::object d;
    d["stop_reason"] = stop_reason_.empty() ? json::value(nullptr) : json::value(stop_reason_);
    d["stop_sequence"] = nullptr;
    emit("message_delta", {{"delta", std::move(d)}, {"usage", usage_.messages()}}, out);
    emit("message_stop", {}, out);
    finished_ = true;
  }

  void error(const json::value& ev, std::vector<std::string>& out) {
    std::string_view message;
    std::string_view type;
    if (ev.is_object()) {
      message = string_field(ev.get_object(), "message");
      type = string_field(ev.get_object(), "type");
    } else if (ev.is_string()) {
      message = ev.get_string();
    }
    json::object err;
    err["type"] = anthropic_error_type(status_for_error_type(type));
    err["message"] = message.empty() ? std::string_view("the provider's stream failed") : message;
    emit("error", {{"error", std::move(err)}}, out);
    finished_ = true;
  }

  std::string model_;
  JsonReader reader_;
  bool started_ = false;
  bool finished_ = false;
  Open open_ = Open::kNone;
  int64_t open_index_ = 0;
  int64_t next_block_ = 0;
  int64_t open_tool_ = -1;
  std::map<int64_t, bool> tools_started_;  // Chat tool call index -> its block was started
  std::string stop_reason_;
  bool refused_ = false;
  Usage usage_;
};

// --- Same API: events pass unchanged -------------------------------------------------------------

class PassThroughStream {
 public:
  explicit PassThroughStream(Api api) : api_(api) {}
  bool finished() const { return finished_; }
  void feed(std::string_view event, std::vector<std::string>& out) {
    if (finished_) return;
    out.emplace_back(event);
    finished_ = api_ == Api::kChat ? cache::is_openai_done(event) : cache::is_anthropic_stop(event);
  }

 private:
  Api api_;
  bool finished_ = false;
};

}  // namespace

struct StreamTranslator::State {
  std::variant<MessagesToChatStream, ChatToMessagesStream, PassThroughStream> impl;
};

StreamTranslator::StreamTranslator(Api from, Api to, std::string client_model, bool include_usage) {
  if (from == to) {
    state_ = std::make_unique<State>(State{PassThroughStream(from)});
  } else if (from == Api::kMessages) {
    state_ = std::make_unique<State>(
        State{MessagesToChatStream(std::move(client_model), include_usage)});
  } else {
    state_ = std::make_unique<State>(State{ChatToMessagesStream(std::move(client_model))});
  }
}

StreamTranslator::~StreamTranslator() = default;
StreamTranslator::StreamTranslator(StreamTranslator&&) noexcept = default;
StreamTranslator& StreamTranslator::operator=(StreamTranslator&&) noexcept = default;

void StreamTranslator::feed(std::string_view event, std::vector<std::string>& out) {
  if (!state_) return;  // moved from
  std::visit([&](auto& s) { s.feed(event, out); }, state_->impl);
}

bool StreamTranslator::finished() const {
  if (!state_) return true;
  return std::visit([](const auto& s) { return s.finished(); }, state_->impl);
}

}  // namespace redline::translate
