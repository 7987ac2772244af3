// Deterministic answers and their OpenAI/Anthropic wire shapes (see answers.h). Bodies
// are written with fmt straight into reused strings; only the request is parsed with
// Boost.JSON, into a per-thread arena so parsing a small body does not touch the heap.
#include "mock/answers.h"

#include "common/error_body.h"

#include <fmt/compile.h>
#include <fmt/format.h>
#include <xxhash.h>

#include <array>
#include <boost/json.hpp>
#include <cmath>
#include <cstring>
#include <iterator>

namespace redline::mock {
namespace {

namespace json = boost::json;

constexpr std::array<std::string_view, 64> kWords = {
    "the",     "quick",    "brown",   "fox",     "jumps",   "over",   "lazy",    "dog",
    "gateway", "redis",    "cache",   "token",   "stream",  "model",  "answer",  "request",
    "latency", "bucket",   "window",  "limit",   "cluster", "shard",  "replica", "primary",
    "signal",  "buffer",   "socket",  "thread",  "context", "future", "promise", "value",
    "alpha",   "beta",     "gamma",   "delta",   "epsilon", "zeta",   "theta",   "lambda",
    "river",   "mountain", "forest",  "ocean",   "desert",  "valley", "meadow",  "harbor",
    "amber",   "cobalt",   "crimson", "emerald", "indigo",  "ivory",  "scarlet", "violet",
    "quietly", "swiftly",  "boldly",  "gently",  "clearly", "simply", "rarely",  "always"};

constexpr std::string_view kFingerprint = "fp_redline_mock";

struct KnownModel {
  std::string_view id;
  std::string_view owned_by;
};
constexpr std::array<KnownModel, 9> kModels = {{
    {"gpt-4o-mini", "openai"},
    {"gpt-4o", "openai"},
    {"gpt-4.1-mini", "openai"},
    {"gpt-3.5-turbo", "openai"},
    {"gpt-3.5-turbo-instruct", "openai"},
    {"text-embedding-3-small", "openai"},
    {"text-embedding-3-large", "openai"},
    {"claude-3-5-haiku-latest", "anthropic"},
    {"claude-3-5-sonnet-latest", "anthropic"},
}};
constexpr int64_t kModelsCreated = 1700000000;

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t hash_bytes(std::string_view s) {
  return XXH3_64bits(s.data(), s.size());
}

// Appends a compile-time parsed FMT_COMPILE format to a string or fmt buffer.
template <class Out, class Format, class... Args>
void put(Out& out, const Format& format, Args&&... args) {
  fmt::format_to(std::back_inserter(out), format, std::forward<Args>(args)...);
}

std::string_view view(const fmt::memory_buffer& b) {
  return {b.data(), b.size()};
}

// Words after the first carry their leading space, so deltas concatenate to the text.
void append_word(fmt::memory_buffer& out, const Answer& answer, int i) {
  if (i > 0) out.push_back(' ');
  auto w = answer.word(i);
  out.append(w.data(), w.data() + w.size());
}

std::string_view anthropic_error_type(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 529:
      return "overloaded_error";
    default:
      return status < 500 ? "invalid_request_error" : "api_error";
  }
}

void append_base64(std::string& out, const unsigned char* data, std::size_t n) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < n) {
    uint32_t v = uint32_t{data[i]} << 16;
    if (i + 1 < n) v |= uint32_t{data[i + 1]} << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < n ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
}

// One input's vector: values in [-1, 1] from its hash, scaled to unit length.
void embedding_vector(uint64_t input_hash, int dimensions, std::vector<float>& out) {
  out.resize(static_cast<std::size_t>(dimensions));
  double norm = 0;
  for (int j = 0; j < dimensions; ++j) {
    uint64_t r = splitmix64(input_hash + static_cast<uint64_t>(j));
    float x = static_cast<float>(static_cast<double>(r >> 40) / double(1 << 24) * 2.0 - 1.0);
    out[static_cast<std::size_t>(j)] = x;
    norm += double(x) * double(x);
  }
  if (norm > 0) {
    float scale = static_cast<float>(1.0 / std::sqrt(norm));
    for (float& x : out) x *= scale;
  }
}

// Reads the embeddings `input`: a string, an array of strings, a token array, or an
// array of token arrays. Each input hashes by its own text, so batches agree with singles.
std::string read_embedding_inputs(const json::value* input, std::vector<uint64_t>& hashes) {
  if (input == nullptr) return "'input' is a required property";
  if (input->is_string()) {
    hashes.push_back(hash_bytes(input->get_string()));
    return {};
  }
  const json::array* items = input->if_array();
  if (items == nullptr || items->empty()) {
    return "'input' must be a non-empty string or array";
  }
  bool all_numbers = true;
  for (const auto& item : *items) all_numbers = all_numbers && item.is_number();
  if (all_numbers) {
    hashes.push_back(hash_bytes(json::serialize(*items)));
    return {};
  }
  for (const auto& item : *items) {
    if (item.is_string()) {
      hashes.push_back(hash_bytes(item.get_string()));
    } else if (item.is_array()) {
      hashes.push_back(hash_bytes(json::serialize(item)));
    } else {
      return "'input' items must be strings or token arrays";
    }
  }
  return {};
}

bool read_int(const json::object& obj, std::string_view key, int64_t& out) {
  const json::value* v = obj.if_contains(key);
  if (v == nullptr || v->is_null()) return false;
  if (auto i = v->if_int64()) {
    out = *i;
    return true;
  }
  if (auto u = v->if_uint64()) {
    out = static_cast<int64_t>(*u);
    return true;
  }
  return false;
}

// The text of a Responses input item that is a user message ("" for anything else).
std::string user_text(const json::value& item) {
  const json::object* o = item.if_object();
  if (o == nullptr) return {};
  const json::value* role = o->if_contains("role");
  if (role == nullptr || !role->is_string() || role->get_string() != "user") return {};
  const json::value* content = o->if_contains("content");
  if (content == nullptr) return {};
  if (content->is_string()) return std::string(content->get_string());
  std::string text;
  if (const json::array* parts = content->if_array()) {
    for (const auto& p : *parts) {
      const json::object* part = p.if_object();
      const json::value* t = part != nullptr ? part->if_contains("text") : nullptr;
      if (t != nullptr && t->is_string()) text += t->get_string();
    }
  }
  return text;
}

// A tool's name as each API declares it: Responses {"type":"function","name"}, Chat
// {"type":"function","function":{"name"}}, Messages {"name", "input_schema"} (custom tools).
std::string_view tool_name(Endpoint endpoint, const json::value& t) {
  const json::object* tool = t.if_object();
  if (tool == nullptr) return {};
  const json::value* type = tool->if_contains("type");
  const json::object* holder = tool;
  if (endpoint == Endpoint::kMessages) {
    if (type != nullptr && (!type->is_string() || type->get_string() != "custom")) return {};
  } else {
    if (type == nullptr || !type->is_string() || type->get_string() != "function") return {};
    if (endpoint == Endpoint::kChat) {
      const json::value* fn = tool->if_contains("function");
      holder = fn != nullptr ? fn->if_object() : nullptr;
      if (holder == nullptr) return {};
    }
  }
  const json::value* name = holder->if_contains("name");
  if (name == nullptr || !name->is_string()) return {};
  return name->get_string();
}

// See ModelRequest::tool_call. The conversation is `input` (Responses) or `messages`.
std::string requested_tool_call(Endpoint endpoint, const json::object& request) {
  const json::value* tools = request.if_contains("tools");
  const json::value* input =
      request.if_contains(endpoint == Endpoint::kResponses ? "input" : "messages");
  if (tools == nullptr || !tools->is_array() || input == nullptr) return {};
  std::string text;
  if (input->is_string()) {
    text = input->get_string();
  } else if (const json::array* items = input->if_array(); items != nullptr && !items->empty()) {
    text = user_text(items->back());
  }
  if (text.empty()) return {};
  for (const auto& t : tools->get_array()) {
    const std::string_view name = tool_name(endpoint, t);
    if (!name.empty() && text.find(name) != std::string::npos) return std::string(name);
  }
  return {};
}

void append_usage_openai(std::string& out, uint64_t prompt, uint64_t completion) {
  put(out,
      FMT_COMPILE(R"("usage":{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{}}})"),
      prompt, completion, prompt + completion);
}

}  // namespace

Answer::Answer(std::string_view request_body, int words)
    : seed_(hash_bytes(request_body)), words_(words < 0 ? 0 : words) {}

std::string_view Answer::word(int i) const {
  return kWords[splitmix64(seed_ + static_cast<uint64_t>(i)) % kWords.size()];
}

void Answer::append_text(std::string& out) const {
  for (int i = 0; i < words_; ++i) {
    if (i > 0) out += ' ';
    out += word(i);
  }
}

uint64_t prompt_tokens(std::string_view request_body) {
  uint64_t n = request_body.size() / 4;
  return n == 0 ? 1 : n;
}

std::string parse_model_request(Endpoint endpoint, std::string_view body, ModelRequest& out) {
  // Small bodies parse into this arena; larger ones spill to the heap and are freed here.
  thread_local std::array<unsigned char, 16384> arena;
  json::monotonic_resource resource(arena.data(), arena.size());
  json::parse_options limits;
  limits.max_depth = 512;  // tool schemas nest deeper than Boost.JSON's default of 32
  boost::system::error_code ec;
  json::value root = json::parse(body, ec, &resource, limits);
  if (ec) {
    return fmt::format(
        "We could not parse the JSON body of your request. ({}) The request body must be "
        "valid JSON.",
        ec.message());
  }
  const json::object* obj = root.if_object();
  if (obj == nullptr) return "The request body must be a JSON object.";

  const json::value* model = obj->if_contains("model");
  if (model == nullptr || !model->is_string()) {
    return endpoint == Endpoint::kMessages ? "model: Field required"
                                           : "you must provide a model parameter";
  }
  out.model = model->get_string();

  if (const json::value* s = obj->if_contains("stream")) out.stream = s->is_bool() && s->get_bool();
  if (const json::value* so = obj->if_contains("stream_options"); so && so->is_object()) {
    const json::value* iu = so->get_object().if_contains("include_usage");
    out.include_usage = iu && iu->is_bool() && iu->get_bool();
  }
  if (endpoint == Endpoint::kResponses) {
    read_int(*obj, "max_output_tokens", out.max_tokens);
    if (!obj->contains("input")) return "Missing required parameter: 'input'.";
    out.tool_call = requested_tool_call(endpoint, *obj);
    return {};
  }
  if (endpoint == Endpoint::kChat || endpoint == Endpoint::kMessages) {
    out.tool_call = requested_tool_call(endpoint, *obj);
  }
  if (!read_int(*obj, "max_completion_tokens", out.max_tokens)) {
    read_int(*obj, "max_tokens", out.max_tokens);
  }

  if (endpoint != Endpoint::kEmbeddings) return {};
  out.stream = false;
  int64_t dimensions = kDefaultDimensions;
  if (obj->contains("dimensions") && (!read_int(*obj, "dimensions", dimensions) || dimensions < 1 ||
                                      dimensions > kMaxDimensions)) {
    return fmt::format("'dimensions' must be an integer between 1 and {}", kMaxDimensions);
  }
  out.dimensions = static_cast<int>(dimensions);
  if (const json::value* f = obj->if_contains("encoding_format"); f && !f->is_null()) {
    if (f->is_string() && f->get_string() == "base64") {
      out.base64 = true;
    } else if (!f->is_string() || f->get_string() != "float") {
      return "'encoding_format' must be one of 'float', 'base64'";
    }
  }
  return read_embedding_inputs(obj->if_contains("input"), out.input_hashes);
}


void chat_completion_body(const ReplyMeta& meta, const Answer& answer, std::string& out) {
  put(out,
      FMT_COMPILE(R"({{"id":"chatcmpl-{}","object":"chat.completion","created":{},"model":{},)"
                  R"("choices":[{{"index":0,"message":{{"role":"assistant","content":")"),
      meta.unique, meta.created, meta.model_json);
  answer.append_text(out);
  put(out, FMT_COMPILE(R"(","refusal":null}},"logprobs":null,"finish_reason":"{}"}}],)"),
      meta.truncated ? "length" : "stop");
  append_usage_openai(out, meta.input_tokens, static_cast<uint64_t>(answer.words()));
  put(out, FMT_COMPILE(R"(,"system_fingerprint":"{}"}})"), kFingerprint);
}

void text_completion_body(const ReplyMeta& meta, const Answer& answer, std::string& out) {
  put(out,
      FMT_COMPILE(
          R"({{"id":"cmpl-{}","object":"text_completion","created":{},"model":{},"choices":[{{"text":")"),
      meta.unique, meta.created, meta.model_json);
  answer.append_text(out);
  put(out, FMT_COMPILE(R"(","index":0,"logprobs":null,"finish_reason":"{}"}}],)"),
      meta.truncated ? "length" : "stop");
  append_usage_openai(out, meta.input_tokens, static_cast<uint64_t>(answer.words()));
  out += '}';
}

void message_body(const ReplyMeta& meta, const Answer& answer, std::string& out) {
  put(out,
      FMT_COMPILE(R"({{"id":"msg_{}","type":"message","role":"assistant","model":{},)"
                  R"("content":[{{"type":"text","text":")"),
      meta.unique, meta.model_json);
  answer.append_text(out);
  put(out,
      FMT_COMPILE(R"("}}],"stop_reason":"{}","stop_sequence":null,)"
                  R"("usage":{{"input_tokens":{},"output_tokens":{}}}}})"),
      meta.truncated ? "max_tokens" : "end_turn", meta.input_tokens, answer.words());
}

void chat_tool_call_body(const ReplyMeta& meta, std::string_view tool_call, std::string& out) {
  put(out,
      FMT_COMPILE(R"({{"id":"chatcmpl-{}","object":"chat.completion","created":{},"model":{},)"
                  R"("choices":[{{"index":0,"message":{{"role":"assistant","content":null,)"
                  R"("tool_calls":[{{"id":"call_{}","type":"function","function":{{"name":)"),
      meta.unique, meta.created, meta.model_json, meta.unique);
  append_json_string(out, tool_call);
  out += R"(,"arguments":)";
  append_json_string(out, kToolArguments);
  out += R"(}}],"refusal":null},"logprobs":null,"finish_reason":"tool_calls"}],)";
  append_usage_openai(out, meta.input_tokens, 1);
  put(out, FMT_COMPILE(R"(,"system_fingerprint":"{}"}})"), kFingerprint);
}

void message_tool_use_body(const ReplyMeta& meta, std::string_view tool_call, std::string& out) {
  put(out,
      FMT_COMPILE(R"({{"id":"msg_{}","type":"message","role":"assistant","model":{},)"
                  R"("content":[{{"type":"tool_use","id":"toolu_{}","name":)"),
      meta.unique, meta.model_json, meta.unique);
  append_json_string(out, tool_call);
  out += R"(,"input":)";
  out += kToolArguments;
  put(out,
      FMT_COMPILE(R"(}}],"stop_reason":"tool_use","stop_sequence":null,)"
                  R"("usage":{{"input_tokens":{},"output_tokens":1}}}})"),
      meta.input_tokens);
}

void embeddings_body(const ModelRequest& request, std::string_view model_json,
                     uint64_t input_tokens, std::string& out) {
  out += R"({"object":"list","data":[)";
  std::vector<float> values;
  for (std::size_t i = 0; i < request.input_hashes.size(); ++i) {
    if (i > 0) out += ',';
    put(out, FMT_COMPILE(R"({{"object":"embedding","index":{},"embedding":)"), i);
    embedding_vector(request.input_hashes[i], request.dimensions, values);
    if (request.base64) {
      out += '"';
      append_base64(out, reinterpret_cast<const unsigned char*>(values.data()),
                    values.size() * sizeof(float));
      out += '"';
    } else {
      out += '[';
      for (std::size_t j = 0; j < values.size(); ++j) {
        if (j > 0) out += ',';
        put(out, FMT_COMPILE("{}"), values[j]);
      }
      out += ']';
    }
    out += '}';
  }
  put(out, FMT_COMPILE(R"(],"model":{},"usage":{{"prompt_tokens":{},"total_tokens":{}}}}})"),
      model_json, input_tokens, input_tokens);
}

std::string_view models_body() {
  static const std::string body = [] {
    std::string out = R"({"object":"list","data":[)";
    for (std::size_t i = 0; i < kModels.size(); ++i) {
      if (i > 0) out += ',';
      put(out, FMT_COMPILE(R"({{"id":"{}","object":"model","created":{},"owned_by":"{}"}})"),
          kModels[i].id, kModelsCreated, kModels[i].owned_by);
    }
    out += "]}";
    return out;
  }();
  return body;
}

std::string model_body(std::string_view id) {
  for (const auto& m : kModels) {
    if (m.id == id) {
      return fmt::format(R"({{"id":"{}","object":"model","created":{},"owned_by":"{}"}})", m.id,
                         kModelsCreated, m.owned_by);
    }
  }
  return {};
}

void SseSink::emit(std::string_view name, std::string_view data) {
  std::size_t payload = (name.empty() ? 0 : 8 + name.size()) + 6 + data.size() + 2;
  if (chunked_) put(out_, FMT_COMPILE("{:x}\r\n"), payload);
  if (!name.empty()) {
    out_ += "event: ";
    out_ += name;
    out_ += '\n';
  }
  out_ += "data: ";
  out_ += data;
  out_ += "\n\n";
  if (chunked_) out_ += "\r\n";
  ends_.push_back(out_.size());
}

// The OpenAI chunk streams (chat and legacy completions) share everything but the
// per-choice fields, so one routine writes both.
namespace {

struct OpenAIChunkShape {
  std::string_view object;  // "chat.completion.chunk" / "text_completion"
  std::string_view id_prefix;
  bool chat;
};

void openai_events(const OpenAIChunkShape& shape, const ReplyMeta& meta, const Answer& answer,
                   bool include_usage, SseSink& sink) {
  fmt::memory_buffer prefix;
  put(prefix, FMT_COMPILE(R"({{"id":"{}{}","object":"{}","created":{},"model":{},)"),
      shape.id_prefix, meta.unique, shape.object, meta.created, meta.model_json);
  if (shape.chat) put(prefix, FMT_COMPILE(R"("system_fingerprint":"{}",)"), kFingerprint);
  prefix.append(std::string_view(R"("choices":[)"));
  const std::string_view usage_null = include_usage ? R"(,"usage":null})" : "}";

  fmt::memory_buffer data;
  auto start = [&] {
    data.clear();
    data.append(prefix.data(), prefix.data() + prefix.size());
  };
  if (shape.chat) {
    start();
    put(data,
        FMT_COMPILE(R"({{"index":0,"delta":{{"role":"assistant","content":"","refusal":null}},)"
                    R"("logprobs":null,"finish_reason":null}}]{})"),
        usage_null);
    sink.emit({}, view(data));
  }
  for (int i = 0; i < answer.words(); ++i) {
    start();
    data.append(
        std::string_view(shape.chat ? R"({"index":0,"delta":{"content":")" : R"({"text":")"));
    append_word(data, answer, i);
    put(data, FMT_COMPILE(R"("{}"logprobs":null,"finish_reason":null}}]{})"),
        shape.chat ? "}," : ",\"index\":0,", usage_null);
    sink.emit({}, view(data));
  }
  start();
  std::string_view finish = meta.truncated ? "length" : "stop";
  if (shape.chat) {
    put(data, FMT_COMPILE(R"({{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"{}"}}]{})"),
        finish, usage_null);
  } else {
    put(data, FMT_COMPILE(R"({{"text":"","index":0,"logprobs":null,"finish_reason":"{}"}}]{})"),
        finish, usage_null);
  }
  sink.emit({}, view(data));
  if (include_usage) {
    start();
    uint64_t completion = static_cast<uint64_t>(answer.words());
    put(data,
        FMT_COMPILE(
            R"(],"usage":{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{}}}}})"),
        meta.input_tokens, completion, meta.input_tokens + completion);
    sink.emit({}, view(data));
  }
  sink.emit({}, "[DONE]");
}

}  // namespace

void chat_completion_events(const ReplyMeta& meta, const Answer& answer, bool include_usage,
                            SseSink& sink) {
  openai_events({"chat.completion.chunk", "chatcmpl-", true}, meta, answer, include_usage, sink);
}

void text_completion_events(const ReplyMeta& meta, const Answer& answer, bool include_usage,
                            SseSink& sink) {
  openai_events({"text_completion", "cmpl-", false}, meta, answer, include_usage, sink);
}

void message_events(const ReplyMeta& meta, const Answer& answer, SseSink& sink) {
  fmt::memory_buffer data;
  put(data,
      FMT_COMPILE(
          R"({{"type":"message_start","message":{{"id":"msg_{}","type":"message","role":"assistant",)"
          R"("model":{},"content":[],"stop_reason":null,"stop_sequence":null,)"
          R"("usage":{{"input_tokens":{},"output_tokens":1}}}}}})"),
      meta.unique, meta.model_json, meta.input_tokens);
  sink.emit("message_start", view(data));
  sink.emit(
      "content_block_start",
      R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})");
  sink.emit("ping", R"({"type": "ping"})");
  for (int i = 0; i < answer.words(); ++i) {
    data.clear();
    data.append(std::string_view(
        R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":")"));
    append_word(data, answer, i);
    data.append(std::string_view(R"("}})"));
    sink.emit("content_block_delta", view(data));
  }
  sink.emit("content_block_stop", R"({"type":"content_block_stop","index":0})");
  data.clear();
  put(data,
      FMT_COMPILE(R"({{"type":"message_delta","delta":{{"stop_reason":"{}","stop_sequence":null}},)"
                  R"("usage":{{"output_tokens":{}}}}})"),
      meta.truncated ? "max_tokens" : "end_turn", answer.words());
  sink.emit("message_delta", view(data));
  sink.emit("message_stop", R"({"type":"message_stop"})");
}

void chat_tool_call_events(const ReplyMeta& meta, std::string_view tool_call, bool include_usage,
                           SseSink& sink) {
  fmt::memory_buffer prefix;
  put(prefix,
      FMT_COMPILE(R"({{"id":"chatcmpl-{}","object":"chat.completion.chunk","created":{},)"
                  R"("model":{},"system_fingerprint":"{}","choices":[)"),
      meta.unique, meta.created, meta.model_json, kFingerprint);
  const std::string_view usage_null = include_usage ? R"(,"usage":null})" : "}";
  fmt::memory_buffer data;
  auto start = [&] {
    data.clear();
    data.append(prefix.data(), prefix.data() + prefix.size());
  };
  start();
  put(data,
      FMT_COMPILE(R"({{"index":0,"delta":{{"role":"assistant","content":null,"refusal":null}},)"
                  R"("logprobs":null,"finish_reason":null}}]{})"),
      usage_null);
  sink.emit({}, view(data));
  start();
  put(data,
      FMT_COMPILE(R"({{"index":0,"delta":{{"tool_calls":[{{"index":0,"id":"call_{}",)"
                  R"("type":"function","function":{{"name":)"),
      meta.unique);
  std::string name;
  append_json_string(name, tool_call);
  data.append(std::string_view(name));
  put(data,
      FMT_COMPILE(R"(,"arguments":""}}}}]}},"logprobs":null,"finish_reason":null}}]{})"),
      usage_null);
  sink.emit({}, view(data));
  start();
  std::string args;
  append_json_string(args, kToolArguments);
  data.append(std::string_view(R"({"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":)"));
  data.append(std::string_view(args));
  put(data, FMT_COMPILE(R"(}}}}]}},"logprobs":null,"finish_reason":null}}]{})"), usage_null);
  sink.emit({}, view(data));
  start();
  put(data,
      FMT_COMPILE(R"({{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"tool_calls"}}]{})"),
      usage_null);
  sink.emit({}, view(data));
  if (include_usage) {
    start();
    put(data,
        FMT_COMPILE(
            R"(],"usage":{{"prompt_tokens":{},"completion_tokens":1,"total_tokens":{}}}}})"),
        meta.input_tokens, meta.input_tokens + 1);
    sink.emit({}, view(data));
  }
  sink.emit({}, "[DONE]");
}

void message_tool_use_events(const ReplyMeta& meta, std::string_view tool_call, SseSink& sink) {
  fmt::memory_buffer data;
  put(data,
      FMT_COMPILE(
          R"({{"type":"message_start","message":{{"id":"msg_{}","type":"message","role":"assistant",)"
          R"("model":{},"content":[],"stop_reason":null,"stop_sequence":null,)"
          R"("usage":{{"input_tokens":{},"output_tokens":1}}}}}})"),
      meta.unique, meta.model_json, meta.input_tokens);
  sink.emit("message_start", view(data));
  data.clear();
  put(data,
      FMT_COMPILE(R"({{"type":"content_block_start","index":0,"content_block":{{"type":"tool_use",)"
                  R"("id":"toolu_{}","name":)"),
      meta.unique);
  std::string name;
  append_json_string(name, tool_call);
  data.append(std::string_view(name));
  data.append(std::string_view(R"(,"input":{}}})"));
  sink.emit("content_block_start", view(data));
  std::string args;
  append_json_string(args, kToolArguments);
  data.clear();
  data.append(std::string_view(
      R"({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":)"));
  data.append(std::string_view(args));
  data.append(std::string_view("}}"));
  sink.emit("content_block_delta", view(data));
  sink.emit("content_block_stop", R"({"type":"content_block_stop","index":0})");
  sink.emit("message_delta",
            R"({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},)"
            R"("usage":{"output_tokens":1}})");
  sink.emit("message_stop", R"({"type":"message_stop"})");
}

// --- Responses API ----------------------------------------------------------------------

namespace {

// The output item: the message with `text`, or the function call.
template <class Out>
void put_response_item(Out& out, const ReplyMeta& meta, std::string_view tool_call,
                       std::string_view status, std::string_view text, bool in_progress) {
  if (!tool_call.empty()) {
    put(out,
        FMT_COMPILE(R"({{"id":"fc_{}","type":"function_call","status":"{}","arguments":"{}",)"
                    R"("call_id":"call_{}","name":)"),
        meta.unique, status, in_progress ? "" : "{}", meta.unique);
    std::string name;
    append_json_string(name, tool_call);
    out.append(name.data(), name.data() + name.size());
    out.push_back('}');
    return;
  }
  put(out, FMT_COMPILE(R"({{"id":"msg_{}","type":"message","status":"{}","content":[)"),
      meta.unique, status);
  if (!in_progress) {
    put(out, FMT_COMPILE(R"({{"type":"output_text","annotations":[],"text":"{}"}})"), text);
  }
  out.append(std::string_view(R"(],"role":"assistant"})"));
}

// The Response object; `output` is the JSON text of the output array.
template <class Out>
void put_response(Out& out, const ReplyMeta& meta, std::string_view status, std::string_view output,
                  bool with_usage, uint64_t output_tokens) {
  put(out,
      FMT_COMPILE(R"({{"id":"resp_{}","object":"response","created_at":{},"status":"{}",)"
                  R"("background":false,"error":null,"incomplete_details":{},"instructions":null,)"
                  R"("max_output_tokens":null,"model":{},"output":{},"parallel_tool_calls":true,)"
                  R"("previous_response_id":null,"reasoning":{{"effort":null,"summary":null}},)"
                  R"("store":true,"temperature":1.0,"text":{{"format":{{"type":"text"}}}},)"
                  R"("tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled",)"
                  R"("usage":)"),
      meta.unique, meta.created, status,
      status == "incomplete" ? R"({"reason":"max_output_tokens"})" : "null", meta.model_json,
      output);
  if (with_usage) {
    put(out,
        FMT_COMPILE(R"({{"input_tokens":{},"input_tokens_details":{{"cached_tokens":0}},)"
                    R"("output_tokens":{},"output_tokens_details":{{"reasoning_tokens":0}},)"
                    R"("total_tokens":{}}})"),
        meta.input_tokens, output_tokens, meta.input_tokens + output_tokens);
  } else {
    out.append(std::string_view("null"));
  }
  out.append(std::string_view(R"(,"metadata":{}})"));
}

struct ResponseParts {
  std::string text;
  std::string_view status;
  uint64_t output_tokens;
  std::string output;  // the final output array
};

ResponseParts response_parts(const ReplyMeta& meta, const Answer& answer,
                             std::string_view tool_call) {
  ResponseParts p;
  if (tool_call.empty()) answer.append_text(p.text);
  p.status = meta.truncated && tool_call.empty() ? "incomplete" : "completed";
  p.output_tokens = tool_call.empty() ? static_cast<uint64_t>(answer.words()) : 1;
  p.output = "[";
  put_response_item(p.output, meta, tool_call, p.status, p.text, false);
  p.output += ']';
  return p;
}

}  // namespace

void response_body(const ReplyMeta& meta, const Answer& answer, std::string_view tool_call,
                   std::string& out) {
  const ResponseParts p = response_parts(meta, answer, tool_call);
  put_response(out, meta, p.status, p.output, true, p.output_tokens);
}

void response_events(const ReplyMeta& meta, const Answer& answer, std::string_view tool_call,
                     SseSink& sink) {
  const ResponseParts p = response_parts(meta, answer, tool_call);
  uint64_t seq = 0;
  fmt::memory_buffer data;
  auto begin = [&](std::string_view type) {
    data.clear();
    put(data, FMT_COMPILE(R"({{"type":"{}","sequence_number":{},)"), type, seq++);
  };
  auto send = [&](std::string_view type) {
    data.push_back('}');
    sink.emit(type, view(data));
  };
  for (std::string_view type : {"response.created", "response.in_progress"}) {
    begin(type);
    data.append(std::string_view(R"("response":)"));
    put_response(data, meta, "in_progress", "[]", false, 0);
    send(type);
  }
  begin("response.output_item.added");
  data.append(std::string_view(R"("output_index":0,"item":)"));
  put_response_item(data, meta, tool_call, "in_progress", {}, true);
  send("response.output_item.added");
  if (tool_call.empty()) {
    const std::string item_ref =
        fmt::format(R"("item_id":"msg_{}","output_index":0,"content_index":0)", meta.unique);
    begin("response.content_part.added");
    put(data, FMT_COMPILE(R"({},"part":{{"type":"output_text","annotations":[],"text":""}})"),
        item_ref);
    send("response.content_part.added");
    for (int i = 0; i < answer.words(); ++i) {
      begin("response.output_text.delta");
      put(data, FMT_COMPILE(R"({},"delta":")"), item_ref);
      append_word(data, answer, i);
      data.append(std::string_view(R"(","logprobs":[])"));
      send("response.output_text.delta");
    }
    begin("response.output_text.done");
    put(data, FMT_COMPILE(R"({},"text":"{}","logprobs":[])"), item_ref, p.text);
    send("response.output_text.done");
    begin("response.content_part.done");
    put(data, FMT_COMPILE(R"({},"part":{{"type":"output_text","annotations":[],"text":"{}"}})"),
        item_ref, p.text);
    send("response.content_part.done");
  } else {
    begin("response.function_call_arguments.delta");
    put(data, FMT_COMPILE(R"("item_id":"fc_{}","output_index":0,"delta":"{{}}")"), meta.unique);
    send("response.function_call_arguments.delta");
    begin("response.function_call_arguments.done");
    put(data, FMT_COMPILE(R"("item_id":"fc_{}","output_index":0,"name":)"), meta.unique);
    std::string name;
    append_json_string(name, tool_call);
    data.append(name);
    data.append(std::string_view(R"(,"arguments":"{}")"));
    send("response.function_call_arguments.done");
  }
  begin("response.output_item.done");
  data.append(std::string_view(R"("output_index":0,"item":)"));
  put_response_item(data, meta, tool_call, p.status, p.text, false);
  send("response.output_item.done");
  const std::string_view last =
      p.status == "incomplete" ? "response.incomplete" : "response.completed";
  begin(last);
  data.append(std::string_view(R"("response":)"));
  put_response(data, meta, p.status, p.output, true, p.output_tokens);
  send(last);
}

std::string error_body(Api api, int status, std::string_view message) {
  std::string out;
  if (api == Api::kAnthropic) {
    put(out, FMT_COMPILE(R"({{"type":"error","error":{{"type":"{}","message":)"),
        anthropic_error_type(status));
    append_json_string(out, message);
    out += "}}";
  } else {
    out += R"({"error":{"message":)";
    append_json_string(out, message);
    put(out, FMT_COMPILE(R"(,"type":"{}","param":null,"code":null}}}})"),
        error_type_for_status(status));
  }
  return out;
}

}  // namespace redline::mock
