// Provider usage readers (see usage.h).
#include "proxy/usage.h"

#include <simdjson.h>

#include "cache/sse.h"

namespace redline::proxy {

namespace {
uint64_t field(simdjson::dom::object o, std::string_view name) {
  uint64_t v = 0;
  if (o[name].get_uint64().get(v)) return 0;
  return v;
}

// Reads one usage object of either shape into `u` (fields present overwrite).
bool read_usage(simdjson::dom::object usage, Usage& u) {
  bool any = false;
  for (auto [name, target] :
       {std::pair<std::string_view, uint64_t*>{"prompt_tokens", &u.input_tokens},
        {"completion_tokens", &u.output_tokens},
        {"input_tokens", &u.input_tokens},
        {"output_tokens", &u.output_tokens}}) {
    uint64_t v = 0;
    if (!usage[name].get_uint64().get(v)) {
      *target = v;
      any = true;
    }
  }
  // Anthropic counts prompt-cache reads and writes apart from input_tokens.
  const uint64_t cached =
      field(usage, "cache_creation_input_tokens") + field(usage, "cache_read_input_tokens");
  if (cached > 0 && usage["input_tokens"].error() == simdjson::SUCCESS) u.input_tokens += cached;
  return any;
}
}  // namespace

std::optional<Usage> usage_from_body(std::string_view body) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::object root;
  if (parser.parse(body.data(), body.size()).get_object().get(root)) return std::nullopt;
  simdjson::dom::object usage;
  if (root["usage"].get_object().get(usage)) {
    // The Responses API nests it in the response object of its events; bodies have it top level.
    simdjson::dom::object response;
    if (root["response"].get_object().get(response) || response["usage"].get_object().get(usage)) {
      return std::nullopt;
    }
  }
  Usage u;
  if (!read_usage(usage, u)) return std::nullopt;
  return u;
}

std::optional<Usage> usage_from_events(std::span<const std::string> events) {
  thread_local simdjson::dom::parser parser;
  std::optional<Usage> out;
  for (const auto& event : events) {
    if (event.find("usage") == std::string::npos) continue;
    const std::string data = cache::event_data(event);
    simdjson::dom::object root;
    if (parser.parse(data).get_object().get(root)) continue;
    simdjson::dom::object usage;
    simdjson::dom::object message;
    if (!root["usage"].get_object().get(usage)) {
      // OpenAI usage chunk, Anthropic message_delta.
    } else if (!root["message"].get_object().get(message) &&
               !message["usage"].get_object().get(usage)) {
      // Anthropic message_start.
    } else {
      continue;
    }
    Usage u = out.value_or(Usage{});
    if (read_usage(usage, u)) out = u;
  }
  return out;
}

}  // namespace redline::proxy
