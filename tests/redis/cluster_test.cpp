// ClusterClient tests against a real 6-node cluster started by the harness: key slots agree
// with the server, every slot routes, batches split per node, replica reads, MOVED after a
// slot migration, ASK mid-migration, scripts after SCRIPT FLUSH, and failover after SIGKILL.
#include "redis/cluster.h"

#include <gtest/gtest.h>

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <set>

#include "redis/async_test_util.h"
#include "redis/script.h"
#include "support/redis_server.h"

namespace redline::redis {
namespace {

namespace asio = boost::asio;
using test::RedisCluster;
using testing::run_for;
using testing::run_until_done;
using testing::sleep_for;

TEST(ClusterSlots, Crc16AndHashTags) {
  EXPECT_EQ(crc16("123456789"), 0x31C3);
  EXPECT_EQ(key_slot("foo"), 12182);
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("{user1000}.followers"));
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("user1000"));
  EXPECT_EQ(key_slot("foo{}{bar}"), crc16("foo{}{bar}") & 16383);  // empty tag: whole key
  EXPECT_EQ(key_slot("foo{{bar}}zap"), key_slot("{bar"));
  EXPECT_EQ(key_slot("foo{bar}{zap}"), key_slot("bar"));
  EXPECT_EQ(key_slot(""), 0);
}

TEST(ClusterSlots, RoutingKeys) {
  EXPECT_EQ(routing_key(Command("GET", "k")).value(), "k");
  EXPECT_FALSE(routing_key(Command("PING")).has_value());
  EXPECT_FALSE(routing_key(Command("cluster", "info")).has_value());
  EXPECT_EQ(routing_key(Command("EVALSHA", "abc", 2, "k1", "k2", "a")).value(), "k1");
  EXPECT_FALSE(routing_key(Command("EVAL", "return 1", 0)).has_value());
  EXPECT_EQ(routing_key(Command("XREAD", "COUNT", 2, "streams", "s1", "0")).value(), "s1");
  EXPECT_TRUE(is_read_only(Command("get", "k")));
  EXPECT_FALSE(is_read_only(Command("SET", "k", "v")));
}

Reply parse_resp(std::string_view wire) {
  Parser p;
  auto step = p.feed(wire);
  EXPECT_EQ(step.status, Parser::Status::kReply) << p.error();
  return p.take();
}

TEST(ClusterSlots, ParsesClusterSlotsAndShardsReplies) {
  // Two ranges on one master (merged into one shard), a replica, an empty host ("same as
  // the node asked") and RESP2-style flat arrays instead of maps for CLUSTER SHARDS.
  auto slots = parse_cluster_slots(
      parse_resp("*2\r\n"
                 "*4\r\n:0\r\n:99\r\n*3\r\n$0\r\n\r\n:7000\r\n$2\r\nid\r\n"
                 "*3\r\n$8\r\n10.0.0.2\r\n:7001\r\n$3\r\nid2\r\n"
                 "*3\r\n:200\r\n:16383\r\n*3\r\n$0\r\n\r\n:7000\r\n$2\r\nid\r\n"),
      "10.0.0.1");
  ASSERT_TRUE(slots.ok()) << slots.error().to_string();
  ASSERT_EQ(slots->shards.size(), 1u);
  EXPECT_EQ(slots->shards[0].master, "10.0.0.1:7000");
  ASSERT_EQ(slots->shards[0].replicas.size(), 1u);
  EXPECT_EQ(slots->shards[0].replicas[0], "10.0.0.2:7001");
  EXPECT_EQ(slots->owner[99], 0);
  EXPECT_EQ(slots->owner[100], -1);
  EXPECT_FALSE(slots->complete());
  auto shards = parse_cluster_shards(
      parse_resp("*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*2\r\n"
                 "*10\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$8\r\nendpoint\r\n$1\r\n?\r\n"
                 "$2\r\nip\r\n$4\r\nhost\r\n$4\r\nport\r\n:6379\r\n"
                 "$8\r\ntls-port\r\n:6380\r\n"
                 "*6\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$4\r\nport\r\n:6381\r\n"
                 "$6\r\nhealth\r\n$6\r\nfailed\r\n"),
      "seed", /*tls=*/true);
  ASSERT_TRUE(shards.ok()) << shards.error().to_string();
  EXPECT_TRUE(shards->complete());
  EXPECT_EQ(shards->shards[0].master, "host:6380");  // endpoint "?" -> ip; TLS -> tls-port
  EXPECT_TRUE(shards->shards[0].replicas.empty());   // failed replicas are left out
  EXPECT_FALSE(parse_cluster_shards(parse_resp("*1\r\n*0\r\n"), "h", false).ok());
}

// One key per slot, found by brute force.
std::vector<std::string> key_per_slot() {
  std::vector<std::string> keys(kClusterSlots);
  size_t filled = 0;
  for (int n = 0; filled < kClusterSlots; ++n) {
    std::string k = "key:" + std::to_string(n);
    auto& slot = keys[key_slot(k)];
    if (slot.empty()) {
      slot = k;
      ++filled;
    }
  }
  return keys;
}

ClientOptions cluster_options(const RedisCluster& cluster) {
  ClientOptions o;
  o.mode = ClientOptions::Mode::kCluster;
  o.urls = {cluster.urls()[0], cluster.urls()[1]};
  o.connection.command_timeout = std::chrono::milliseconds(1000);
  return o;
}

class ClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = new RedisCluster(); }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    client_ = std::make_unique<ClusterClient>(io_.get_executor(), options());
  }
  void TearDown() override {
    client_->stop();
    run_for(io_, std::chrono::milliseconds(20));
    client_.reset();
    run_for(io_, std::chrono::milliseconds(10));
  }
  ClientOptions options() { return cluster_options(*cluster_); }
  Result<Reply> exec(const Command& c) { return run_until_done(io_, client_->execute(c)); }

  static RedisCluster* cluster_;
  asio::io_context io_;
  std::unique_ptr<ClusterClient> client_;
};
RedisCluster* ClusterTest::cluster_ = nullptr;

TEST_F(ClusterTest, SlotMapCoversEverySlotFromClusterShards) {
  auto r = run_until_done(io_, client_->connect());
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_TRUE(client_->slot_map().complete());
  EXPECT_EQ(client_->slot_map().shards.size(), 3u);
  for (const auto& shard : client_->slot_map().shards) EXPECT_EQ(shard.replicas.size(), 1u);
  // Agrees with the harness' view of who owns slot 0 and slot 16383.
  for (int slot : {0, 8000, 16383}) {
    auto idx = cluster_->master_for_slot(slot);
    ASSERT_TRUE(idx.has_value());
    EXPECT_EQ(client_->master_for_slot(static_cast<uint16_t>(slot)),
              cluster_->node(*idx).address());
  }
}

TEST_F(ClusterTest, ClusterSlotsFallbackParsesTheSameMap) {
  ASSERT_TRUE(run_until_done(io_, client_->connect()).ok());
  auto reply = exec(Command("CLUSTER", "SLOTS"));
  ASSERT_TRUE(reply.ok());
  auto parsed = parse_cluster_slots(*reply, "127.0.0.1");
  ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
  EXPECT_TRUE(parsed->complete());
  // (CLUSTER SLOTS leaves out replicas that have not replicated anything yet.)
  for (uint16_t slot = 0; slot < kClusterSlots; slot += 97) {
    const auto& a = parsed->shards[static_cast<size_t>(parsed->owner[slot])];
    ASSERT_EQ(a.master, client_->master_for_slot(slot));
    ASSERT_LE(a.replicas.size(), 1u);
  }
  EXPECT_FALSE(parse_cluster_slots(Reply::integer(1), "h").ok());
  EXPECT_FALSE(parse_cluster_shards(Reply::simple("x"), "h", false).ok());
}

TEST_F(ClusterTest, KeySlotAgreesWithTheServer) {
  std::vector<Command> cmds;
  std::vector<std::string> keys;
  for (int i = 0; i < 300; ++i) {
    std::string key = i % 3 ? "k" : "{tag";
    key += std::to_string(i * 7919);
    if (i % 3 == 0) key += "}x";
    keys.push_back(key);
    cmds.emplace_back("CLUSTER", "KEYSLOT", keys.back());
  }
  auto rs = run_until_done(io_, client_->batch(cmds));
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_TRUE(rs[i].ok());
    EXPECT_EQ(rs[i]->integer(), key_slot(keys[i])) << keys[i];
  }
}

TEST_F(ClusterTest, RoutesKeysInEverySlot) {
  auto keys = key_per_slot();
  std::vector<Command> sets, gets;
  for (const auto& k : keys) {
    sets.emplace_back("SET", k, "v-" + k);
    gets.emplace_back("GET", k);
  }
  const auto stats0 = client_->stats();
  auto set_results = run_until_done(io_, client_->batch(sets));
  for (const auto& r : set_results) ASSERT_TRUE(r.ok()) << r.error().to_string();
  auto get_results = run_until_done(io_, client_->batch(gets));
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_TRUE(get_results[i].ok());
    EXPECT_EQ(get_results[i]->str(), "v-" + keys[i]);
  }
  EXPECT_EQ(client_->redirects(), 0u);  // the slot map was right for every slot
  const auto stats = client_->stats();
  std::printf("[ cluster  ] %u SET + %u GET in %llu writes over 3 masters\n", kClusterSlots,
              kClusterSlots, static_cast<unsigned long long>(stats.writes - stats0.writes));
  // The keys really are spread: every master holds about a third.
  int64_t total = 0;
  for (size_t m : cluster_->masters()) {
    int64_t n = std::stoll(cluster_->node(m).cli("DBSIZE"));
    EXPECT_GT(n, 5000);
    total += n;
  }
  EXPECT_GE(total, int64_t{kClusterSlots});
  // Single commands from many coroutines route the same way.
  int done = 0, bad = 0;
  auto one = [&](const std::string& key) -> asio::awaitable<void> {
    Command get("GET", key);
    auto r = co_await client_->execute(get);
    if (!r.ok() || r->str() != "v-" + key) ++bad;
    ++done;
  };
  for (size_t i = 0; i < keys.size(); i += 16) asio::co_spawn(io_, one(keys[i]), asio::detached);
  while (done < static_cast<int>(keys.size() / 16)) io_.run_one();
  EXPECT_EQ(bad, 0);
}

TEST_F(ClusterTest, ScriptsRecoverAfterScriptFlush) {
  Script incr("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  EXPECT_EQ(incr.sha().size(), 40u);
  Command call = incr.call({"{script}counter"}, {"5"});
  auto r = run_until_done(io_, incr.run(*client_, call));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  int64_t first = r->integer();
  // Loaded now: plain EVALSHA works.
  EXPECT_EQ(exec(call).value().integer(), first + 5);
  auto owner = cluster_->master_for_slot(key_slot("{script}counter"));
  ASSERT_TRUE(owner.has_value());
  EXPECT_EQ(cluster_->node(*owner).cli("SCRIPT", "FLUSH"), "OK");
  auto raw = exec(call);
  ASSERT_FALSE(raw.ok());
  EXPECT_TRUE(is_noscript(raw.error()));
  r = run_until_done(io_, incr.run(*client_, call));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->integer(), first + 10);
  // A batch of calls on different slots, after another flush everywhere.
  for (size_t m : cluster_->masters()) cluster_->node(m).cli("SCRIPT", "FLUSH");
  std::vector<Command> calls;
  for (int i = 0; i < 10; ++i) {
    const std::string key = "{s" + std::to_string(i) + "}n";
    calls.push_back(incr.call({key}, {"1"}));
  }
  auto rs = run_until_done(io_, incr.run_batch(*client_, calls));
  for (const auto& x : rs) EXPECT_TRUE(x.ok() && x->integer() >= 1);
}

// Moves one slot from its master to another the way redis-cli --cluster reshard does.
struct SlotMove {
  size_t from, to;
  std::string from_id, to_id;
};

SlotMove begin_migration(RedisCluster& cluster, uint16_t slot) {
  auto from = cluster.master_for_slot(slot).value();
  auto masters = cluster.masters();
  size_t to = masters[0] == from ? masters[1] : masters[0];
  auto topo = cluster.topology();
  SlotMove m{from, to, topo[from].id, topo[to].id};
  const std::string s = std::to_string(slot);
  EXPECT_EQ(cluster.node(to).cli("CLUSTER", "SETSLOT", s, "IMPORTING", m.from_id), "OK");
  EXPECT_EQ(cluster.node(from).cli("CLUSTER", "SETSLOT", s, "MIGRATING", m.to_id), "OK");
  return m;
}

void migrate_key(RedisCluster& cluster, const SlotMove& m, const std::string& key) {
  auto& to = cluster.node(m.to);
  EXPECT_EQ(
      cluster.node(m.from).cli("MIGRATE", to.host(), std::to_string(to.port()), key, "0", "5000"),
      "OK");
}

void finish_migration(RedisCluster& cluster, const SlotMove& m, uint16_t slot) {
  for (size_t i : cluster.masters()) {
    cluster.node(i).cli("CLUSTER", "SETSLOT", std::to_string(slot), "NODE", m.to_id);
  }
}

TEST_F(ClusterTest, FollowsMovedAfterASlotMigration) {
  const std::string key = "moving-key";
  const uint16_t slot = key_slot(key);
  ASSERT_TRUE(exec(Command("SET", key, "here")).ok());
  auto m = begin_migration(*cluster_, slot);
  migrate_key(*cluster_, m, key);
  finish_migration(*cluster_, m, slot);
  const auto before = client_->redirects();
  auto r = exec(Command("GET", key));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->str(), "here");
  EXPECT_EQ(client_->redirects(), before + 1);
  EXPECT_EQ(client_->master_for_slot(slot), cluster_->node(m.to).address());
  // The map is updated: no more redirects for this slot.
  EXPECT_TRUE(exec(Command("GET", key)).ok());
  EXPECT_EQ(client_->redirects(), before + 1);
}

TEST_F(ClusterTest, PeriodicRefreshLearnsAMigrationWithoutRedirects) {
  auto o = cluster_options(*cluster_);
  o.refresh_interval = std::chrono::milliseconds(100);
  client_->stop();
  client_ = std::make_unique<ClusterClient>(io_.get_executor(), o);
  const std::string key = "periodic-key";
  const uint16_t slot = key_slot(key);
  ASSERT_TRUE(exec(Command("SET", key, "v")).ok());
  auto m = begin_migration(*cluster_, slot);
  migrate_key(*cluster_, m, key);
  finish_migration(*cluster_, m, slot);
  const auto refreshes = client_->refreshes();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (client_->master_for_slot(slot) != cluster_->node(m.to).address() &&
         std::chrono::steady_clock::now() < deadline) {
    run_for(io_, std::chrono::milliseconds(20));
  }
  EXPECT_GT(client_->refreshes(), refreshes);
  EXPECT_EQ(client_->master_for_slot(slot), cluster_->node(m.to).address());
  EXPECT_EQ(exec(Command("GET", key)).value().str(), "v");
  EXPECT_EQ(client_->redirects(), 0u);
}

TEST_F(ClusterTest, FollowsAskDuringAMigration) {
  const std::string moved = "{ask}moved", stays = "{ask}stays";
  const uint16_t slot = key_slot(moved);
  ASSERT_TRUE(exec(Command("SET", moved, "m")).ok());
  ASSERT_TRUE(exec(Command("SET", stays, "s")).ok());
  auto owner = client_->master_for_slot(slot);
  auto m = begin_migration(*cluster_, slot);
  migrate_key(*cluster_, m, moved);
  const auto before = client_->redirects();
  auto r = exec(Command("GET", moved));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->str(), "m");
  EXPECT_EQ(client_->redirects(), before + 1);
  EXPECT_EQ(client_->master_for_slot(slot), owner);  // ASK does not change the slot map
  EXPECT_EQ(exec(Command("GET", stays)).value().str(), "s");
  // Also through a batch.
  std::vector<Command> both = {Command("GET", moved), Command("GET", stays)};
  auto rs = run_until_done(io_, client_->batch(both));
  EXPECT_EQ(rs[0].value().str(), "m");
  EXPECT_EQ(rs[1].value().str(), "s");
  migrate_key(*cluster_, m, stays);
  finish_migration(*cluster_, m, slot);
}

int64_t get_calls(test::RedisServer& node) {
  auto info = node.cli("INFO", "commandstats");
  auto pos = info.find("cmdstat_get:calls=");
  return pos == std::string::npos ? 0 : std::stoll(info.substr(pos + 18));
}

TEST_F(ClusterTest, InvalidationPushesFromEveryNodeReachTheHandler) {
  auto o = cluster_options(*cluster_);
  o.connection.init_commands.push_back(Command("CLIENT", "TRACKING", "ON"));
  client_->stop();
  client_ = std::make_unique<ClusterClient>(io_.get_executor(), o);
  std::set<std::string> invalidated;
  client_->on_push([&](const Reply& r) {
    if (r.size() >= 2 && r[0].str() == "invalidate" && r[1].type() == Type::kArray) {
      for (const auto& k : r[1].elements()) invalidated.insert(k.str());
    }
  });
  // Keys on every master, read through the client (tracked), then changed by someone else.
  std::vector<std::string> keys = {"{a}tracked", "{b}tracked", "{c}tracked", "{d}tracked"};
  std::set<std::string> owners;
  for (const auto& k : keys) {
    ASSERT_TRUE(exec(Command("SET", k, "1")).ok());
    ASSERT_TRUE(exec(Command("GET", k)).ok());
    owners.insert(client_->master_for_slot(key_slot(k)));
  }
  EXPECT_GE(owners.size(), 2u);
  for (const auto& k : keys) {
    auto owner = cluster_->master_for_slot(key_slot(k));
    ASSERT_TRUE(owner.has_value());
    cluster_->node(*owner).cli("SET", k, "2");
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (invalidated.size() < keys.size() && std::chrono::steady_clock::now() < deadline) {
    run_for(io_, std::chrono::milliseconds(10));
  }
  EXPECT_EQ(invalidated, std::set<std::string>(keys.begin(), keys.end()));
}

TEST_F(ClusterTest, ReadsGoToReplicasWhenEnabled) {
  auto o = cluster_options(*cluster_);
  o.read_from_replicas = true;
  client_->stop();
  client_ = std::make_unique<ClusterClient>(io_.get_executor(), o);
  std::vector<int64_t> replica_calls0;
  std::vector<size_t> replicas;
  for (const auto& n : cluster_->topology()) {
    if (!n.master) {
      replicas.push_back(n.index);
      replica_calls0.push_back(get_calls(cluster_->node(n.index)));
    }
  }
  ASSERT_EQ(replicas.size(), 3u);
  ASSERT_TRUE(exec(Command("SET", "replicated", "yes")).ok());
  std::string value;
  for (int i = 0; i < 100 && value != "yes"; ++i) {
    auto r = exec(Command("GET", "replicated"));
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    value = r->is_null() ? "" : r->str();
    if (value != "yes") run_for(io_, std::chrono::milliseconds(10));
  }
  EXPECT_EQ(value, "yes");
  int64_t served = 0;
  for (size_t i = 0; i < replicas.size(); ++i) {
    served += get_calls(cluster_->node(replicas[i])) - replica_calls0[i];
  }
  EXPECT_GT(served, 0);
  // Writes still go to masters.
  EXPECT_TRUE(exec(Command("INCR", "replica-read-counter")).ok());
}

// Kills the master of a key while a stream of commands runs; the promoted replica must take
// over without restarting the client, with typed, fast failures in between.
TEST(ClusterFailover, MasterKilledReplicaPromotedClientRecovers) {
  RedisCluster cluster;
  asio::io_context io;
  auto opts = cluster_options(cluster);
  opts.connection.command_timeout = std::chrono::milliseconds(300);
  opts.connection.reconnect_max = std::chrono::milliseconds(200);
  ClusterClient client(io.get_executor(), opts);
  const std::string key = "failover-counter";
  ASSERT_TRUE(run_until_done(io, client.connect()).ok());
  // A script loaded before the failover: the promoted replica's script cache is empty.
  Script incr("return redis.call('INCR', KEYS[1])");
  Command script_call = incr.call({key});
  ASSERT_TRUE(run_until_done(io, incr.run(client, script_call)).ok());
  const size_t master = cluster.master_for_slot(key_slot(key)).value();
  const auto replica = cluster.replica_of(master);
  ASSERT_TRUE(replica.has_value());

  using Clock = std::chrono::steady_clock;
  bool killed = false, stop = false;
  Clock::time_point kill_time, recovered_time;
  int ok_before = 0, ok_after = 0, errors = 0;
  std::map<ErrorKind, int> kinds;
  Millis slowest_failure{0};
  auto stream = [&]() -> asio::awaitable<void> {
    while (!stop) {
      Command incr("INCR", key);
      auto t0 = Clock::now();
      auto r = co_await client.execute(incr);
      if (r.ok()) {
        if (!killed) {
          ++ok_before;
        } else if (t0 > kill_time && ok_after++ == 0) {  // issued after the master hung
          recovered_time = Clock::now();
        }
      } else {
        ++errors;
        ++kinds[r.kind()];
        slowest_failure =
            std::max(slowest_failure, std::chrono::duration_cast<Millis>(Clock::now() - t0));
      }
      co_await sleep_for(Millis(5));
    }
  };
  for (int i = 0; i < 4; ++i) asio::co_spawn(io, stream(), asio::detached);
  run_for(io, Millis(200));
  ASSERT_GT(ok_before, 0);
  // The master hangs first (commands are in flight, unanswered), then dies.
  cluster.node(master).pause();
  killed = true;
  kill_time = Clock::now();
  run_for(io, Millis(100));
  cluster.kill(master);
  auto deadline = kill_time + std::chrono::seconds(15);
  while (ok_after < 20 && Clock::now() < deadline) run_for(io, Millis(20));
  stop = true;
  run_for(io, Millis(50));
  ASSERT_GE(ok_after, 20) << "no recovery within 15 s";
  auto recovery = std::chrono::duration_cast<Millis>(recovered_time - kill_time);
  std::printf(
      "[ failover ] recovered in %lld ms after the master hung (SIGSTOP, SIGKILL 100 ms later); "
      "%d failed commands "
      "(slowest %lld ms), %llu topology refreshes\n",
      static_cast<long long>(recovery.count()), errors,
      static_cast<long long>(slowest_failure.count()),
      static_cast<unsigned long long>(client.refreshes()));
  for (auto& [k, n] : kinds) {
    std::printf("[ failover ]   %s: %d\n", std::string(error_kind_name(k)).c_str(), n);
    EXPECT_TRUE(k == ErrorKind::kConnectionLost || k == ErrorKind::kNotConnected ||
                k == ErrorKind::kTimeout || k == ErrorKind::kClusterDown)
        << error_kind_name(k);
  }
  EXPECT_LE(slowest_failure, Millis(300 + 200));  // failures are bounded by the deadline
  EXPECT_EQ(client.master_for_slot(key_slot(key)), cluster.node(*replica).address());
  EXPECT_LT(recovery, std::chrono::seconds(10));
  auto after = run_until_done(io, incr.run(client, script_call));
  EXPECT_TRUE(after.ok()) << after.error().to_string();
  client.stop();
  run_for(io, Millis(20));
}

}  // namespace
}  // namespace redline::redis
