// End-to-end tests of the response cache: real Gateways (in-process, ephemeral ports) in
// front of the mock provider, with real redis-server processes (standalone and a 3+3
// cluster) as the Redis tier. Covers hits and misses for every cacheable API and both
// forms (stream / JSON), tenant isolation, what is never stored, the per-request controls,
// the four modes, coalescing within and across instances, L1 coherence through tracking,
// and Redis trouble.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <future>
#include <set>
#include <thread>

#include "app/gateway.h"
#include "cache/cache_store.h"
#include "config/config_loader.h"
#include "mock/mock_server.h"
#include "redis/cluster.h"
#include "support/http_client.h"
#include "support/redis_server.h"

namespace redline {
namespace {

using namespace std::chrono_literals;
using test::Headers;

const std::string kChat =
    R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello there"}]})";
const std::string kChatStream =
    R"({"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hello there"}]})";
const std::string kMessages =
    R"({"model":"claude-3-5-haiku-latest","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]})";
const std::string kMessagesStream =
    R"({"model":"claude-3-5-haiku-latest","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hi"}]})";
const std::string kEmbeddings = R"({"model":"text-embedding-3-small","input":["a","b"]})";

config::Config load(const std::string& yaml) {
  auto env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  return config::load_config_string(yaml, "test.yaml", env).config;
}

std::unique_ptr<mock::MockServer> start_mock(int latency_ms = 0, int stall_after = -1,
                                             int fail_first = 0, int fail_status = 0) {
  mock::MockOptions o;
  o.latency_ms = latency_ms;
  o.stall_after = stall_after;
  o.fail_first = fail_first;
  o.fail_status = fail_status;
  auto m = std::make_unique<mock::MockServer>(std::move(o));
  m->start();
  return m;
}

std::string yaml(int mock_port, const std::string& redis_block, const std::string& cache_extra,
                 const std::string& extra = "", int threads = 2) {
  const std::string url = "http://127.0.0.1:" + std::to_string(mock_port);
  return "listen: \"127.0.0.1:0\"\n"
         "threads: " +
         std::to_string(threads) +
         "\n"
         "admin: {listen: \"127.0.0.1:0\", token: admin-secret}\n"
         "logging: {access_log: false, level: warn}\n" +
         redis_block +
         "providers:\n"
         "  - {name: openai, type: openai, base_url: \"" +
         url +
         "/v1\", api_key: sk-p, timeouts: {first_byte: 3s, idle: 1s},"
         " retry: {max_attempts: 1}}\n"
         "  - {name: claude, type: anthropic, base_url: \"" +
         url +
         "\", api_key: sk-a}\n"
         "models:\n"
         "  claude-3-5-haiku-latest: claude\n"
         "keys:\n"
         "  - {key: sk-a1, tenant: a}\n"
         "  - {key: sk-a2, tenant: a}\n"
         "  - {key: sk-b, tenant: b}\n"
         "  - {key: sk-nocache, tenant: a, cache: false}\n"
         "cache:\n"
         "  lookup_timeout: 200ms\n"  // generous: sanitizer builds on a busy 2-core machine
         "  store_timeout: 2s\n" +
         cache_extra + extra;
}

std::string standalone(const test::RedisServer& r) {
  return "redis: {urls: [\"" + r.url() + "\"]}\n";
}

// The redis block for a cluster; `options` go before the seed URLs ("read_from_replicas: true").
std::string cluster_block(const test::RedisCluster& cluster, const std::string& options = "") {
  std::string block = "redis: {mode: cluster, " + options + (options.empty() ? "" : ", ") + "urls: [";
  for (const auto& u : cluster.urls()) block += "\"" + u + "\",";
  block.back() = ']';
  return block + "}\n";
}

struct Gw {
  explicit Gw(const std::string& y) : gw(load(y)) { gw.start(); }
  int port() const { return gw.port(); }
  app::Gateway gw;
};

Headers auth(const std::string& key, Headers more = {}) {
  more.emplace_back("authorization", "Bearer " + key);
  return more;
}

boost::json::value json(const std::string& s) {
  return boost::json::parse(s);
}

uint64_t mock_count(const mock::MockServer& m, const char* counter) {
  auto r = test::http_request(m.port(), "GET", "/mock/stats");
  return json(r.body).at(counter).to_number<uint64_t>();
}

test::HttpResponse post(int port, const std::string& path, const std::string& body,
                        const std::string& key = "sk-a1", Headers h = {}) {
  return test::http_request(port, "POST", path, body, auth(key, std::move(h)));
}

// The data payloads of an SSE body, in order.
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

// Content of a chat answer, streamed or not.
std::string chat_text(const test::HttpResponse& r) {
  if (r.header("content-type").starts_with("text/event-stream")) {
    std::string text;
    for (const auto& d : sse_data(r.body)) {
      if (d == "[DONE]") continue;
      auto v = json(d);
      for (const auto& c : v.at("choices").as_array()) {
        const auto* content = c.at("delta").as_object().if_contains("content");
        if (content && content->is_string()) text += content->as_string();
      }
    }
    return text;
  }
  auto v = json(r.body);
  return std::string(v.at("choices").at(0).at("message").at("content").as_string());
}

class CacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = std::make_unique<test::RedisServer>();
    mock_ = start_mock();
  }
  void start_gw(const std::string& cache_extra = "", const std::string& extra = "") {
    gw_ = std::make_unique<Gw>(yaml(mock_->port(), standalone(*redis_), cache_extra, extra));
  }
  int port() const { return gw_->port(); }
  std::unique_ptr<test::RedisServer> redis_;
  std::unique_ptr<mock::MockServer> mock_;
  std::unique_ptr<Gw> gw_;
};

TEST_F(CacheTest, SecondIdenticalChatIsAHit) {
  start_gw();
  auto first = post(port(), "/v1/chat/completions", kChat);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.header("x-redline-cache"), "miss");
  const std::string key = first.header("x-redline-cache-key");
  EXPECT_EQ(key.size(), 32u);
  auto second = post(port(), "/v1/chat/completions", kChat);
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(second.header("x-redline-cache"), "hit");
  EXPECT_EQ(second.header("x-redline-cache-key"), key);
  EXPECT_EQ(second.body, first.body);  // the mock's ids are unique: this is the stored answer
  EXPECT_EQ(mock_count(*mock_, "chat"), 1u);
  // The entry is in Redis under c:<key>, with a TTL.
  const auto ttl = std::stoll(redis_->cli("PTTL", "c:" + key));
  EXPECT_GT(ttl, 3'500'000);
  EXPECT_LE(ttl, 3'600'000);
}

TEST_F(CacheTest, EquivalentBodiesShareTheKeyAndDifferentOnesDoNot) {
  start_gw();
  auto first = post(port(), "/v1/chat/completions", kChat);
  ASSERT_EQ(first.status, 200);
  // Reordered keys, whitespace, an escaped character, an ignored field: the same request.
  const std::string same =
      R"({ "messages" : [ {"content":"Hello th\u0065re", "role":"user"} ], "user":"x", "model":"gpt-4o-mini" })";
  auto again = post(port(), "/v1/chat/completions", same);
  EXPECT_EQ(again.header("x-redline-cache"), "hit");
  EXPECT_EQ(again.header("x-redline-cache-key"), first.header("x-redline-cache-key"));
  // Each answer-changing field or header makes another key.
  const std::vector<std::pair<std::string, Headers>> different = {
      {R"({"model":"gpt-4o-mini","temperature":0.5,"messages":[{"role":"user","content":"Hello there"}]})",
       {}},
      {R"({"model":"gpt-4o-mini","seed":9007199254740993,"messages":[{"role":"user","content":"Hello there"}]})",
       {}},
      {R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello There"}]})", {}},
      {kChat, {{"openai-beta", "assistants=v2"}}},
  };
  std::set<std::string> keys = {first.header("x-redline-cache-key")};
  for (const auto& [body, headers] : different) {
    auto r = post(port(), "/v1/chat/completions", body, "sk-a1", headers);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-redline-cache"), "miss") << body;
    keys.insert(r.header("x-redline-cache-key"));
  }
  EXPECT_EQ(keys.size(), different.size() + 1);
}

TEST_F(CacheTest, DuplicateJsonKeyIs400) {
  start_gw();
  auto r =
      post(port(), "/v1/chat/completions",
           R"({"model":"gpt-4o-mini","messages":[],"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(json(r.body).at("error").at("code").as_string(), "duplicate_key");
  EXPECT_EQ(mock_count(*mock_, "chat"), 0u);
}

TEST_F(CacheTest, TenantsNeverShareAnswersButKeysOfOneTenantDo) {
  start_gw();
  auto a1 = post(port(), "/v1/chat/completions", kChat, "sk-a1");
  auto a2 = post(port(), "/v1/chat/completions", kChat, "sk-a2");
  auto b = post(port(), "/v1/chat/completions", kChat, "sk-b");
  EXPECT_EQ(a1.header("x-redline-cache"), "miss");
  EXPECT_EQ(a2.header("x-redline-cache"), "hit");
  EXPECT_EQ(a2.body, a1.body);
  EXPECT_EQ(b.header("x-redline-cache"), "miss");
  EXPECT_NE(b.header("x-redline-cache-key"), a1.header("x-redline-cache-key"));
  EXPECT_NE(json(b.body).at("id"), json(a1.body).at("id"));
  EXPECT_EQ(mock_count(*mock_, "chat"), 2u);
}

TEST_F(CacheTest, StreamingMissIsRecordedAndReplayedEventForEvent) {
  start_gw();
  auto first = post(port(), "/v1/chat/completions", kChatStream);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.header("x-redline-cache"), "miss");
  auto second = post(port(), "/v1/chat/completions", kChatStream);
  ASSERT_EQ(second.status, 200);
  EXPECT_EQ(second.header("x-redline-cache"), "hit");
  EXPECT_TRUE(second.header("content-type").starts_with("text/event-stream"));
  EXPECT_EQ(second.body, first.body);
  auto events = sse_data(first.body);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back(), "[DONE]");
  // The gateway asked the provider for usage, but this client did not: no usage chunk.
  for (const auto& e : events) EXPECT_EQ(e.find("\"usage\":{"), std::string::npos) << e;
  // A client that asks for usage gets it from the same entry.
  const std::string with_usage =
      R"({"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello there"}]})";
  auto third = post(port(), "/v1/chat/completions", with_usage);
  EXPECT_EQ(third.header("x-redline-cache"), "hit");
  auto e3 = sse_data(third.body);
  ASSERT_GE(e3.size(), 2u);
  EXPECT_NE(e3[e3.size() - 2].find("\"usage\":{"), std::string::npos) << third.body;
  EXPECT_EQ(mock_count(*mock_, "chat_stream"), 1u);
}

// The usage request the gateway adds to a stream it may store leaves the client's bytes as
// they were (numbers such as 0.0 and 0.50 are not respelled), and overrides an explicit
// include_usage: false.
TEST_F(CacheTest, StreamingMissAsksForUsageAndKeepsTheClientsBytes) {
  start_gw();
  auto upstream_body = [&] {
    auto last = json(test::http_request(mock_->port(), "GET", "/mock/last-request").body);
    return std::string(last.at("body").as_string());
  };
  const std::string plain =
      R"({ "model":"gpt-4o-mini","stream":true,"temperature":0.0,"top_p":0.50,)"
      R"("messages":[{"role":"user","content":"Bytes as sent"}]})";
  auto first = post(port(), "/v1/chat/completions", plain);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.header("x-redline-cache"), "miss");
  EXPECT_EQ(
      upstream_body(),
      R"({"stream_options":{"include_usage":true}, "model":"gpt-4o-mini","stream":true,)"
      R"("temperature":0.0,"top_p":0.50,"messages":[{"role":"user","content":"Bytes as sent"}]})");

  const std::string declined =
      R"({"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":false},)"
      R"("messages":[{"role":"user","content":"No usage, thanks"}]})";
  auto second = post(port(), "/v1/chat/completions", declined);
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(second.header("x-redline-cache"), "miss");
  auto sent = json(upstream_body());
  EXPECT_EQ(sent.at("stream_options"), json(R"({"include_usage":true})")) << sent;
  EXPECT_EQ(sent.at("messages").at(0).at("content"), "No usage, thanks");
  // Neither client asked for usage, so neither stream carries it.
  for (const auto* r : {&first, &second}) {
    for (const auto& e : sse_data(r->body)) {
      EXPECT_EQ(e.find("\"usage\":{"), std::string::npos) << e;
    }
  }
}

TEST_F(CacheTest, OneEntryServesBothFormsOfChat) {
  start_gw();
  auto json_first = post(port(), "/v1/chat/completions", kChat);
  auto as_stream = post(port(), "/v1/chat/completions", kChatStream);
  EXPECT_EQ(as_stream.header("x-redline-cache"), "hit");
  EXPECT_TRUE(as_stream.header("content-type").starts_with("text/event-stream"));
  EXPECT_EQ(chat_text(as_stream), chat_text(json_first));
  EXPECT_EQ(sse_data(as_stream.body).back(), "[DONE]");

  // And the other way round, with another question.
  const std::string q2s =
      R"({"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Second"}]})";
  const std::string q2 =
      R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"Second"}]})";
  auto stream_first = post(port(), "/v1/chat/completions", q2s);
  auto as_json = post(port(), "/v1/chat/completions", q2);
  EXPECT_EQ(as_json.header("x-redline-cache"), "hit");
  auto v = json(as_json.body);
  EXPECT_EQ(v.at("object").as_string(), "chat.completion");
  EXPECT_EQ(chat_text(as_json), chat_text(stream_first));
  EXPECT_EQ(v.at("choices").at(0).at("finish_reason").as_string(), "stop");
  EXPECT_TRUE(v.at("usage").at("total_tokens").is_number()) << as_json.body;
  EXPECT_EQ(mock_count(*mock_, "chat") + mock_count(*mock_, "chat_stream"), 2u);
}

TEST_F(CacheTest, AnthropicMessagesHitInBothForms) {
  start_gw();
  auto first = post(port(), "/v1/messages", kMessages);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.header("x-redline-cache"), "miss");
  auto again = post(port(), "/v1/messages", kMessages);
  EXPECT_EQ(again.header("x-redline-cache"), "hit");
  EXPECT_EQ(again.body, first.body);
  auto streamed = post(port(), "/v1/messages", kMessagesStream);
  EXPECT_EQ(streamed.header("x-redline-cache"), "hit");
  EXPECT_NE(streamed.body.find("event: message_start"), std::string::npos);
  EXPECT_NE(streamed.body.find("event: message_stop"), std::string::npos);
  // A streamed answer recorded first, served as JSON.
  const std::string other =
      R"({"model":"claude-3-5-haiku-latest","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Other"}]})";
  auto s1 = post(port(), "/v1/messages", other);
  EXPECT_EQ(s1.header("x-redline-cache"), "miss");
  auto other_json = other;
  other_json.replace(other_json.find("\"stream\":true,"), 14, "");
  auto j = post(port(), "/v1/messages", other_json);
  EXPECT_EQ(j.header("x-redline-cache"), "hit");
  auto v = json(j.body);
  EXPECT_EQ(v.at("type").as_string(), "message");
  EXPECT_EQ(v.at("stop_reason").as_string(), "end_turn");
  EXPECT_TRUE(v.at("usage").at("output_tokens").is_number());
  EXPECT_EQ(mock_count(*mock_, "messages") + mock_count(*mock_, "messages_stream"), 2u);
}

TEST_F(CacheTest, EmbeddingsAreCached) {
  start_gw();
  auto first = post(port(), "/v1/embeddings", kEmbeddings);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.header("x-redline-cache"), "miss");
  auto second = post(port(), "/v1/embeddings", kEmbeddings);
  EXPECT_EQ(second.header("x-redline-cache"), "hit");
  EXPECT_EQ(json(second.body).at("data"), json(first.body).at("data"));
  EXPECT_EQ(mock_count(*mock_, "embeddings"), 1u);
}

TEST_F(CacheTest, EmbeddingsAreCachedPerInput) {
  start_gw();
  auto embed = [&](const std::string& input) {
    return post(port(), "/v1/embeddings",
                R"({"model":"text-embedding-3-small","input":)" + input + "}");
  };
  ASSERT_EQ(embed(R"(["alpha","beta"])").header("x-redline-cache"), "miss");
  // A batch with one known and one new input: only the new one goes to the provider.
  auto partial = embed(R"(["beta","gamma"])");
  ASSERT_EQ(partial.status, 200) << partial.body;
  EXPECT_EQ(partial.header("x-redline-cache"), "partial");
  auto last = json(test::http_request(mock_->port(), "GET", "/mock/last-request").body);
  EXPECT_EQ(json(std::string(last.at("body").as_string())).at("input"), json(R"(["gamma"])"))
      << last;
  // Every input seen before, in any batch or alone: a hit, in the caller's order.
  auto single = embed(R"("alpha")");
  EXPECT_EQ(single.header("x-redline-cache"), "hit");
  auto all = embed(R"(["gamma","alpha","beta"])");
  EXPECT_EQ(all.header("x-redline-cache"), "hit");
  EXPECT_EQ(mock_count(*mock_, "embeddings"), 2u);
  // The assembled answer equals what the provider says for the same batch.
  auto direct =
      test::http_request(mock_->port(), "POST", "/v1/embeddings",
                         R"({"model":"text-embedding-3-small","input":["gamma","alpha","beta"]})",
                         {{"authorization", "Bearer sk-p"}});
  auto got = json(all.body);
  auto want = json(direct.body);
  ASSERT_EQ(got.at("data").as_array().size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(got.at("data").at(i).at("index").to_number<int>(), static_cast<int>(i));
    EXPECT_EQ(got.at("data").at(i).at("embedding"), want.at("data").at(i).at("embedding")) << i;
  }
  EXPECT_EQ(got.at("object").as_string(), "list");
  EXPECT_TRUE(got.at("usage").at("prompt_tokens").is_number());
}

TEST_F(CacheTest, ErrorsAreNotStored) {
  mock_ = start_mock(0, -1, /*fail_first=*/1, /*fail_status=*/500);
  start_gw();
  auto failed = post(port(), "/v1/chat/completions", kChat);
  EXPECT_EQ(failed.status, 500);
  auto ok = post(port(), "/v1/chat/completions", kChat);
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.header("x-redline-cache"), "miss");
  auto hit = post(port(), "/v1/chat/completions", kChat);
  EXPECT_EQ(hit.header("x-redline-cache"), "hit");
}

TEST_F(CacheTest, InterruptedStreamsAreNotStored) {
  mock_ = start_mock(0, /*stall_after=*/2);
  start_gw();
  auto cut = post(port(), "/v1/chat/completions", kChatStream);
  EXPECT_EQ(cut.status, 200);
  EXPECT_EQ(sse_data(cut.body).back().find("[DONE]"), std::string::npos) << cut.body;
  EXPECT_NE(cut.body.find("upstream_stream_error"), std::string::npos) << cut.body;
  auto again = post(port(), "/v1/chat/completions", kChatStream);
  EXPECT_EQ(again.header("x-redline-cache"), "miss");
  // Nothing stored, and the second request's coalescing lock (a marker in the entry's key)
  // released: the release may come just after the client has read the cut stream's end.
  std::string keys = redis_->cli("DBSIZE");
  for (int i = 0; i < 100 && keys != "0"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    keys = redis_->cli("DBSIZE");
  }
  EXPECT_EQ(keys, "0") << redis_->cli("KEYS", "*");
}

TEST_F(CacheTest, OversizedAnswersPassThroughUncached) {
  start_gw("  max_entry_bytes: 64\n");
  auto first = post(port(), "/v1/chat/completions", kChat);
  ASSERT_EQ(first.status, 200);
  auto second = post(port(), "/v1/chat/completions", kChat);
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.header("x-redline-cache"), "miss");
  EXPECT_EQ(mock_count(*mock_, "chat"), 2u);
}

TEST_F(CacheTest, LargeAnswersAreStoredCompressed) {
  start_gw("  compress_min_bytes: 256\n");
  const std::string big =
      R"({"model":"gpt-4o-mini","max_tokens":2000,"messages":[{"role":"user","content":"long"}]})";
  auto first = post(port(), "/v1/chat/completions", big, "sk-a1", {{"x-mock-words", "1500"}});
  ASSERT_EQ(first.status, 200);
  auto second = post(port(), "/v1/chat/completions", big, "sk-a1", {{"x-mock-words", "1500"}});
  EXPECT_EQ(second.header("x-redline-cache"), "hit");
  EXPECT_EQ(second.body, first.body);
  const auto stored =
      std::stoull(redis_->cli("STRLEN", "c:" + first.header("x-redline-cache-key")));
  EXPECT_LT(stored, first.body.size());  // zstd made it smaller than the answer itself
}

TEST_F(CacheTest, RequestControls) {
  start_gw();
  // no-store: neither read nor write.
  auto ns1 = post(port(), "/v1/chat/completions", kChat, "sk-a1", {{"cache-control", "no-store"}});
  EXPECT_EQ(ns1.status, 200);
  EXPECT_EQ(ns1.header("x-redline-cache"), "bypass");
  EXPECT_EQ(redis_->cli("DBSIZE"), "0");
  // A key configured never to use the cache.
  auto off = post(port(), "/v1/chat/completions", kChat, "sk-nocache");
  EXPECT_EQ(off.header("x-redline-cache"), "bypass");
  // no-cache: skips the lookup, stores the fresh answer.
  auto m = post(port(), "/v1/chat/completions", kChat);
  EXPECT_EQ(m.header("x-redline-cache"), "miss");
  auto fresh =
      post(port(), "/v1/chat/completions", kChat, "sk-a1", {{"cache-control", "no-cache"}});
  EXPECT_EQ(fresh.header("x-redline-cache"), "refresh");
  EXPECT_NE(fresh.body, m.body);
  auto hit = post(port(), "/v1/chat/completions", kChat);
  EXPECT_EQ(hit.header("x-redline-cache"), "hit");
  EXPECT_EQ(hit.body, fresh.body);
  // Namespaces partition inside the tenant.
  auto nsa = post(port(), "/v1/chat/completions", kChat, "sk-a1",
                  {{"x-redline-cache-namespace", "exp-1"}});
  EXPECT_EQ(nsa.header("x-redline-cache"), "miss");
  auto nsb = post(port(), "/v1/chat/completions", kChat, "sk-a1",
                  {{"x-redline-cache-namespace", "exp-1"}});
  EXPECT_EQ(nsb.header("x-redline-cache"), "hit");
  EXPECT_EQ(post(port(), "/v1/chat/completions", kChat, "sk-a1",
                 {{"x-redline-cache-namespace", "bad name!"}})
                .status,
            400);
  // TTL per request.
  auto t = post(port(), "/v1/chat/completions", kChat, "sk-a1",
                {{"x-redline-cache-ttl", "7"}, {"cache-control", "no-cache"}});
  const auto ttl = std::stoll(redis_->cli("PTTL", "c:" + t.header("x-redline-cache-key")));
  EXPECT_GT(ttl, 5000);
  EXPECT_LE(ttl, 7000);
  EXPECT_EQ(
      post(port(), "/v1/chat/completions", kChat, "sk-a1", {{"x-redline-cache-ttl", "0"}}).status,
      400);
  EXPECT_EQ(
      post(port(), "/v1/chat/completions", kChat, "sk-a1", {{"x-redline-cache-ttl", "abc"}}).status,
      400);
}

TEST_F(CacheTest, NonzeroTemperatureCanBeLeftUncached) {
  start_gw("  cache_nonzero_temperature: false\n");
  const std::string hot =
      R"({"model":"gpt-4o-mini","temperature":0.7,"messages":[{"role":"user","content":"x"}]})";
  auto a = post(port(), "/v1/chat/completions", hot);
  auto b = post(port(), "/v1/chat/completions", hot);
  EXPECT_EQ(b.header("x-redline-cache"), "bypass");
  EXPECT_EQ(mock_count(*mock_, "chat"), 2u);
  const std::string cold =
      R"({"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"x"}]})";
  post(port(), "/v1/chat/completions", cold);
  EXPECT_EQ(post(port(), "/v1/chat/completions", cold).header("x-redline-cache"), "hit");
}

TEST_F(CacheTest, WriteThroughStoresBeforeAnswering) {
  start_gw("  mode: write-through\n");
  for (int i = 0; i < 5; ++i) {
    const std::string body = R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"q)" +
                             std::to_string(i) + R"("}]})";
    auto r = post(port(), "/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200);
    // Acknowledged by Redis before the answer left: it is there the moment we look.
    EXPECT_EQ(redis_->cli("EXISTS", "c:" + r.header("x-redline-cache-key")), "1");
  }
}

TEST_F(CacheTest, WriteBehindIsDrainedOnShutdown) {
  start_gw("  mode: write-behind\n  write_behind: {batch: 4}\n", "drain_timeout: 10s\n");
  std::vector<std::future<test::HttpResponse>> all;
  for (int i = 0; i < 40; ++i) {
    all.push_back(std::async(std::launch::async, [this, i] {
      const std::string body =
          R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"wb)" + std::to_string(i) +
          R"("}]})";
      return post(port(), "/v1/chat/completions", body);
    }));
  }
  std::vector<std::string> keys;
  for (auto& f : all) {
    auto r = f.get();
    ASSERT_EQ(r.status, 200);
    keys.push_back(r.header("x-redline-cache-key"));
  }
  EXPECT_TRUE(gw_->gw.drain_and_stop(10s));
  for (const auto& k : keys) EXPECT_EQ(redis_->cli("EXISTS", "c:" + k), "1") << k;
}

TEST_F(CacheTest, ConcurrentIdenticalMissesMakeOneProviderCall) {
  mock_ = start_mock(/*latency_ms=*/400);
  start_gw();
  std::vector<std::future<test::HttpResponse>> all;
  for (int i = 0; i < 100; ++i) {
    all.push_back(std::async(std::launch::async, [this, i] {
      return post(port(), "/v1/chat/completions", i % 2 ? kChat : kChatStream);
    }));
  }
  std::map<std::string, int> outcomes;
  std::set<std::string> texts;
  for (auto& f : all) {
    auto r = f.get();
    ASSERT_EQ(r.status, 200) << r.body;
    ++outcomes[r.header("x-redline-cache")];
    texts.insert(chat_text(r));
  }
  EXPECT_EQ(mock_count(*mock_, "chat") + mock_count(*mock_, "chat_stream"), 1u);
  EXPECT_EQ(texts.size(), 1u);  // streamed and JSON followers got the same answer
  EXPECT_EQ(outcomes["miss"], 1);
  EXPECT_EQ(outcomes["miss"] + outcomes["coalesced"] + outcomes["hit"], 100);
}

TEST_F(CacheTest, LeaderLeavingDoesNotCancelTheSharedCall) {
  mock_ = start_mock(/*latency_ms=*/500);
  start_gw();
  // The leader gives up after 100 ms; the follower still gets the answer.
  std::thread leader([this] {
    test::RawConn c(port());
    c.send(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-a1\r\n"
        "Content-Type: application/json\r\nContent-Length: " +
        std::to_string(kChat.size()) + "\r\n\r\n" + kChat);
    std::this_thread::sleep_for(100ms);
    c.close();
  });
  std::this_thread::sleep_for(30ms);
  auto follower = post(port(), "/v1/chat/completions", kChat);
  leader.join();
  EXPECT_EQ(follower.status, 200) << follower.body;
  EXPECT_EQ(follower.header("x-redline-cache"), "coalesced");
  EXPECT_EQ(mock_count(*mock_, "chat"), 1u);
  // The shared answer is stored: the next identical request is a hit. Right after the
  // follower's answer it may still be served from the finished call (the flight stays listed
  // until its store is acknowledged; "coalesced", no provider call either), so ask until hit.
  std::string outcome;
  for (int i = 0; i < 50 && outcome != "hit"; ++i) {
    auto r = post(port(), "/v1/chat/completions", kChat);
    outcome = r.header("x-redline-cache");
    EXPECT_TRUE(outcome == "hit" || outcome == "coalesced") << outcome;
    if (outcome != "hit") std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(outcome, "hit");
  EXPECT_EQ(mock_count(*mock_, "chat"), 1u);  // none of them reached the provider
}

TEST_F(CacheTest, RedisDownMeansMissesNotFailures) {
  start_gw();
  auto warm = post(port(), "/v1/chat/completions", kChat);
  ASSERT_EQ(warm.status, 200);
  redis_->stop();
  for (int i = 0; i < 3; ++i) {
    const std::string body =
        R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"down)" + std::to_string(i) +
        R"("}]})";
    auto r = post(port(), "/v1/chat/completions", body);
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-redline-cache"), "miss");
  }
  auto s = post(port(), "/v1/chat/completions", kChatStream);
  EXPECT_EQ(s.status, 200);
  redis_->restart();
}

TEST_F(CacheTest, PausedRedisCostsOnlyTheLookupBound) {
  start_gw();
  ASSERT_EQ(post(port(), "/v1/chat/completions", kChat).status, 200);  // generations known
  redis_->pause();
  const std::string body =
      R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"paused"}]})";
  auto r = post(port(), "/v1/chat/completions", body);
  redis_->resume();
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-redline-cache"), "miss");
}

// --- two instances ------------------------------------------------------------------------

// The cache outcome of `body` on `port`, asked until it is `want` (an invalidation push
// travels through Redis asynchronously) or 3 s pass. Probing with hits changes nothing.
std::string eventually(int port, const std::string& body, const std::string& want,
                       const std::string& key = "sk-a1") {
  std::string got;
  for (int i = 0; i < 150; ++i) {
    got = post(port, "/v1/chat/completions", body, key).header("x-redline-cache");
    if (got == want) break;
    std::this_thread::sleep_for(20ms);
  }
  return got;
}

class TwoInstanceCacheTest : public CacheTest {
 protected:
  // write-through unless `cache_extra` picks a mode: these tests ask the other instance
  // right after one answered, which only write-through promises to be a hit (cache-aside
  // sends the store after the answer).
  void start_both(const std::string& cache_extra = "", int threads = 2) {
    const std::string mode =
        cache_extra.find("mode:") == std::string::npos ? "  mode: write-through\n" : "";
    const auto y = yaml(mock_->port(), standalone(*redis_), mode + cache_extra, "", threads);
    gw_ = std::make_unique<Gw>(y);
    gw2_ = std::make_unique<Gw>(y);
  }
  std::unique_ptr<Gw> gw2_;
};

TEST_F(TwoInstanceCacheTest, AnswerStoredByOneIsAHitOnTheOther) {
  start_both();
  auto a = post(gw_->port(), "/v1/chat/completions", kChat);
  auto b = post(gw2_->port(), "/v1/chat/completions", kChat);
  EXPECT_EQ(b.header("x-redline-cache"), "hit");
  EXPECT_EQ(b.body, a.body);
}

TEST_F(TwoInstanceCacheTest, PurgeAndOverwriteEvictEveryInstancesL1) {
  start_both();
  auto a = post(gw_->port(), "/v1/chat/completions", kChat);
  const std::string key = a.header("x-redline-cache-key");
  // Instance 2 reads it from Redis into its L1; then it is deleted behind its back.
  ASSERT_EQ(post(gw2_->port(), "/v1/chat/completions", kChat).header("x-redline-cache"), "hit");
  ASSERT_EQ(redis_->cli("DEL", "c:" + key), "1");
  // The invalidation push reaches instance 2 asynchronously; allow it a moment.
  std::string outcome;
  for (int i = 0; i < 50 && outcome != "miss"; ++i) {
    std::this_thread::sleep_for(20ms);
    // Ask with no-store so the probe itself changes nothing... except it bypasses lookups.
    // So probe through a lookup: a miss re-stores, hence delete again after each probe.
    outcome = post(gw2_->port(), "/v1/chat/completions", kChat).header("x-redline-cache");
    if (outcome == "hit") redis_->cli("DEL", "c:" + key);
  }
  EXPECT_EQ(outcome, "miss");

  // A tenant purge (generation bump) reaches both instances, too.
  ASSERT_EQ(post(gw_->port(), "/v1/chat/completions", kChat).header("x-redline-cache"), "hit");
  ASSERT_EQ(post(gw2_->port(), "/v1/chat/completions", kChat).header("x-redline-cache"), "hit");
  redis_->cli("INCR", "c:g:{a}");
  // Instance 2 learns of the new generation: a miss under a new key, which instance 1 then
  // finds stored.
  EXPECT_EQ(eventually(gw2_->port(), kChat, "miss"), "miss");
  auto after1 = post(gw_->port(), "/v1/chat/completions", kChat);
  auto after2 = post(gw2_->port(), "/v1/chat/completions", kChat);
  EXPECT_NE(after1.header("x-redline-cache-key"), key);
  EXPECT_EQ(after1.header("x-redline-cache"), "hit");
  EXPECT_EQ(after2.header("x-redline-cache-key"), after1.header("x-redline-cache-key"));
}

test::HttpResponse admin(const Gw& g, const std::string& method, const std::string& path,
                         const std::string& body = {}) {
  return test::http_request(g.gw.admin_port(), method, path, body,
                            {{"authorization", "Bearer admin-secret"}});
}

TEST_F(TwoInstanceCacheTest, AdminPurgesReachEveryInstance) {
  start_both();
  const std::string q2 = R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"two"}]})";
  auto a = post(gw_->port(), "/v1/chat/completions", kChat);
  post(gw_->port(), "/v1/chat/completions", q2);
  // Instance 2 holds both in L1 after one hit each.
  ASSERT_EQ(post(gw2_->port(), "/v1/chat/completions", kChat).header("x-redline-cache"), "hit");
  ASSERT_EQ(post(gw2_->port(), "/v1/chat/completions", q2).header("x-redline-cache"), "hit");

  // One key, purged through instance 1's admin API: instance 2 misses it, keeps the other.
  auto purge = admin(*gw_, "POST", "/admin/cache/purge",
                     R"({"key":")" + a.header("x-redline-cache-key") + R"("})");
  ASSERT_EQ(purge.status, 200) << purge.body;
  EXPECT_EQ(json(purge.body).at("deleted"), true);
  EXPECT_EQ(eventually(gw2_->port(), kChat, "miss"), "miss");
  EXPECT_EQ(post(gw2_->port(), "/v1/chat/completions", q2).header("x-redline-cache"), "hit");
  // A key that holds only a coalescing lock marker (a provider call in flight): not an entry,
  // so nothing is deleted and the marker stays for the call's waiters.
  const std::string in_flight(32, 'e');
  const std::string marker = std::string(cache::kLockMarkerPrefix) + "another-instance";
  ASSERT_EQ(redis_->cli("SET", "c:" + in_flight, marker, "PX", "60000"), "OK");
  auto marker_purge =
      admin(*gw_, "POST", "/admin/cache/purge", R"({"key":")" + in_flight + R"("})");
  ASSERT_EQ(marker_purge.status, 200) << marker_purge.body;
  EXPECT_EQ(json(marker_purge.body).at("deleted"), false);
  EXPECT_EQ(redis_->cli("GET", "c:" + in_flight), marker);

  // The whole tenant, in O(1): every key of tenant a changes on both instances.
  auto t = admin(*gw_, "POST", "/admin/cache/purge", R"({"tenant":"a"})");
  ASSERT_EQ(t.status, 200) << t.body;
  EXPECT_EQ(json(t.body).at("purged"), "tenant");
  EXPECT_EQ(eventually(gw2_->port(), q2, "miss"), "miss");
  EXPECT_EQ(post(gw_->port(), "/v1/chat/completions", kChat).header("x-redline-cache"), "miss");
  // Tenant b was not touched.
  post(gw_->port(), "/v1/chat/completions", q2, "sk-b");
  admin(*gw_, "POST", "/admin/cache/purge", R"({"tenant":"a","namespace":"exp"})");
  EXPECT_EQ(post(gw2_->port(), "/v1/chat/completions", q2, "sk-b").header("x-redline-cache"),
            "hit");

  // Stats, and the admin rules.
  auto stats = admin(*gw2_, "GET", "/admin/cache/stats");
  ASSERT_EQ(stats.status, 200);
  EXPECT_GE(json(stats.body).at("invalidations").to_number<int>(), 1) << stats.body;
  EXPECT_GT(json(stats.body).at("hit_ratio").to_number<double>(), 0.0);
  EXPECT_EQ(
      test::http_request(gw_->gw.admin_port(), "POST", "/admin/cache/purge", R"({"tenant":"a"})")
          .status,
      401);
  EXPECT_EQ(admin(*gw_, "POST", "/admin/cache/purge", R"({"nothing":1})").status, 400);
  EXPECT_EQ(admin(*gw_, "GET", "/admin/cache/purge").status, 405);
}

TEST_F(CacheTest, OwnWritesSendNoInvalidationsAndLimitsShareTheCacheConnection) {
  // One thread: its connection tracks c:* with NOLOOP, so the lock markers and stores it
  // writes itself come back as no pushes; the rate limiter uses that same connection.
  gw_ = std::make_unique<Gw>(
      yaml(mock_->port(), standalone(*redis_), "", "rate_limits:\n  - {scope: key, requests: 1000, window: 60}\n", 1));
  auto stats = [&] {
    return json(test::http_request(gw_->gw.admin_port(), "GET", "/admin/cache/stats", "",
                                   {{"authorization", "Bearer admin-secret"}})
                    .body);
  };
  std::string key;
  for (const char* q : {"one", "two", "three"}) {
    const std::string body =
        std::string(R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":")") + q +
        R"("}]})";
    auto miss = post(port(), "/v1/chat/completions", body);
    ASSERT_EQ(miss.header("x-redline-cache"), "miss");
    EXPECT_FALSE(miss.header("x-ratelimit-remaining-requests").empty());
    EXPECT_EQ(post(port(), "/v1/chat/completions", body).header("x-redline-cache"), "hit");
    key = miss.header("x-redline-cache-key");
  }
  // A Redis round trip later every push for those writes would have arrived.
  redis_->cli("PING");
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(stats().at("invalidations").to_number<int>(), 0);
  const std::string clients = redis_->cli("CLIENT", "LIST");
  EXPECT_EQ(clients.find("name=redline-state"), std::string::npos) << clients;
  EXPECT_NE(clients.find("name=redline-cache"), std::string::npos) << clients;
  // Someone else's write is still heard: the entry leaves L1 and the next request misses.
  ASSERT_EQ(redis_->cli("DEL", "c:" + key), "1");
  for (int i = 0; i < 100 && stats().at("invalidations").to_number<int>() < 1; ++i) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(stats().at("invalidations").to_number<int>(), 1);
  EXPECT_EQ(post(port(), "/v1/chat/completions",
                 R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"three"}]})")
                .header("x-redline-cache"),
            "miss");
}

TEST_F(CacheTest, LosingTheTrackingLinkFlushesL1) {
  // One thread, so every request meets the same L1 shard.
  gw_ = std::make_unique<Gw>(yaml(mock_->port(), standalone(*redis_), "", "", 1));
  auto stats = [&] {
    return json(test::http_request(gw_->gw.admin_port(), "GET", "/admin/cache/stats", "",
                                   {{"authorization", "Bearer admin-secret"}})
                    .body);
  };
  post(port(), "/v1/chat/completions", kChat);
  ASSERT_EQ(post(port(), "/v1/chat/completions", kChat).header("x-redline-cache"), "hit");
  const auto before = stats();
  ASSERT_EQ(before.at("hits_l1").to_number<int>(), 1);  // the hit above came from L1
  // Drop every client connection, the tracking link among them: invalidations sent while it
  // is down would be lost, so L1 must not be trusted afterwards.
  redis_->cli("CLIENT", "KILL", "TYPE", "normal");
  for (int i = 0; i < 100 && stats().at("tracking_resets").to_number<int>() < 1; ++i) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_GE(stats().at("tracking_resets").to_number<int>(), 1);
  // Wait until the cache connection is back (with tracking on again).
  for (int i = 0; i < 100; ++i) {
    const auto clients = redis_->cli("CLIENT", "LIST");
    if (clients.find("name=redline-cache") != std::string::npos &&
        clients.find("flags=t") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  // Still a hit, but from Redis: L1 was flushed.
  EXPECT_EQ(post(port(), "/v1/chat/completions", kChat).header("x-redline-cache"), "hit");
  const auto after = stats();
  EXPECT_EQ(after.at("hits_l1").to_number<int>(), 1);
  EXPECT_EQ(after.at("hits_l2").to_number<int>(), before.at("hits_l2").to_number<int>() + 1);
}

TEST_F(TwoInstanceCacheTest, PurgesReachInstancesWithoutL1) {
  // Generations are cached per thread even without L1; tracking keeps them honest.
  start_both("  l1: {enabled: false}\n", 1);  // one thread: every request meets its cache
  post(gw_->port(), "/v1/chat/completions", kChat);
  ASSERT_EQ(post(gw2_->port(), "/v1/chat/completions", kChat).header("x-redline-cache"), "hit");
  redis_->cli("INCR", "c:g:{a}");
  EXPECT_EQ(eventually(gw2_->port(), kChat, "miss"), "miss");
}

TEST_F(TwoInstanceCacheTest, BurstAcrossInstancesMakesOneProviderCall) {
  mock_ = start_mock(/*latency_ms=*/400);
  start_both();
  std::vector<std::future<test::HttpResponse>> all;
  for (int i = 0; i < 40; ++i) {
    const int p = i % 2 ? gw_->port() : gw2_->port();
    all.push_back(
        std::async(std::launch::async, [p] { return post(p, "/v1/chat/completions", kChat); }));
  }
  std::set<std::string> bodies;
  for (auto& f : all) {
    auto r = f.get();
    ASSERT_EQ(r.status, 200) << r.body;
    bodies.insert(r.body);
  }
  EXPECT_EQ(mock_count(*mock_, "chat"), 1u);
  EXPECT_EQ(bodies.size(), 1u);
}

TEST_F(TwoInstanceCacheTest, RefreshAheadRefreshesOnceAcrossInstances) {
  start_both(
      "  mode: refresh-ahead\n  ttl: 10\n  refresh_ahead: {min_hits: 1, ttl_fraction: 0.95}\n");
  auto first = post(gw_->port(), "/v1/chat/completions", kChat);
  ASSERT_EQ(mock_count(*mock_, "chat"), 1u);
  std::this_thread::sleep_for(700ms);  // under 95% of the TTL left: due for a refresh
  auto h1 = std::async(std::launch::async,
                       [&] { return post(gw_->port(), "/v1/chat/completions", kChat); });
  auto h2 = std::async(std::launch::async,
                       [&] { return post(gw2_->port(), "/v1/chat/completions", kChat); });
  EXPECT_EQ(h1.get().header("x-redline-cache"), "hit");
  EXPECT_EQ(h2.get().header("x-redline-cache"), "hit");
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(mock_count(*mock_, "chat"), 2u);  // one refresh, not one per instance
  // The refreshed answer replaced the old one, on the other instance too: its L1 copy goes
  // when Redis's invalidation arrives, after the refresh's write-behind store (bounded wait).
  auto later = post(gw2_->port(), "/v1/chat/completions", kChat);
  for (int i = 0; i < 100 && later.body == first.body; ++i) {
    std::this_thread::sleep_for(20ms);
    later = post(gw2_->port(), "/v1/chat/completions", kChat);
  }
  EXPECT_EQ(later.header("x-redline-cache"), "hit");
  EXPECT_NE(later.body, first.body);
  EXPECT_EQ(mock_count(*mock_, "chat"), 2u);
}

// --- the coalescing lock in the lookup ----------------------------------------------------

// A counter or gauge in the gateway's /metrics (the registry is process-wide: compare deltas).
double metric(const Gw& g, const std::string& series) {
  const std::string text = test::http_request(g.gw.admin_port(), "GET", "/metrics").body;
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return 0.0;
  return std::stod(text.substr(at + series.size() + 2));
}

// calls=N of one command in INFO commandstats (0 when never called since CONFIG RESETSTAT).
int command_calls(const test::RedisServer& r, const std::string& command) {
  const std::string stats = r.cli("INFO", "commandstats");
  const std::string field = "cmdstat_" + command + ":calls=";
  const auto at = stats.find(field);
  if (at == std::string::npos) return 0;
  return std::stoi(stats.substr(at + field.size()));
}

// Waits (bounded) until c:<key> holds an entry (the envelope's magic), not a lock marker.
bool eventually_entry(const test::RedisServer& r, const std::string& key) {
  for (int i = 0; i < 250; ++i) {
    if (r.cli("GETRANGE", "c:" + key, "0", "2") == "RLC") return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

bool eventually_absent(const test::RedisServer& r, const std::string& key) {
  for (int i = 0; i < 250; ++i) {
    if (r.cli("EXISTS", "c:" + key) == "0") return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

TEST_F(CacheTest, CacheableMissWithALimitCostsOneRoundTripAndOneLookupCommand) {
  gw_ = std::make_unique<Gw>(yaml(mock_->port(), standalone(*redis_), "",
                                  "rate_limits:\n"
                                  "  - {scope: key, algorithm: fixed-window, requests: 1000, "
                                  "window: 60}\n",
                                  /*threads=*/1));
  // Warm up: the namespace generation (cached per thread) and the limit script are loaded.
  const std::string other =
      R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"warm up"}]})";
  ASSERT_EQ(post(port(), "/v1/chat/completions", other).status, 200);
  const std::string trips = "redline_redis_round_trips_total{route=\"chat_completions\"}";
  const std::string requests =
      "redline_requests_total{route=\"chat_completions\",model=\"other\",status=\"200\"}";
  const double requests_before = metric(*gw_, requests);
  const double trips_before = metric(*gw_, trips);
  ASSERT_EQ(redis_->cli("CONFIG", "RESETSTAT"), "OK");

  auto miss = post(port(), "/v1/chat/completions", kChat);
  ASSERT_EQ(miss.status, 200) << miss.body;
  ASSERT_EQ(miss.header("x-redline-cache"), "miss");
  const std::string key = miss.header("x-redline-cache-key");
  // Metrics are recorded just after the answer: wait for this request's.
  for (int i = 0; i < 250 && metric(*gw_, requests) < requests_before + 1; ++i) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(metric(*gw_, requests), requests_before + 1);
  EXPECT_EQ(metric(*gw_, trips) - trips_before, 1.0);  // lookup + lock + decision, one trip
  // What Redis saw for the cache: the lookup that took the lock, then the store over it.
  ASSERT_TRUE(eventually_entry(*redis_, key));
  EXPECT_EQ(command_calls(*redis_, "set"), 2) << redis_->cli("INFO", "commandstats");
  EXPECT_EQ(command_calls(*redis_, "get"), 0) << redis_->cli("INFO", "commandstats");
  EXPECT_EQ(command_calls(*redis_, "exists"), 0);
  EXPECT_EQ(command_calls(*redis_, "del"), 0);  // nothing to unlock
  EXPECT_EQ(redis_->cli("KEYS", "cl:*"), "");
}

TEST_F(CacheTest, AnErrorAnswerLeavesNoLockBehind) {
  mock_ = start_mock(0, -1, /*fail_first=*/1, /*fail_status=*/500);
  start_gw();
  auto failed = post(port(), "/v1/chat/completions", kChat);
  ASSERT_EQ(failed.status, 500);
  const std::string key = failed.header("x-redline-cache-key");
  ASSERT_EQ(key.size(), 32u);
  EXPECT_TRUE(eventually_absent(*redis_, key));
  EXPECT_EQ(redis_->cli("DBSIZE"), "0");
  // The next request takes the lock again and stores over it.
  auto ok = post(port(), "/v1/chat/completions", kChat);
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.header("x-redline-cache"), "miss");
  EXPECT_TRUE(eventually_entry(*redis_, key));
}

TEST_F(CacheTest, ADeadInstancesLockIsWaitedOutThenTheProviderIsCalled) {
  start_gw("  coalesce: {wait: 20s}\n");
  auto first = post(port(), "/v1/chat/completions", kChat);
  ASSERT_EQ(first.status, 200);
  const std::string key = first.header("x-redline-cache-key");
  ASSERT_TRUE(eventually_entry(*redis_, key));
  // Another instance took the lock and died: its marker expires after 1.5 s.
  ASSERT_EQ(redis_->cli("DEL", "c:" + key), "1");
  ASSERT_TRUE(eventually_absent(*redis_, key));
  ASSERT_EQ(redis_->cli("SET", "c:" + key, "RL~lock:dead-instance", "PX", "1500"), "OK");
  // Both threads' L1 may hold the first answer until the DEL's invalidation arrives.
  std::this_thread::sleep_for(200ms);
  const auto t0 = std::chrono::steady_clock::now();
  auto waited = post(port(), "/v1/chat/completions", kChat);
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(waited.status, 200) << waited.body;
  EXPECT_EQ(waited.header("x-redline-cache"), "miss");
  EXPECT_EQ(mock_count(*mock_, "chat"), 2u);  // called once the marker was gone
  EXPECT_GE(took, 1000ms);                    // it did wait for the marker ...
  EXPECT_LT(took, 15s);                       // ... not for coalesce.wait
  EXPECT_TRUE(eventually_entry(*redis_, key));
}

TEST_F(CacheTest, ALockThatOutlivesCoalesceWaitIsNotWaitedForLonger) {
  start_gw("  coalesce: {wait: 300ms}\n");
  auto first = post(port(), "/v1/chat/completions", kChat);
  const std::string key = first.header("x-redline-cache-key");
  ASSERT_TRUE(eventually_entry(*redis_, key));
  ASSERT_EQ(redis_->cli("DEL", "c:" + key), "1");
  ASSERT_EQ(redis_->cli("SET", "c:" + key, "RL~lock:stuck-instance", "PX", "60000"), "OK");
  std::this_thread::sleep_for(200ms);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = post(port(), "/v1/chat/completions", kChat);
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-redline-cache"), "miss");
  EXPECT_EQ(mock_count(*mock_, "chat"), 2u);
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 30s);  // far below the marker's 60 s
  // The answer is stored over the stuck marker.
  EXPECT_TRUE(eventually_entry(*redis_, key));
}

TEST_F(CacheTest, AFollowerHoldingTheLockGivesItUpToTheWaitingLeader) {
  // A leader waits on another instance's marker; that marker goes, and a second request of
  // this instance takes the lock in its lookup, then joins the waiting leader's call. It
  // must give the lock up, or the leader would wait the whole coalesce.wait (20 s).
  mock_ = start_mock(/*latency_ms=*/300);
  start_gw("  coalesce: {wait: 20s}\n");
  auto first = post(port(), "/v1/chat/completions", kChat);
  const std::string key = first.header("x-redline-cache-key");
  ASSERT_TRUE(eventually_entry(*redis_, key));
  ASSERT_EQ(redis_->cli("DEL", "c:" + key), "1");
  ASSERT_EQ(redis_->cli("SET", "c:" + key, "RL~lock:other-instance", "PX", "60000"), "OK");
  std::this_thread::sleep_for(200ms);
  const auto t0 = std::chrono::steady_clock::now();
  auto leader = std::async(std::launch::async,
                           [this] { return post(port(), "/v1/chat/completions", kChat); });
  // The leader polls every 100 ms by now; the other instance gives up, and at once (before
  // the leader's next poll, most of the time) a second request takes the lock.
  std::this_thread::sleep_for(700ms);
  ASSERT_EQ(redis_->cli("DEL", "c:" + key), "1");
  auto follower = post(port(), "/v1/chat/completions", kChat);
  auto led = leader.get();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(led.status, 200) << led.body;
  EXPECT_EQ(follower.status, 200) << follower.body;
  EXPECT_EQ(follower.header("x-redline-cache"), "coalesced");
  EXPECT_EQ(led.body, follower.body);
  EXPECT_EQ(mock_count(*mock_, "chat"), 2u);
  EXPECT_LT(took, 10s);
  EXPECT_TRUE(eventually_entry(*redis_, key));
}

// --- cluster -------------------------------------------------------------------------------

TEST(ClusterCacheTest, EntriesSpreadOverEveryMasterAndHit) {
  test::RedisCluster cluster;
  auto mock = start_mock();
  const std::string block = cluster_block(cluster);
  Gw gw(yaml(mock->port(), block, ""));
  std::vector<std::string> keys;
  for (int i = 0; i < 30; ++i) {
    const std::string body = R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"c)" +
                             std::to_string(i) + R"("}]})";
    auto r = post(gw.port(), "/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-redline-cache"), "miss");
    keys.push_back(r.header("x-redline-cache-key"));
    EXPECT_EQ(post(gw.port(), "/v1/chat/completions", body).header("x-redline-cache"), "hit");
  }
  std::set<size_t> owners;
  for (const auto& k : keys) {
    auto owner = cluster.master_for_slot(redis::key_slot("c:" + k));
    ASSERT_TRUE(owner.has_value());
    owners.insert(*owner);
  }
  EXPECT_EQ(owners.size(), 3u);
  int stored = 0;
  for (size_t m : cluster.masters()) stored += std::stoi(cluster.node(m).cli("DBSIZE"));
  EXPECT_GE(stored, 30);  // entries (and the generation keys)
}

TEST(ClusterCacheTest, ReplicaReadsLockOnTheMasterInASecondRoundTrip) {
  // With read_from_replicas the lookup GET goes to a replica, which cannot take the lock: a
  // miss then sends SET ... NX GET to the master (two counted round trips, documented).
  test::RedisCluster cluster;
  auto mock = start_mock();
  const std::string block = cluster_block(cluster, "read_from_replicas: true");
  Gw gw(yaml(mock->port(), block, "", "", /*threads=*/1));
  const std::string trips = "redline_redis_round_trips_total{route=\"chat_completions\"}";
  const std::string requests =
      "redline_requests_total{route=\"chat_completions\",model=\"other\",status=\"200\"}";
  // Warm up the namespace generation.
  ASSERT_EQ(post(gw.port(), "/v1/chat/completions", kChat).status, 200);
  for (int i = 0; i < 3; ++i) {
    const std::string body = R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"r)" +
                             std::to_string(i) + R"("}]})";
    const double requests_before = metric(gw, requests);
    const double trips_before = metric(gw, trips);
    auto r = post(gw.port(), "/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-redline-cache"), "miss");
    for (int j = 0; j < 250 && metric(gw, requests) < requests_before + 1; ++j) {
      std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(metric(gw, trips) - trips_before, 2.0);  // GET on a replica, SET on the master
    // Stored over the marker on the master.
    const std::string key = r.header("x-redline-cache-key");
    auto owner = cluster.master_for_slot(redis::key_slot("c:" + key));
    ASSERT_TRUE(owner.has_value());
    EXPECT_TRUE(eventually_entry(cluster.node(*owner), key));
  }
  EXPECT_EQ(mock_count(*mock, "chat"), 4u);
}

}  // namespace
}  // namespace redline
