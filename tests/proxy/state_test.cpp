// End-to-end tests of the state the gateway keeps in Redis besides the cache and the limits:
// virtual keys issued through the admin API (lifecycle across two instances, revocation seen
// within a second, Redis down), budgets and spend (refusal, accounting with the mock's usage
// numbers, cache savings), conversation sessions (history sent upstream, streamed replies
// appended, trimming, TTL, tenant isolation, the client's own sessions API), and the admin
// API's authentication, validation errors and redacted config. Real Gateways in-process,
// the mock provider, real redis-server processes.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <thread>

#include "mock/mock_server.h"
#include "support/gateway_harness.h"
#include "support/http_client.h"
#include "support/process.h"
#include "support/redis_server.h"

namespace redline {
namespace {

using namespace std::chrono_literals;
using test::Headers;
namespace json = boost::json;

constexpr const char* kAdminToken = "admin-secret";

std::string yaml(int mock_port, const test::RedisServer& redis, const std::string& extra = "",
                 bool cache = false) {
  const std::string url = "http://127.0.0.1:" + std::to_string(mock_port);
  return "listen: \"127.0.0.1:0\"\n"
         "threads: 2\n"
         "admin: {listen: \"127.0.0.1:0\", token: " +
         std::string(kAdminToken) +
         "}\n"
         "logging: {access_log: false, level: warn}\n"
         "redis: {urls: [\"" +
         redis.url() +
         "\"]}\n"
         "providers:\n"
         "  - {name: openai, type: openai, base_url: \"" +
         url +
         "/v1\", api_key: sk-provider-secret, retry: {max_attempts: 1}}\n"
         "  - {name: claude, type: anthropic, base_url: \"" +
         url +
         "\", api_key: sk-a}\n"
         "models:\n"
         "  claude-3-5-haiku-latest: claude\n"
         "keys:\n"
         "  - {key: sk-static-a, tenant: a}\n"
         "  - {key: sk-static-b, tenant: b}\n"
         "cache: {enabled: " +
         std::string(cache ? "true" : "false") + ", lookup_timeout: 200ms, store_timeout: 2s}\n" +
         extra;
}

using Gw = test::TestGateway;

Headers bearer(const std::string& key, Headers more = {}) {
  more.emplace_back("authorization", "Bearer " + key);
  return more;
}

test::HttpResponse admin(const Gw& gw, const std::string& method, const std::string& target,
                         const std::string& body = "", const std::string& token = kAdminToken) {
  Headers h;
  if (!token.empty()) h.emplace_back("authorization", "Bearer " + token);
  if (!body.empty()) h.emplace_back("content-type", "application/json");
  return test::http_request(gw.admin(), method, target, body, h);
}

test::HttpResponse chat(const Gw& gw, const std::string& key, const std::string& body,
                        Headers more = {}) {
  more.emplace_back("content-type", "application/json");
  return test::http_request(gw.port(), "POST", "/v1/chat/completions", body,
                            bearer(key, std::move(more)));
}

std::string chat_body(const std::string& text, bool stream = false) {
  json::object o{{"model", "gpt-4o-mini"},
                 {"messages", json::array{json::object{{"role", "user"}, {"content", text}}}}};
  if (stream) o["stream"] = true;
  return json::serialize(o);
}

json::value parse(const std::string& s) {
  return json::parse(s);
}

// The messages the mock provider received in its latest model request.
json::array mock_messages(const mock::MockServer& m) {
  auto r = test::http_request(m.port(), "GET", "/mock/last-request");
  auto body = parse(r.body).at("body").as_string();
  return parse(std::string(body)).at("messages").as_array();
}

std::unique_ptr<mock::MockServer> start_mock() {
  auto m = std::make_unique<mock::MockServer>(mock::MockOptions{});
  m->start();
  return m;
}

class StateTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { redis_ = new test::RedisServer(); }
  static void TearDownTestSuite() {
    delete redis_;
    redis_ = nullptr;
  }
  void SetUp() override {
    if (!redis_->running()) redis_->restart();
    redis_->cli("FLUSHALL");
    mock_ = start_mock();
  }
  static test::RedisServer* redis_;
  std::unique_ptr<mock::MockServer> mock_;
};
test::RedisServer* StateTest::redis_ = nullptr;

// --- virtual keys ----------------------------------------------------------------------------

TEST_F(StateTest, KeyLifecycleAcrossTwoInstances) {
  Gw one(yaml(mock_->port(), *redis_));
  Gw two(yaml(mock_->port(), *redis_));
  auto created = admin(one, "POST", "/admin/keys",
                       R"({"name":"ci","tenant":"acme","models":["gpt-4o-mini"],)"
                       R"("metadata":{"team":"search"}})");
  ASSERT_EQ(created.status, 201) << created.body;
  const auto key = std::string(parse(created.body).at("key").as_string());
  const auto id = std::string(parse(created.body).at("id").as_string());
  EXPECT_TRUE(key.starts_with("sk-redline-")) << key;
  // Only the hash is stored: no value in Redis contains the plaintext.
  const std::string dump = redis_->cli("--no-raw", "EVAL",
                                       "local out = {} for _, k in ipairs(redis.call('KEYS','k:*')) do "
                                       "if redis.call('TYPE', k).ok == 'string' then "
                                       "table.insert(out, redis.call('GET', k)) end end "
                                       "return table.concat(out, ' ')",
                                       "0");
  EXPECT_EQ(dump.find(key), std::string::npos);
  EXPECT_NE(dump.find("acme"), std::string::npos) << dump;  // the record is there

  // Used on the other instance; the allowed-model list applies.
  EXPECT_EQ(chat(two, key, chat_body("hi")).status, 200);
  EXPECT_EQ(chat(one, key, chat_body("hi")).status, 200);
  auto other_model = chat(two, key, R"({"model":"gpt-4o","messages":[]})");
  EXPECT_EQ(other_model.status, 403) << other_model.body;

  // Listed and shown without the secret.
  auto listed = admin(two, "GET", "/admin/keys?tenant=acme");
  ASSERT_EQ(listed.status, 200);
  ASSERT_EQ(parse(listed.body).at("data").as_array().size(), 1u);
  EXPECT_EQ(listed.body.find(key), std::string::npos);
  auto shown = admin(one, "GET", "/admin/keys/" + id);
  ASSERT_EQ(shown.status, 200);
  EXPECT_EQ(parse(shown.body).at("status").as_string(), "active");
  EXPECT_EQ(parse(shown.body).at("metadata").at("team").as_string(), "search");
  EXPECT_EQ(admin(one, "GET", "/admin/keys/key_0000000000000000").status, 404);

  // Revoked on one instance: refused on both within a second.
  auto revoked = admin(two, "DELETE", "/admin/keys/" + id);
  ASSERT_EQ(revoked.status, 200) << revoked.body;
  const auto revoked_at = std::chrono::steady_clock::now();
  bool refused_one = false, refused_two = false;
  while (std::chrono::steady_clock::now() - revoked_at < 1s && !(refused_one && refused_two)) {
    refused_one = refused_one || chat(one, key, chat_body("hi")).status == 401;
    refused_two = refused_two || chat(two, key, chat_body("hi")).status == 401;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(refused_one);
  EXPECT_TRUE(refused_two);
  auto after = chat(one, key, chat_body("hi"));
  EXPECT_EQ(after.status, 401);
  EXPECT_NE(after.body.find("revoked"), std::string::npos) << after.body;
}

TEST_F(StateTest, RotateKeepsTheOldKeyForItsGrace) {
  Gw gw(yaml(mock_->port(), *redis_));
  auto created = admin(gw, "POST", "/admin/keys", R"({"tenant":"acme"})");
  ASSERT_EQ(created.status, 201) << created.body;
  const auto old_key = std::string(parse(created.body).at("key").as_string());
  const auto id = std::string(parse(created.body).at("id").as_string());
  auto rotated = admin(gw, "POST", "/admin/keys/" + id + "/rotate", R"({"grace_seconds":60})");
  ASSERT_EQ(rotated.status, 200) << rotated.body;
  const auto new_key = std::string(parse(rotated.body).at("key").as_string());
  EXPECT_NE(new_key, old_key);
  EXPECT_EQ(parse(rotated.body).at("tenant").as_string(), "acme");
  EXPECT_EQ(chat(gw, new_key, chat_body("hi")).status, 200);
  EXPECT_EQ(chat(gw, old_key, chat_body("hi")).status, 200);  // within its grace
  // Rotating the new one without grace ends it at once.
  const auto new_id = std::string(parse(rotated.body).at("id").as_string());
  auto again = admin(gw, "POST", "/admin/keys/" + new_id + "/rotate", "{}");
  ASSERT_EQ(again.status, 200) << again.body;
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(chat(gw, new_key, chat_body("hi")).status, 401);
}

TEST_F(StateTest, RedisDownKnownKeyServedUnknownKeyIs503) {
  Gw gw(yaml(mock_->port(), *redis_,
             "key_store: {grace: 30s, lookup_timeout: 100ms}\nsessions: {enabled: false}\n"));
  auto created = admin(gw, "POST", "/admin/keys", R"({"tenant":"acme"})");
  ASSERT_EQ(created.status, 201) << created.body;
  const auto key = std::string(parse(created.body).at("key").as_string());
  ASSERT_EQ(chat(gw, key, chat_body("hi")).status, 200);  // now cached in-process
  redis_->stop();
  auto known = chat(gw, key, chat_body("hi"));
  EXPECT_EQ(known.status, 200) << known.body;
  auto unknown = chat(gw, "sk-redline-never-issued", chat_body("hi"));
  EXPECT_EQ(unknown.status, 503) << unknown.body;
  EXPECT_NE(unknown.body.find("key_store_unavailable"), std::string::npos) << unknown.body;
  // Keys of the config never need Redis.
  EXPECT_EQ(chat(gw, "sk-static-a", chat_body("hi")).status, 200);
  redis_->restart();
}

TEST_F(StateTest, UnknownKeyIs401WhenRedisAnswers) {
  Gw gw(yaml(mock_->port(), *redis_));
  auto r = chat(gw, "sk-redline-never-issued", chat_body("hi"));
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.body.find("invalid_api_key"), std::string::npos);
}

// --- budgets and spend -----------------------------------------------------------------------

// Spend of `r` at the test's prices ($1 / $2 per million input / output tokens) in dollars.
double cost_of(const test::HttpResponse& r) {
  const auto body = parse(r.body);
  const auto& usage = body.at("usage");
  return (usage.at("prompt_tokens").to_number<double>() * 1.0 +
          usage.at("completion_tokens").to_number<double>() * 2.0) /
         1e6;
}

// Spend is recorded right after the answer went out: wait (bounded) until `query` reports
// `requests` answers, and return that report.
json::value spend_after(const Gw& gw, const std::string& query, int64_t requests) {
  json::value report;
  const auto until = std::chrono::steady_clock::now() + 5s;
  do {
    auto r = admin(gw, "GET", "/admin/spend?" + query);
    if (r.status == 200) {
      report = parse(r.body);
      if (report.at("requests").to_number<int64_t>() >= requests) break;
    }
    std::this_thread::sleep_for(5ms);
  } while (std::chrono::steady_clock::now() < until);
  return report;
}

TEST_F(StateTest, BudgetRefusesOnceSpentAndSpendIsReported) {
  Gw gw(yaml(mock_->port(), *redis_, "prices:\n  gpt-4o-mini: {input: 1.0, output: 2.0}\n"));
  // A budget smaller than two answers: the first passes, the second finds it spent.
  auto created = admin(gw, "POST", "/admin/keys",
                       R"({"tenant":"acme","budget":{"limit":0.00005,"period":"day"}})");
  ASSERT_EQ(created.status, 201) << created.body;
  const auto key = std::string(parse(created.body).at("key").as_string());
  const auto id = std::string(parse(created.body).at("id").as_string());
  auto first = chat(gw, key, chat_body("a question long enough to cost something, surely"));
  ASSERT_EQ(first.status, 200) << first.body;
  const double cost = cost_of(first);
  ASSERT_GT(cost, 0.00005) << "the test needs the first answer to exhaust the budget";
  spend_after(gw, "key=" + id + "&period=day", 1);  // recorded just after the answer
  auto refused = chat(gw, key, chat_body("again"));
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_EQ(parse(refused.body).at("error").at("code").as_string(), "budget_exceeded");
  EXPECT_FALSE(refused.header("retry-after").empty());

  auto spend = admin(gw, "GET", "/admin/spend?key=" + id + "&period=day");
  ASSERT_EQ(spend.status, 200) << spend.body;
  const auto s = parse(spend.body);
  EXPECT_NEAR(s.at("spent_usd").to_number<double>(), cost, 1e-6) << spend.body;
  EXPECT_NEAR(s.at("limit_usd").to_number<double>(), 0.00005, 1e-9);
  // The tenant's monthly spend holds the same answer.
  auto tenant = admin(gw, "GET", "/admin/spend?tenant=acme");
  ASSERT_EQ(tenant.status, 200) << tenant.body;
  EXPECT_NEAR(parse(tenant.body).at("spent_usd").to_number<double>(), cost, 1e-6);
  // Another key of the same tenant is not limited by this key's budget.
  EXPECT_EQ(chat(gw, "sk-static-a", chat_body("again")).status, 200);
}

// A cache hit's usage is parsed from the cached answer only when something reads it. The
// access log does: each hit's line carries the tokens of its miss's line, for a plain answer
// and for a stream that asked for usage (its usage chunk is in the cached events).
TEST_F(StateTest, AccessLogLinesOfCacheHitsCarryTheCachedAnswersTokens) {
  test::TempDir dir;
  const auto log_path = dir.path() / "access.log";
  std::string cfg = yaml(mock_->port(), *redis_, "", /*cache=*/true);
  const std::string off = "access_log: false";
  cfg.replace(cfg.find(off), off.size(),
              "access_log: true, access_log_path: \"" + log_path.string() + "\"");
  Gw gw(cfg);
  const std::string plain = chat_body("count my tokens");
  json::object streamed = parse(chat_body("count my streamed tokens", true)).as_object();
  streamed["stream_options"] = json::object{{"include_usage", true}};
  const std::string stream = json::serialize(streamed);
  for (const std::string& body : {plain, plain, stream, stream}) {
    auto r = chat(gw, "sk-static-a", body);
    ASSERT_EQ(r.status, 200) << r.body;
  }
  // Each line is written just after its answer went out: wait for all four.
  std::vector<json::object> lines;
  const auto until = std::chrono::steady_clock::now() + 5s;
  do {
    lines.clear();
    std::ifstream in(log_path);
    for (std::string line; std::getline(in, line);) lines.push_back(parse(line).as_object());
  } while (lines.size() < 4 && std::chrono::steady_clock::now() < until);
  ASSERT_EQ(lines.size(), 4u);
  // A miss's line may land after its hit's (written once each request's last phase ends):
  // pair them by the stream flag, not by order.
  for (const bool streamed : {false, true}) {
    const json::object* miss = nullptr;
    const json::object* hit = nullptr;
    for (const auto& l : lines) {
      if (l.at("stream").as_bool() != streamed) continue;
      (l.at("cache").as_string() == "hit" ? hit : miss) = &l;
    }
    ASSERT_TRUE(miss && hit) << "stream " << streamed;
    EXPECT_EQ(miss->at("cache").as_string(), "miss") << json::serialize(*miss);
    ASSERT_TRUE(miss->contains("tokens")) << json::serialize(*miss);
    ASSERT_TRUE(hit->contains("tokens")) << json::serialize(*hit);
    EXPECT_GT(miss->at("tokens").as_int64(), 0);
    EXPECT_EQ(hit->at("tokens").as_int64(), miss->at("tokens").as_int64());
  }
}

TEST_F(StateTest, TenantBudgetAndCacheSavings) {
  Gw gw(yaml(mock_->port(), *redis_,
             "prices:\n  gpt-4o-mini: {input: 1.0, output: 2.0}\n"
             "budgets:\n  tenants:\n    b: {limit: 1000, period: month}\n",
             /*cache=*/true));
  // The metrics registry is process-wide: compare against the values before this traffic.
  auto value_in = [](const std::string& text, const std::string& series) {
    auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) return 0.0;
    return std::stod(text.substr(at + series.size() + 2));
  };
  const std::string trips = "redline_redis_round_trips_total{route=\"chat_completions\"}";
  const double trips_before =
      value_in(test::http_request(gw.admin(), "GET", "/metrics").body, trips);
  const std::string body = chat_body("cache me");
  auto miss = chat(gw, "sk-static-b", body);
  ASSERT_EQ(miss.status, 200);
  ASSERT_EQ(miss.header("x-redline-cache"), "miss");
  auto hit = chat(gw, "sk-static-b", body);
  ASSERT_EQ(hit.header("x-redline-cache"), "hit");
  const double cost = cost_of(miss);
  const auto s = spend_after(gw, "tenant=b", 2);  // the miss and the hit
  EXPECT_NEAR(s.at("spent_usd").to_number<double>(), cost, 1e-6) << json::serialize(s);
  EXPECT_NEAR(s.at("saved_usd").to_number<double>(), cost, 1e-6) << json::serialize(s);
  EXPECT_NEAR(s.at("limit_usd").to_number<double>(), 1000, 1e-9);
  // Metrics are recorded when a request's last phase ends, just after its answer (the saving
  // once the spend record's Redis write returns): wait for both requests' and the saving.
  const std::string saved = "redline_cache_saved_usd_total{model=\"gpt-4o-mini\"}";
  test::HttpResponse metrics;
  const auto until = std::chrono::steady_clock::now() + 5s;
  do {
    metrics = test::http_request(gw.admin(), "GET", "/metrics");
  } while ((value_in(metrics.body, trips) - trips_before < 3.0 ||
            metrics.body.find(saved) == std::string::npos) &&
           std::chrono::steady_clock::now() < until);
  EXPECT_NE(metrics.body.find(saved), std::string::npos) << metrics.body;
  // Issue 7 families that move with this traffic: the L1 holds the entry, the requests waited
  // for Redis (budget check, cache lookup), the Redis clients sent commands.
  auto value_of = [&](const std::string& series) { return value_in(metrics.body, series); };
  EXPECT_GE(value_of("redline_cache_l1_entries"), 1.0) << metrics.body;
  EXPECT_GT(value_of("redline_cache_l1_bytes"), 0.0);
  // miss: budget check + Redis lookup; hit: budget check, plus a Redis lookup when the hit
  // lands on the other thread (whose L1 shard has not seen the entry).
  EXPECT_GE(value_of(trips) - trips_before, 3.0);
  EXPECT_LE(value_of(trips) - trips_before, 4.0);
  EXPECT_GT(value_of("redline_redis_commands_total"), 0.0);
  EXPECT_GE(value_of("redline_redis_connections"), 1.0);
  // Over the tenant's budget: every key of the tenant is refused.
  redis_->cli("EVAL",
              "for _, k in ipairs(redis.call('KEYS','sp:t:*')) do "
              "redis.call('HINCRBY', k, 'spent', 2000000000) end return 1",
              "0");
  auto refused = chat(gw, "sk-static-b", chat_body("more"));
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_NE(refused.body.find("tenant"), std::string::npos) << refused.body;
  EXPECT_EQ(chat(gw, "sk-static-a", chat_body("more")).status, 200);  // other tenant
}

// --- sessions --------------------------------------------------------------------------------

TEST_F(StateTest, SessionHistoryIsSentUpstreamAndStreamedRepliesAppended) {
  Gw gw(yaml(mock_->port(), *redis_));
  const Headers session{{"x-redline-session", "conv-1"}};
  auto first = chat(gw, "sk-static-a", chat_body("first question"), session);
  ASSERT_EQ(first.status, 200) << first.body;
  const auto first_reply =
      parse(first.body).at("choices").at(0).at("message").at("content").as_string();
  EXPECT_EQ(mock_messages(*mock_).size(), 1u);

  // Second turn, streamed: the provider sees the whole conversation.
  auto second = chat(gw, "sk-static-a", chat_body("second question", true), session);
  ASSERT_EQ(second.status, 200) << second.body;
  auto seen = mock_messages(*mock_);
  ASSERT_EQ(seen.size(), 3u) << json::serialize(seen);
  EXPECT_EQ(seen[0].at("content").as_string(), "first question");
  EXPECT_EQ(seen[1].at("role").as_string(), "assistant");
  EXPECT_EQ(seen[1].at("content").as_string(), first_reply);
  EXPECT_EQ(seen[2].at("content").as_string(), "second question");

  // The streamed reply was assembled and appended: the third turn carries it.
  ASSERT_EQ(chat(gw, "sk-static-a", chat_body("third"), session).status, 200);
  seen = mock_messages(*mock_);
  ASSERT_EQ(seen.size(), 5u) << json::serialize(seen);
  EXPECT_EQ(seen[3].at("role").as_string(), "assistant");
  EXPECT_FALSE(seen[3].at("content").as_string().empty());

  // The client reads its session; another tenant with the same id sees nothing.
  auto mine = test::http_request(gw.port(), "GET", "/v1/sessions/conv-1", "", bearer("sk-static-a"));
  ASSERT_EQ(mine.status, 200) << mine.body;
  EXPECT_EQ(parse(mine.body).at("message_count").to_number<int>(), 6);
  auto theirs = test::http_request(gw.port(), "GET", "/v1/sessions/conv-1", "", bearer("sk-static-b"));
  EXPECT_EQ(theirs.status, 404) << theirs.body;
  ASSERT_EQ(chat(gw, "sk-static-b", chat_body("tenant b here"), session).status, 200);
  EXPECT_EQ(mock_messages(*mock_).size(), 1u);  // b's own, empty history

  // Through the admin API too, then deleted by the client.
  auto via_admin = admin(gw, "GET", "/admin/sessions/a/conv-1");
  ASSERT_EQ(via_admin.status, 200) << via_admin.body;
  EXPECT_EQ(parse(via_admin.body).at("message_count").to_number<int>(), 6);
  auto listed = admin(gw, "GET", "/admin/sessions?tenant=a");
  ASSERT_EQ(listed.status, 200);
  EXPECT_EQ(parse(listed.body).at("data").as_array().size(), 1u);
  auto deleted = test::http_request(gw.port(), "DELETE", "/v1/sessions/conv-1", "", bearer("sk-static-a"));
  EXPECT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_EQ(test::http_request(gw.port(), "GET", "/v1/sessions/conv-1", "", bearer("sk-static-a")).status,
            404);
}

TEST_F(StateTest, SessionsTrimKeepTheSystemPromptAndExpire) {
  Gw gw(yaml(mock_->port(), *redis_, "sessions: {max_messages: 4, ttl: 1}\n"));
  const Headers session{{"x-redline-session", "short"}};
  const std::string with_system =
      R"({"model":"gpt-4o-mini","messages":[{"role":"system","content":"be brief"},)"
      R"({"role":"user","content":"q1"}]})";
  ASSERT_EQ(chat(gw, "sk-static-a", with_system, session).status, 200);
  for (const char* q : {"q2", "q3"}) {
    ASSERT_EQ(chat(gw, "sk-static-a", chat_body(q), session).status, 200);
  }
  auto stored = test::http_request(gw.port(), "GET", "/v1/sessions/short", "", bearer("sk-static-a"));
  ASSERT_EQ(stored.status, 200) << stored.body;
  const auto messages = parse(stored.body).at("messages").as_array();
  ASSERT_LE(messages.size(), 4u) << stored.body;
  EXPECT_EQ(messages[0].at("role").as_string(), "system") << stored.body;
  EXPECT_EQ(messages.back().at("role").as_string(), "assistant");
  // The provider got the trimmed history with the system prompt first.
  ASSERT_EQ(chat(gw, "sk-static-a", chat_body("q4"), session).status, 200);
  auto seen = mock_messages(*mock_);
  EXPECT_EQ(seen[0].at("role").as_string(), "system");
  EXPECT_LE(seen.size(), 5u);
  // Sliding TTL of one second: gone after it.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(test::http_request(gw.port(), "GET", "/v1/sessions/short", "", bearer("sk-static-a")).status,
            404);
}

TEST_F(StateTest, SessionTurnsServedFromTheCacheAndThroughMessagesAreAppended) {
  Gw gw(yaml(mock_->port(), *redis_, "", /*cache=*/true));
  // Two sessions open with the same question: the second is answered from the cache, and its
  // session still records the reply.
  const std::string first = chat_body("same opening question");
  auto a = chat(gw, "sk-static-a", first, {{"x-redline-session", "s-one"}});
  ASSERT_EQ(a.status, 200);
  auto b = chat(gw, "sk-static-a", first, {{"x-redline-session", "s-two"}});
  ASSERT_EQ(b.status, 200);
  EXPECT_EQ(b.header("x-redline-cache"), "hit");
  auto two = test::http_request(gw.port(), "GET", "/v1/sessions/s-two", "", bearer("sk-static-a"));
  ASSERT_EQ(two.status, 200) << two.body;
  const auto stored = parse(two.body);
  ASSERT_EQ(stored.at("message_count").to_number<int>(), 2);
  EXPECT_EQ(stored.at("messages").at(1).at("content"),
            parse(b.body).at("choices").at(0).at("message").at("content"));

  // Anthropic Messages, streamed, with a system prompt kept outside the messages.
  const Headers session{{"x-redline-session", "claude-1"}, {"content-type", "application/json"}};
  const std::string turn1 =
      R"({"model":"claude-3-5-haiku-latest","max_tokens":64,"system":"be brief","stream":true,)"
      R"("messages":[{"role":"user","content":"hello claude"}]})";
  auto m1 = test::http_request(gw.port(), "POST", "/v1/messages", turn1, bearer("sk-static-a", session));
  ASSERT_EQ(m1.status, 200) << m1.body;
  const std::string turn2 =
      R"({"model":"claude-3-5-haiku-latest","max_tokens":64,)"
      R"("messages":[{"role":"user","content":"and again"}]})";
  auto m2 = test::http_request(gw.port(), "POST", "/v1/messages", turn2, bearer("sk-static-a", session));
  ASSERT_EQ(m2.status, 200) << m2.body;
  auto r = test::http_request(mock_->port(), "GET", "/mock/last-request");
  const auto sent = parse(std::string(parse(r.body).at("body").as_string()));
  EXPECT_EQ(sent.at("system").as_string(), "be brief");
  const auto& messages = sent.at("messages").as_array();
  ASSERT_EQ(messages.size(), 3u) << json::serialize(sent);
  EXPECT_EQ(messages[1].at("role").as_string(), "assistant");
  EXPECT_TRUE(messages[1].at("content").is_array());  // the assembled content blocks
  // The same id through the other API is refused, not mixed.
  auto mixed = chat(gw, "sk-static-a", chat_body("now as chat"), {{"x-redline-session", "claude-1"}});
  EXPECT_EQ(mixed.status, 400) << mixed.body;
  EXPECT_NE(mixed.body.find("session_api_mismatch"), std::string::npos) << mixed.body;

  auto metrics = test::http_request(gw.admin(), "GET", "/metrics");
  EXPECT_NE(metrics.body.find("redline_session_operations_total{operation=\"append\",outcome=\"ok\"}"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("redline_keystore_tracking 1"), std::string::npos);
}

// Each turn is stored before the end of its answer reaches the client, so a client that sends
// the next turn on a fresh connection the moment the answer ends always sees it: through the
// shared-call path (cache on) and the plain path (cache off), streamed and not.
TEST_F(StateTest, EveryTurnSeesThePreviousOneEvenOnANewConnection) {
  for (bool cache : {true, false}) {
    Gw gw(yaml(mock_->port(), *redis_, "", cache));
    const std::string id = cache ? "fresh-cached" : "fresh-plain";
    for (int turn = 0; turn < 8; ++turn) {
      auto r = chat(gw, "sk-static-a", chat_body("turn " + std::to_string(turn), turn % 2 == 1),
                    {{"x-redline-session", id}});
      ASSERT_EQ(r.status, 200) << r.body;
      EXPECT_EQ(mock_messages(*mock_).size(), static_cast<std::size_t>(2 * turn + 1))
          << "cache " << cache << ", turn " << turn;
    }
  }
}

TEST_F(StateTest, SessionBadInputIs400) {
  Gw gw(yaml(mock_->port(), *redis_));
  auto bad_id = chat(gw, "sk-static-a", chat_body("x"), {{"x-redline-session", "has space"}});
  EXPECT_EQ(bad_id.status, 400);
  EXPECT_NE(bad_id.body.find("invalid_session_id"), std::string::npos);
  auto embeddings = test::http_request(
      gw.port(), "POST", "/v1/embeddings", R"({"model":"text-embedding-3-small","input":"x"})",
      bearer("sk-static-a", {{"x-redline-session", "s"}}));
  EXPECT_EQ(embeddings.status, 400);
  EXPECT_NE(embeddings.body.find("session_unsupported"), std::string::npos);
}

// --- admin API -------------------------------------------------------------------------------

TEST_F(StateTest, AdminApiNeedsItsTokenAndNamesBadFields) {
  Gw gw(yaml(mock_->port(), *redis_));
  EXPECT_EQ(admin(gw, "GET", "/admin/keys", "", "").status, 401);
  EXPECT_EQ(admin(gw, "GET", "/admin/keys", "", "wrong").status, 401);
  EXPECT_EQ(admin(gw, "GET", "/admin/keys").status, 200);
  EXPECT_EQ(admin(gw, "POST", "/admin/keys", R"({"tenant":"x"})", "wrong").status, 401);

  auto bad_type = admin(gw, "POST", "/admin/keys", R"({"tenant":5})");
  EXPECT_EQ(bad_type.status, 400);
  EXPECT_NE(bad_type.body.find("tenant"), std::string::npos) << bad_type.body;
  auto bad_policy =
      admin(gw, "POST", "/admin/keys", R"({"rate_limits":[{"window":"soon","requests":1}]})");
  EXPECT_EQ(bad_policy.status, 400);
  EXPECT_NE(bad_policy.body.find("window"), std::string::npos) << bad_policy.body;
  auto unknown = admin(gw, "POST", "/admin/keys", R"({"tenantt":"x"})");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(unknown.body.find("tenantt"), std::string::npos) << unknown.body;
  auto not_json = admin(gw, "POST", "/admin/keys", "{nope");
  EXPECT_EQ(not_json.status, 400);
  auto spend = admin(gw, "GET", "/admin/spend");
  EXPECT_EQ(spend.status, 400);
  EXPECT_NE(spend.body.find("key / tenant"), std::string::npos);
  EXPECT_EQ(admin(gw, "GET", "/admin/spend?tenant=a&period=year").status, 400);
  EXPECT_EQ(admin(gw, "PUT", "/admin/keys").status, 405);
  EXPECT_EQ(admin(gw, "GET", "/admin/sessions").status, 400);  // tenant is required
}

TEST_F(StateTest, AdminConfigIsRedactedAndRateLimitStateReadable) {
  Gw gw(yaml(mock_->port(), *redis_,
             "rate_limits:\n  - {scope: key, algorithm: fixed-window, requests: 100, window: 60}\n"));
  auto cfg = admin(gw, "GET", "/admin/config");
  ASSERT_EQ(cfg.status, 200) << cfg.body;
  EXPECT_EQ(cfg.body.find("sk-provider-secret"), std::string::npos);
  EXPECT_EQ(cfg.body.find(kAdminToken), std::string::npos);
  EXPECT_EQ(cfg.body.find(config::sha256_hex("sk-static-a")), std::string::npos);
  EXPECT_NE(cfg.body.find("<redacted>"), std::string::npos);
  EXPECT_EQ(parse(cfg.body).at("providers").at(0).at("name").as_string(), "openai");

  ASSERT_EQ(chat(gw, "sk-static-a", chat_body("count me")).status, 200);
  const std::string key_id = config::sha256_hex("sk-static-a").substr(0, 12);
  auto state = admin(gw, "GET", "/admin/ratelimits?key=" + key_id);
  ASSERT_EQ(state.status, 200) << state.body;
  const auto policies = parse(state.body).at("policies").as_array();
  ASSERT_EQ(policies.size(), 1u) << state.body;
  EXPECT_NE(state.body.find("\"value\""), std::string::npos) << state.body;
  EXPECT_EQ(admin(gw, "GET", "/admin/ratelimits?key=000000000000").status, 404);
}

TEST_F(StateTest, AdminWithoutTokenIsRefused) {
  std::string y = yaml(mock_->port(), *redis_);
  const std::string with = std::string("token: ") + kAdminToken;
  y.replace(y.find(with), with.size(), "token: \"\"");
  Gw gw(y);
  auto r = admin(gw, "GET", "/admin/keys");
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("admin_disabled"), std::string::npos);
}

}  // namespace
}  // namespace redline
