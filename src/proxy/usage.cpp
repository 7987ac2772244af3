// Provider usage readers (see usage.h). Both read with simdjson On-Demand: one pass over the
// top-level fields that parses only the usage object (a DOM parse built the whole answer's
// tape, its strings included, to read a handful of integers). Values skipped are checked for
// their nesting only, not validated (the answer goes to the client as the provider sent it);
// JSON whose top-level fields do not parse gives no usage.
#include "proxy/usage.h"

#include <simdjson.h>

#include "cache/sse.h"

namespace redline::proxy {

namespace {
namespace od = simdjson::ondemand;

// Reads one usage object of either shape into `u`: the fields present overwrite (of a
// repeated field, the first counts). False when none of the token fields is there.
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

// The usage in the JSON object `json`, read into `u` (which keeps the fields it lacks): its
// top-level "usage" object, or else the "usage" object inside its `nested` object. False
// when there is none, it has no token field, or the JSON does not parse.
bool read_usage_in(std::string_view json, std::string_view nested, Usage& u) {
  thread_local od::parser parser;
  thread_local std::string padded;
  padded.assign(json);
  padded.resize(json.size() + simdjson::SIMDJSON_PADDING, '\0');
  od::document doc;
  od::object root;
  if (parser.iterate(simdjson::padded_string_view(padded.data(), json.size(), padded.size()))
          .get(doc) ||
      doc.get_object().get(root)) {
    return false;
  }
  // An object's usage, once seen: the outer optional says whether there was one.
  std::optional<std::optional<Usage>> top, inner;
  auto read = [&u](od::object usage) -> std::optional<Usage> {
    Usage v = u;
    if (!read_usage(usage, v)) return std::nullopt;
    return v;
  };
  for (auto field : root) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return false;
    od::object object;
    if (key == "usage" && !top) {
      if (!field.value().get_object().get(object)) top = read(object);
    } else if (key == nested && !inner) {
      if (field.value().get_object().get(object)) continue;
      for (auto nested_field : object) {
        std::string_view nested_key;
        od::object usage;
        if (nested_field.unescaped_key().get(nested_key)) return false;
        if (nested_key == "usage" && !nested_field.value().get_object().get(usage)) {
          inner = read(usage);
          break;
        }
      }
    }
  }
  const std::optional<Usage> found = top ? *top : inner ? *inner : std::nullopt;
  if (!found) return false;
  u = *found;
  return true;
}
}  // namespace

std::optional<Usage> usage_from_body(std::string_view body) {
  // The Responses API nests it in the response object of its events; bodies have it top level.
  Usage u;
  if (!read_usage_in(body, "response", u)) return std::nullopt;
  return u;
}

std::optional<Usage> usage_from_events(std::span<const std::string> events) {
  std::optional<Usage> out;
  for (const auto& event : events) {
    if (!cache::event_may_have_member(event, "usage", '{')) continue;  // e.g. "usage":null
    // OpenAI's usage chunk and Anthropic's message_delta have it top level, Anthropic's
    // message_start in its message; later events update the fields they carry.
    Usage u = out.value_or(Usage{});
    if (read_usage_in(cache::event_data(event), "message", u)) out = u;
  }
  return out;
}

}  // namespace redline::proxy
