// libFuzzer target for Chat Completions <-> Messages translation (translate/translate.h). The
// first byte picks options (include_usage, where the stream is cut into chunks); the rest is
// used as a request body (both directions), an answer body (both directions), an error body
// (both shapes, a status from the byte) and an SSE byte stream fed event by event to a
// StreamTranslator of each direction. It must never crash, hang or leak, and it checks:
// every translated request and answer is a JSON object, every error body has its API's shape,
// every stream event out is well formed for its API, and nothing comes after the terminal
// event. Seed corpus: fuzz/corpus/translate/ (a byte, then a body or a stream).
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "cache/sse.h"
#include "translate/translate.h"

namespace {

namespace json = boost::json;
using redline::translate::Api;

#define TRANSLATE_CHECK(cond)                                                                 \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::fprintf(stderr, "translate_fuzz: check failed at line %d: %s\n", __LINE__, #cond); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (false)

std::optional<json::object> object_of(std::string_view text) {
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 1024;
  json::value v = json::parse(text, ec, {}, opts);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.get_object());
}

uint32_t next(uint32_t& state) {  // xorshift32
  state ^= state << 13;
  state ^= state >> 17;
  state ^= state << 5;
  return state;
}

void check_request(Api from, Api to, std::string_view body) {
  redline::translate::RequestOptions options;
  options.upstream_model = "fuzz-model";
  auto r = redline::translate::translate_request(from, to, body, options);
  if (const auto* u = std::get_if<redline::translate::Untranslatable>(&r)) {
    TRANSLATE_CHECK(!u->message.empty());
    return;
  }
  const std::optional<json::object> out = object_of(std::get<std::string>(r));
  TRANSLATE_CHECK(out.has_value());
  TRANSLATE_CHECK(out->contains("model"));
  if (from != to) TRANSLATE_CHECK(out->contains("messages"));
}

void check_response(Api from, Api to, std::string_view body) {
  const std::optional<std::string> r = redline::translate::translate_response(from, to, body, "m");
  if (!r) return;
  const std::optional<json::object> out = object_of(*r);
  TRANSLATE_CHECK(out.has_value());
  TRANSLATE_CHECK(out->contains(to == Api::kChat ? "choices" : "content"));
}

void check_error(Api to, int status, std::string_view body) {
  const std::optional<json::object> out =
      object_of(redline::translate::translate_error(to, status, body));
  TRANSLATE_CHECK(out.has_value());
  const json::value* err = out->if_contains("error");
  TRANSLATE_CHECK(err != nullptr && err->is_object());
  TRANSLATE_CHECK(err->get_object().contains("message") && err->get_object().contains("type"));
  if (to == Api::kMessages) TRANSLATE_CHECK(out->at("type") == "error");
}

void check_stream(Api from, Api to, const std::vector<std::string>& events, bool include_usage) {
  redline::translate::StreamTranslator t(from, to, "m", include_usage);
  std::vector<std::string> out;
  for (const std::string& e : events) {
    const bool was_finished = t.finished();
    const std::size_t before = out.size();
    t.feed(e, out);
    if (was_finished) TRANSLATE_CHECK(out.size() == before);
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    const std::string& e = out[i];
    const std::string data = redline::cache::event_data(e);
    if (to == Api::kChat) {
      TRANSLATE_CHECK(e.starts_with("data: "));
      if (data == "[DONE]") {
        TRANSLATE_CHECK(i + 1 == out.size());
        continue;
      }
      const std::optional<json::object> chunk = object_of(data);
      TRANSLATE_CHECK(chunk.has_value());
      TRANSLATE_CHECK(chunk->contains("error") || chunk->contains("choices"));
    } else {
      const std::optional<json::object> event = object_of(data);
      TRANSLATE_CHECK(event.has_value());
      const json::value* type = event->if_contains("type");
      TRANSLATE_CHECK(type != nullptr && type->is_string());
      TRANSLATE_CHECK(redline::cache::event_type(e) == std::string_view(type->get_string()));
      if (type->get_string() == "message_stop" || type->get_string() == "error") {
        TRANSLATE_CHECK(i + 1 == out.size());
      }
    }
  }
  if (t.finished()) TRANSLATE_CHECK(!out.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t options = data[0];
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);

  for (Api from : {Api::kChat, Api::kMessages}) {
    for (Api to : {Api::kChat, Api::kMessages}) {
      check_request(from, to, bytes);
      if (from != to) check_response(from, to, bytes);
    }
  }
  static constexpr int kStatuses[] = {400, 401, 403, 404, 413, 429, 500, 503, 529, 502};
  const int status = kStatuses[options % 10];
  check_error(Api::kChat, status, bytes);
  check_error(Api::kMessages, status, bytes);

  // The stream arrives in chunks cut where the seed byte says.
  uint32_t state = 0x9e3779b9u ^ (uint32_t{options} * 0x01000193u);
  redline::cache::SseSplitter splitter;
  std::vector<std::string> events;
  for (std::size_t pos = 0; pos < bytes.size();) {
    const std::size_t n = 1 + next(state) % 64;
    splitter.feed(bytes.substr(pos, n), events);
    pos += n;
  }
  const bool include_usage = (options & 1) != 0;
  check_stream(Api::kMessages, Api::kChat, events, include_usage);
  check_stream(Api::kChat, Api::kMessages, events, include_usage);
  return 0;
}
