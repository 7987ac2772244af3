// End-to-end tests of the proxy path: a real Gateway (in-process, ephemeral ports) in
// front of real mock providers over loopback sockets. Covers round trips (JSON and SSE),
// keep-alive and pipelining, every HTTP limit, auth, routing, retries and fallbacks,
// upstream failures (refused, stalled, 4xx, 5xx, broken streams) and TLS upstreams.
#include "app/gateway.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "config/config_loader.h"
#include "mock/mock_server.h"
#include "support/http_client.h"
#include "support/process.h"
#include "support/redis_server.h"

namespace redline {
namespace {

using namespace std::chrono_literals;
using test::Headers;
using test::HttpClient;
using test::RawConn;

const std::string kChat =
    R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello there"}]})";
const std::string kChatStream =
    R"({"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hi"}]})";

config::Config load(const std::string& yaml) {
  auto env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  return config::load_config_string(yaml, "test.yaml", env).config;
}

// Starts a mock provider; `tune` adjusts its options (faults, delays, TLS).
std::unique_ptr<mock::MockServer> start_mock(
    const std::function<void(mock::MockOptions&)>& tune = {}) {
  mock::MockOptions o;
  if (tune) tune(o);
  auto m = std::make_unique<mock::MockServer>(std::move(o));
  m->start();
  return m;
}

std::string mock_url(const mock::MockServer& m) {
  return "http://127.0.0.1:" + std::to_string(m.port());
}

// The common config: one OpenAI-type and one Anthropic-type provider on the mock.
std::string base_yaml(const std::string& openai_url, const std::string& anthropic_url,
                      const std::string& extra = "") {
  return "listen: \"127.0.0.1:0\"\n"
         "threads: 2\n"
         "admin: {listen: \"127.0.0.1:0\"}\n"
         "logging: {access_log: false, level: warn}\n"
         "cache: {enabled: false}\n"  // the proxy path alone; cache_test.cpp covers the cache
         "providers:\n"
         "  - name: openai\n"
         "    type: openai\n"
         "    base_url: \"" +
         openai_url +
         "/v1\"\n"
         "    api_key: \"sk-provider-openai\"\n"
         "    retry: {max_attempts: 2, base_backoff: 10ms, max_backoff: 50ms}\n"
         "  - name: claude\n"
         "    type: anthropic\n"
         "    base_url: \"" +
         anthropic_url +
         "\"\n"
         "    api_key: \"sk-provider-anthropic\"\n"
         "models:\n"
         "  claude-3-5-haiku-latest: claude\n" +
         extra;
}

struct Gw {
  explicit Gw(const std::string& yaml) : gw(load(yaml)) { gw.start(); }
  int port() const { return gw.port(); }
  app::Gateway gw;
};

boost::json::value json(const std::string& s) {
  return boost::json::parse(s);
}

std::string error_code(const test::HttpResponse& r) {
  auto v = json(r.body);
  const auto& c = v.at("error").at("code");
  return c.is_string() ? std::string(c.as_string()) : std::string();
}

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mock_ = start_mock();
    gw_ = std::make_unique<Gw>(base_yaml(mock_url(*mock_), mock_url(*mock_)));
  }
  int port() const { return gw_->port(); }
  boost::json::value mock_json(const std::string& path) {
    return json(test::http_request(mock_->port(), "GET", path).body);
  }
  std::unique_ptr<mock::MockServer> mock_;
  std::unique_ptr<Gw> gw_;
};

TEST_F(GatewayTest, ChatCompletionRoundTrip) {
  auto r = test::http_request(port(), "POST", "/v1/chat/completions", kChat);
  ASSERT_EQ(r.status, 200) << r.body;
  auto v = json(r.body);
  EXPECT_EQ(v.at("object").as_string(), "chat.completion");
  EXPECT_FALSE(v.at("choices").as_array().empty());
  EXPECT_FALSE(r.header("x-request-id").empty());
  EXPECT_EQ(r.header("content-type").substr(0, 16), "application/json");
}

// A stream's head as it goes on the wire: the provider's fields minus the dropped ones, then
// `Transfer-Encoding: chunked` (written by Exchange::begin_stream, as Beast's chunked(true)
// would add it), then the gateway's own; no Content-Length; chunked framing follows.
TEST_F(GatewayTest, AStreamsHeadIsFramedOnceAsChunked) {
  test::RawConn c(port());
  c.send(
      "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
      "Connection: close\r\nContent-Length: " +
      std::to_string(kChatStream.size()) + "\r\n\r\n" + kChatStream);
  const std::string raw = c.read_all();
  const auto end = raw.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos) << raw;
  std::vector<std::string> names;
  std::string head = raw.substr(0, end + 2);
  ASSERT_EQ(head.substr(0, 17), "HTTP/1.1 200 OK\r\n") << head;
  for (std::size_t at = head.find("\r\n") + 2; at < head.size();) {
    const auto eol = head.find("\r\n", at);
    const auto line = head.substr(at, eol - at);
    names.push_back(line.substr(0, line.find(':')));
    if (names.back() == "Transfer-Encoding") {
      EXPECT_EQ(line, "Transfer-Encoding: chunked");
    }
    at = eol + 2;
  }
  // The mock's content-type and cache-control relayed in its order, its x-request-id and
  // transfer-encoding dropped; then the framing, then ours (connection, request id).
  const std::vector<std::string> expected{"content-type", "cache-control", "Connection",
                                          "Transfer-Encoding", "x-request-id"};
  EXPECT_EQ(names, expected) << head;
  const std::string body = raw.substr(end + 4);
  EXPECT_EQ(body.find("data: "), body.find("\r\n") + 2) << body.substr(0, 80);  // size line
  EXPECT_NE(body.find("data: [DONE]"), std::string::npos);
  EXPECT_EQ(body.substr(body.size() - 5), "0\r\n\r\n");
}

// A whole answer's head on the wire: the provider's fields minus the dropped ones, then
// `Content-Length` (written by Exchange::respond, where prepare_payload() would set it), then
// the gateway's own; the body is exactly that long.
TEST_F(GatewayTest, AnAnswersHeadCarriesItsLengthOnce) {
  test::RawConn c(port());
  c.send(
      "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
      "Connection: close\r\nContent-Length: " +
      std::to_string(kChat.size()) + "\r\n\r\n" + kChat);
  const std::string raw = c.read_all();
  const auto end = raw.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos) << raw;
  const std::string head = raw.substr(0, end + 2);
  ASSERT_EQ(head.substr(0, 17), "HTTP/1.1 200 OK\r\n") << head;
  std::vector<std::string> names;
  std::string length;
  for (std::size_t at = head.find("\r\n") + 2; at < head.size();) {
    const auto eol = head.find("\r\n", at);
    const auto line = head.substr(at, eol - at);
    names.push_back(line.substr(0, line.find(':')));
    if (names.back() == "Content-Length") length = line.substr(16);
    at = eol + 2;
  }
  const std::vector<std::string> expected{"content-type", "Connection", "Content-Length",
                                          "x-request-id"};
  EXPECT_EQ(names, expected) << head;
  EXPECT_EQ(length, std::to_string(raw.size() - end - 4));
  EXPECT_EQ(json(raw.substr(end + 4)).at("object").as_string(), "chat.completion");
}

TEST_F(GatewayTest, RequestIdIsPropagated) {
  auto r = test::http_request(port(), "POST", "/v1/chat/completions", kChat,
                              {{"x-request-id", "my-trace-123"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-request-id"), "my-trace-123");
  auto last = mock_json("/mock/last-request");
  EXPECT_EQ(last.at("headers").at("x-request-id").as_string(), "my-trace-123");
}

TEST_F(GatewayTest, ProviderKeyInjectedClientHeadersFiltered) {
  auto r = test::http_request(port(), "POST", "/v1/chat/completions", kChat,
                              {{"authorization", "Bearer client-secret"},
                               {"x-api-key", "client-secret-2"},
                               {"x-redline-cache-ttl", "5"},
                               {"openai-beta", "assistants=v2"}});
  ASSERT_EQ(r.status, 200);
  auto h = mock_json("/mock/last-request").at("headers").as_object();
  EXPECT_EQ(h.at("authorization").as_string(), "Bearer sk-provider-openai");
  EXPECT_FALSE(h.contains("x-api-key"));
  EXPECT_FALSE(h.contains("x-redline-cache-ttl"));
  EXPECT_EQ(h.at("openai-beta").as_string(), "assistants=v2");
  for (const auto& [k, v] : h) {
    EXPECT_EQ(std::string(v.as_string()).find("client-secret"), std::string::npos) << k;
  }
}

TEST_F(GatewayTest, StreamingEventsArriveBeforeStreamEnds) {
  auto slow = start_mock([&](mock::MockOptions& o) {
    o.stream_delay_ms = 60;
    o.words = 8;
  });
  Gw gw(base_yaml(mock_url(*slow), mock_url(*slow)));
  HttpClient c("127.0.0.1", gw.port());
  std::vector<std::chrono::steady_clock::time_point> arrivals;
  std::string all;
  auto r = c.stream("POST", "/v1/chat/completions", kChatStream, {}, [&](const std::string& d) {
    arrivals.push_back(std::chrono::steady_clock::now());
    all += d;
  });
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type").substr(0, 17), "text/event-stream");
  ASSERT_GE(arrivals.size(), 3u) << "SSE was buffered instead of streamed";
  // 8 words at 60 ms: the first event must precede the last by most of the stream.
  EXPECT_GT(arrivals.back() - arrivals.front(), 250ms);
  EXPECT_NE(all.find("data: [DONE]"), std::string::npos);
  EXPECT_NE(all.find("chat.completion.chunk"), std::string::npos);
}

TEST_F(GatewayTest, ThousandKeepAliveRequestsOnOneConnection) {
  HttpClient c("127.0.0.1", port());
  for (int i = 0; i < 1000; ++i) {
    auto r = c.request("POST", "/v1/chat/completions", kChat);
    ASSERT_EQ(r.status, 200) << "request " << i;
  }
  // One client connection; the gateway reused its upstream connections too.
  auto stats = mock_json("/mock/stats");
  EXPECT_EQ(stats.at("chat").as_int64(), 1000);
}

TEST_F(GatewayTest, PipelinedRequestsAnsweredInOrder) {
  RawConn c(port());
  std::string req1 =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "x-request-id: first\r\nContent-Length: " +
      std::to_string(kChat.size()) + "\r\n\r\n" + kChat;
  std::string req2 = "GET /nope HTTP/1.1\r\nHost: x\r\nx-request-id: second\r\n\r\n";
  std::string req3 =
      "GET /v1/models HTTP/1.1\r\nHost: x\r\nx-request-id: third\r\nConnection: close\r\n\r\n";
  c.send(req1 + req2 + req3);
  auto raw = c.read_all(5s);
  auto p1 = raw.find("x-request-id: first");
  auto p2 = raw.find("x-request-id: second");
  auto p3 = raw.find("x-request-id: third");
  ASSERT_NE(p1, std::string::npos) << raw;
  ASSERT_NE(p2, std::string::npos) << raw;
  ASSERT_NE(p3, std::string::npos) << raw;
  EXPECT_LT(p1, p2);
  EXPECT_LT(p2, p3);
  EXPECT_NE(raw.find("HTTP/1.1 404"), std::string::npos);
}

// More pipelined requests than the server answers before it lets the thread's other
// connections run (it yields every 32 requests served from its buffer): all answered, in order.
TEST_F(GatewayTest, HundredPipelinedRequestsAllAnsweredInOrder) {
  RawConn c(port());
  std::string all;
  for (int i = 0; i < 100; ++i) {
    all += "GET /nope HTTP/1.1\r\nHost: x\r\nx-request-id: p" + std::to_string(i) + "\r\n";
    all += i == 99 ? "Connection: close\r\n\r\n" : "\r\n";
  }
  c.send(all);
  const auto raw = c.read_all(10s);
  std::size_t at = 0;
  for (int i = 0; i < 100; ++i) {
    const auto found = raw.find("x-request-id: p" + std::to_string(i) + "\r\n", at);
    ASSERT_NE(found, std::string::npos) << "answer " << i << " missing or out of order";
    at = found;
  }
}

// Bodies larger than the socket buffers, both ways. The gateway's write of a request to the
// provider takes what the socket takes at once (common::write_now) and the rest waits for
// room; so does asio's write of a whole answer: a 12 MiB request reaches the provider whole,
// and a large answer reaches, whole, a client that only starts reading after 300 ms through
// a 4 KiB receive buffer.
TEST(LargeBodiesTest, LargerThanTheSocketBuffersBothWays) {
  auto mock = start_mock();
  Gw gw(base_yaml(mock_url(*mock), mock_url(*mock), "limits: {max_body_bytes: 32MiB}\n"));
  const std::string big =
      R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":")" +
      std::string(12 << 20, 'a') + R"("}],"max_tokens":4})";
  auto r = test::http_request(gw.port(), "POST", "/v1/chat/completions", big);
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 300);
  auto last = json(test::http_request(mock->port(), "GET", "/mock/last-request").body);
  EXPECT_EQ(last.at("body").as_string().size(), big.size());

  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  int small = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(gw.port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string chat = R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"long"}]})";
  const std::string req = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                          "Content-Type: application/json\r\nx-mock-words: 200000\r\n"
                          "Connection: close\r\nContent-Length: " +
                          std::to_string(chat.size()) + "\r\n\r\n" + chat;
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  std::this_thread::sleep_for(300ms);
  std::string raw;
  char buf[65536];
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) raw.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  ASSERT_EQ(test::raw_status(raw), 200) << raw.substr(0, 300);
  const auto head_end = raw.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos);
  const auto cl = raw.find("Content-Length: ");
  ASSERT_LT(cl, head_end);
  const std::size_t length = std::stoul(raw.substr(cl + 16));
  EXPECT_GT(length, std::size_t{1} << 20);  // far beyond the client's 4 KiB buffer
  ASSERT_EQ(raw.size() - head_end - 4, length);
  auto answer = json(raw.substr(head_end + 4));
  EXPECT_EQ(answer.at("usage").at("completion_tokens").as_int64(), 200000);
}

TEST_F(GatewayTest, ChunkedRequestBodyAndExpectContinue) {
  RawConn c(port());
  c.send(
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n");
  auto cont = c.read_until("\r\n\r\n", 5s);
  EXPECT_EQ(test::raw_status(cont), 100) << cont;
  auto half = kChat.size() / 2;
  std::ostringstream body;
  body << std::hex << half << "\r\n"
       << kChat.substr(0, half) << "\r\n"
       << (kChat.size() - half) << "\r\n"
       << kChat.substr(half) << "\r\n0\r\n\r\n";
  c.send(body.str());
  auto resp = c.read_until("\"choices\"", 5s);
  EXPECT_EQ(test::raw_status(resp), 200) << resp;
}

TEST_F(GatewayTest, MalformedJsonIs400) {
  auto r = test::http_request(port(), "POST", "/v1/chat/completions", R"({"model": "x",)");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(error_code(r), "invalid_json");
  EXPECT_EQ(json(r.body).at("error").at("type").as_string(), "invalid_request_error");
  auto m = test::http_request(port(), "POST", "/v1/chat/completions", R"({"messages":[]})");
  EXPECT_EQ(m.status, 400);
  EXPECT_EQ(error_code(m), "missing_model");
  EXPECT_EQ(mock_json("/mock/stats").at("total").as_int64(), 0) << "bad input reached provider";
}

TEST_F(GatewayTest, PathOutsideV1Is404) {
  auto r = test::http_request(port(), "GET", "/admin/keys");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(error_code(r), "not_found");
  auto root = test::http_request(port(), "GET", "/");
  EXPECT_EQ(root.status, 404);
}

TEST_F(GatewayTest, WrongMethodIs405) {
  auto r = test::http_request(port(), "GET", "/v1/chat/completions");
  EXPECT_EQ(r.status, 405);
}

TEST_F(GatewayTest, ModelsListPassesThrough) {
  auto r = test::http_request(port(), "GET", "/v1/models");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json(r.body).at("object").as_string(), "list");
}

TEST_F(GatewayTest, OtherV1PathsPassThrough) {
  auto r = test::http_request(port(), "GET", "/v1/files");
  // The mock answers unknown /v1 paths with its own 404: it reached the provider.
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(mock_json("/mock/last-request").at("target").as_string(), "/v1/files");
}

TEST_F(GatewayTest, EmbeddingsAndCompletions) {
  auto e = test::http_request(port(), "POST", "/v1/embeddings",
                              R"({"model":"text-embedding-3-small","input":"hello"})");
  ASSERT_EQ(e.status, 200) << e.body;
  EXPECT_EQ(json(e.body).at("object").as_string(), "list");
  auto c = test::http_request(port(), "POST", "/v1/completions",
                              R"({"model":"gpt-3.5-turbo-instruct","prompt":"Say hi"})");
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(json(c.body).at("object").as_string(), "text_completion");
}

TEST_F(GatewayTest, AnthropicMessagesRoundTrip) {
  const std::string body =
      R"({"model":"claude-3-5-haiku-latest","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]})";
  auto r = test::http_request(port(), "POST", "/v1/messages", body,
                              {{"x-api-key", "client-key"}, {"anthropic-version", "2023-06-01"}});
  ASSERT_EQ(r.status, 200) << r.body;
  auto v = json(r.body);
  EXPECT_EQ(v.at("type").as_string(), "message");
  auto h = mock_json("/mock/last-request").at("headers").as_object();
  EXPECT_EQ(h.at("x-api-key").as_string(), "sk-provider-anthropic");
  EXPECT_EQ(h.at("anthropic-version").as_string(), "2023-06-01");
  EXPECT_FALSE(h.contains("authorization"));
}

TEST_F(GatewayTest, AnthropicMessagesStreamAndDefaultVersion) {
  const std::string body =
      R"({"model":"claude-3-5-haiku-latest","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hi"}]})";
  HttpClient c("127.0.0.1", port());
  auto r = c.stream("POST", "/v1/messages", body, {}, [](const std::string&) {});
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("event: message_start"), std::string::npos);
  EXPECT_NE(r.body.find("event: message_stop"), std::string::npos);
  auto h = mock_json("/mock/last-request").at("headers").as_object();
  EXPECT_EQ(h.at("anthropic-version").as_string(), "2023-06-01");  // the configured default
}

TEST_F(GatewayTest, OpenAIRequestForAnthropicModelIsTranslated) {
  auto r = test::http_request(
      port(), "POST", "/v1/chat/completions",
      R"({"model":"claude-3-5-haiku-latest","messages":[{"role":"user","content":"Hi"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json(r.body).at("object").as_string(), "chat.completion");
  EXPECT_EQ(json(r.body).at("model").as_string(), "claude-3-5-haiku-latest");
  auto sent = mock_json("/mock/last-request");
  EXPECT_EQ(sent.at("target").as_string(), "/v1/messages");
  EXPECT_EQ(json(std::string(sent.at("body").as_string())).at("max_tokens").to_number<int>(), 4096);
}

TEST_F(GatewayTest, EmbeddingsForAnthropicModelIsClear400) {
  auto r = test::http_request(port(), "POST", "/v1/embeddings",
                              R"({"model":"claude-3-5-haiku-latest","input":"Hi"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(error_code(r), "api_mismatch");
}

TEST_F(GatewayTest, ProviderClientErrorPassesThrough) {
  auto r =
      test::http_request(port(), "POST", "/v1/chat/completions", kChat, {{"x-mock-status", "400"}});
  EXPECT_EQ(r.status, 400);
  // The provider's own body, not a gateway error.
  EXPECT_NE(r.body.find("invalid_request_error"), std::string::npos) << r.body;
  EXPECT_EQ(mock_json("/mock/stats").at("total").as_int64(), 1) << "a 400 must not be retried";
}

TEST_F(GatewayTest, AdminHealthAndReadiness) {
  auto h = test::http_request(gw_->gw.admin_port(), "GET", "/healthz");
  EXPECT_EQ(h.status, 200);
  // /readyz also waits for the state Redis, which this test does not start (the default
  // redis://127.0.0.1:6379 may or may not answer); tests/admin/readiness_test.cpp covers it.
  auto r = test::http_request(gw_->gw.admin_port(), "GET", "/readyz");
  EXPECT_TRUE(r.status == 200 || r.status == 503) << r.status;
  EXPECT_NE(r.body.find("\"redis\":{\"state\":"), std::string::npos) << r.body;
}

// Polls until the gateway has no request in flight, up to `limit`.
bool idle_within(const app::Gateway& gw, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (gw.proxy_stats().requests_in_flight.load() == 0) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

TEST(ClientDisconnectTest, CancelsWaitingUpstreamRequest) {
  auto slow = start_mock([&](mock::MockOptions& o) { o.latency_ms = 5000; });
  Gw gw(base_yaml(mock_url(*slow), mock_url(*slow)));
  {
    RawConn c(gw.port());
    c.send(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
        std::to_string(kChat.size()) + "\r\n\r\n" + kChat);
    std::this_thread::sleep_for(300ms);
    ASSERT_EQ(gw.gw.proxy_stats().requests_in_flight.load(), 1);
  }  // the client hangs up while the provider is still thinking
  EXPECT_TRUE(idle_within(gw.gw, 2000ms)) << "upstream request outlived its client";
}

TEST(ClientDisconnectTest, CancelsStreamingUpstream) {
  auto slow = start_mock([&](mock::MockOptions& o) {
    o.stream_delay_ms = 250;
    o.words = 20;
  });
  Gw gw(base_yaml(mock_url(*slow), mock_url(*slow)));
  {
    RawConn c(gw.port());
    c.send(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
        std::to_string(kChatStream.size()) + "\r\n\r\n" + kChatStream);
    auto first = c.read_until("data:", 3s);
    ASSERT_NE(first.find("data:"), std::string::npos) << first;
  }  // gone after the first event; the stream had about 5 s to go
  EXPECT_TRUE(idle_within(gw.gw, 2000ms)) << "stream kept running without its client";
}

// ---- Client authentication -------------------------------------------------------------

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mock_ = start_mock();
    const std::string keys =
        "keys:\n"
        "  - key: \"sk-tenant-a\"\n"
        "    tenant: a\n"
        "  - key_sha256: \"" +
        config::sha256_hex("sk-tenant-b") +
        "\"\n"
        "    tenant: b\n"
        "    models: [gpt-4o]\n"
        // No Redis here: only the config's keys, so an unknown key is a plain 401 (with the
        // key store on and Redis unreachable it would be 503: tests/proxy/state_test.cpp).
        "key_store: {enabled: false}\n";
    gw_ = std::make_unique<Gw>(base_yaml(mock_url(*mock_), mock_url(*mock_), keys));
  }
  std::unique_ptr<mock::MockServer> mock_;
  std::unique_ptr<Gw> gw_;
};

TEST_F(AuthTest, UnknownKeyIs401) {
  auto r = test::http_request(gw_->port(), "POST", "/v1/chat/completions", kChat,
                              {{"authorization", "Bearer sk-wrong"}});
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(error_code(r), "invalid_api_key");
  EXPECT_EQ(json(r.body).at("error").at("type").as_string(), "authentication_error");
}

TEST_F(AuthTest, MissingKeyIs401) {
  auto r = test::http_request(gw_->port(), "POST", "/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(error_code(r), "missing_api_key");
}

TEST_F(AuthTest, BearerPlainKeyAndXApiKeyHashedKey) {
  auto a = test::http_request(gw_->port(), "POST", "/v1/chat/completions", kChat,
                              {{"authorization", "Bearer sk-tenant-a"}});
  EXPECT_EQ(a.status, 200) << a.body;
  const std::string gpt4o = R"({"model":"gpt-4o","messages":[{"role":"user","content":"Hello"}]})";
  auto b = test::http_request(gw_->port(), "POST", "/v1/chat/completions", gpt4o,
                              {{"x-api-key", "sk-tenant-b"}});
  EXPECT_EQ(b.status, 200) << b.body;
}

TEST_F(AuthTest, ModelNotAllowedForKeyIs403) {
  auto r = test::http_request(gw_->port(), "POST", "/v1/chat/completions", kChat,
                              {{"authorization", "Bearer sk-tenant-b"}});
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(error_code(r), "model_not_allowed");
}

// ---- HTTP limits ----------------------------------------------------------------------

class LimitsTest : public ::testing::Test {
 protected:
  void start(const std::string& limits) {
    mock_ = start_mock();
    gw_ = std::make_unique<Gw>(base_yaml(mock_url(*mock_), mock_url(*mock_), "limits:\n" + limits));
  }
  int64_t mock_json_total() {
    return json(test::http_request(mock_->port(), "GET", "/mock/stats").body)
        .at("total")
        .as_int64();
  }
  std::unique_ptr<mock::MockServer> mock_;
  std::unique_ptr<Gw> gw_;
};

TEST_F(LimitsTest, HeaderBytesIs431) {
  start("  max_header_bytes: 2048\n");
  auto r = test::http_request(gw_->port(), "POST", "/v1/chat/completions", kChat,
                              {{"x-big", std::string(4096, 'a')}});
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(error_code(r), "header_too_large");
}

TEST_F(LimitsTest, HeaderCountIs431) {
  start("  max_header_count: 20\n");
  Headers h;
  for (int i = 0; i < 30; ++i) h.emplace_back("x-h" + std::to_string(i), "v");
  auto r = test::http_request(gw_->port(), "POST", "/v1/chat/completions", kChat, h);
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(error_code(r), "too_many_headers");
}

TEST_F(LimitsTest, BodySizeIs413WithContentLengthAndChunked) {
  start("  max_body_bytes: 1024\n");
  std::string big = R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":")" +
                    std::string(4000, 'x') + "\"}]}";
  auto r = test::http_request(gw_->port(), "POST", "/v1/chat/completions", big);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(error_code(r), "body_too_large");

  RawConn c(gw_->port());
  c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  std::ostringstream chunk;
  chunk << std::hex << big.size() << "\r\n" << big << "\r\n0\r\n\r\n";
  c.send(chunk.str());
  auto raw = c.read_all(3s);
  EXPECT_EQ(test::raw_status(raw), 413) << raw;
  EXPECT_EQ(mock_json_total(), 0);
}

TEST_F(LimitsTest, SlowHeadersAre408) {
  start("  header_timeout: 300ms\n");
  RawConn c(gw_->port());
  c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n");  // never finishes
  auto raw = c.read_all(3s);
  EXPECT_EQ(test::raw_status(raw), 408) << raw;
  EXPECT_NE(raw.find("request_timeout"), std::string::npos);
}

TEST_F(LimitsTest, SlowBodyIs408) {
  start("  body_timeout: 300ms\n");
  RawConn c(gw_->port());
  c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"mo");
  auto raw = c.read_all(3s);
  EXPECT_EQ(test::raw_status(raw), 408) << raw;
}

TEST_F(LimitsTest, IdleKeepAliveConnectionIsClosed) {
  start("  idle_timeout: 200ms\n");
  RawConn c(gw_->port());
  EXPECT_TRUE(c.closed_by_peer(3s));
}

TEST_F(LimitsTest, MaxConnectionsAnswers503) {
  start("  max_connections: 2\n");
  RawConn a(gw_->port()), b(gw_->port());
  std::this_thread::sleep_for(100ms);
  RawConn c(gw_->port());
  auto raw = c.read_all(3s);
  EXPECT_EQ(test::raw_status(raw), 503) << raw;
  EXPECT_NE(raw.find("connection_limit"), std::string::npos);
}

// ---- Upstream failures, retries and fallbacks --------------------------------------------

TEST(UpstreamFailureTest, RefusedProviderIs502) {
  const int closed_port = test::free_port();  // nothing listens there
  Gw gw(base_yaml("http://127.0.0.1:" + std::to_string(closed_port),
                  "http://127.0.0.1:" + std::to_string(closed_port)));
  auto r = test::http_request(gw.port(), "POST", "/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(error_code(r), "upstream_unavailable");
}

TEST(UpstreamFailureTest, StalledProviderIs504) {
  auto mock = start_mock([&](mock::MockOptions& o) { o.latency_ms = 3000; });
  auto yaml = base_yaml(mock_url(*mock), mock_url(*mock));
  // Tighten the OpenAI provider's first-byte timeout.
  yaml.replace(yaml.find("    retry:"), 0, "    timeouts: {first_byte: 300ms}\n");
  Gw gw(yaml);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = test::http_request(gw.port(), "POST", "/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 504);
  EXPECT_EQ(error_code(r), "upstream_timeout");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2500ms) << "timeout not enforced";
}

// The circuit breaker: after three failed attempts the failing provider is skipped (straight to
// the fallback, or 503 without a fallback) until open_for passes; then one probe goes through,
// and a recovered provider closes the circuit.
TEST(UpstreamFailureTest, CircuitBreakerOpensSkipsAndProbes) {
  auto failing = start_mock([&](mock::MockOptions& o) {
    o.fail_status = 500;
    o.fail_first = 3;  // three failures, then healthy
  });
  std::string yaml =
      "listen: \"127.0.0.1:0\"\nthreads: 2\nadmin: {listen: \"127.0.0.1:0\"}\n"
      "logging: {access_log: false, level: warn}\n"
      "cache: {enabled: false}\nkey_store: {enabled: false}\nsessions: {enabled: false}\n"
      "providers:\n"
      "  - {name: primary, type: openai, base_url: \"" +
      mock_url(*failing) +
      "/v1\", api_key: k1, retry: {max_attempts: 1},"
      "     circuit: {failures: 3, open_for: 400ms}}\n";
  Gw gw(yaml);
  auto mock_requests = [&] {
    return json(test::http_request(failing->port(), "GET", "/mock/stats").body)
        .at("total")
        .as_int64();
  };
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(test::http_request(gw.port(), "POST", "/v1/chat/completions", kChat).status, 500);
  }
  const auto before = mock_requests();
  auto skipped = test::http_request(gw.port(), "POST", "/v1/chat/completions", kChat);
  EXPECT_EQ(skipped.status, 503) << skipped.body;
  EXPECT_EQ(error_code(skipped), "provider_circuit_open");
  EXPECT_FALSE(skipped.header("retry-after").empty());
  EXPECT_EQ(mock_requests(), before) << "an open circuit must not reach the provider";
  auto metrics = test::http_request(gw.gw.admin_port(), "GET", "/metrics").body;
  EXPECT_NE(metrics.find("redline_upstream_circuit_state{provider=\"primary\"} 1"),
            std::string::npos)
      << metrics;
  std::this_thread::sleep_for(450ms);
  // The probe reaches the (now healthy) provider and closes the circuit.
  EXPECT_EQ(test::http_request(gw.port(), "POST", "/v1/chat/completions", kChat).status, 200);
  EXPECT_EQ(mock_requests(), before + 1);
  EXPECT_EQ(test::http_request(gw.port(), "POST", "/v1/chat/completions", kChat).status, 200);
  metrics = test::http_request(gw.gw.admin_port(), "GET", "/metrics").body;
  EXPECT_NE(metrics.find("redline_upstream_circuit_state{provider=\"primary\"} 0"),
            std::string::npos);
  EXPECT_NE(metrics.find("redline_upstream_circuit_opens_total{provider=\"primary\"} 1"),
            std::string::npos);
}

TEST(UpstreamFailureTest, ServerErrorRetriedThenFallback) {
  auto failing = start_mock([&](mock::MockOptions& o) { o.fail_status = 500; });
  auto healthy = start_mock();
  std::string yaml =
      "listen: \"127.0.0.1:0\"\nthreads: 1\nadmin: {listen: \"127.0.0.1:0\"}\n"
      "logging: {access_log: false, level: warn}\n"
      "providers:\n"
      "  - {name: primary, type: openai, base_url: \"" +
      mock_url(*failing) +
      "/v1\", api_key: k1,"
      "     retry: {max_attempts: 3, base_backoff: 5ms, max_backoff: 20ms}}\n"
      "  - {name: backup, type: openai, base_url: \"" +
      mock_url(*healthy) +
      "/v1\", api_key: k2}\n"
      "models:\n"
      "  gpt-4o-mini: {provider: primary, fallbacks: [backup-model]}\n"
      "  backup-model: {provider: backup, model: gpt-4o}\n";
  Gw gw(yaml);
  auto r = test::http_request(gw.port(), "POST", "/v1/chat/completions", kChat);
  ASSERT_EQ(r.status, 200) << r.body;
  auto failed = json(test::http_request(failing->port(), "GET", "/mock/stats").body);
  EXPECT_EQ(failed.at("errors_injected").as_int64(), 3) << "three attempts at the primary";
  auto last = json(test::http_request(healthy->port(), "GET", "/mock/last-request").body);
  // The fallback received its own upstream model name.
  EXPECT_NE(std::string(last.at("body").as_string()).find("\"gpt-4o\""), std::string::npos);
  // Retries and the fallback show in the metrics (labelled with the provider that answered).
  auto metrics = test::http_request(gw.gw.admin_port(), "GET", "/metrics").body;
  EXPECT_NE(metrics.find("redline_upstream_retries_total{provider=\"backup\"} 3"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("redline_upstream_fallbacks_total{provider=\"backup\"} 1"),
            std::string::npos);
}

TEST(UpstreamFailureTest, RetrySucceedsAfterTransient503) {
  auto mock = start_mock([&](mock::MockOptions& o) {
    o.fail_status = 503;
    o.fail_first = 1;
    o.retry_after = 0;
  });
  Gw gw(base_yaml(mock_url(*mock), mock_url(*mock)));
  auto r = test::http_request(gw.port(), "POST", "/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST(UpstreamFailureTest, LongRetryAfterIsNotWaitedFor) {
  auto mock = start_mock([&](mock::MockOptions& o) {
    o.fail_status = 429;
    o.retry_after = 120;
  });
  Gw gw(base_yaml(mock_url(*mock), mock_url(*mock)));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = test::http_request(gw.port(), "POST", "/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 429);  // the provider's own answer, relayed
  EXPECT_EQ(r.header("retry-after"), "120");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST(UpstreamFailureTest, StreamStallBecomesSseErrorEvent) {
  auto mock = start_mock([&](mock::MockOptions& o) { o.stall_after = 2; });
  auto yaml = base_yaml(mock_url(*mock), mock_url(*mock));
  yaml.replace(yaml.find("    retry:"), 0, "    timeouts: {idle: 300ms}\n");
  Gw gw(yaml);
  HttpClient c("127.0.0.1", gw.port());
  auto r = c.stream("POST", "/v1/chat/completions", kChatStream, {}, [](const std::string&) {});
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("upstream_stream_error"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("[DONE]"), std::string::npos);
}

TEST(UpstreamFailureTest, ResetProviderIs502) {
  auto mock = start_mock([&](mock::MockOptions& o) { o.reset = true; });
  Gw gw(base_yaml(mock_url(*mock), mock_url(*mock)));
  auto r = test::http_request(gw.port(), "POST", "/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 502) << r.body;
}

// ---- TLS upstream ------------------------------------------------------------------------

struct TestPki {
  test::TempDir dir;
  std::string ca, cert, key;
  // A throwaway CA and a server certificate for `san` signed by it.
  explicit TestPki(const std::string& san) {
    auto p = [&](const std::string& f) { return (dir.path() / f).string(); };
    ca = p("ca.crt");
    cert = p("server.crt");
    key = p("server.key");
    int rc = 0;
    test::run_command({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                       "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", p("ca.key"), "-out", ca,
                       "-days", "2", "-subj", "/CN=Redline Test CA"},
                      &rc);
    if (rc != 0) throw std::runtime_error("openssl CA failed");
    test::run_command(
        {"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", p("server.csr"), "-subj", "/CN=test-server"},
        &rc);
    if (rc != 0) throw std::runtime_error("openssl CSR failed");
    dir.write("ext.cnf", "subjectAltName=" + san + "\n");
    test::run_command(
        {"openssl", "x509", "-req", "-in", p("server.csr"), "-CA", ca, "-CAkey", p("ca.key"),
         "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", p("ext.cnf")},
        &rc);
    if (rc != 0) throw std::runtime_error("openssl sign failed");
  }
};

std::string tls_yaml(int port, const std::string& host, const std::string& ca) {
  return "listen: \"127.0.0.1:0\"\nthreads: 1\nadmin: {listen: \"127.0.0.1:0\"}\n"
         "logging: {access_log: false, level: warn}\n"
         "providers:\n"
         "  - name: secure\n"
         "    type: openai\n"
         "    base_url: \"https://" +
         host + ":" + std::to_string(port) +
         "/v1\"\n"
         "    api_key: sk-tls\n"
         "    ca_file: \"" +
         ca +
         "\"\n"
         "    retry: {max_attempts: 1}\n";
}

// A provider that answers each connection's first request (keep-alive, no Connection:
// close) and then closes that connection `close_after` later, as a server with a short idle
// timeout does. Counts the connections it accepted. `answer`, when given, is the whole raw
// response, sent in one send().
class ClosingProvider {
 public:
  explicit ClosingProvider(std::chrono::milliseconds close_after, std::string answer = {})
      : ClosingProvider(close_after, std::vector<std::string>{std::move(answer)}, 0ms) {}
  // The answer in `pieces`, one write each, `gap` apart (so each arrives in its own read).
  ClosingProvider(std::chrono::milliseconds close_after, std::vector<std::string> pieces,
                  std::chrono::milliseconds gap)
      : close_after_(close_after), pieces_(std::move(pieces)), gap_(gap) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        ::listen(fd_, 16) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("closing provider: cannot listen");
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~ClosingProvider() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  void run() {
    while (!stop_) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      ++accepted_;
      std::string in;
      char buf[4096];
      std::size_t need = std::string::npos;
      while (need == std::string::npos || in.size() < need) {
        const ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        in.append(buf, static_cast<std::size_t>(n));
        const auto end = in.find("\r\n\r\n");
        if (need == std::string::npos && end != std::string::npos) {
          std::string lower = in.substr(0, end);
          for (auto& ch : lower)
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          const auto cl = lower.find("content-length:");
          need = end + 4 + (cl == std::string::npos ? 0 : std::stoul(lower.substr(cl + 15)));
        }
      }
      const std::string body =
          R"({"id":"chatcmpl-closing","object":"chat.completion","created":1,"model":"gpt-4o-mini",)"
          R"("choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],)"
          R"("usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})";
      std::vector<std::string> out = pieces_;
      if (out.size() == 1 && out[0].empty()) {
        out[0] = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: " +
                 std::to_string(body.size()) + "\r\n\r\n" + body;
      }
      for (std::size_t i = 0; i < out.size(); ++i) {
        if (i > 0) std::this_thread::sleep_for(gap_);
        (void)::send(c, out[i].data(), out[i].size(), MSG_NOSIGNAL);
      }
      std::this_thread::sleep_for(close_after_);
      ::close(c);
    }
  }
  std::chrono::milliseconds close_after_;
  std::vector<std::string> pieces_;
  std::chrono::milliseconds gap_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

// A gateway with the cache off whose one provider is `provider`, tried once per request.
std::string closing_provider_yaml(const ClosingProvider& provider) {
  return "listen: \"127.0.0.1:0\"\nthreads: 1\nadmin: {listen: \"127.0.0.1:0\"}\n"
         "logging: {access_log: false, level: warn}\ncache: {enabled: false}\n"
         "providers:\n  - {name: p, type: openai, base_url: \"http://127.0.0.1:" +
         std::to_string(provider.port()) + "/v1\", api_key: sk-p, retry: {max_attempts: 1}}\n";
}

// The provider closed the kept-alive connection while it was idle in the pool: whether that
// is noticed before reuse (idle long enough to be checked) or only when the request fails on
// it (reused at once, unchecked), the request goes out again on a fresh connection and the
// client sees one clean answer.
TEST(UpstreamPoolTest, ProviderClosingAnIdleConnectionCostsTheClientNothing) {
  for (const auto gap : {50ms, 800ms}) {  // under and over the unchecked-reuse window (500 ms)
    ClosingProvider provider(0ms);
    Gw gw(closing_provider_yaml(provider));
    for (int i = 0; i < 3; ++i) {
      auto r = test::http_request(gw.port(), "POST", "/v1/chat/completions", kChat);
      ASSERT_EQ(r.status, 200) << "gap " << gap.count() << " ms, request " << i << ": " << r.body;
      EXPECT_NE(r.body.find("chatcmpl-closing"), std::string::npos);
      std::this_thread::sleep_for(gap);
    }
    EXPECT_EQ(provider.accepted(), 3) << "gap " << gap.count() << " ms";
  }
}

// Stream relay: events in bursts, chunked framing split anywhere across the provider's
// writes, a body that ends with the connection, and a chunked stream cut short: each relayed
// as the provider sent it, the last one ended with an SSE error event.
namespace {
std::string sse_event(int i) {
  return R"(data: {"id":"chatcmpl-split","object":"chat.completion.chunk","model":"gpt-4o-mini",)"
         R"("choices":[{"index":0,"delta":{"content":"w)" +
         std::to_string(i) + R"( "},"finish_reason":null}]})" + "\n\n";
}
std::string hex_size(std::size_t n) {
  std::ostringstream size;
  size << std::hex << n;
  return size.str();
}
// Streams a chat request through `provider` and returns the client's whole answer.
std::string stream_through(const ClosingProvider& provider) {
  Gw gw(closing_provider_yaml(provider));
  const std::string body =
      R"({"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"relay"}]})";
  RawConn c(gw.port());
  c.send(
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Connection: close\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body);
  return c.read_all();
}
// The chunks of a chunked answer's body; false when the framing is broken.
bool dechunk(const std::string& raw, std::vector<std::string>& chunks) {
  std::size_t pos = raw.find("\r\n\r\n");
  if (pos == std::string::npos) return false;
  pos += 4;
  while (true) {
    const auto eol = raw.find("\r\n", pos);
    if (eol == std::string::npos) return false;
    const std::size_t n = std::stoul(raw.substr(pos, eol - pos), nullptr, 16);
    if (n == 0) return true;
    if (eol + 2 + n + 2 > raw.size()) return false;
    chunks.push_back(raw.substr(eol + 2, n));
    pos = eol + 2 + n + 2;
  }
}
// The same, joined.
bool dechunk(const std::string& raw, std::string& body) {
  std::vector<std::string> chunks;
  if (!dechunk(raw, chunks)) return false;
  for (const auto& c : chunks) body += c;
  return true;
}
}  // namespace

// Events the provider sent in one write (a burst of tokens) reach the client byte for byte in
// one chunk, so in one write, instead of one chunk and one write each.
TEST(StreamRelayTest, EventsThatArriveTogetherGoOutTogether) {
  std::string events, chunked;
  for (int i = 0; i < 7; ++i) {
    const std::string e = i == 6 ? std::string("data: [DONE]\n\n") : sse_event(i);
    events += e;
    chunked += hex_size(e.size()) + "\r\n" + e + "\r\n";
  }
  ClosingProvider provider(0ms,
                           "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                           "transfer-encoding: chunked\r\n\r\n" +
                               chunked + "0\r\n\r\n");
  const std::string raw = stream_through(provider);
  ASSERT_EQ(test::raw_status(raw), 200) << raw;
  std::vector<std::string> chunks;
  ASSERT_TRUE(dechunk(raw, chunks)) << raw;
  std::string relayed;
  for (const auto& ch : chunks) relayed += ch;
  EXPECT_EQ(relayed, events);
  EXPECT_EQ(chunks.size(), 1u) << "the events went out in " << chunks.size() << " chunks";
}

TEST(StreamRelayTest, ChunkFramingSplitAcrossReadsIsReassembled) {
  std::string chunked, events;
  for (int i = 0; i < 4; ++i) {
    events += sse_event(i);
    chunked += hex_size(sse_event(i).size()) + "\r\n" + sse_event(i) + "\r\n";
  }
  events += "data: [DONE]\n\n";
  chunked += "e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n";
  // Cut inside the header, inside a chunk-size line, between a size line and its data,
  // inside data, between data and its CRLF, inside that CRLF and inside the last chunk.
  const std::string head =
      "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
  const std::string all = head + chunked;
  std::vector<std::size_t> cuts = {20, head.size() + 1, head.size() + 4, head.size() + 30};
  const std::size_t second = head.size() + hex_size(sse_event(0).size()).size() + 2 +
                             sse_event(0).size();  // the first chunk's CRLF
  cuts.insert(cuts.end(), {second, second + 1, second + 2, all.size() - 3});
  std::vector<std::string> pieces;
  std::size_t from = 0;
  for (const auto cut : cuts) {
    pieces.push_back(all.substr(from, cut - from));
    from = cut;
  }
  pieces.push_back(all.substr(from));
  ClosingProvider provider(0ms, pieces, 15ms);
  const std::string raw = stream_through(provider);
  ASSERT_EQ(test::raw_status(raw), 200) << raw;
  std::string relayed;
  ASSERT_TRUE(dechunk(raw, relayed)) << raw;
  EXPECT_EQ(relayed, events);
}

TEST(StreamRelayTest, StreamEndingWithTheConnectionIsRelayedWhole) {
  std::string events;
  std::vector<std::string> pieces = {
      "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"};
  for (int i = 0; i < 3; ++i) {
    events += sse_event(i);
    pieces.push_back(sse_event(i));
  }
  events += "data: [DONE]\n\n";
  pieces.push_back("data: [DONE]\n\n");
  ClosingProvider provider(0ms, pieces, 15ms);
  const std::string raw = stream_through(provider);
  ASSERT_EQ(test::raw_status(raw), 200) << raw;
  std::string relayed;
  ASSERT_TRUE(dechunk(raw, relayed)) << raw;
  EXPECT_EQ(relayed, events) << "no error event: the connection's end is the body's end";
}

TEST(StreamRelayTest, ChunkedStreamCutShortEndsWithAnErrorEvent) {
  const std::string first = sse_event(0);
  ClosingProvider provider(
      0ms,
      {"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
       hex_size(first.size()) + "\r\n" + first + "\r\n", "40\r\ndata: {\"cut"},
      15ms);
  const std::string raw = stream_through(provider);
  ASSERT_EQ(test::raw_status(raw), 200) << raw;
  std::string relayed;
  ASSERT_TRUE(dechunk(raw, relayed)) << raw;
  ASSERT_EQ(relayed.substr(0, first.size()), first) << relayed;
  EXPECT_NE(relayed.find("upstream_stream_error"), std::string::npos) << relayed;
  EXPECT_NE(relayed.find("connection_lost"), std::string::npos) << relayed;
}

TEST(UpstreamBodyTest, AnswerEndingWithTheConnectionIsRelayedWhole) {
  const std::string body =
      R"({"id":"chatcmpl-eof","object":"chat.completion","created":1,"model":"gpt-4o-mini",)"
      R"("choices":[{"index":0,"message":{"role":"assistant","content":"until the end"},)"
      R"("finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":3,"total_tokens":4}})";
  ClosingProvider provider(
      0ms,
      {"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n",
       body.substr(0, 40), body.substr(40)},
      15ms);
  Gw gw(closing_provider_yaml(provider));
  auto r = test::http_request(gw.port(), "POST", "/v1/chat/completions", kChat);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, body);
}

TEST(TlsUpstreamTest, VerifiedRoundTripAndConnectionReuse) {
  TestPki pki("DNS:localhost,IP:127.0.0.1");
  auto mock = start_mock([&](mock::MockOptions& o) {
    o.tls_cert = pki.cert;
    o.tls_key = pki.key;
  });
  Gw gw(tls_yaml(mock->port(), "localhost", pki.ca));
  HttpClient c("127.0.0.1", gw.port());
  for (int i = 0; i < 5; ++i) {
    auto r = c.request("POST", "/v1/chat/completions", kChat);
    ASSERT_EQ(r.status, 200) << r.body;
  }
  auto stream =
      c.stream("POST", "/v1/chat/completions", kChatStream, {}, [](const std::string&) {});
  EXPECT_NE(stream.body.find("[DONE]"), std::string::npos);
}

TEST(TlsUpstreamTest, WrongHostnameCertificateRejected) {
  TestPki pki("DNS:wrong.example");
  auto mock = start_mock([&](mock::MockOptions& o) {
    o.tls_cert = pki.cert;
    o.tls_key = pki.key;
  });
  Gw gw(tls_yaml(mock->port(), "localhost", pki.ca));
  auto r = test::http_request(gw.port(), "POST", "/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 502);
  EXPECT_NE(r.body.find("TLS"), std::string::npos) << r.body;
}

TEST(TlsUpstreamTest, UnknownCaRejected) {
  TestPki pki("DNS:localhost,IP:127.0.0.1");
  TestPki other("DNS:localhost");
  auto mock = start_mock([&](mock::MockOptions& o) {
    o.tls_cert = pki.cert;
    o.tls_key = pki.key;
  });
  Gw gw(tls_yaml(mock->port(), "localhost", other.ca));
  auto r = test::http_request(gw.port(), "POST", "/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 502);
}

}  // namespace
}  // namespace redline
