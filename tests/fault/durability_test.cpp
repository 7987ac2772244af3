// No data lost: SIGTERM under load (in-flight requests and slow streams finish, the
// write-behind queue reaches Redis, token reservations are settled), kill -9 with
// write-behind (what is lost is bounded by what was still queued), state surviving a gateway
// restart (issued key, rate limit, session, spend: they live in Redis), and a Redis restart
// with the seed's persistence settings (AOF everysec + RDB: deploy/redis/state.conf) after
// SIGTERM and after SIGKILL.
#include <gtest/gtest.h>

#include <future>

#include "fault/fault_util.h"

namespace redline::fault {
namespace {

namespace json = boost::json;

json::value parse(const std::string& s) {
  return json::parse(s);
}

int64_t num(const json::value& v, const char* field) {
  return v.at(field).to_number<int64_t>();
}

// The value of field `f` of the first hash matching `pattern`, or -1.
int64_t hash_field(const test::RedisServer& r, const std::string& pattern, const std::string& f) {
  auto out = r.cli("--no-raw", "EVAL",
                   "local k = redis.call('KEYS', ARGV[1])[1] "
                   "if not k then return -1 end "
                   "return tonumber(redis.call('HGET', k, ARGV[2]) or '-1')",
                   "0", pattern, f);
  auto pos = out.find_first_of("-0123456789");
  return pos == std::string::npos ? -1 : std::stoll(out.substr(pos));
}

const std::string kTokenPolicy =
    "rate_limits:\n"
    "  - {scope: key, algorithm: fixed-window, requests: 100000, tokens: 100000000, "
    "window: 3600}\n"
    "prices:\n  gpt-4o-mini: {input: 1.0, output: 2.0}\n";

TEST(Durability, SigtermUnderLoadFinishesDrainsAndSettles) {
  test::TempDir dir;
  test::RedisServer redis;
  // Slow answers: ~0.4 s before a JSON answer, streams of 20 events 50 ms apart (~1 s).
  MockProc mock(dir, {"--latency-ms", "400", "--stream-delay-ms", "50", "--words", "20"});
  const std::string extra = redis_block(redis) +
                            "cache: {mode: write-behind, lookup_timeout: 250ms, "
                            "write_behind: {batch: 4}}\n" +
                            kTokenPolicy;
  GatewayProc gw(dir, "gw", mock.port, extra);
  constexpr int kJson = 12, kStreams = 6;
  std::atomic<int> streams_started{0};
  std::vector<std::future<test::HttpResponse>> all;
  for (int i = 0; i < kJson; ++i) {
    all.push_back(std::async(std::launch::async, [&, i] {
      return chat(gw.port, "sk-fault-a", chat_body("drain-json-" + std::to_string(i)));
    }));
  }
  for (int i = 0; i < kStreams; ++i) {
    all.push_back(std::async(std::launch::async, [&, i] {
      test::HttpClient c("127.0.0.1", gw.port);
      bool counted = false;
      return c.stream("POST", "/v1/chat/completions",
                      chat_body("drain-stream-" + std::to_string(i), true),
                      bearer("sk-fault-a", {{"content-type", "application/json"}}),
                      [&](const std::string&) {
                        if (!counted) ++streams_started;
                        counted = true;
                      });
    }));
  }
  // Every stream has begun (so every request is in flight), then SIGTERM.
  ASSERT_GE(poll_until([&] { return streams_started.load() == kStreams; }, 20s), 0);
  const auto t0 = Clock::now();
  gw.proc->signal(SIGTERM);
  std::vector<std::string> cache_keys;
  int complete_streams = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    auto r = all[i].get();
    EXPECT_EQ(r.status, 200) << r.body;
    if (i >= static_cast<size_t>(kJson)) {
      complete_streams += r.body.find("data: [DONE]") != std::string::npos;
    }
    cache_keys.push_back(r.header("x-redline-cache-key"));
  }
  const int rc = gw.proc->wait(20s);
  const double drain_ms = ms_since(t0);
  EXPECT_EQ(rc, 0) << gw.log();
  EXPECT_EQ(complete_streams, kStreams);
  // New connections are refused: the process is gone.
  EXPECT_FALSE(test::wait_for_port(gw.port, 200ms));

  // Write-behind drained: every answer is in Redis.
  int stored = 0;
  for (const auto& k : cache_keys) stored += redis.cli("EXISTS", "c:" + k) == "1";
  EXPECT_EQ(stored, kJson + kStreams);

  // Reservations settled: the token counter equals the tokens the provider reported (spend,
  // read by a fresh gateway from the same Redis); an unsettled reservation (prompt/4 + the
  // default output cap) would leave it far above.
  const int64_t req_count = hash_field(redis, "rl:*:req", "c");
  const int64_t tok_count = hash_field(redis, "rl:*:tok", "c");
  GatewayProc reader(dir, "reader", mock.port, extra);
  auto spend = admin_call(reader.admin, "GET", "/admin/spend?tenant=a");
  ASSERT_EQ(spend.status, 200) << spend.body;
  const auto sv = parse(spend.body);
  EXPECT_EQ(req_count, kJson + kStreams);
  EXPECT_EQ(num(sv, "requests"), kJson + kStreams) << spend.body;
  EXPECT_EQ(tok_count, num(sv, "input_tokens") + num(sv, "output_tokens")) << spend.body;
  std::printf("[fault] SIGTERM with %d JSON + %d streaming requests in flight: all 200, "
              "streams complete, exit %d after %.0f ms; %d/%d cache entries written; "
              "rate-limit tokens %lld == spend tokens %lld\n",
              kJson, kStreams, rc, drain_ms, stored, kJson + kStreams,
              static_cast<long long>(tok_count),
              static_cast<long long>(num(sv, "input_tokens") + num(sv, "output_tokens")));
}

TEST(Durability, KillNineLosesAtMostTheQueuedWriteBehindEntries) {
  test::TempDir dir;
  test::RedisServer redis;
  MockProc mock(dir);
  GatewayProc gw(dir, "gw", mock.port,
                 redis_block(redis) + "cache: {mode: write-behind, lookup_timeout: 250ms}\n");
  // Early answers: their writes had time to leave the queue.
  std::vector<std::string> early, late;
  for (int i = 0; i < 20; ++i) {
    auto r = chat(gw.port, "sk-fault-a", chat_body("early-" + std::to_string(i)));
    ASSERT_EQ(r.status, 200);
    early.push_back(r.header("x-redline-cache-key"));
  }
  std::this_thread::sleep_for(300ms);
  // Late answers: kill -9 right after the last one left the gateway.
  std::vector<std::future<test::HttpResponse>> burst;
  for (int i = 0; i < 20; ++i) {
    burst.push_back(std::async(std::launch::async, [&, i] {
      return chat(gw.port, "sk-fault-a", chat_body("late-" + std::to_string(i)));
    }));
  }
  for (auto& f : burst) {
    auto r = f.get();
    ASSERT_EQ(r.status, 200);
    late.push_back(r.header("x-redline-cache-key"));
  }
  gw.proc->stop(SIGKILL);
  int early_kept = 0, late_kept = 0;
  for (const auto& k : early) early_kept += redis.cli("EXISTS", "c:" + k) == "1";
  for (const auto& k : late) late_kept += redis.cli("EXISTS", "c:" + k) == "1";
  EXPECT_EQ(early_kept, 20);  // older than the queue's latency: never lost
  EXPECT_LE(late_kept, 20);
  std::printf("[fault] kill -9 with write-behind: %d/20 entries answered >300 ms before the kill "
              "kept, %d/20 answered just before the kill kept (lost: %d)\n",
              early_kept, late_kept, 20 - late_kept);
}

// Issues a key, uses it with a session and a rate limit; a second gateway process (the first
// one stopped) on the same Redis sees all of it.
TEST(Durability, StateSurvivesAGatewayRestart) {
  test::TempDir dir;
  test::RedisServer redis;
  MockProc mock(dir);
  const std::string extra =
      redis_block(redis) + "cache: {enabled: false}\n" +
      "rate_limits:\n  - {scope: key, algorithm: sliding-window-log, requests: 5, window: 3600}\n"
      "prices:\n  gpt-4o-mini: {input: 1.0, output: 2.0}\n";
  std::string key;
  {
    GatewayProc first(dir, "first", mock.port, extra);
    auto created = admin_call(first.admin, "POST", "/admin/keys", R"({"tenant":"acme"})");
    ASSERT_EQ(created.status, 201) << created.body;
    key = std::string(parse(created.body).at("key").as_string());
    for (int i = 0; i < 3; ++i) {
      auto r = chat(first.port, key, chat_body("turn " + std::to_string(i)),
                    {{"x-redline-session", "restart-1"}});
      ASSERT_EQ(r.status, 200) << r.body;
    }
    EXPECT_EQ(first.proc->stop(SIGTERM, 15s), 0);
  }
  GatewayProc second(dir, "second", mock.port, extra);
  // The issued key and its session.
  auto s = test::http_request(second.port, "GET", "/v1/sessions/restart-1", "", bearer(key));
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_EQ(num(parse(s.body), "message_count"), 6);
  // The limit continues: 3 used before the restart, 2 left.
  EXPECT_EQ(chat(second.port, key, chat_body("four")).status, 200);
  EXPECT_EQ(chat(second.port, key, chat_body("five")).status, 200);
  auto refused = chat(second.port, key, chat_body("six"));
  EXPECT_EQ(refused.status, 429) << refused.body;
  // Spend of both processes.
  auto spend = admin_call(second.admin, "GET", "/admin/spend?tenant=acme");
  ASSERT_EQ(spend.status, 200) << spend.body;
  EXPECT_GE(poll_until(
                [&] {
                  auto r = admin_call(second.admin, "GET", "/admin/spend?tenant=acme");
                  return r.status == 200 && num(parse(r.body), "requests") == 5;
                },
                5s),
            0);
}

// A state Redis with the seed's persistence (deploy/redis/state.conf: appendonly yes,
// appendfsync everysec, RDB saves) restarted after SIGTERM and after SIGKILL: the issued key
// and the session are still there for a gateway started afterwards.
TEST(Durability, RedisRestartWithSeedPersistenceKeepsKeysAndSessions) {
  test::TempDir dir;
  test::RedisServerOptions o;
  o.config_file = std::filesystem::path(REDLINE_SOURCE_DIR) / "deploy/redis/state.conf";
  o.extra_config = {"maxmemory 64mb", "io-threads 1"};
  test::RedisServer redis(o);
  ASSERT_EQ(redis.cli("CONFIG", "GET", "appendfsync"), "appendfsync\neverysec");
  MockProc mock(dir);
  const std::string extra = redis_block(redis) + "cache: {enabled: false}\n";
  std::string key;
  {
    GatewayProc gw(dir, "before", mock.port, extra);
    auto created = admin_call(gw.admin, "POST", "/admin/keys", R"({"tenant":"acme"})");
    ASSERT_EQ(created.status, 201) << created.body;
    key = std::string(parse(created.body).at("key").as_string());
    ASSERT_EQ(chat(gw.port, key, chat_body("one"), {{"x-redline-session", "p-1"}}).status, 200);
  }
  std::this_thread::sleep_for(1500ms);  // > appendfsync everysec
  redis.stop();                         // SIGTERM: Redis writes what it has and exits
  redis.restart();
  {
    GatewayProc gw(dir, "after-term", mock.port, extra);
    auto s = test::http_request(gw.port, "GET", "/v1/sessions/p-1", "", bearer(key));
    ASSERT_EQ(s.status, 200) << s.body;
    EXPECT_EQ(num(parse(s.body), "message_count"), 2);
    // A second turn, then the hard way: SIGKILL, no shutdown save.
    ASSERT_EQ(chat(gw.port, key, chat_body("two"), {{"x-redline-session", "p-1"}}).status, 200);
  }
  std::this_thread::sleep_for(1500ms);
  redis.kill(SIGKILL);
  redis.restart();
  GatewayProc gw(dir, "after-kill", mock.port, extra);
  auto s = test::http_request(gw.port, "GET", "/v1/sessions/p-1", "", bearer(key));
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_EQ(num(parse(s.body), "message_count"), 4);
  EXPECT_EQ(chat(gw.port, key, chat_body("three")).status, 200);  // the key is known
  EXPECT_EQ(chat(gw.port, "sk-redline-never-issued", chat_body("x")).status, 401);
}

}  // namespace
}  // namespace redline::fault
