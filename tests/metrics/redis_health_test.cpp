// The Redis health poller against real redis-server processes: a standalone master with a
// replica found through INFO, a 3 masters + 3 replicas cluster found through CLUSTER NODES
// (replication lag reported for every replica, slot coverage), SLOWLOG entries, and killed
// nodes showing as down in the snapshot and in redline_redis_up.
#include "metrics/redis_health.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>

#include "support/redis_server.h"

namespace redline::metrics {
namespace {

using namespace std::chrono_literals;

void run(boost::asio::io_context& io, boost::asio::awaitable<void> aw) {
  bool done = false;
  std::exception_ptr error;
  boost::asio::co_spawn(io, std::move(aw), [&](std::exception_ptr e) {
    error = e;
    done = true;
  });
  while (!done) io.run_one();
  io.restart();
  if (error) std::rethrow_exception(error);
}

const NodeHealth* find(const std::vector<NodeHealth>& nodes, const std::string& address) {
  for (const auto& n : nodes) {
    if (n.address == address) return &n;
  }
  return nullptr;
}

double gauge_value(Registry& reg, const std::string& name, const std::string& redis,
                   const std::string& node) {
  auto* f = reg.find(name);
  if (!f) return -1;
  for (const auto& s : f->snapshot()) {
    if (s.labels == std::vector<std::string>{redis, node}) return s.value;
  }
  return -1;
}

// Polls until `ok(nodes)` holds (replicas need a moment to link), at most 20 s.
template <class Pred>
std::vector<NodeHealth> poll_until(boost::asio::io_context& io, RedisHealth& h, Pred ok) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (true) {
    run(io, h.poll_once());
    auto nodes = h.nodes();
    if (ok(nodes) || std::chrono::steady_clock::now() > deadline) return nodes;
    io.run_for(100ms);
    io.restart();
  }
}

TEST(RedisHealthParse, InfoAndClusterNodes) {
  const auto info = parse_info(
      "# Server\r\nredis_version:7.0.15\r\n\r\n# Replication\r\nrole:master\r\n"
      "slave0:ip=127.0.0.1,port=7001,state=online,offset=42,lag=1\r\n");
  ASSERT_EQ(info.size(), 3u);
  EXPECT_EQ(info[1].first, "role");
  EXPECT_EQ(info[2].second, "ip=127.0.0.1,port=7001,state=online,offset=42,lag=1");
  const auto nodes = parse_cluster_nodes(
      "07c3 127.0.0.1:30004@31004,host.example slave e7d1 0 1426238317239 4 connected\n"
      "67ed 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922\n"
      "e7d1 :0@0 master,fail,noaddr - 1426238316232 1426238316232 3 disconnected\n"
      "292f 127.0.0.1:30003@31003 myself,master - 0 0 3 connected 10923-16383\n");
  EXPECT_EQ(nodes,
            (std::vector<std::string>{"127.0.0.1:30004", "127.0.0.1:30002", "127.0.0.1:30003"}));
}

TEST(RedisHealth, StandaloneMasterAndReplicaSlowlogAndDown) {
  test::RedisServerOptions mo;
  mo.extra_config = {"slowlog-log-slower-than 0", "maxmemory 64mb"};
  test::RedisServer master(mo);
  test::RedisServerOptions ro;
  ro.extra_config = {"replicaof 127.0.0.1 " + std::to_string(master.port())};
  test::RedisServer replica(ro);
  master.cli("SET", "k1", "v1");
  master.cli("GET", "k1");
  master.cli("GET", "missing");

  Registry reg;
  boost::asio::io_context io;
  RedisHealthOptions o;
  o.targets.push_back(RedisTarget{});
  o.targets.back().urls = {master.url()};
  o.slowlog_entries = 5;
  RedisHealth health(io.get_executor(), o, reg);
  EXPECT_EQ(health.reachable("state"), std::nullopt);  // no round yet
  auto nodes = poll_until(io, health, [&](const std::vector<NodeHealth>& n) {
    const auto* r = find(n, replica.address());
    return r && r->up && r->master_link_up.value_or(false) && r->lag_bytes;
  });
  ASSERT_EQ(nodes.size(), 2u);
  const auto* m = find(nodes, master.address());
  const auto* r = find(nodes, replica.address());
  ASSERT_TRUE(m && r);
  EXPECT_TRUE(m->up);
  EXPECT_EQ(m->role, "master");
  EXPECT_EQ(m->max_memory, 64 * 1024 * 1024);
  EXPECT_GT(m->used_memory, 0);
  EXPECT_GE(m->keyspace_hits, 1);
  EXPECT_GE(m->keyspace_misses, 1);
  EXPECT_GE(m->connected_clients, 1);
  EXPECT_GT(m->slowlog_length, 0);
  ASSERT_FALSE(m->slowlog.empty());
  EXPECT_LE(m->slowlog.size(), 5u);
  EXPECT_FALSE(m->slowlog.front().command.empty());
  EXPECT_EQ(r->role, "replica");
  EXPECT_EQ(r->master, master.address());
  ASSERT_TRUE(r->lag_bytes.has_value());
  EXPECT_GE(*r->lag_bytes, 0);
  ASSERT_TRUE(r->lag_seconds.has_value());
  EXPECT_GE(*r->lag_seconds, 0);
  EXPECT_FALSE(m->lag_bytes.has_value());

  EXPECT_EQ(gauge_value(reg, "redline_redis_up", "state", master.address()), 1);
  EXPECT_EQ(gauge_value(reg, "redline_redis_is_master", "state", replica.address()), 0);
  EXPECT_GE(gauge_value(reg, "redline_redis_replication_lag_bytes", "state", replica.address()), 0);
  EXPECT_GE(gauge_value(reg, "redline_redis_keyspace_hits_total", "state", master.address()), 1);
  EXPECT_EQ(gauge_value(reg, "redline_redis_max_memory_bytes", "state", master.address()),
            64 * 1024 * 1024);
  const auto text = reg.render();
  EXPECT_NE(text.find("redline_redis_replication_lag_seconds{redis=\"state\",node=\"" +
                      replica.address() + "\"}"),
            std::string::npos)
      << text;

  const auto json = health.nodes_json(true);
  ASSERT_EQ(json.size(), 2u);
  EXPECT_TRUE(json[0].as_object().contains("slowlog"));
  EXPECT_FALSE(health.nodes_json(false)[0].as_object().contains("slowlog"));

  // A killed replica shows as down (the master still lists it until it notices: either way
  // the replica's own poll fails).
  replica.kill();
  run(io, health.poll_once());
  nodes = health.nodes();
  r = find(nodes, replica.address());
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->up);
  EXPECT_FALSE(r->error.empty());
  EXPECT_EQ(gauge_value(reg, "redline_redis_up", "state", replica.address()), 0);
  EXPECT_EQ(gauge_value(reg, "redline_redis_up", "state", master.address()), 1);
  EXPECT_GE(gauge_value(reg, "redline_redis_health_poll_errors_total", "state", replica.address()),
            1);
  // A replica down leaves the target reachable; its master down does not.
  EXPECT_EQ(health.reachable("state"), true);
  EXPECT_EQ(health.reachable("cache"), std::nullopt);  // not a target
  master.kill();
  run(io, health.poll_once());
  EXPECT_EQ(health.reachable("state"), false);
  const auto all = health.reachability();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].first, "state");
  EXPECT_EQ(all[0].second, false);
}

TEST(RedisHealth, ClusterLagPerReplicaSlotsAndKilledNode) {
  test::RedisCluster cluster;
  ASSERT_TRUE(cluster.wait_healthy(20s));
  Registry reg;
  boost::asio::io_context io;
  RedisHealthOptions o;
  RedisTarget t;
  t.cluster = true;
  t.urls = {cluster.urls().front()};  // one seed: the others come from CLUSTER NODES
  o.targets.push_back(t);
  RedisHealth health(io.get_executor(), o, reg);
  auto nodes = poll_until(io, health, [](const std::vector<NodeHealth>& n) {
    if (n.size() != 6) return false;
    for (const auto& x : n) {
      if (!x.up || (x.role == "replica" && (!x.lag_bytes || !x.lag_seconds))) return false;
    }
    return true;
  });
  ASSERT_EQ(nodes.size(), 6u);
  int masters = 0, replicas = 0;
  for (const auto& n : nodes) {
    SCOPED_TRACE(n.address);
    EXPECT_TRUE(n.up);
    EXPECT_TRUE(n.cluster);
    EXPECT_EQ(n.cluster_state, "ok");
    EXPECT_EQ(n.slots_assigned, 16384);
    EXPECT_EQ(n.slots_ok, 16384);
    EXPECT_EQ(n.known_nodes, 6);
    if (n.role == "master") {
      ++masters;
      EXPECT_FALSE(n.lag_bytes.has_value());
    } else {
      ++replicas;
      // Replication lag is reported for each replica, in bytes and seconds.
      ASSERT_TRUE(n.lag_bytes.has_value());
      ASSERT_TRUE(n.lag_seconds.has_value());
      EXPECT_GE(*n.lag_bytes, 0);
      EXPECT_GE(gauge_value(reg, "redline_redis_replication_lag_bytes", "state", n.address), 0);
      EXPECT_GE(gauge_value(reg, "redline_redis_replication_lag_seconds", "state", n.address), 0);
      EXPECT_EQ(gauge_value(reg, "redline_redis_master_link_up", "state", n.address), 1);
    }
    EXPECT_EQ(gauge_value(reg, "redline_redis_cluster_state_ok", "state", n.address), 1);
  }
  EXPECT_EQ(masters, 3);
  EXPECT_EQ(replicas, 3);

  // Kill one replica: still listed by CLUSTER NODES, so it is polled and shows as down.
  const auto victim_index = *cluster.replica_of(cluster.masters().front());
  const std::string victim = cluster.node(victim_index).address();
  cluster.kill(victim_index);
  run(io, health.poll_once());
  nodes = health.nodes();
  ASSERT_EQ(nodes.size(), 6u);
  const auto* v = find(nodes, victim);
  ASSERT_TRUE(v);
  EXPECT_FALSE(v->up);
  EXPECT_EQ(gauge_value(reg, "redline_redis_up", "state", victim), 0);
  int up = 0;
  for (const auto& n : nodes) up += n.up ? 1 : 0;
  EXPECT_EQ(up, 5);
  EXPECT_EQ(health.reachable("state"), true);  // the cluster still serves every slot
}

TEST(RedisHealth, PollsOnAnIntervalAndStops) {
  test::RedisServer server;
  Registry reg;
  boost::asio::io_context io;
  RedisHealthOptions o;
  o.targets.push_back(RedisTarget{});
  o.targets.back().urls = {server.url()};
  o.interval = 20ms;
  RedisHealth health(io.get_executor(), o, reg);
  health.start();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (health.rounds() < 3 && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
    io.restart();
  }
  EXPECT_GE(health.rounds(), 3u);
  health.stop();
  io.run_for(50ms);  // the loop sees the stop and ends
  io.restart();
  const auto rounds = health.rounds();
  io.run_for(100ms);
  EXPECT_EQ(health.rounds(), rounds);
}

}  // namespace
}  // namespace redline::metrics
