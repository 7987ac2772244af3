// The mock provider's POST /v1/responses over a real loopback socket: the Response object's
// shape and usage, the streaming event sequence (types, sequence numbers, deltas adding up to
// the final text), max_output_tokens -> incomplete, function calls for a user message that
// names a tool, injected faults in OpenAI's shape, stats and /mock/last-request.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "mock/answers.h"
#include "mock/mock_server.h"
#include "support/http_client.h"

namespace redline::mock {
namespace {

namespace json = boost::json;
using test::HttpClient;
using test::HttpResponse;

constexpr const char* kBody = R"({"model":"gpt-4o-mini","input":"Say hi"})";
constexpr const char* kStreamBody = R"({"model":"gpt-4o-mini","input":"Say hi","stream":true})";
constexpr const char* kToolBody =
    R"({"model":"gpt-4o-mini","input":[{"role":"user","content":"Please use get_weather for Oslo"}],)"
    R"("tools":[{"type":"function","name":"get_time"},{"type":"function","name":"get_weather"}]})";

struct Event {
  std::string type;
  json::value data;
};

std::vector<Event> events_of(const std::string& body) {
  std::vector<Event> out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    const std::string block = body.substr(pos, end - pos);
    pos = end + 2;
    Event e;
    std::size_t start = 0;
    while (start < block.size()) {
      std::size_t nl = block.find('\n', start);
      if (nl == std::string::npos) nl = block.size();
      const std::string line = block.substr(start, nl - start);
      if (line.rfind("event: ", 0) == 0) e.type = line.substr(7);
      if (line.rfind("data: ", 0) == 0) e.data = json::parse(line.substr(6));
      start = nl + 1;
    }
    if (!e.type.empty()) out.push_back(std::move(e));
  }
  return out;
}

std::string str(const json::value& v) {
  return std::string(v.as_string());
}

int count_words(const std::string& text) {
  int n = 0;
  bool in_word = false;
  for (char c : text) {
    if (c == ' ') {
      in_word = false;
    } else if (!in_word) {
      in_word = true;
      ++n;
    }
  }
  return n;
}

class MockResponsesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<MockServer>(MockOptions{});
    server_->start();
    port_ = server_->port();
    ASSERT_NE(port_, 0);
  }
  HttpResponse post(const std::string& body, const test::Headers& headers = {}) {
    return test::http_request(port_, "POST", "/v1/responses", body, headers);
  }
  HttpResponse get(const std::string& target) {
    return test::http_request(port_, "GET", target, {}, {});
  }
  std::unique_ptr<MockServer> server_;
  int port_ = 0;
};

TEST_F(MockResponsesTest, AnswerHasTheResponsesShapeAndUsage) {
  auto r = post(kBody);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/json");
  const json::value v = json::parse(r.body);
  EXPECT_EQ(str(v.at("object")), "response");
  EXPECT_EQ(str(v.at("id")).rfind("resp_", 0), 0u);
  EXPECT_EQ(str(v.at("status")), "completed");
  EXPECT_EQ(str(v.at("model")), "gpt-4o-mini");
  EXPECT_TRUE(v.at("incomplete_details").is_null());
  ASSERT_EQ(v.at("output").as_array().size(), 1u);
  const json::value& item = v.at("output").at(0);
  EXPECT_EQ(str(item.at("type")), "message");
  EXPECT_EQ(str(item.at("role")), "assistant");
  EXPECT_EQ(str(item.at("id")).rfind("msg_", 0), 0u);
  EXPECT_EQ(str(item.at("content").at(0).at("type")), "output_text");
  EXPECT_TRUE(item.at("content").at(0).at("annotations").as_array().empty());
  const std::string text = str(item.at("content").at(0).at("text"));
  EXPECT_EQ(count_words(text), 12);
  const json::value& usage = v.at("usage");
  EXPECT_EQ(usage.at("input_tokens").as_int64(), static_cast<int64_t>(std::strlen(kBody) / 4));
  EXPECT_EQ(usage.at("output_tokens").as_int64(), 12);
  EXPECT_EQ(usage.at("total_tokens").as_int64(), usage.at("input_tokens").as_int64() + 12);
  EXPECT_EQ(usage.at("input_tokens_details").at("cached_tokens").as_int64(), 0);
  EXPECT_EQ(usage.at("output_tokens_details").at("reasoning_tokens").as_int64(), 0);
  // Deterministic: the same body, the same words; another body, other words.
  const json::value again = json::parse(post(kBody).body);
  EXPECT_EQ(str(again.at("output").at(0).at("content").at(0).at("text")), text);
  EXPECT_NE(str(again.at("id")), str(v.at("id")));
  const json::value other = json::parse(post(R"({"model":"gpt-4o-mini","input":"Say bye"})").body);
  EXPECT_NE(str(other.at("output").at(0).at("content").at(0).at("text")), text);
}

TEST_F(MockResponsesTest, StreamSendsTheFullEventSequence) {
  HttpClient client("127.0.0.1", port_);
  auto r = client.stream("POST", "/v1/responses", kStreamBody, {{"x-mock-words", "4"}},
                         [](const std::string&) {});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
  const auto events = events_of(r.body);
  std::vector<std::string> types;
  for (const auto& e : events) types.push_back(e.type);
  const std::vector<std::string> expected = {
      "response.created",           "response.in_progress",
      "response.output_item.added", "response.content_part.added",
      "response.output_text.delta", "response.output_text.delta",
      "response.output_text.delta", "response.output_text.delta",
      "response.output_text.done",  "response.content_part.done",
      "response.output_item.done",  "response.completed"};
  ASSERT_EQ(types, expected) << r.body;
  std::string deltas;
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(str(events[i].data.at("type")), events[i].type);
    EXPECT_EQ(events[i].data.at("sequence_number").as_int64(), static_cast<int64_t>(i));
    if (events[i].type == "response.output_text.delta") deltas += str(events[i].data.at("delta"));
  }
  EXPECT_EQ(str(events[0].data.at("response").at("status")), "in_progress");
  EXPECT_TRUE(events[2].data.at("item").at("content").as_array().empty());
  const json::value& done = events.back().data.at("response");
  EXPECT_EQ(str(done.at("status")), "completed");
  EXPECT_EQ(str(done.at("output").at(0).at("content").at(0).at("text")), deltas);
  EXPECT_EQ(str(events[8].data.at("text")), deltas);
  EXPECT_EQ(count_words(deltas), 4);
  EXPECT_EQ(done.at("usage").at("output_tokens").as_int64(), 4);
  EXPECT_EQ(str(events[4].data.at("item_id")), str(done.at("output").at(0).at("id")));
  EXPECT_EQ(json::parse(get("/mock/stats").body).at("responses_stream").as_int64(), 1);
}

TEST_F(MockResponsesTest, MaxOutputTokensCutsTheAnswerToIncomplete) {
  const json::value v =
      json::parse(post(R"({"model":"gpt-4o","input":"x","max_output_tokens":3})").body);
  EXPECT_EQ(str(v.at("status")), "incomplete");
  EXPECT_EQ(str(v.at("incomplete_details").at("reason")), "max_output_tokens");
  EXPECT_EQ(v.at("usage").at("output_tokens").as_int64(), 3);
  HttpClient client("127.0.0.1", port_);
  auto r = client.stream("POST", "/v1/responses",
                         R"({"model":"gpt-4o","input":"x","max_output_tokens":2,"stream":true})",
                         {}, [](const std::string&) {});
  const auto events = events_of(r.body);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().type, "response.incomplete");
}

TEST_F(MockResponsesTest, AUserMessageNamingAToolGetsAFunctionCall) {
  const json::value v = json::parse(post(kToolBody).body);
  ASSERT_EQ(v.at("output").as_array().size(), 1u);
  const json::value& call = v.at("output").at(0);
  EXPECT_EQ(str(call.at("type")), "function_call");
  EXPECT_EQ(str(call.at("name")), "get_weather");
  EXPECT_EQ(str(call.at("arguments")), "{}");
  EXPECT_EQ(str(call.at("call_id")).rfind("call_", 0), 0u);
  EXPECT_EQ(str(call.at("status")), "completed");
  EXPECT_EQ(v.at("usage").at("output_tokens").as_int64(), 1);

  // Streamed: the arguments events instead of the text ones.
  std::string body = kToolBody;
  body.insert(body.size() - 1, R"(,"stream":true)");
  HttpClient client("127.0.0.1", port_);
  auto r = client.stream("POST", "/v1/responses", body, {}, [](const std::string&) {});
  const auto events = events_of(r.body);
  std::vector<std::string> types;
  for (const auto& e : events) types.push_back(e.type);
  const std::vector<std::string> expected = {"response.created",
                                             "response.in_progress",
                                             "response.output_item.added",
                                             "response.function_call_arguments.delta",
                                             "response.function_call_arguments.done",
                                             "response.output_item.done",
                                             "response.completed"};
  EXPECT_EQ(types, expected) << r.body;
  ASSERT_EQ(events.size(), expected.size());
  EXPECT_EQ(str(events[2].data.at("item").at("arguments")), "");
  EXPECT_EQ(str(events[4].data.at("name")), "get_weather");
  EXPECT_EQ(str(events[6].data.at("response").at("output").at(0).at("name")), "get_weather");

  // The tool's result as the last item: the answer is text again.
  const json::value text = json::parse(
      post(R"({"model":"gpt-4o-mini","input":[{"role":"user","content":"use get_weather"},)"
           R"({"type":"function_call","call_id":"c1","name":"get_weather","arguments":"{}"},)"
           R"({"type":"function_call_output","call_id":"c1","output":"12C"}],)"
           R"("tools":[{"type":"function","name":"get_weather"}]})")
          .body);
  EXPECT_EQ(str(text.at("output").at(0).at("type")), "message");
  // Without tools, naming one changes nothing.
  const json::value plain =
      json::parse(post(R"({"model":"gpt-4o-mini","input":"use get_weather"})").body);
  EXPECT_EQ(str(plain.at("output").at(0).at("type")), "message");
}

TEST_F(MockResponsesTest, FaultsRecordingAndStatsFollowTheOtherEndpoints) {
  auto failed = post(kBody, {{"x-mock-status", "429"}, {"x-mock-retry-after", "2"}});
  EXPECT_EQ(failed.status, 429);
  EXPECT_EQ(failed.header("retry-after"), "2");
  EXPECT_EQ(str(json::parse(failed.body).at("error").at("type")), "rate_limit_error");
  auto bad = post(R"({"model":"gpt-4o-mini"})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("input"), std::string::npos);
  EXPECT_EQ(post(R"({"input":"x"})").status, 400);

  ASSERT_EQ(post(kBody, {{"X-Trace", "t1"}}).status, 200);
  const json::value last = json::parse(get("/mock/last-request").body);
  EXPECT_EQ(str(last.at("method")), "POST");
  EXPECT_EQ(str(last.at("target")), "/v1/responses");
  EXPECT_EQ(str(last.at("headers").at("x-trace")), "t1");
  EXPECT_EQ(str(last.at("body")), kBody);

  const json::value stats = json::parse(get("/mock/stats").body);
  EXPECT_EQ(stats.at("responses").as_int64(), 1);
  EXPECT_EQ(stats.at("responses_stream").as_int64(), 0);
  EXPECT_EQ(stats.at("errors_injected").as_int64(), 1);
  EXPECT_EQ(stats.at("total").as_int64(), 4);
}

TEST(MockResponsesParse, ReadsMaxOutputTokensAndTheToolToCall) {
  ModelRequest mr;
  EXPECT_EQ(parse_model_request(Endpoint::kResponses, kToolBody, mr), "");
  EXPECT_EQ(mr.tool_call, "get_weather");
  ModelRequest capped;
  EXPECT_EQ(parse_model_request(Endpoint::kResponses,
                                R"({"model":"m","input":"x","max_output_tokens":7,"stream":true})",
                                capped),
            "");
  EXPECT_EQ(capped.max_tokens, 7);
  EXPECT_TRUE(capped.stream);
  EXPECT_TRUE(capped.tool_call.empty());
  ModelRequest missing;
  EXPECT_NE(parse_model_request(Endpoint::kResponses, R"({"model":"m"})", missing), "");
}

}  // namespace
}  // namespace redline::mock
