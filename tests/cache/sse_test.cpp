// Tests for the SSE splitter and event helpers (src/cache/sse.h): a stream cut at every byte
// gives the same events, all three line endings (also a CR/LF pair cut in two), comments,
// the byte order mark, the size bound, and the field readers. They do not test what the
// events mean; replay_test.cpp does.
#include "cache/sse.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace redline::cache {
namespace {

using Events = std::vector<std::string>;

Events split_whole(std::string_view bytes, std::size_t max = kDefaultMaxSseEventBytes) {
  SseSplitter s(max);
  Events out;
  s.feed(bytes, out);
  return out;
}

Events split_at(std::string_view bytes, const std::vector<std::size_t>& cuts) {
  SseSplitter s;
  Events out;
  std::size_t from = 0;
  for (std::size_t cut : cuts) {
    s.feed(bytes.substr(from, cut - from), out);
    from = cut;
  }
  s.feed(bytes.substr(from), out);
  EXPECT_EQ(s.pending_bytes(), 0u);
  return out;
}

std::string with_endings(std::string_view lf_text, std::string_view eol) {
  std::string out;
  for (char c : lf_text) {
    if (c == '\n') {
      out += eol;
    } else {
      out += c;
    }
  }
  return out;
}

// Three events, a comment, a multi-line data field, an event type, and blank-line runs.
constexpr std::string_view kStream =
    "data: {\"a\":1}\n"
    "\n"
    ": keep-alive\n"
    "\n"
    "\n"
    "event: message_stop\n"
    "data: first\n"
    "data:second\n"
    "\n"
    "data: [DONE]\n"
    "\n";

const Events kStreamEvents = {"data: {\"a\":1}", ": keep-alive",
                              "event: message_stop\ndata: first\ndata:second", "data: [DONE]"};

TEST(SseSplitter, SplitsCompleteEvents) {
  EXPECT_EQ(split_whole(kStream), kStreamEvents);
}

// feed_each hands each completed event to its callback (no copy out), in order, across
// chunks, with the same text feed() copies: a reader may keep only some of them.
TEST(SseSplitter, FeedEachVisitsEveryEventInOrder) {
  const std::string bytes = with_endings(kStream, "\r\n");
  for (std::size_t cut = 0; cut <= bytes.size(); ++cut) {
    SseSplitter s;
    Events seen, kept;
    auto visit = [&](std::string_view event) {
      seen.emplace_back(event);
      if (event.find("message_stop") != std::string_view::npos) kept.emplace_back(event);
    };
    s.feed_each(std::string_view(bytes).substr(0, cut), visit);
    s.feed_each(std::string_view(bytes).substr(cut), visit);
    ASSERT_EQ(seen, kStreamEvents) << "cut at " << cut;
    ASSERT_EQ(kept, Events{kStreamEvents[2]}) << "cut at " << cut;
    EXPECT_EQ(s.pending_bytes(), 0u);
  }
}

TEST(SseSplitter, EveryLineEndingGivesTheSameEvents) {
  for (std::string_view eol : {"\n", "\r\n", "\r"}) {
    EXPECT_EQ(split_whole(with_endings(kStream, eol)), kStreamEvents) << "eol size " << eol.size();
  }
}

TEST(SseSplitter, MixedLineEndings) {
  EXPECT_EQ(split_whole("data: a\r\ndata: b\rdata: c\n\r\n"
                        "data: d\r\r"
                        "data: e\n\r"
                        "data: f\r\n\n"),
            (Events{"data: a\ndata: b\ndata: c", "data: d", "data: e", "data: f"}));
}

TEST(SseSplitter, EverySplitPointGivesTheSameEvents) {
  for (std::string_view eol : {"\n", "\r\n", "\r"}) {
    const std::string bytes = with_endings(kStream, eol);
    for (std::size_t i = 0; i <= bytes.size(); ++i) {
      EXPECT_EQ(split_at(bytes, {i}), kStreamEvents) << "cut at " << i << " eol " << eol.size();
    }
  }
}

TEST(SseSplitter, EveryPairOfSplitPointsGivesTheSameEvents) {
  const std::string bytes = with_endings(kStream, "\r\n");
  for (std::size_t i = 0; i <= bytes.size(); ++i) {
    for (std::size_t j = i; j <= bytes.size(); ++j) {
      ASSERT_EQ(split_at(bytes, {i, j}), kStreamEvents) << "cuts at " << i << ", " << j;
    }
  }
}

TEST(SseSplitter, ByteByByte) {
  const std::string bytes = with_endings(kStream, "\r\n");
  SseSplitter s;
  Events out;
  for (char c : bytes) s.feed(std::string_view(&c, 1), out);
  EXPECT_EQ(out, kStreamEvents);
}

TEST(SseSplitter, CrAtChunkEndFollowedByLfIsOneLineEnding) {
  SseSplitter s;
  Events out;
  s.feed("data: a\r", out);
  s.feed("\ndata: b\r", out);
  EXPECT_TRUE(out.empty());
  s.feed("\n\r", out);
  ASSERT_EQ(out, (Events{"data: a\ndata: b"}));
  s.feed("\n", out);  // belongs to the "\r" before it: no extra blank line, nothing new
  EXPECT_EQ(out.size(), 1u);
  EXPECT_EQ(s.pending_bytes(), 0u);
}

TEST(SseSplitter, BlankLineRunsMakeNoEmptyEvents) {
  EXPECT_TRUE(split_whole("\n\n\r\n\r\r").empty());
  EXPECT_EQ(split_whole("\n\ndata: x\n\n\n\n"), (Events{"data: x"}));
}

TEST(SseSplitter, IncompleteEventIsHeldBack) {
  SseSplitter s;
  Events out;
  s.feed("data: one\n\ndata: tw", out);
  EXPECT_EQ(out, (Events{"data: one"}));
  EXPECT_EQ(s.pending_bytes(), std::string_view("data: tw").size());
  s.feed("o\n", out);
  EXPECT_EQ(out.size(), 1u);
  EXPECT_EQ(s.pending_bytes(), std::string_view("data: two\n").size());
  s.feed("\n", out);
  EXPECT_EQ(out, (Events{"data: one", "data: two"}));
  EXPECT_EQ(s.pending_bytes(), 0u);
}

TEST(SseSplitter, ByteOrderMarkIsDroppedOnlyAtTheStart) {
  EXPECT_EQ(split_whole("\xEF\xBB\xBF"
                        "data: x\n\n\xEF\xBB\xBF"
                        "data: y\n\n"),
            (Events{"data: x",
                    "\xEF\xBB\xBF"
                    "data: y"}));
  // Split inside the mark.
  EXPECT_EQ(split_at("\xEF\xBB\xBF"
                     "data: x\n\n",
                     {1}),
            (Events{"data: x"}));
  EXPECT_EQ(split_at("\xEF\xBB\xBF"
                     "data: x\n\n",
                     {2}),
            (Events{"data: x"}));
  // A prefix of the mark followed by something else is ordinary text.
  EXPECT_EQ(split_at("\xEF\xBB"
                     "data: x\n\n",
                     {1}),
            (Events{"\xEF\xBB"
                    "data: x"}));
  EXPECT_EQ(split_whole("\xEF\n\n"), (Events{"\xEF"}));
  SseSplitter s;
  Events out;
  s.feed("\xEF\xBB", out);
  EXPECT_EQ(s.pending_bytes(), 2u);
}

TEST(SseSplitter, OverflowStopsAndFreesTheEvent) {
  // (Built with append: `"literal" + std::string(...)` trips a g++ 12 -O3 -Warray-bounds
  // false positive.)
  std::string big = "data: ";
  big.append(100, 'x');
  SseSplitter s(64);
  Events out;
  s.feed("data: small\n\n", out);
  s.feed(big.substr(0, 50), out);
  EXPECT_FALSE(s.overflow());
  s.feed(big.substr(50), out);
  EXPECT_TRUE(s.overflow());
  EXPECT_EQ(s.pending_bytes(), 0u);
  s.feed("\n\ndata: later\n\n", out);  // ignored once overflowed
  EXPECT_EQ(out, (Events{"data: small"}));
  s.reset();
  EXPECT_FALSE(s.overflow());
  s.feed("data: again\n\n", out);
  EXPECT_EQ(out, (Events{"data: small", "data: again"}));
}

TEST(SseSplitter, OverflowCountsEveryLineOfTheEvent) {
  // Many short lines add up: the bound is on the whole event, not on a line.
  std::string many;
  for (int i = 0; i < 100; ++i) many += "data: x\n";
  SseSplitter s(256);
  Events out;
  s.feed(many, out);
  EXPECT_TRUE(s.overflow());
  EXPECT_TRUE(out.empty());
}

TEST(SseSplitter, EventOfExactlyTheLimitPasses) {
  std::string event = "data: ";
  event.append(58, 'y');  // 64 bytes
  ASSERT_EQ(event.size(), 64u);
  SseSplitter s(64);
  Events out;
  s.feed(event + "\n\n", out);
  EXPECT_FALSE(s.overflow());
  EXPECT_EQ(out, (Events{event}));
  s.feed(event + "z\n\n", out);
  EXPECT_TRUE(s.overflow());
}

TEST(SseSplitter, ZeroLimitOverflowsOnAnyText) {
  SseSplitter s(0);
  Events out;
  s.feed("\n\n", out);
  EXPECT_FALSE(s.overflow());
  s.feed("d", out);
  EXPECT_TRUE(s.overflow());
}

TEST(SseFields, Data) {
  EXPECT_EQ(event_data("data: hello"), "hello");
  EXPECT_EQ(event_data("data:hello"), "hello");
  EXPECT_EQ(event_data("data:  two spaces"), " two spaces");
  EXPECT_EQ(event_data("data: a\ndata: b\ndata:"), "a\nb\n");
  EXPECT_EQ(event_data("data"), "");  // a field without a colon has an empty value
  EXPECT_EQ(event_data("data\ndata: x"), "\nx");
  EXPECT_EQ(event_data("event: x\nid: 7\nretry: 10"), "");
  EXPECT_EQ(event_data(": data: not data\ndata: yes"), "yes");
  EXPECT_EQ(event_data("data: a: b"), "a: b");
  EXPECT_EQ(event_data("datum: x\nDATA: y"), "");  // names are case-sensitive
}

TEST(SseFields, TypeAndComments) {
  EXPECT_EQ(event_type("event: message_start\ndata: {}"), "message_start");
  EXPECT_EQ(event_type("event:ping"), "ping");
  EXPECT_EQ(event_type("event: a\nevent: b"), "b");
  EXPECT_EQ(event_type("data: {}"), "");
  EXPECT_EQ(event_type(": event: no"), "");
  EXPECT_TRUE(is_comment_only(": ping"));
  EXPECT_TRUE(is_comment_only(":\n: two"));
  EXPECT_TRUE(is_comment_only(""));
  EXPECT_FALSE(is_comment_only(": ping\ndata: x"));
  EXPECT_FALSE(is_comment_only("retry: 100"));
}

TEST(SseFields, OpenAIDone) {
  EXPECT_TRUE(is_openai_done("data: [DONE]"));
  EXPECT_TRUE(is_openai_done("data:[DONE]"));
  EXPECT_FALSE(is_openai_done("data: [DONE] "));
  EXPECT_FALSE(is_openai_done("data: {\"x\":\"[DONE]\"}"));
  EXPECT_FALSE(is_openai_done(": [DONE]"));
}

TEST(SseFields, AnthropicStop) {
  EXPECT_TRUE(is_anthropic_stop("event: message_stop\ndata: {\"type\":\"message_stop\"}"));
  EXPECT_TRUE(is_anthropic_stop("data: {\"type\": \"message_stop\"}"));
  EXPECT_TRUE(is_anthropic_stop("event: message_stop"));
  EXPECT_FALSE(is_anthropic_stop("event: message_delta\ndata: {\"type\":\"message_delta\"}"));
  EXPECT_FALSE(is_anthropic_stop(
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
      "\"delta\":{\"type\":\"text_delta\",\"text\":\"message_stop\"}}"));
  EXPECT_FALSE(is_anthropic_stop("data: {\"type\":\"message_stop\""));  // not JSON
  EXPECT_FALSE(is_anthropic_stop("data: [DONE]"));
}

TEST(SseFields, FramingRoundTrips) {
  EXPECT_EQ(frame_event("data: x"), "data: x\n\n");
  EXPECT_EQ(frame_event("event: a\ndata: b"), "event: a\ndata: b\n\n");
  const std::string wire = frame_events(kStreamEvents);
  EXPECT_EQ(wire, std::string(frame_event(kStreamEvents[0])) + frame_event(kStreamEvents[1]) +
                      frame_event(kStreamEvents[2]) + frame_event(kStreamEvents[3]));
  EXPECT_EQ(split_whole(wire), kStreamEvents);
}

// The text test that spares the per-event parse: a member as written, with any whitespace,
// whose value opens (or is empty) as asked; nothing for a null, another name that ends or
// starts with it, or a value of the other kind.
TEST(MayHaveMember, FindsTheMemberAsWritten) {
  EXPECT_TRUE(may_have_member(R"({"choices":[],"usage":{"a":1}})", "usage", '{'));
  EXPECT_TRUE(may_have_member(R"({"choices":[],"usage":{"a":1}})", "choices", '[', true));
  EXPECT_TRUE(may_have_member("{ \"choices\" :\n[ \t] , \"usage\"\r\n: {}}", "choices", '[', true));
  EXPECT_TRUE(may_have_member(R"({"usage" : { }})", "usage", '{', true));
  EXPECT_FALSE(may_have_member(R"({"choices":[{"index":0}],"usage":null})", "usage", '{'));
  EXPECT_FALSE(may_have_member(R"({"choices":[{"index":0}],"usage":null})", "choices", '[', true));
  EXPECT_FALSE(may_have_member(R"({"my_usage":{},"usage_x":{}})", "usage", '{'));
  EXPECT_FALSE(may_have_member(R"({"usage":[]})", "usage", '{'));
  EXPECT_FALSE(may_have_member(R"({"usage")", "usage", '{'));
  EXPECT_FALSE(may_have_member(R"({"usage":)", "usage", '{'));
  EXPECT_FALSE(may_have_member("usage", "usage", '{'));
  EXPECT_FALSE(may_have_member("", "usage", '{'));
  // The second occurrence counts when the first is not a member (text inside a string).
  EXPECT_TRUE(may_have_member(R"({"content":"usage","usage":{"t":1}})", "usage", '{'));
}

TEST(MayHaveMember, EventsWithDataOnSeveralLinesGetTheLooseTest) {
  // One data line (OpenAI), or an event line and one data line (Anthropic): the JSON as is.
  EXPECT_FALSE(event_may_have_member(R"(data: {"choices":[],"usage":null})", "usage", '{'));
  EXPECT_TRUE(event_may_have_member("event: message_delta\ndata: {\"usage\":{\"output_tokens\":3}}",
                                    "usage", '{'));
  // Split over data lines, the member's pieces are not adjacent in the event: the name alone.
  const std::string split = "data: {\"choices\":\ndata: [],\"usage\":\ndata: {\"a\":1}}";
  EXPECT_FALSE(may_have_member(split, "choices", '[', true));
  EXPECT_TRUE(event_may_have_member(split, "choices", '[', true));
  EXPECT_TRUE(event_may_have_member(split, "usage", '{'));
  EXPECT_FALSE(event_may_have_member("data: {\"a\":\ndata: 1}", "usage", '{'));
}

}  // namespace
}  // namespace redline::cache
