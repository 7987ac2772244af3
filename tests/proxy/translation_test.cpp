// End-to-end translation (src/translate wired into the forwarder): an OpenAI-format request
// for a model of an Anthropic-type provider and the reverse, JSON and streamed; a translated
// answer cached and replayed in the caller's format (both forms); an untranslatable field
// answered 400 before any provider call; provider errors in the caller's error shape; a
// fallback from an OpenAI-type provider to an Anthropic-type one. Real Gateway in-process,
// the mock provider, a real redis-server for the cache.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "mock/mock_server.h"
#include "support/gateway_harness.h"
#include "support/http_client.h"
#include "support/redis_server.h"

namespace redline {
namespace {

namespace json = boost::json;
using Gw = test::TestGateway;
using test::last_request;
using test::mock_total;

std::unique_ptr<mock::MockServer> start_mock(int fail_status = 0, int fail_first = 0) {
  mock::MockOptions o;
  o.fail_status = fail_status;
  o.fail_first = fail_first;
  auto m = std::make_unique<mock::MockServer>(std::move(o));
  m->start();
  return m;
}

// openai provider on `openai`, anthropic provider on `anthropic`; gpt-4o-mini falls back to
// claude when asked.
std::string yaml(const mock::MockServer& openai, const mock::MockServer& anthropic,
                 const test::RedisServer& redis, const std::string& extra = "") {
  return "listen: \"127.0.0.1:0\"\nthreads: 2\nadmin: {listen: \"127.0.0.1:0\"}\n"
         "logging: {access_log: false, level: warn}\n"
         "redis: {urls: [\"" +
         redis.url() +
         "\"]}\n"
         "cache: {lookup_timeout: 200ms, store_timeout: 2s}\n"
         "providers:\n"
         "  - {name: openai, type: openai, base_url: \"" +
         test::mock_url(openai) +
         "/v1\", api_key: sk-o, retry: {max_attempts: 1}, circuit: {failures: 0}}\n"
         "  - {name: claude, type: anthropic, base_url: \"" +
         test::mock_url(anthropic) +
         "\", api_key: sk-a}\n"
         "models:\n"
         "  claude-3-5-haiku-latest: claude\n"
         "  gpt-4o-mini: {provider: openai, fallbacks: [claude-3-5-haiku-latest]}\n" +
         extra;
}

json::value parse(const std::string& s) {
  return json::parse(s);
}

// The data payloads of an SSE body, in order, and the event names.
std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    auto end = body.find('\n', pos);
    out.push_back(body.substr(pos + 6, end - pos - 6));
    pos = end;
  }
  return out;
}

const std::string kChatForClaude =
    R"({"model":"claude-3-5-haiku-latest","messages":[{"role":"system","content":"Be brief."},)"
    R"({"role":"user","content":"Translate me"}]})";
const std::string kChatForClaudeStream =
    R"({"model":"claude-3-5-haiku-latest","stream":true,"messages":[{"role":"user","content":"Translate me"}]})";
const std::string kMessagesForGpt =
    R"({"model":"gpt-4o-mini","max_tokens":64,"system":"Be brief.","messages":[{"role":"user","content":"Hi GPT"}]})";

class TranslationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { redis_ = new test::RedisServer(); }
  static void TearDownTestSuite() {
    delete redis_;
    redis_ = nullptr;
  }
  void SetUp() override {
    redis_->cli("FLUSHALL");
    openai_ = start_mock();
    anthropic_ = start_mock();
  }
  static test::RedisServer* redis_;
  std::unique_ptr<mock::MockServer> openai_, anthropic_;
};
test::RedisServer* TranslationTest::redis_ = nullptr;

TEST_F(TranslationTest, ChatRequestForAnthropicModelBothForms) {
  Gw gw(yaml(*openai_, *anthropic_, *redis_));
  auto r = test::http_request(gw.port(), "POST", "/v1/chat/completions", kChatForClaude);
  ASSERT_EQ(r.status, 200) << r.body;
  const auto body = parse(r.body);
  EXPECT_EQ(body.at("object").as_string(), "chat.completion");
  EXPECT_EQ(body.at("model").as_string(), "claude-3-5-haiku-latest");
  EXPECT_EQ(body.at("choices").at(0).at("finish_reason").as_string(), "stop");
  EXPECT_GT(body.at("usage").at("completion_tokens").to_number<int>(), 0);
  // The provider got a Messages request: system on top, max_tokens supplied.
  const auto sent = last_request(*anthropic_);
  EXPECT_EQ(sent.at("target").as_string(), "/v1/messages");
  const auto sent_body = parse(std::string(sent.at("body").as_string()));
  EXPECT_EQ(sent_body.at("system").as_string(), "Be brief.");
  EXPECT_EQ(sent_body.at("messages").as_array().size(), 1u);
  EXPECT_TRUE(sent_body.at("max_tokens").is_number());
  EXPECT_EQ(sent.at("headers").at("x-api-key").as_string(), "sk-a");

  auto s = test::http_request(gw.port(), "POST", "/v1/chat/completions", kChatForClaudeStream);
  ASSERT_EQ(s.status, 200) << s.body;
  const auto data = sse_data(s.body);
  ASSERT_GE(data.size(), 3u);
  EXPECT_EQ(data.back(), "[DONE]");
  EXPECT_EQ(parse(data.front()).at("object").as_string(), "chat.completion.chunk");
  EXPECT_EQ(s.body.find("message_start"), std::string::npos) << "Anthropic events leaked";
}

TEST_F(TranslationTest, MessagesRequestForOpenAIModel) {
  Gw gw(yaml(*openai_, *anthropic_, *redis_));
  auto r = test::http_request(gw.port(), "POST", "/v1/messages", kMessagesForGpt,
                              {{"anthropic-version", "2023-06-01"}});
  ASSERT_EQ(r.status, 200) << r.body;
  const auto body = parse(r.body);
  EXPECT_EQ(body.at("type").as_string(), "message");
  EXPECT_EQ(body.at("stop_reason").as_string(), "end_turn");
  EXPECT_EQ(body.at("content").at(0).at("type").as_string(), "text");
  const auto sent = last_request(*openai_);
  EXPECT_EQ(sent.at("target").as_string(), "/v1/chat/completions");
  EXPECT_FALSE(sent.at("headers").as_object().contains("anthropic-version"));
  const auto messages = parse(std::string(sent.at("body").as_string())).at("messages");
  EXPECT_EQ(messages.at(0).at("role").as_string(), "system");
}

TEST_F(TranslationTest, TranslatedAnswerIsCachedAndReplayedInTheCallersFormat) {
  Gw gw(yaml(*openai_, *anthropic_, *redis_));
  auto first = test::http_request(gw.port(), "POST", "/v1/chat/completions", kChatForClaudeStream);
  ASSERT_EQ(first.status, 200);
  ASSERT_EQ(first.header("x-redline-cache"), "miss");
  const auto calls = mock_total(*anthropic_);
  // The same request streamed again: a hit, chat chunks, same text.
  auto again = test::http_request(gw.port(), "POST", "/v1/chat/completions", kChatForClaudeStream);
  EXPECT_EQ(again.header("x-redline-cache"), "hit");
  EXPECT_EQ(sse_data(again.body).back(), "[DONE]");
  // And as JSON: the assembled chat.completion.
  std::string as_json = kChatForClaudeStream;
  as_json.replace(as_json.find("\"stream\":true,"), 14, "");
  auto json_hit = test::http_request(gw.port(), "POST", "/v1/chat/completions", as_json);
  EXPECT_EQ(json_hit.header("x-redline-cache"), "hit");
  ASSERT_EQ(json_hit.status, 200) << json_hit.body;
  EXPECT_EQ(parse(json_hit.body).at("object").as_string(), "chat.completion");
  std::string streamed_text;
  for (const auto& d : sse_data(first.body)) {
    if (d == "[DONE]") continue;
    const auto chunk = parse(d);
    const auto& choices = chunk.at("choices").as_array();
    if (choices.empty()) continue;
    const auto* content = choices[0].at("delta").as_object().if_contains("content");
    if (content != nullptr && content->is_string()) streamed_text += content->as_string();
  }
  EXPECT_EQ(parse(json_hit.body).at("choices").at(0).at("message").at("content").as_string(),
            streamed_text);
  EXPECT_EQ(mock_total(*anthropic_), calls) << "hits must not reach the provider";
}

TEST_F(TranslationTest, UntranslatableFieldIs400BeforeAnyProviderCall) {
  Gw gw(yaml(*openai_, *anthropic_, *redis_));
  auto r = test::http_request(
      gw.port(), "POST", "/v1/chat/completions",
      R"({"model":"claude-3-5-haiku-latest","n":2,"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(r.status, 400) << r.body;
  const auto err = parse(r.body).at("error");
  EXPECT_EQ(err.at("code").as_string(), "untranslatable_field");
  EXPECT_NE(std::string(err.at("message").as_string()).find("n"), std::string::npos);
  EXPECT_EQ(mock_total(*anthropic_), 0);
}

TEST_F(TranslationTest, ProviderErrorsComeBackInTheCallersShape) {
  auto failing = start_mock(/*fail_status=*/400, /*fail_first=*/1000);
  Gw gw(yaml(*openai_, *failing, *redis_));
  auto r = test::http_request(gw.port(), "POST", "/v1/chat/completions", kChatForClaude);
  EXPECT_EQ(r.status, 400) << r.body;
  const auto body = parse(r.body);
  ASSERT_TRUE(body.as_object().contains("error")) << r.body;
  EXPECT_TRUE(body.at("error").as_object().contains("message"));
  EXPECT_FALSE(body.as_object().contains("type")) << "an Anthropic-shaped error leaked: " << r.body;
}

TEST_F(TranslationTest, FallbackFromOpenAITypeToAnthropicType) {
  auto failing = start_mock(/*fail_status=*/503, /*fail_first=*/1000);
  Gw gw(yaml(*failing, *anthropic_, *redis_));
  auto r = test::http_request(gw.port(), "POST", "/v1/chat/completions",
                              R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(parse(r.body).at("object").as_string(), "chat.completion");
  EXPECT_EQ(mock_total(*failing), 1);
  EXPECT_EQ(last_request(*anthropic_).at("target").as_string(), "/v1/messages");
}

}  // namespace
}  // namespace redline
