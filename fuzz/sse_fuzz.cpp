// libFuzzer target for the SSE splitter and the stream <-> body conversions. The first byte
// seeds where the rest is cut into chunks (and picks a small event limit when odd); the rest
// is the byte stream. It must never crash, hang or leak, and it checks properties: chunking
// never changes the events, every event is within the limit and re-frames to itself, and a
// body assembled from any stream is a fixed point of synthesize-then-assemble.
// Seed corpus: fuzz/corpus/sse/ (a seed byte, then a provider stream).
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "cache/replay.h"
#include "cache/sse.h"

namespace {

using redline::cache::ReplayApi;

// Aborts (a finding) when a property does not hold, saying which.
#define SSE_CHECK(cond)                                                                 \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "sse_fuzz: check failed at line %d: %s\n", __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (false)

uint32_t next(uint32_t& state) {  // xorshift32
  state ^= state << 13;
  state ^= state >> 17;
  state ^= state << 5;
  return state;
}

bool same_json(std::string_view a, std::string_view b) {
  boost::system::error_code ea;
  boost::system::error_code eb;
  boost::json::parse_options opts;
  opts.max_depth = 1024;
  const boost::json::value va = boost::json::parse(a, ea, {}, opts);
  const boost::json::value vb = boost::json::parse(b, eb, {}, opts);
  return !ea && !eb && va == vb;
}

void check_replay(ReplayApi api, const std::vector<std::string>& events) {
  const std::optional<std::string> body = redline::cache::assemble_answer(api, events);
  if (!body) return;
  for (bool include_usage : {true, false}) {
    const std::vector<std::string> again =
        redline::cache::synthesize_events(api, *body, include_usage);
    // An OpenAI body we assembled is always a valid one; an Anthropic message_start may have
    // carried a "type" other than "message", or nesting that is too deep once in a body.
    if (again.empty()) {
      SSE_CHECK(api == ReplayApi::kMessages);
      continue;
    }
    const std::optional<std::string> body2 = redline::cache::assemble_answer(api, again);
    SSE_CHECK(body2.has_value());
    if (include_usage || api == ReplayApi::kMessages) SSE_CHECK(same_json(*body, *body2));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint32_t state = 0x9e3779b9u ^ (uint32_t{data[0]} * 0x01000193u);
  const std::size_t limit = (data[0] & 1) != 0 ? 96 : redline::cache::kDefaultMaxSseEventBytes;
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);

  redline::cache::SseSplitter chunked(limit);
  std::vector<std::string> events;
  for (std::size_t pos = 0; pos < bytes.size();) {
    const std::size_t n = 1 + next(state) % 48;
    chunked.feed(bytes.substr(pos, n), events);
    pos += n;
  }
  redline::cache::SseSplitter whole(limit);
  std::vector<std::string> all;
  whole.feed(bytes, all);
  SSE_CHECK(all == events);
  SSE_CHECK(whole.overflow() == chunked.overflow());
  SSE_CHECK(whole.pending_bytes() == chunked.pending_bytes());
  SSE_CHECK(!chunked.overflow() || chunked.pending_bytes() == 0);
  SSE_CHECK(chunked.pending_bytes() <= limit + 3);

  for (const std::string& e : events) {
    SSE_CHECK(!e.empty() && e.size() <= limit);
    SSE_CHECK(e.find('\r') == std::string::npos && e.find("\n\n") == std::string::npos);
    SSE_CHECK(e.front() != '\n' && e.back() != '\n');
    // A stored event framed again splits back to itself (unless it starts with a byte order
    // mark, which a new stream drops, as it should).
    if (e.starts_with("\xEF\xBB\xBF")) continue;
    redline::cache::SseSplitter again(limit);
    std::vector<std::string> one;
    again.feed(redline::cache::frame_event(e), one);
    SSE_CHECK(one.size() == 1 && one[0] == e);
    (void)redline::cache::event_type(e);
    (void)redline::cache::is_openai_done(e);
    (void)redline::cache::is_anthropic_stop(e);
    (void)redline::cache::is_usage_only_chunk(e);
  }
  (void)redline::cache::filter_chat_events(events, false);

  check_replay(ReplayApi::kChatCompletions, events);
  check_replay(ReplayApi::kCompletions, events);
  check_replay(ReplayApi::kMessages, events);
  return 0;
}
