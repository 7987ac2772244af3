// End-to-end tests of the mock provider over real loopback sockets: the in-process
// MockServer on port 0 for endpoints, overrides, faults, introspection and TLS, and the
// built redline-mock binary for its flags and signal handling. Timing checks compare
// arrival times with generous margins, never tight wall-clock thresholds.
#include "mock/mock_server.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "support/http_client.h"
#include "support/process.h"

namespace redline::mock {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::HttpClient;
using test::HttpResponse;
using test::RawConn;

constexpr const char* kChatBody =
    R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hi"}]})";
constexpr const char* kChatStreamBody =
    R"({"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},)"
    R"("messages":[{"role":"user","content":"Say hi"}]})";
constexpr const char* kMessagesBody = R"({"model":"claude-3-5-haiku-latest","max_tokens":1024,)"
                                      R"("messages":[{"role":"user","content":"Hello"}]})";

struct SseEvent {
  std::string event;
  std::string data;
};

std::vector<SseEvent> parse_sse(const std::string& body) {
  std::vector<SseEvent> events;
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    std::string block = body.substr(pos, end - pos);
    pos = end + 2;
    SseEvent e;
    std::size_t line_start = 0;
    while (line_start < block.size()) {
      std::size_t line_end = block.find('\n', line_start);
      if (line_end == std::string::npos) line_end = block.size();
      std::string line = block.substr(line_start, line_end - line_start);
      if (line.rfind("event: ", 0) == 0) e.event = line.substr(7);
      if (line.rfind("data: ", 0) == 0) e.data = line.substr(6);
      line_start = line_end + 1;
    }
    if (!e.data.empty() || !e.event.empty()) events.push_back(e);
  }
  return events;
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

std::size_t count_of(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1)) {
    ++n;
  }
  return n;
}

std::string base64_decode(const std::string& in) {
  static const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    acc = (acc << 6) | static_cast<uint32_t>(alphabet.find(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

std::string str(const json::value& v) {
  return std::string(v.as_string());
}

class MockServerTest : public ::testing::Test {
 protected:
  void start(MockOptions options = {}) {
    server_ = std::make_unique<MockServer>(std::move(options));
    server_->start();
    port_ = server_->port();
    ASSERT_NE(port_, 0);
  }
  HttpResponse post(const std::string& target, const std::string& body,
                    const test::Headers& headers = {}) {
    return test::http_request(port_, "POST", target, body, headers);
  }
  HttpResponse get(const std::string& target, const test::Headers& headers = {}) {
    return test::http_request(port_, "GET", target, {}, headers);
  }
  json::value stats() { return json::parse(get("/mock/stats").body); }
  int64_t stat(const char* name) { return stats().at(name).as_int64(); }

  std::unique_ptr<MockServer> server_;
  int port_ = 0;
};

TEST_F(MockServerTest, ChatCompletionHasTheOpenAIShape) {
  start();
  auto r = post("/v1/chat/completions", kChatBody, {{"x-request-id", "abc-123"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_EQ(r.header("x-request-id"), "abc-123");
  auto v = json::parse(r.body);
  EXPECT_EQ(str(v.at("object")), "chat.completion");
  EXPECT_EQ(str(v.at("model")), "gpt-4o-mini");
  EXPECT_EQ(str(v.at("id")).rfind("chatcmpl-", 0), 0u);
  const auto& choice = v.at("choices").at(0);
  EXPECT_EQ(str(choice.at("message").at("role")), "assistant");
  EXPECT_EQ(count_words(str(choice.at("message").at("content"))), 12);
  EXPECT_EQ(str(choice.at("finish_reason")), "stop");
  const auto& usage = v.at("usage");
  EXPECT_EQ(usage.at("prompt_tokens").as_int64(), static_cast<int64_t>(std::strlen(kChatBody) / 4));
  EXPECT_EQ(usage.at("completion_tokens").as_int64(), 12);
  EXPECT_EQ(usage.at("total_tokens").as_int64(),
            usage.at("prompt_tokens").as_int64() + usage.at("completion_tokens").as_int64());

  auto generated = post("/v1/chat/completions", kChatBody);
  EXPECT_FALSE(generated.header("x-request-id").empty());
  EXPECT_NE(generated.header("x-request-id"), "abc-123");
}

TEST_F(MockServerTest, SameBodySameAnswerDifferentBodyDifferentAnswer) {
  start();
  auto content = [&](const std::string& body) {
    auto r = post("/v1/chat/completions", body);
    EXPECT_EQ(r.status, 200);
    return str(json::parse(r.body).at("choices").at(0).at("message").at("content"));
  };
  std::string other = R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"Bye"}]})";
  EXPECT_EQ(content(kChatBody), content(kChatBody));
  EXPECT_NE(content(kChatBody), content(other));
  auto words = post("/v1/chat/completions", kChatBody, {{"x-mock-words", "3"}});
  EXPECT_EQ(json::parse(words.body).at("usage").at("completion_tokens").as_int64(), 3);
  auto capped = post("/v1/chat/completions", R"({"model":"gpt-4o","max_tokens":2,"messages":[]})");
  auto capped_json = json::parse(capped.body);
  EXPECT_EQ(capped_json.at("usage").at("completion_tokens").as_int64(), 2);
  EXPECT_EQ(str(capped_json.at("choices").at(0).at("finish_reason")), "length");
}

TEST_F(MockServerTest, ChatStreamSendsEventsInOrderWithUsageAndDone) {
  start();
  HttpClient client("127.0.0.1", port_);
  auto r = client.stream("POST", "/v1/chat/completions", kChatStreamBody, {{"x-mock-words", "5"}},
                         [](const std::string&) {});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
  EXPECT_EQ(r.header("transfer-encoding"), "chunked");
  auto events = parse_sse(r.body);
  ASSERT_EQ(events.size(), 1u + 5u + 1u + 1u + 1u) << r.body;

  auto first = json::parse(events[0].data);
  EXPECT_EQ(str(first.at("object")), "chat.completion.chunk");
  EXPECT_EQ(str(first.at("choices").at(0).at("delta").at("role")), "assistant");
  std::string text;
  for (int i = 1; i <= 5; ++i) {
    auto chunk = json::parse(events[static_cast<std::size_t>(i)].data);
    EXPECT_TRUE(chunk.at("choices").at(0).at("finish_reason").is_null());
    text += str(chunk.at("choices").at(0).at("delta").at("content"));
  }
  EXPECT_EQ(count_words(text), 5);
  EXPECT_NE(text.front(), ' ');
  auto finish = json::parse(events[6].data);
  EXPECT_EQ(str(finish.at("choices").at(0).at("finish_reason")), "stop");
  auto usage = json::parse(events[7].data);
  EXPECT_TRUE(usage.at("choices").as_array().empty());
  EXPECT_EQ(usage.at("usage").at("completion_tokens").as_int64(), 5);
  EXPECT_EQ(events[8].data, "[DONE]");

  // Without include_usage there is no usage chunk; the connection stays usable.
  auto plain = client.stream(
      "POST", "/v1/chat/completions",
      R"({"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"x"}]})",
      {{"x-mock-words", "2"}}, [](const std::string&) {});
  auto plain_events = parse_sse(plain.body);
  ASSERT_EQ(plain_events.size(), 1u + 2u + 1u + 1u);
  EXPECT_EQ(plain_events.back().data, "[DONE]");
  EXPECT_EQ(plain.body.find("usage"), std::string::npos);
  EXPECT_EQ(client.request("GET", "/v1/models").status, 200);
}

TEST_F(MockServerTest, StreamDelaySpacesTheEvents) {
  start();
  // RawConn rather than HttpClient::stream, which hands over data only in 8 KiB pieces.
  std::string body = kChatStreamBody;
  RawConn conn(port_);
  auto sent = Clock::now();
  conn.send(
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-mock-stream-delay-ms: 50\r\n"
      "x-mock-words: 10\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body);
  std::vector<std::pair<Clock::time_point, std::string>> arrivals;
  std::string all;
  while (all.find("[DONE]") == std::string::npos) {
    std::string piece = conn.read_until("\n\n", 5s);
    if (piece.empty()) break;
    arrivals.emplace_back(Clock::now(), piece);
    all += piece;
  }
  ASSERT_NE(all.find("[DONE]"), std::string::npos) << all;
  // 14 events, 13 gaps of 50 ms: 650 ms from the first event to the last.
  EXPECT_EQ(count_of(all, "data: "), 14u);
  EXPECT_GE(arrivals.size(), 5u);
  auto first = arrivals.front().first;
  auto last = arrivals.back().first;
  EXPECT_NE(arrivals.front().second.find("data: "), std::string::npos);
  EXPECT_GE(last - first, 650ms / 3);
  EXPECT_LT(first - sent, (last - sent) / 3);
}

TEST_F(MockServerTest, LatencyDelaysTheAnswer) {
  start();
  auto t0 = Clock::now();
  auto r = post("/v1/chat/completions", kChatBody, {{"x-mock-latency-ms", "200"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_GE(Clock::now() - t0, 200ms);
}

TEST_F(MockServerTest, CompletionsAnswerAndStream) {
  start();
  auto r = post("/v1/completions", R"({"model":"gpt-3.5-turbo-instruct","prompt":"Once"})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto v = json::parse(r.body);
  EXPECT_EQ(str(v.at("object")), "text_completion");
  EXPECT_EQ(count_words(str(v.at("choices").at(0).at("text"))), 12);

  auto s =
      post("/v1/completions", R"({"model":"gpt-3.5-turbo-instruct","prompt":"Once","stream":true})",
           {{"x-mock-words", "4"}});
  auto events = parse_sse(s.body);
  ASSERT_EQ(events.size(), 4u + 1u + 1u);
  EXPECT_EQ(str(json::parse(events[0].data).at("object")), "text_completion");
  EXPECT_EQ(str(json::parse(events[4].data).at("choices").at(0).at("finish_reason")), "stop");
  EXPECT_EQ(events[5].data, "[DONE]");
}

TEST_F(MockServerTest, MessagesHaveTheAnthropicShape) {
  start();
  auto r = post("/v1/messages", kMessagesBody);
  ASSERT_EQ(r.status, 200) << r.body;
  auto v = json::parse(r.body);
  EXPECT_EQ(str(v.at("type")), "message");
  EXPECT_EQ(str(v.at("role")), "assistant");
  EXPECT_EQ(str(v.at("model")), "claude-3-5-haiku-latest");
  EXPECT_EQ(str(v.at("id")).rfind("msg_", 0), 0u);
  EXPECT_EQ(str(v.at("content").at(0).at("type")), "text");
  EXPECT_EQ(count_words(str(v.at("content").at(0).at("text"))), 12);
  EXPECT_EQ(str(v.at("stop_reason")), "end_turn");
  EXPECT_TRUE(v.at("stop_sequence").is_null());
  EXPECT_EQ(v.at("usage").at("input_tokens").as_int64(),
            static_cast<int64_t>(std::strlen(kMessagesBody) / 4));
  EXPECT_EQ(v.at("usage").at("output_tokens").as_int64(), 12);
}

TEST_F(MockServerTest, MessagesStreamFollowsTheAnthropicEventSequence) {
  start();
  std::string body = R"({"model":"claude-3-5-haiku-latest","max_tokens":100,"stream":true,)"
                     R"("messages":[{"role":"user","content":"Hello"}]})";
  auto r = post("/v1/messages", body, {{"x-mock-words", "3"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
  auto events = parse_sse(r.body);
  std::vector<std::string> names;
  for (const auto& e : events) {
    names.push_back(e.event);
    EXPECT_EQ(str(json::parse(e.data).at("type")), e.event);
  }
  std::vector<std::string> expected = {
      "message_start",       "content_block_start", "ping",
      "content_block_delta", "content_block_delta", "content_block_delta",
      "content_block_stop",  "message_delta",       "message_stop"};
  EXPECT_EQ(names, expected);
  auto start_event = json::parse(events[0].data);
  EXPECT_EQ(str(start_event.at("message").at("model")), "claude-3-5-haiku-latest");
  std::string text;
  for (int i = 3; i < 6; ++i) {
    auto delta = json::parse(events[static_cast<std::size_t>(i)].data).at("delta");
    EXPECT_EQ(str(delta.at("type")), "text_delta");
    text += str(delta.at("text"));
  }
  EXPECT_EQ(count_words(text), 3);
  auto message_delta = json::parse(events[7].data);
  EXPECT_EQ(str(message_delta.at("delta").at("stop_reason")), "end_turn");
  EXPECT_EQ(message_delta.at("usage").at("output_tokens").as_int64(), 3);
}

TEST_F(MockServerTest, EmbeddingsHonourDimensionsAndInputs) {
  start();
  auto one = json::parse(
      post("/v1/embeddings", R"({"model":"text-embedding-3-small","input":"hello"})").body);
  const auto& vec = one.at("data").at(0).at("embedding").as_array();
  EXPECT_EQ(vec.size(), 8u);
  double norm = 0;
  for (const auto& x : vec) norm += x.to_number<double>() * x.to_number<double>();
  EXPECT_NEAR(norm, 1.0, 1e-3);

  auto batch = json::parse(post("/v1/embeddings",
                                R"({"model":"text-embedding-3-small","input":["a","hello"],)"
                                R"("dimensions":3})")
                               .body);
  ASSERT_EQ(batch.at("data").as_array().size(), 2u);
  EXPECT_EQ(batch.at("data").at(1).at("index").as_int64(), 1);
  EXPECT_EQ(batch.at("data").at(1).at("embedding").as_array().size(), 3u);
  EXPECT_EQ(str(batch.at("object")), "list");
  EXPECT_GE(batch.at("usage").at("prompt_tokens").as_int64(), 1);

  auto b64 =
      json::parse(post("/v1/embeddings", R"({"model":"text-embedding-3-small","input":"hello",)"
                                         R"("encoding_format":"base64"})")
                      .body);
  std::string raw = base64_decode(str(b64.at("data").at(0).at("embedding")));
  ASSERT_EQ(raw.size(), 8 * sizeof(float));
  float first = 0;
  std::memcpy(&first, raw.data(), sizeof first);
  EXPECT_FLOAT_EQ(first, vec.at(0).to_number<float>());

  EXPECT_EQ(post("/v1/embeddings", R"({"model":"e","input":"x","dimensions":0})").status, 400);
}

TEST_F(MockServerTest, ModelsListTheUsualNames) {
  start();
  auto r = get("/v1/models");
  ASSERT_EQ(r.status, 200);
  auto v = json::parse(r.body);
  std::vector<std::string> ids;
  for (const auto& m : v.at("data").as_array()) ids.push_back(str(m.at("id")));
  for (const char* want :
       {"gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "claude-3-5-haiku-latest"}) {
    EXPECT_NE(std::find(ids.begin(), ids.end(), want), ids.end()) << want;
  }
  EXPECT_EQ(str(json::parse(get("/v1/models/gpt-4o").body).at("id")), "gpt-4o");
  EXPECT_EQ(get("/v1/models/nope").status, 404);
}

TEST_F(MockServerTest, InjectedStatusCarriesRetryAfterInEachProvidersShape) {
  MockOptions o;
  o.fail_status = 503;
  o.retry_after = 2;
  start(o);
  auto openai = post("/v1/chat/completions", kChatBody);
  EXPECT_EQ(openai.status, 503);
  EXPECT_EQ(openai.header("retry-after"), "2");
  EXPECT_EQ(str(json::parse(openai.body).at("error").at("type")), "api_error");
  auto anthropic = post("/v1/messages", kMessagesBody);
  EXPECT_EQ(anthropic.status, 503);
  auto a = json::parse(anthropic.body);
  EXPECT_EQ(str(a.at("type")), "error");
  EXPECT_EQ(str(a.at("error").at("type")), "api_error");
  // A request may still ask for a normal answer, and introspection is never faulted.
  EXPECT_EQ(post("/v1/chat/completions", kChatBody, {{"x-mock-status", "200"}}).status, 200);
  EXPECT_EQ(stat("errors_injected"), 2);
}

TEST_F(MockServerTest, StatusHeaderInjectsOnePerRequest) {
  start();
  auto r = post("/v1/chat/completions", kChatBody,
                {{"x-mock-status", "429"}, {"x-mock-retry-after", "7"}});
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.header("retry-after"), "7");
  EXPECT_EQ(str(json::parse(r.body).at("error").at("type")), "rate_limit_error");
  auto overloaded = post("/v1/messages", kMessagesBody, {{"x-mock-status", "529"}});
  EXPECT_EQ(overloaded.status, 529);
  EXPECT_EQ(str(json::parse(overloaded.body).at("error").at("type")), "overloaded_error");
  EXPECT_EQ(post("/v1/chat/completions", kChatBody).status, 200);
}

TEST_F(MockServerTest, FailFirstFailsOnlyTheFirstRequests) {
  MockOptions o;
  o.fail_first = 2;
  start(o);
  EXPECT_EQ(post("/v1/chat/completions", kChatBody).status, 500);
  EXPECT_EQ(post("/v1/chat/completions", kChatBody).status, 500);
  EXPECT_EQ(post("/v1/chat/completions", kChatBody).status, 200);
  EXPECT_EQ(post("/v1/chat/completions", kChatBody).status, 200);
  auto s = stats();
  EXPECT_EQ(s.at("errors_injected").as_int64(), 2);
  EXPECT_EQ(s.at("chat").as_int64(), 2);
  EXPECT_EQ(s.at("total").as_int64(), 4);
  // /mock/reset gives the budget back.
  EXPECT_EQ(post("/mock/reset", "").status, 200);
  EXPECT_EQ(post("/v1/chat/completions", kChatBody).status, 500);
}

TEST_F(MockServerTest, ResetClosesWithoutAnAnswer) {
  MockOptions o;
  o.reset = true;
  start(o);
  std::string request =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(std::strlen(kChatBody)) + "\r\n\r\n" + kChatBody;
  RawConn conn(port_);
  conn.send(request);
  EXPECT_TRUE(conn.closed_by_peer());
  EXPECT_EQ(conn.read_all(100ms), "");
  EXPECT_EQ(get("/mock/stats").status, 200);
  EXPECT_EQ(stat("errors_injected"), 1);
}

TEST_F(MockServerTest, ResetHeaderClosesOneRequest) {
  start();
  std::string request = "GET /v1/models HTTP/1.1\r\nHost: x\r\nx-mock-reset: 1\r\n\r\n";
  RawConn conn(port_);
  conn.send(request);
  EXPECT_TRUE(conn.closed_by_peer());
  EXPECT_EQ(conn.read_all(100ms), "");
  EXPECT_EQ(get("/v1/models").status, 200);
}

TEST_F(MockServerTest, StallAfterSendsNEventsThenHoldsTheConnection) {
  start();
  std::string body = kChatStreamBody;
  std::string request =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "x-mock-stall-after: 3\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  RawConn conn(port_);
  conn.send(request);
  std::string got = conn.read_until("[DONE]", 700ms);
  EXPECT_EQ(test::raw_status(got), 200);
  EXPECT_EQ(got.find("[DONE]"), std::string::npos);
  EXPECT_EQ(count_of(got, "data: "), 3u);
  EXPECT_FALSE(conn.closed_by_peer(200ms));
}

TEST_F(MockServerTest, StallAfterOptionAppliesToEveryStream) {
  MockOptions o;
  o.stall_after = 0;
  start(o);
  std::string body = R"({"model":"claude-3-5-haiku-latest","stream":true,"messages":[]})";
  RawConn conn(port_);
  conn.send("POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body);
  std::string got = conn.read_until("event:", 500ms);
  EXPECT_EQ(test::raw_status(got), 200);
  EXPECT_EQ(got.find("event:"), std::string::npos);
  // Non-streaming answers are not affected.
  EXPECT_EQ(post("/v1/messages", kMessagesBody).status, 200);
}

TEST_F(MockServerTest, RequireKeyChecksEachProvidersHeader) {
  MockOptions o;
  o.require_key = "sk-mock";
  start(o);
  auto missing = post("/v1/chat/completions", kChatBody);
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(str(json::parse(missing.body).at("error").at("type")), "authentication_error");
  EXPECT_EQ(post("/v1/chat/completions", kChatBody, {{"Authorization", "Bearer sk-wrong"}}).status,
            401);
  EXPECT_EQ(post("/v1/chat/completions", kChatBody, {{"Authorization", "Bearer sk-mock"}}).status,
            200);

  auto anthropic = post("/v1/messages", kMessagesBody, {{"Authorization", "Bearer sk-mock"}});
  EXPECT_EQ(anthropic.status, 401);
  EXPECT_EQ(str(json::parse(anthropic.body).at("error").at("type")), "authentication_error");
  EXPECT_EQ(post("/v1/messages", kMessagesBody, {{"x-api-key", "sk-mock"}}).status, 200);
  EXPECT_EQ(get("/v1/models", {{"Authorization", "Bearer sk-mock"}}).status, 200);
}

TEST_F(MockServerTest, StatsCountEachKindAndResetZeroesThem) {
  start();
  post("/v1/chat/completions", kChatBody);
  post("/v1/chat/completions", kChatStreamBody);
  post("/v1/completions", R"({"model":"m","prompt":"p"})");
  post("/v1/embeddings", R"({"model":"e","input":"x"})");
  get("/v1/models");
  post("/v1/messages", kMessagesBody);
  post("/v1/messages", R"({"model":"c","stream":true,"messages":[]})");
  post("/v1/chat/completions", kChatBody, {{"x-mock-status", "500"}});
  post("/v1/chat/completions", "{broken");
  auto s = stats();
  EXPECT_EQ(s.at("chat").as_int64(), 1);
  EXPECT_EQ(s.at("chat_stream").as_int64(), 1);
  EXPECT_EQ(s.at("completions").as_int64(), 1);
  EXPECT_EQ(s.at("embeddings").as_int64(), 1);
  EXPECT_EQ(s.at("models").as_int64(), 1);
  EXPECT_EQ(s.at("messages").as_int64(), 1);
  EXPECT_EQ(s.at("messages_stream").as_int64(), 1);
  EXPECT_EQ(s.at("errors_injected").as_int64(), 1);
  EXPECT_EQ(s.at("total").as_int64(), 9);

  EXPECT_EQ(post("/mock/reset", "").status, 200);
  json::value zeroed = stats();
  for (const auto& [name, value] : zeroed.as_object()) EXPECT_EQ(value.as_int64(), 0) << name;
}

TEST_F(MockServerTest, LastRequestRecordsMethodTargetHeadersAndBody) {
  start();
  EXPECT_EQ(get("/mock/last-request").status, 404);
  post("/v1/chat/completions?trace=1", kChatBody,
       {{"X-Custom-Thing", "Value1"}, {"Authorization", "Bearer sk-1"}});
  get("/mock/stats");  // introspection is not a model request
  auto r = get("/mock/last-request");
  ASSERT_EQ(r.status, 200);
  auto v = json::parse(r.body);
  EXPECT_EQ(str(v.at("method")), "POST");
  EXPECT_EQ(str(v.at("target")), "/v1/chat/completions?trace=1");
  EXPECT_EQ(str(v.at("headers").at("x-custom-thing")), "Value1");
  EXPECT_EQ(str(v.at("headers").at("authorization")), "Bearer sk-1");
  EXPECT_EQ(str(v.at("body")), kChatBody);
}

TEST_F(MockServerTest, NoRecordKeepsNothing) {
  MockOptions o;
  o.record = false;
  start(o);
  post("/v1/chat/completions", kChatBody);
  EXPECT_EQ(get("/mock/last-request").status, 404);
}

TEST_F(MockServerTest, BadJsonAndUnknownPathsAnswerInTheProvidersShape) {
  start();
  auto openai = post("/v1/chat/completions", "{not json");
  EXPECT_EQ(openai.status, 400);
  auto o = json::parse(openai.body);
  EXPECT_EQ(str(o.at("error").at("type")), "invalid_request_error");
  EXPECT_TRUE(o.at("error").at("code").is_null());
  EXPECT_FALSE(str(o.at("error").at("message")).empty());

  auto anthropic = post("/v1/messages", "{not json");
  EXPECT_EQ(anthropic.status, 400);
  auto a = json::parse(anthropic.body);
  EXPECT_EQ(str(a.at("type")), "error");
  EXPECT_EQ(str(a.at("error").at("type")), "invalid_request_error");

  auto unknown = post("/v1/fine_tuning/jobs", "{}");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(str(json::parse(unknown.body).at("error").at("type")), "not_found_error");
  auto unknown_anthropic = post("/v1/messages/batches", "{}");
  EXPECT_EQ(unknown_anthropic.status, 404);
  EXPECT_EQ(str(json::parse(unknown_anthropic.body).at("type")), "error");
  EXPECT_EQ(get("/elsewhere").status, 404);
}

TEST_F(MockServerTest, ThousandKeepAliveRequestsOnOneConnection) {
  start();
  HttpClient client("127.0.0.1", port_);
  int ok = 0;
  for (int i = 0; i < 1000; ++i) {
    std::string body = R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":")" +
                       std::to_string(i) + "\"}]}";
    if (client.request("POST", "/v1/chat/completions", body).status == 200) ++ok;
  }
  EXPECT_EQ(ok, 1000);
  EXPECT_EQ(stat("chat"), 1000);
}

TEST_F(MockServerTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  std::string batch;
  for (const char* id : {"p1", "p2", "p3"}) {
    batch += std::string("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-request-id: ") + id +
             "\r\nContent-Length: " + std::to_string(std::strlen(kChatBody)) + "\r\n\r\n" +
             kChatBody;
  }
  batch += "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  RawConn conn(port_);
  conn.send(batch);
  std::string got = conn.read_all(5s);
  auto p1 = got.find("x-request-id: p1");
  auto p2 = got.find("x-request-id: p2");
  auto p3 = got.find("x-request-id: p3");
  ASSERT_NE(p1, std::string::npos);
  ASSERT_NE(p2, std::string::npos);
  ASSERT_NE(p3, std::string::npos);
  EXPECT_LT(p1, p2);
  EXPECT_LT(p2, p3);
  EXPECT_EQ(count_of(got, "HTTP/1.1 200 OK"), 4u);
  EXPECT_LT(p3, got.find("connection: close"));
}

TEST_F(MockServerTest, ChunkedRequestBodyIsReassembled) {
  start();
  std::string body = kChatBody;
  std::string half1 = body.substr(0, 20), half2 = body.substr(20);
  char size1[16], size2[16];
  std::snprintf(size1, sizeof size1, "%zx", half1.size());
  std::snprintf(size2, sizeof size2, "%zx", half2.size());
  RawConn conn(port_);
  conn.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
            std::string(size1) + "\r\n" + half1 + "\r\n" + size2 + "\r\n" + half2 +
            "\r\n0\r\n\r\n");
  std::string got = conn.read_until("fp_redline_mock\"}");
  EXPECT_EQ(test::raw_status(got), 200);
  auto json_start = got.find("\r\n\r\n");
  ASSERT_NE(json_start, std::string::npos);
  auto chunked = json::parse(got.substr(json_start + 4));
  auto plain = json::parse(post("/v1/chat/completions", kChatBody).body);
  EXPECT_EQ(chunked.at("choices").at(0).at("message").at("content"),
            plain.at("choices").at(0).at("message").at("content"));
}

TEST_F(MockServerTest, ExpectContinueIsHonoured) {
  start();
  std::string body = kChatBody;
  RawConn conn(port_);
  conn.send(
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n");
  EXPECT_NE(conn.read_until("100 Continue", 2s).find("100 Continue"), std::string::npos);
  conn.send(body);
  EXPECT_NE(conn.read_until("fp_redline_mock").find("HTTP/1.1 200 OK"), std::string::npos);
}

TEST_F(MockServerTest, OversizedBodyGets413) {
  MockOptions o;
  o.body_limit = 1024;
  start(o);
  RawConn conn(port_);
  conn.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" +
            std::string(5000, 'x'));
  EXPECT_EQ(test::raw_status(conn.read_all(2s)), 413);
}

TEST_F(MockServerTest, Http10StreamEndsByClosing) {
  start();
  std::string body = kChatStreamBody;
  RawConn conn(port_);
  conn.send("POST /v1/chat/completions HTTP/1.0\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\n\r\n" + body);
  std::string got = conn.read_all(2s);
  EXPECT_EQ(test::raw_status(got), 200);
  EXPECT_EQ(got.find("transfer-encoding"), std::string::npos);
  EXPECT_NE(got.find("data: [DONE]\n\n"), std::string::npos);
}

TEST_F(MockServerTest, SeveralThreadsShareOnePort) {
  MockOptions o;
  o.threads = 4;
  start(o);
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&] {
      for (int j = 0; j < 10; ++j) {
        if (post("/v1/chat/completions", kChatBody).status == 200) ++ok;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 80);
  EXPECT_EQ(stat("chat"), 80);
}

TEST_F(MockServerTest, StopReturnsWithConnectionsStillOpen) {
  start();
  HttpClient idle("127.0.0.1", port_);
  EXPECT_EQ(idle.request("GET", "/v1/models").status, 200);
  RawConn stalled(port_);
  std::string body = kChatStreamBody;
  stalled.send(
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-mock-stall-after: 1\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body);
  stalled.read_until("data: ", 2s);
  RawConn waiting(port_);
  waiting.send("GET /v1/models HTTP/1.1\r\nHost: x\r\nx-mock-latency-ms: 60000\r\n\r\n");
  std::this_thread::sleep_for(50ms);
  auto t0 = Clock::now();
  server_->stop();
  EXPECT_LT(Clock::now() - t0, 5s);
  EXPECT_TRUE(stalled.closed_by_peer(2s));
  EXPECT_TRUE(waiting.closed_by_peer(2s));
}

// TLS: a throwaway self-signed certificate, and a Beast client that trusts only it.
class MockTlsTest : public MockServerTest {
 protected:
  void SetUp() override {
    cert_ = dir_.path() / "cert.pem";
    key_ = dir_.path() / "key.pem";
    std::string cmd =
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
        "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout '" +
        key_.string() + "' -out '" + cert_.string() + "' >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl could not make a test certificate";
  }

  std::pair<int, std::string> tls_request(const std::string& method, const std::string& target,
                                          const std::string& body) {
    namespace asio = boost::asio;
    namespace ssl = asio::ssl;
    namespace beast = boost::beast;
    namespace http = beast::http;
    asio::io_context ioc;
    ssl::context ctx(ssl::context::tls_client);
    ctx.load_verify_file(cert_.string());
    ctx.set_verify_mode(ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
    SSL_set_tlsext_host_name(stream.native_handle(), "localhost");
    stream.set_verify_callback(ssl::host_name_verification("localhost"));
    stream.next_layer().connect(
        asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port_)));
    stream.handshake(ssl::stream_base::client);
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "localhost");
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    return {static_cast<int>(res.result_int()), res.body()};
  }

  test::TempDir dir_;
  std::filesystem::path cert_, key_;
};

TEST_F(MockTlsTest, ServesHttpsWithTheGivenCertificate) {
  MockOptions o;
  o.tls_cert = cert_.string();
  o.tls_key = key_.string();
  start(o);
  auto [status, body] = tls_request("POST", "/v1/chat/completions", kChatBody);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(str(json::parse(body).at("object")), "chat.completion");
  auto [models_status, models] = tls_request("GET", "/v1/models", "");
  EXPECT_EQ(models_status, 200);
  EXPECT_NE(models.find("claude-3-5-haiku-latest"), std::string::npos);
}

TEST_F(MockTlsTest, MissingCertificateFailsToStart) {
  MockOptions o;
  o.tls_cert = (dir_.path() / "absent.pem").string();
  o.tls_key = key_.string();
  MockServer server(o);
  EXPECT_ANY_THROW(server.start());
}

// The real binary: flags reach the options, and a stop signal exits 0.
class MockBinaryTest : public ::testing::Test {
 protected:
  test::Process spawn(std::vector<std::string> extra) {
    port_ = test::free_port();
    std::vector<std::string> argv = {test::built_binary("redline-mock"), "--listen",
                                     "127.0.0.1:" + std::to_string(port_)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return test::Process(argv, dir_.path() / "mock.log");
  }
  test::TempDir dir_;
  int port_ = 0;
};

TEST_F(MockBinaryTest, SigtermExitsZero) {
  auto p = spawn({"--threads", "2"});
  ASSERT_TRUE(test::wait_for_port(port_)) << p.log();
  EXPECT_EQ(test::http_request(port_, "GET", "/v1/models").status, 200);
  EXPECT_EQ(p.stop(SIGTERM), 0) << p.log();
}

TEST_F(MockBinaryTest, SigintExitsZeroWithAStreamInFlight) {
  auto p = spawn({"--stall-after", "1"});
  ASSERT_TRUE(test::wait_for_port(port_)) << p.log();
  RawConn conn(port_);
  std::string body = kChatStreamBody;
  conn.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body);
  conn.read_until("data: ", 2s);
  EXPECT_EQ(p.stop(SIGINT), 0) << p.log();
}

TEST_F(MockBinaryTest, FlagsShapeTheAnswers) {
  auto p = spawn({"--fail-first", "1", "--fail-status", "429", "--retry-after", "3", "--words", "4",
                  "--require-key", "k1"});
  ASSERT_TRUE(test::wait_for_port(port_)) << p.log();
  test::Headers auth = {{"Authorization", "Bearer k1"}};
  EXPECT_EQ(test::http_request(port_, "POST", "/v1/chat/completions", kChatBody).status, 401);
  auto failed = test::http_request(port_, "POST", "/v1/chat/completions", kChatBody, auth);
  EXPECT_EQ(failed.status, 429);
  EXPECT_EQ(failed.header("retry-after"), "3");
  auto ok = test::http_request(port_, "POST", "/v1/chat/completions", kChatBody, auth);
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(json::parse(ok.body).at("usage").at("completion_tokens").as_int64(), 4);
  EXPECT_EQ(p.stop(SIGTERM), 0) << p.log();
}

TEST_F(MockBinaryTest, BadListenAddressExitsNonZero) {
  test::Process p({test::built_binary("redline-mock"), "--listen", "nowhere"},
                  dir_.path() / "bad.log");
  int status = p.wait(10s);
  EXPECT_NE(status, 0);
  EXPECT_NE(status, -1);
}

}  // namespace
}  // namespace redline::mock
