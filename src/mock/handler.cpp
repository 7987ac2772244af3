// Request -> Plan for the mock provider (see handler.h). Order for a model request:
// count and record it, take timing overrides, check the key, inject a fault if one is
// due, then route to the endpoint. Nothing here waits or writes to a socket.
#include "mock/handler.h"

#include <fmt/format.h>

#include <boost/beast/core/string.hpp>
#include <charconv>
#include <ctime>
#include <optional>

namespace redline::mock {
namespace {

namespace http = boost::beast::http;
using boost::beast::iequals;
using std::chrono::milliseconds;

constexpr int kMaxDelayMs = 3600 * 1000;
constexpr int kMaxWords = 1000000;

std::optional<int> to_int(std::string_view s) {
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

int clamp(int v, int lo, int hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

}  // namespace

// What the request's own headers say: x-mock-* overrides plus the identity fields.
struct Handler::Overrides {
  std::optional<int> status, latency_ms, stream_delay_ms, stall_after, retry_after, words;
  bool reset = false;
  std::string_view request_id, authorization, api_key;

  explicit Overrides(const Request& request) {
    for (const auto& f : request) {
      std::string_view name = f.name_string();
      std::string_view value = f.value();
      if (iequals(name, "authorization")) {
        authorization = value;
      } else if (iequals(name, "x-api-key")) {
        api_key = value;
      } else if (iequals(name, "x-request-id")) {
        request_id = value;
      } else if (name.size() > 7 && iequals(name.substr(0, 7), "x-mock-")) {
        std::string_view key = name.substr(7);
        if (iequals(key, "status")) {
          status = to_int(value);
        } else if (iequals(key, "latency-ms")) {
          latency_ms = to_int(value);
        } else if (iequals(key, "stream-delay-ms")) {
          stream_delay_ms = to_int(value);
        } else if (iequals(key, "stall-after")) {
          stall_after = to_int(value);
        } else if (iequals(key, "retry-after")) {
          retry_after = to_int(value);
        } else if (iequals(key, "words")) {
          words = to_int(value);
        } else if (iequals(key, "reset")) {
          reset = true;
        }
      }
    }
  }
};

void Plan::clear() {
  kind = Kind::kRespond;
  status = 200;
  content_type = "application/json";
  body.clear();
  event_ends.clear();
  request_id.clear();
  retry_after = -1;
  latency = milliseconds(0);
  stream_delay = milliseconds(0);
  stall_after = -1;
  keep_alive = true;
  http11 = true;
}

std::string_view Handler::next_unique() {
  auto r = fmt::format_to_n(unique_.data(), unique_.size(), "{:08x}{:02x}{:010x}", shared_.nonce,
                            thread_.index & 0xff, ++thread_.next_id);
  unique_size_ = std::min(r.size, unique_.size());
  return {unique_.data(), unique_size_};
}

void Handler::handle(const Request& request, Plan& plan) {
  plan.clear();
  plan.keep_alive = request.keep_alive();
  plan.http11 = request.version() >= 11;
  Overrides ov(request);
  std::string_view unique = next_unique();
  if (ov.request_id.empty()) {
    plan.request_id = "req_";
    plan.request_id += unique;
  } else {
    plan.request_id = ov.request_id;
  }

  std::string_view target = request.target();
  std::string_view path = target.substr(0, target.find('?'));
  if (path.starts_with("/v1/")) {
    model_request(request, path, ov, plan);
  } else if (path.starts_with("/mock/")) {
    introspection(request, path, plan);
  } else if (path == "/healthz") {
    plan.body = R"({"status":"ok"})";
  } else {
    error(Api::kOpenAI, 404, fmt::format("Unknown path: {}", path), plan);
  }
  if (plan.kind == Plan::Kind::kStream && !plan.http11) plan.keep_alive = false;
}

void Handler::reject(int status, std::string_view message, Plan& plan) {
  plan.clear();
  plan.request_id = "req_";
  plan.request_id += next_unique();
  error(Api::kOpenAI, status, message, plan);
  plan.keep_alive = false;
}

void Handler::error(Api api, int status, std::string_view message, Plan& plan) {
  plan.kind = Plan::Kind::kRespond;
  plan.status = status;
  plan.content_type = "application/json";
  plan.body = error_body(api, status, message);
}

void Handler::model_request(const Request& request, std::string_view path, const Overrides& ov,
                            Plan& plan) {
  const MockOptions& o = shared_.options;
  thread_.counters.bump(Counter::total);
  if (o.record) {
    header_views_.clear();
    for (const auto& f : request) header_views_.emplace_back(f.name_string(), f.value());
    shared_.last_request.record(request.method_string(), request.target(), header_views_,
                                request.body());
  }

  const Api api = path.starts_with("/v1/messages") ? Api::kAnthropic : Api::kOpenAI;
  plan.latency = milliseconds(clamp(ov.latency_ms.value_or(o.latency_ms), 0, kMaxDelayMs));
  plan.stream_delay =
      milliseconds(clamp(ov.stream_delay_ms.value_or(o.stream_delay_ms), 0, kMaxDelayMs));
  plan.stall_after = ov.stall_after.value_or(o.stall_after);

  if (!o.require_key.empty()) {
    bool ok = false;
    if (api == Api::kAnthropic) {
      ok = ov.api_key == o.require_key;
    } else {
      std::string_view auth = ov.authorization;
      ok = auth.size() == 7 + o.require_key.size() && iequals(auth.substr(0, 7), "bearer ") &&
           auth.substr(7) == o.require_key;
    }
    if (!ok) {
      thread_.counters.bump(Counter::rejected);
      error(api, 401,
            api == Api::kAnthropic ? "invalid x-api-key"
                                   : "Incorrect API key provided. You can find your API key at "
                                     "https://platform.openai.com/account/api-keys.",
            plan);
      return;
    }
  }

  // Faults: a request's own x-mock-reset / x-mock-status win; an x-mock-status below 400
  // means "answer normally" even when the options inject failures.
  bool reset = ov.reset;
  int status = 0;
  if (!reset && ov.status) {
    status = *ov.status >= 400 && *ov.status <= 599 ? *ov.status : 0;
  } else if (!reset && (o.reset || o.fail_status > 0 || o.fail_first > 0)) {
    bool due =
        o.fail_first <= 0 || shared_.fail_first_seen.fetch_add(1, std::memory_order_relaxed) <
                                 static_cast<uint64_t>(o.fail_first);
    if (due) {
      reset = o.reset;
      status = o.fail_status > 0 ? o.fail_status : 500;
    }
  }
  if (reset) {
    thread_.counters.bump(Counter::errors_injected);
    plan.kind = Plan::Kind::kReset;
    return;
  }
  if (status > 0) {
    thread_.counters.bump(Counter::errors_injected);
    error(api, status, fmt::format("Injected failure: HTTP {} from redline-mock", status), plan);
    int retry_after = ov.retry_after.value_or(o.retry_after);
    plan.retry_after = retry_after >= 0 ? retry_after : -1;
    return;
  }

  const int words = clamp(ov.words.value_or(o.words), 0, kMaxWords);
  const http::verb method = request.method();
  if (method == http::verb::post && path == "/v1/chat/completions") {
    answer(Endpoint::kChat, api, request, words, plan);
  } else if (method == http::verb::post && path == "/v1/messages") {
    answer(Endpoint::kMessages, api, request, words, plan);
  } else if (method == http::verb::post && path == "/v1/responses") {
    answer(Endpoint::kResponses, api, request, words, plan);
  } else if (method == http::verb::post && path == "/v1/completions") {
    answer(Endpoint::kCompletions, api, request, words, plan);
  } else if (method == http::verb::post && path == "/v1/embeddings") {
    answer(Endpoint::kEmbeddings, api, request, words, plan);
  } else if (method == http::verb::get && path == "/v1/models") {
    thread_.counters.bump(Counter::models);
    plan.body = models_body();
  } else if (method == http::verb::get && path.starts_with("/v1/models/")) {
    std::string_view id = path.substr(std::string_view("/v1/models/").size());
    plan.body = model_body(id);
    if (plan.body.empty()) {
      thread_.counters.bump(Counter::rejected);
      error(api, 404, fmt::format("The model '{}' does not exist", id), plan);
    } else {
      thread_.counters.bump(Counter::models);
    }
  } else {
    thread_.counters.bump(Counter::rejected);
    error(api, 404,
          fmt::format("Invalid URL ({} {})", std::string_view(request.method_string()), path),
          plan);
  }
}

void Handler::answer(Endpoint endpoint, Api api, const Request& request, int words, Plan& plan) {
  ModelRequest mr;
  std::string problem = parse_model_request(endpoint, request.body(), mr);
  if (!problem.empty()) {
    thread_.counters.bump(Counter::rejected);
    error(api, 400, problem, plan);
    return;
  }
  model_json_.clear();
  append_json_string(model_json_, mr.model);
  const uint64_t input_tokens = prompt_tokens(request.body());
  if (endpoint == Endpoint::kEmbeddings) {
    thread_.counters.bump(Counter::embeddings);
    embeddings_body(mr, model_json_, input_tokens, plan.body);
    return;
  }

  bool truncated = false;
  if (mr.max_tokens >= 0 && mr.max_tokens < words) {
    words = static_cast<int>(mr.max_tokens);
    truncated = true;
  }
  const Answer answer(request.body(), words);
  ReplyMeta meta;
  meta.unique = {unique_.data(), unique_size_};
  meta.model_json = model_json_;
  meta.created = static_cast<int64_t>(std::time(nullptr));
  meta.input_tokens = input_tokens;
  meta.truncated = truncated;

  if (!mr.stream) {
    switch (endpoint) {
      case Endpoint::kChat:
        thread_.counters.bump(Counter::chat);
        if (mr.tool_call.empty()) {
          chat_completion_body(meta, answer, plan.body);
        } else {
          chat_tool_call_body(meta, mr.tool_call, plan.body);
        }
        break;
      case Endpoint::kCompletions:
        thread_.counters.bump(Counter::completions);
        text_completion_body(meta, answer, plan.body);
        break;
      case Endpoint::kResponses:
        thread_.counters.bump(Counter::responses);
        response_body(meta, answer, mr.tool_call, plan.body);
        break;
      default:
        thread_.counters.bump(Counter::messages);
        if (mr.tool_call.empty()) {
          message_body(meta, answer, plan.body);
        } else {
          message_tool_use_body(meta, mr.tool_call, plan.body);
        }
        break;
    }
    return;
  }

  plan.kind = Plan::Kind::kStream;
  plan.content_type = "text/event-stream";
  SseSink sink(plan.body, plan.event_ends, plan.http11);
  switch (endpoint) {
    case Endpoint::kChat:
      thread_.counters.bump(Counter::chat_stream);
      if (mr.tool_call.empty()) {
        chat_completion_events(meta, answer, mr.include_usage, sink);
      } else {
        chat_tool_call_events(meta, mr.tool_call, mr.include_usage, sink);
      }
      break;
    case Endpoint::kCompletions:
      thread_.counters.bump(Counter::completions);
      text_completion_events(meta, answer, mr.include_usage, sink);
      break;
    case Endpoint::kResponses:
      thread_.counters.bump(Counter::responses_stream);
      response_events(meta, answer, mr.tool_call, sink);
      break;
    default:
      thread_.counters.bump(Counter::messages_stream);
      if (mr.tool_call.empty()) {
        message_events(meta, answer, sink);
      } else {
        message_tool_use_events(meta, mr.tool_call, sink);
      }
      break;
  }
}

void Handler::introspection(const Request& request, std::string_view path, Plan& plan) {
  const http::verb method = request.method();
  if (method == http::verb::get && path == "/mock/stats") {
    std::vector<const Counters*> all;
    all.reserve(shared_.threads.size());
    for (const ThreadState* t : shared_.threads) all.push_back(&t->counters);
    plan.body = stats_json(all);
  } else if (method == http::verb::get && path == "/mock/last-request") {
    plan.body = shared_.last_request.json();
    if (plan.body.empty()) {
      error(Api::kOpenAI, 404,
            shared_.options.record ? "no model request recorded yet"
                                   : "recording is off (--no-record)",
            plan);
    }
  } else if (method == http::verb::post && path == "/mock/reset") {
    for (ThreadState* t : shared_.threads) t->counters.clear();
    shared_.fail_first_seen.store(0, std::memory_order_relaxed);
    shared_.last_request.clear();
    plan.body = R"({"reset":true})";
  } else {
    error(Api::kOpenAI, 404, fmt::format("Unknown mock endpoint: {}", path), plan);
  }
}

}  // namespace redline::mock
