// Usage readers: both APIs, bodies and streams, absent usage.
#include "proxy/usage.h"

#include <gtest/gtest.h>

namespace redline::proxy {
namespace {

TEST(Usage, OpenAIBody) {
  auto u = usage_from_body(
      R"({"id":"x","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42}})");
  ASSERT_TRUE(u);
  EXPECT_EQ(*u, (Usage{12, 30}));
  EXPECT_EQ(u->total(), 42u);
}

TEST(Usage, EmbeddingsBodyHasOnlyPromptTokens) {
  auto u = usage_from_body(R"({"data":[],"usage":{"prompt_tokens":7,"total_tokens":7}})");
  ASSERT_TRUE(u);
  EXPECT_EQ(*u, (Usage{7, 0}));
}

TEST(Usage, AnthropicBodyCountsPromptCacheTokens) {
  auto u = usage_from_body(
      R"({"type":"message","usage":{"input_tokens":10,"cache_read_input_tokens":100,"cache_creation_input_tokens":5,"output_tokens":3}})");
  ASSERT_TRUE(u);
  EXPECT_EQ(*u, (Usage{115, 3}));
}

TEST(Usage, AbsentOrBrokenIsNullopt) {
  EXPECT_FALSE(usage_from_body(R"({"id":"x"})"));
  EXPECT_FALSE(usage_from_body("not json"));
  EXPECT_FALSE(usage_from_body(R"({"usage":null})"));
}

TEST(Usage, ResponsesShapesAndFieldOrder) {
  // Usage ahead of the rest, nested in a response object, or both (the top level wins).
  EXPECT_EQ(usage_from_body(
                R"({"usage":{"input_tokens":4,"output_tokens":6},"output":[{"content":"x\"}y"}]})"),
            (Usage{4, 6}));
  EXPECT_EQ(
      usage_from_body(
          R"({"type":"response.completed","response":{"id":"r","usage":{"input_tokens":2,"output_tokens":5}}})"),
      (Usage{2, 5}));
  EXPECT_EQ(
      usage_from_body(
          R"({"response":{"usage":{"input_tokens":2,"output_tokens":5}},"usage":{"prompt_tokens":9,"completion_tokens":1}})"),
      (Usage{9, 1}));
  // Of a repeated field, the first counts; input_tokens overrides prompt_tokens.
  EXPECT_EQ(
      usage_from_body(
          R"({"usage":{"prompt_tokens":1,"input_tokens":3,"output_tokens":7,"output_tokens":8}})"),
      (Usage{3, 7}));
}

TEST(Usage, BodyThatDoesNotParseToItsEndIsNullopt) {
  EXPECT_FALSE(usage_from_body(R"({"usage":{"prompt_tokens":1,"completion_tokens":2},"x":})"));
  EXPECT_FALSE(
      usage_from_body(R"({"usage":{"prompt_tokens":1,"completion_tokens":2},"choices":[)"));
  EXPECT_FALSE(usage_from_body(R"({"choices":[],"usage":{"prompt_tokens":1,)"));
  EXPECT_FALSE(usage_from_body(""));
}

TEST(Usage, OpenAIStreamUsageChunk) {
  std::vector<std::string> events = {
      R"(data: {"choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null})",
      R"(data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}})",
      "data: [DONE]"};
  auto u = usage_from_events(events);
  ASSERT_TRUE(u);
  EXPECT_EQ(*u, (Usage{5, 2}));
}

TEST(Usage, AnthropicStreamStartThenDelta) {
  std::vector<std::string> events = {
      "event: message_start\ndata: "
      "{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":25,"
      "\"output_tokens\":1}}}",
      "event: content_block_delta\ndata: "
      "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"
      "\"usage\"}}",
      "event: message_delta\ndata: "
      "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_"
      "tokens\":15}}",
      "event: message_stop\ndata: {\"type\":\"message_stop\"}"};
  auto u = usage_from_events(events);
  ASSERT_TRUE(u);
  EXPECT_EQ(*u, (Usage{25, 15}));
}

TEST(Usage, StreamEventThatDoesNotParseIsSkipped) {
  std::vector<std::string> events = {
      R"(data: {"usage":{"prompt_tokens":5,"completion_tokens":2}})",
      R"(data: {"usage":{"prompt_tokens":9,"completion_tokens":9},"x":})", "data: [DONE]"};
  EXPECT_EQ(usage_from_events(events), (Usage{5, 2}));
}

TEST(Usage, StreamWithoutUsage) {
  std::vector<std::string> events = {R"(data: {"choices":[{"delta":{"content":"x"}}]})",
                                     "data: [DONE]"};
  EXPECT_FALSE(usage_from_events(events));
}

}  // namespace
}  // namespace redline::proxy
