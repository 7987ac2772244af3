// Tests for the mode-independent Client interface and Script against a standalone server:
// make_client() from URLs, batches, EVALSHA with the EVAL fallback after SCRIPT FLUSH, and the
// same calls through a cluster client so callers never care which mode they run in.
#include "redis/client.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "redis/async_test_util.h"
#include "redis/script.h"
#include "redline_scripts.h"
#include "support/redis_server.h"

namespace redline::redis {
namespace {

namespace asio = boost::asio;
using testing::run_for;
using testing::run_until_done;

TEST(RedisScript, ShaMatchesRedis) {
  Script s("return 1");
  // SHA1("return 1") as SCRIPT LOAD reports it.
  EXPECT_EQ(s.sha(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
  Command c = s.call({"k1", "k2"}, {"a"});
  EXPECT_EQ(c.encoded(), Command("EVALSHA", s.sha(), 2, "k1", "k2", "a").encoded());
  EXPECT_EQ(s.as_eval(c).encoded(), Command("EVAL", "return 1", 2, "k1", "k2", "a").encoded());
}

TEST(RedisScript, EmbeddedLuaFileRunsOnARealServer) {
  // src/redis/compare_and_delete.lua, embedded at build time by cmake/embed_lua.cmake.
  test::RedisServer server;
  asio::io_context io;
  ClientOptions o;
  o.urls = {server.url()};
  auto made = make_client(io.get_executor(), o);
  ASSERT_TRUE(made.ok());
  Client& client = *made.value();
  ASSERT_TRUE(run_until_done(io, client.connect()).ok());
  Script release(scripts::compare_and_delete);
  EXPECT_NE(release.source().find("redis.call('DEL', KEYS[1])"), std::string_view::npos);
  server.cli("SET", "lock", "owner-1");
  auto other = run_until_done(io, release.run(client, release.call({"lock"}, {"owner-2"})));
  EXPECT_EQ(other.value().integer(), 0);
  EXPECT_EQ(server.cli("GET", "lock"), "owner-1");
  auto mine = run_until_done(io, release.run(client, release.call({"lock"}, {"owner-1"})));
  EXPECT_EQ(mine.value().integer(), 1);
  EXPECT_EQ(server.cli("EXISTS", "lock"), "0");
  client.stop();
  run_for(io, std::chrono::milliseconds(10));
}

TEST(RedisClient, MakeClientRejectsBadUrls) {
  asio::io_context io;
  ClientOptions o;
  EXPECT_EQ(make_client(io.get_executor(), o).error().kind, ErrorKind::kInvalidArgument);
  o.urls = {"tcp://nope"};
  EXPECT_EQ(make_client(io.get_executor(), o).error().kind, ErrorKind::kInvalidArgument);
  o.mode = ClientOptions::Mode::kCluster;
  EXPECT_EQ(make_client(io.get_executor(), o).error().kind, ErrorKind::kInvalidArgument);
}

TEST(RedisClient, StandaloneScriptsRecoverAfterScriptFlush) {
  test::RedisServer server;
  asio::io_context io;
  ClientOptions o;
  o.urls = {server.url()};
  auto made = make_client(io.get_executor(), o);
  ASSERT_TRUE(made.ok());
  Client& client = *made.value();
  EXPECT_FALSE(client.is_cluster());
  ASSERT_TRUE(run_until_done(io, client.connect()).ok());

  Script script("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  Command call = script.call({"n"}, {"2"});
  EXPECT_EQ(run_until_done(io, script.run(client, call)).value().integer(), 2);  // EVAL path
  EXPECT_EQ(server.cli("SCRIPT", "EXISTS", script.sha()), "1");
  EXPECT_EQ(run_until_done(io, client.execute(call)).value().integer(), 4);  // EVALSHA
  EXPECT_EQ(server.cli("SCRIPT", "FLUSH"), "OK");
  auto raw = run_until_done(io, client.execute(call));
  ASSERT_FALSE(raw.ok());
  EXPECT_TRUE(is_noscript(raw.error())) << raw.error().to_string();
  EXPECT_EQ(run_until_done(io, script.run(client, call)).value().integer(), 6);
  std::vector<Command> calls = {script.call({"a"}, {"1"}), script.call({"b"}, {"10"})};
  server.cli("SCRIPT", "FLUSH");
  auto rs = run_until_done(io, script.run_batch(client, calls));
  EXPECT_EQ(rs[0].value().integer(), 1);
  EXPECT_EQ(rs[1].value().integer(), 10);
  auto before = client.stats();
  std::vector<Command> cmds = {Command("SET", "x", "1"), Command("GET", "x"), Command("PING")};
  auto br = run_until_done(io, client.batch(cmds));
  EXPECT_EQ(br[1].value().str(), "1");
  EXPECT_EQ(client.stats().writes - before.writes, 1u);
  client.stop();
  run_for(io, std::chrono::milliseconds(10));
}

}  // namespace
}  // namespace redline::redis

namespace redline::redis {
namespace {

// The process-wide counters behind the redline_redis_* metrics move with real traffic.
TEST(RedisProcessStats, CountCommandsWritesConnectionsAndLosses) {
  using testing::run_until_done;
  test::RedisServer server;
  auto& ps = process_stats();
  const uint64_t commands0 = ps.commands_sent.load(), writes0 = ps.writes.load();
  const uint64_t connects0 = ps.connects.load(), disconnects0 = ps.disconnects.load();
  const uint64_t errors0 = ps.server_errors.load();
  const int64_t open0 = ps.connections.load();
  asio::io_context io;
  ClientOptions o;
  o.urls = {server.url()};
  auto made = make_client(io.get_executor(), o);
  ASSERT_TRUE(made.ok());
  Client& client = *made.value();
  ASSERT_TRUE(run_until_done(io, client.connect()).ok());
  EXPECT_EQ(ps.connects.load(), connects0 + 1);
  EXPECT_EQ(ps.connections.load(), open0 + 1);
  std::vector<Command> batch;
  for (int i = 0; i < 20; ++i) batch.emplace_back("SET", "k", i);
  auto replies = run_until_done(io, client.batch(batch));
  ASSERT_EQ(replies.size(), 20u);
  EXPECT_GE(ps.commands_sent.load(), commands0 + 20);
  EXPECT_GT(ps.writes.load(), writes0);
  EXPECT_LT(ps.writes.load() - writes0, 20u);  // pipelined: fewer writes than commands
  const Command bad("INCR", "k1", "extra-argument");
  EXPECT_FALSE(run_until_done(io, client.execute(bad)).ok());
  EXPECT_EQ(ps.server_errors.load(), errors0 + 1);
  server.kill();
  const Command ping("PING");
  (void)run_until_done(io, client.execute(ping));
  EXPECT_EQ(ps.disconnects.load(), disconnects0 + 1);
  EXPECT_EQ(ps.connections.load(), open0);
  client.stop();
}

}  // namespace
}  // namespace redline::redis
