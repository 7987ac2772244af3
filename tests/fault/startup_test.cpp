// Start-up checks of the `redline` binary: loud warnings when a Redis URL carries no password
// on a non-loopback address, and when the Redis that holds state can evict (a real
// redis-server with allkeys-lru, shared with the cache or not); none for a safe setup; and an
// unwritable log path that stops the start with a message naming it.
#include <gtest/gtest.h>

#include "fault/fault_util.h"

namespace redline::fault {
namespace {

bool log_has(GatewayProc& gw, const std::string& needle, std::chrono::milliseconds wait) {
  return poll_until([&] { return gw.log().find(needle) != std::string::npos; }, wait) >= 0;
}

TEST(Startup, WarnsAboutAnUnauthenticatedNonLoopbackRedis) {
  test::TempDir dir;
  MockProc mock(dir);
  // 192.0.2.0/24 (TEST-NET-1): never anyone's Redis; the gateway still starts and serves.
  GatewayProc exposed(dir, "exposed", mock.port,
                      "redis: {urls: [\"redis://192.0.2.10:6379\"], connect_timeout: 200ms}\n"
                      "cache: {enabled: false}\n");
  EXPECT_TRUE(log_has(exposed, "SECURITY", 5s)) << exposed.log();
  EXPECT_NE(exposed.log().find("192.0.2.10:6379"), std::string::npos) << exposed.log();
  EXPECT_EQ(chat(exposed.port, "sk-fault-a", chat_body("hi")).status, 200);
  // With a password, or on loopback, no such warning.
  GatewayProc with_pass(dir, "with-pass", mock.port,
                        "redis: {urls: [\"redis://:pw@192.0.2.10:6379\"], "
                        "connect_timeout: 200ms}\ncache: {enabled: false}\n");
  test::RedisServer local;
  GatewayProc loopback(dir, "loopback", mock.port, redis_block(local));
  ASSERT_EQ(chat(with_pass.port, "sk-fault-a", chat_body("hi")).status, 200);
  ASSERT_EQ(chat(loopback.port, "sk-fault-a", chat_body("hi")).status, 200);
  EXPECT_EQ(with_pass.log().find("SECURITY"), std::string::npos) << with_pass.log();
  EXPECT_EQ(loopback.log().find("SECURITY"), std::string::npos) << loopback.log();
}

TEST(Startup, WarnsWhenTheStateRedisCanEvict) {
  test::TempDir dir;
  MockProc mock(dir);
  test::RedisServerOptions lru;
  lru.extra_config = {"maxmemory 64mb", "maxmemory-policy allkeys-lru"};
  test::RedisServer evicting(lru);
  test::RedisServer safe;  // noeviction, Redis' default
  // One Redis for state and cache, evicting: the single-Redis case.
  GatewayProc shared(dir, "shared", mock.port, redis_block(evicting));
  EXPECT_TRUE(log_has(shared, "DATA LOSS RISK", 10s)) << shared.log();
  EXPECT_NE(shared.log().find("allkeys-lru"), std::string::npos);
  EXPECT_NE(shared.log().find("both the cache and the gateway's state"), std::string::npos);
  // State on the evicting Redis, cache elsewhere: still a warning (another wording).
  GatewayProc state_evicts(dir, "state-evicts", mock.port,
                           redis_block(evicting) + "cache: {redis: {urls: [\"" + safe.url() +
                               "\"]}}\n");
  EXPECT_TRUE(log_has(state_evicts, "DATA LOSS RISK: the state Redis", 10s)) << state_evicts.log();
  // The production layout: state noeviction, cache allkeys-lru: no warning.
  GatewayProc split(dir, "split", mock.port,
                    redis_block(safe) + "cache: {redis: {urls: [\"" + evicting.url() + "\"]}}\n");
  // A single noeviction Redis: no warning.
  GatewayProc single(dir, "single", mock.port, redis_block(safe));
  // Both checked Redis (a request proves they answer), then give the check time to log.
  ASSERT_EQ(chat(split.port, "sk-fault-a", chat_body("hi")).status, 200);
  ASSERT_EQ(chat(single.port, "sk-fault-a", chat_body("hi")).status, 200);
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(split.log().find("DATA LOSS RISK"), std::string::npos) << split.log();
  EXPECT_EQ(single.log().find("DATA LOSS RISK"), std::string::npos) << single.log();
}

TEST(Startup, UnwritableLogPathUnderProcFailsNamingThePath) {
  test::TempDir dir;
  MockProc mock(dir);
  const std::string bad = "/proc/redline-no-such-dir/access.log";
  const int port = test::free_port(), admin = test::free_port();
  std::string yaml = base_yaml(port, admin, mock.port, "cache: {enabled: false}\n");
  const std::string logging = "logging: {access_log: false, level: info}";
  yaml.replace(yaml.find(logging), logging.size(),
               "logging: {access_log: true, access_log_path: \"" + bad + "\", level: info}");
  auto cfg = dir.write("gw.yaml", yaml);
  test::Process gw({test::built_binary("redline"), "--config", cfg.string()},
                   dir.path() / "gw.log");
  EXPECT_EQ(gw.wait(15s), 1);
  EXPECT_NE(gw.log().find(bad), std::string::npos) << gw.log();
  EXPECT_FALSE(test::wait_for_port(port, 200ms));
}

}  // namespace
}  // namespace redline::fault
