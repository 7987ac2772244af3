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
namespace od = simdjson::ondemand;

// read_usage for an On-Demand object, in one pass over its fields: the same fields and rules
// (of a repeated field, the first counts).
bool read_usage(od::object usage, Usage& u) {
  std::optional<uint64_t> prompt, completion, input, output, cache_creation, cache_read;
  for (auto field : usage) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return false;
    std::optional<uint64_t>* slot = key == "prompt_tokens"                 ? &prompt
                                    : key == "completion_tokens"           ? &completion
                                    : key == "input_tokens"                ? &input
                                    : key == "output_tokens"               ? &output
                                    : key == "cache_creation_input_tokens" ? &cache_creation
                                    : key == "cache_read_input_tokens"     ? &cache_read
                                                                           : nullptr;
    uint64_t v = 0;
    if (slot != nullptr && !*slot && !field.value().get_uint64().get(v)) *slot = v;
  }
  bool any = false;
  for (auto [value, target] : {std::pair{prompt, &u.input_tokens},
                               {completion, &u.output_tokens},
                               {input, &u.input_tokens},
                               {output, &u.output_tokens}}) {
    if (value) {
      *target = *value;
      any = true;
    }
  }
  // Anthropic counts prompt-cache reads and writes apart from input_tokens.
  const uint64_t cached = cache_creation.value_or(0) + cache_read.value_or(0);
  if (cached > 0 && input) u.input_tokens += cached;
  return any;
}
}  // namespace

// One pass over the top-level fields that parses only the usage object: a DOM parse built
// the whole answer's tape, its strings included, to read a handful of integers. Values it
// skips are checked for their nesting only, not validated (the answer goes to the client as
// the provider sent it); a body whose top-level fields do not parse gives nullopt.
std::optional<Usage> usage_from_body(std::string_view body) {
  thread_local od::parser parser;
  thread_local std::string padded;
  padded.assign(body);
  padded.resize(body.size() + simdjson::SIMDJSON_PADDING, '\0');
  od::document doc;
  od::object root;
  if (parser.iterate(simdjson::padded_string_view(padded.data(), body.size(), padded.size()))
          .get(doc) ||
      doc.get_object().get(root)) {
    return std::nullopt;
  }
  // An object's usage, once seen: the outer optional says whether there was one.
  std::optional<std::optional<Usage>> top, nested;
  auto read = [](od::object usage) -> std::optional<Usage> {
    Usage u;
    if (!read_usage(usage, u)) return std::nullopt;
    return u;
  };
  for (auto field : root) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return std::nullopt;
    od::object object;
    if (key == "usage" && !top) {
      if (!field.value().get_object().get(object)) top = read(object);
    } else if (key == "response" && !nested) {
      // The Responses API nests it in the response object of its events.
      if (field.value().get_object().get(object)) continue;
      for (auto inner : object) {
        std::string_view inner_key;
        od::object usage;
        if (inner.unescaped_key().get(inner_key)) return std::nullopt;
        if (inner_key == "usage" && !inner.value().get_object().get(usage)) {
          nested = read(usage);
          break;
        }
      }
    }
  }
  if (top) return *top;
  if (nested) return *nested;
  return std::nullopt;
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
