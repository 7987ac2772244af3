// Tests for the Redis test harness itself (tests/support/redis_server.h): that it starts,
// secures, pauses, restarts and clusters real redis-server processes as promised, quickly.
#include <gtest/gtest.h>

#include "support/redis_server.h"

namespace redline::test {
namespace {

TEST(RedisHarness, StandaloneStartsAndRestartsOnTheSamePort) {
  RedisServer server;
  EXPECT_EQ(server.cli("SET", "k", "v"), "OK");
  EXPECT_EQ(server.cli("GET", "k"), "v");
  EXPECT_EQ(server.url(), "redis://127.0.0.1:" + std::to_string(server.port()));
  int port = server.port();
  server.restart();
  EXPECT_EQ(server.port(), port);
  EXPECT_EQ(server.cli("PING"), "PONG");
  EXPECT_EQ(server.cli("GET", "k"), "");  // save "" : nothing persisted
}

TEST(RedisHarness, PasswordAclAndTls) {
  RedisServerOptions o;
  o.password = "s3cret";
  o.acl_user = "gateway";
  o.acl_password = "gw-pass";
  o.tls = true;
  RedisServer server(o);
  EXPECT_EQ(server.cli("ACL", "WHOAMI"), "gateway");
  EXPECT_EQ(server.url(), "rediss://gateway:gw-pass@127.0.0.1:" + std::to_string(server.port()));
  EXPECT_TRUE(std::filesystem::exists(server.ca_file()));
}

TEST(RedisHarness, KillAndPause) {
  RedisServer server;
  server.pause();
  server.resume();
  EXPECT_EQ(server.cli("PING"), "PONG");
  server.kill();
  EXPECT_FALSE(server.running());
}

TEST(RedisHarness, SixNodeClusterFormsQuickly) {
  RedisCluster cluster;
  std::printf("[ harness  ] 6-node cluster ready in %lld ms\n",
              static_cast<long long>(cluster.startup_time().count()));
  EXPECT_LT(cluster.startup_time(), std::chrono::seconds(10));
  auto masters = cluster.masters();
  ASSERT_EQ(masters.size(), 3u);
  for (size_t m : masters) EXPECT_TRUE(cluster.replica_of(m).has_value());
  auto owner = cluster.master_for_slot(0);
  ASSERT_TRUE(owner.has_value());
  EXPECT_NE(std::find(masters.begin(), masters.end(), *owner), masters.end());
  EXPECT_EQ(cluster.master_for_slot(16383).has_value(), true);
}

}  // namespace
}  // namespace redline::test
