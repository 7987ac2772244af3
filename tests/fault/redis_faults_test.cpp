// Fault injection on the Redis tier, with real processes under load: a standalone Redis
// killed (SIGKILL) and restarted on its port, a Redis frozen with SIGSTOP, a cluster master
// killed (failover), then its promoted replica too (a slot range without any node). The
// gateway must answer every request (misses while the cache is gone), never crash, and find
// Redis again by itself. Measured numbers are printed as "[fault] ..." lines
// (docs/reliability.md quotes them).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "fault/fault_util.h"
#include "redis/cluster.h"

namespace redline::fault {
namespace {

// Cache-aside without L1, so every hit below comes from Redis, and a lookup bound that a
// sanitizer build on a busy 2-core machine keeps.
const std::string kCacheAside =
    "cache: {mode: cache-aside, lookup_timeout: 250ms, store_timeout: 1s, l1: {enabled: false}}\n";

TEST(RedisFault, StandaloneKilledAndRestartedUnderLoad) {
  test::TempDir dir;
  test::RedisServer redis;
  MockProc mock(dir);
  // fail_mode open on one gateway, closed on the other: both as configured, both recover.
  GatewayProc open(dir, "open", mock.port,
                   redis_block(redis) + kCacheAside +
                       "rate_limits:\n  - {scope: key, requests: 100000, window: 60, "
                       "fail_mode: open}\n");
  GatewayProc closed(dir, "closed", mock.port,
                     redis_block(redis) + "cache: {enabled: false}\n"
                                          "rate_limits:\n  - {scope: key, requests: 100000, "
                                          "window: 60, fail_mode: closed}\n");
  const double connects_before = metric(open.admin, "redline_redis_connects_total");

  Load load(open.port, bodies("kill-", 8), 3);
  ASSERT_TRUE(load.wait_for_more(40));  // warm: entries stored, hits flowing
  redis.kill(SIGKILL);
  const double killed_at = load.now_ms();
  ASSERT_TRUE(load.wait_for_more(30));  // answered while Redis is gone
  auto refused = chat(closed.port, "sk-fault-a", chat_body("closed while down"));
  EXPECT_EQ(refused.status, 503) << refused.body;
  // restart() returns once the server answers; the gateway may reconnect (and store again)
  // before that, so "while down" ends when the restart begins.
  const double restart_began = load.now_ms();
  redis.restart();  // same port, same (empty: no persistence) data directory
  const double restarted_at = load.now_ms();
  // Hits come back once the gateway reconnected and stored entries again.
  const double back = poll_until(
      [&] {
        for (const auto& s : load.samples()) {
          if (s.at_ms > restarted_at && s.cache == "hit") return true;
        }
        return false;
      },
      15s);
  ASSERT_TRUE(load.wait_for_more(20));
  load.stop();
  ASSERT_GE(back, 0) << "no cache hit within 15 s of the restart";

  const auto samples = load.samples();
  const auto counts = status_counts(samples);
  EXPECT_EQ(counts.size(), 1u) << describe(counts);
  EXPECT_EQ(counts.begin()->first, 200) << describe(counts);
  int down = 0, degraded = 0, hits_while_down = 0;
  double first_hit_after = -1;
  for (const auto& s : samples) {
    // Sent after the kill and answered before the restart began: Redis was gone throughout.
    if (s.at_ms > killed_at + 50 && s.at_ms + s.latency_ms < restart_began) {
      ++down;
      if (s.ratelimit == "degraded") ++degraded;
      if (s.cache == "hit") ++hits_while_down;
    }
    if (s.at_ms > restarted_at && s.cache == "hit" && first_hit_after < 0) {
      first_hit_after = s.at_ms - restarted_at;
    }
  }
  EXPECT_GT(down, 0);
  EXPECT_EQ(hits_while_down, 0);  // no L1: nothing to hit while Redis is gone
  EXPECT_GT(degraded, 0);         // fail_mode open admitted them without Redis
  EXPECT_TRUE(open.running()) << open.log();
  // The closed gateway admits again once Redis is back.
  EXPECT_GE(poll_until([&] { return chat(closed.port, "sk-fault-a", chat_body("x")).status == 200; },
                       15s),
            0);
  const double connects_after = metric(open.admin, "redline_redis_connects_total");
  EXPECT_GT(connects_after, connects_before);
  std::printf("[fault] redis SIGKILL+restart: %zu requests, all 200; %d answered while down "
              "(%d rate-limit degraded); first cache hit %.0f ms after the restart; "
              "redline_redis_connects_total %.0f -> %.0f\n",
              samples.size(), down, degraded, first_hit_after, connects_before, connects_after);
}

TEST(RedisFault, PausedRedisCostsAtMostTheLookupBound) {
  test::TempDir dir;
  test::RedisServer redis;
  MockProc mock(dir);
  GatewayProc gw(dir, "gw", mock.port, redis_block(redis) + kCacheAside);
  // Baseline: misses (fresh bodies) and hits with Redis healthy.
  auto timed = [&](const std::string& body, std::string* outcome) {
    const auto t0 = Clock::now();
    auto r = chat(gw.port, "sk-fault-a", body);
    EXPECT_EQ(r.status, 200) << r.body;
    if (outcome) *outcome = r.header("x-redline-cache");
    return ms_since(t0);
  };
  std::vector<double> base, paused;
  for (int i = 0; i < 8; ++i) base.push_back(timed(chat_body("base-" + std::to_string(i)), nullptr));
  std::string outcome;
  timed(chat_body("base-0"), &outcome);
  ASSERT_EQ(outcome, "hit");

  redis.pause();
  int misses = 0;
  for (int i = 0; i < 8; ++i) {
    // Half of them were stored before the pause: while paused they are misses too.
    paused.push_back(timed(chat_body((i % 2 ? "base-" : "paused-") + std::to_string(i)), &outcome));
    if (outcome == "miss") ++misses;
  }
  redis.resume();
  EXPECT_EQ(misses, 8);
  std::sort(base.begin(), base.end());
  std::sort(paused.begin(), paused.end());
  const double base_p50 = base[base.size() / 2], paused_p50 = paused[paused.size() / 2];
  const double paused_max = paused.back();
  // Each request waits at most the lookup bound (250 ms) for Redis, plus generous slack for
  // ASan on a shared machine; without the bound it would wait for Redis forever.
  EXPECT_LT(paused_max, 250 + 2000) << "a paused Redis held a request beyond its lookup bound";
  // SIGCONT: hits return.
  const double back = poll_until(
      [&] {
        std::string o;
        timed(chat_body("base-2"), &o);
        return o == "hit";
      },
      10s);
  EXPECT_GE(back, 0);
  std::printf("[fault] redis SIGSTOP: p50 latency %.1f ms healthy -> %.1f ms paused (added %.1f ms, "
              "max %.1f ms; lookup_timeout 250 ms); hits back %.0f ms after SIGCONT\n",
              base_p50, paused_p50, paused_p50 - base_p50, paused_max, back);
}

TEST(RedisFault, ClusterMasterKilledThenItsReplicaToo) {
  test::TempDir dir;
  test::RedisCluster cluster;  // 3+3, node timeout 1 s, cluster-require-full-coverage no
  MockProc mock(dir);
  GatewayProc gw(dir, "gw", mock.port, cluster_block(cluster) + kCacheAside);
  const auto all_bodies = bodies("cl-", 24);
  // Which master holds each body's entry.
  std::map<int, size_t> owner;  // body index -> master node index
  std::map<int, int> slot;      // body index -> slot of its entry
  for (int i = 0; i < static_cast<int>(all_bodies.size()); ++i) {
    auto r = chat(gw.port, "sk-fault-a", all_bodies[static_cast<size_t>(i)]);
    ASSERT_EQ(r.status, 200) << r.body;
    auto m = cluster.master_for_slot(redis::key_slot("c:" + r.header("x-redline-cache-key")));
    ASSERT_TRUE(m.has_value());
    owner[i] = *m;
    slot[i] = redis::key_slot("c:" + r.header("x-redline-cache-key"));
  }
  const size_t victim = cluster.masters().front();
  const auto replica = cluster.replica_of(victim);
  ASSERT_TRUE(replica.has_value());
  std::set<int> victim_bodies;
  for (const auto& [i, m] : owner) {
    if (m == victim) victim_bodies.insert(i);
  }
  ASSERT_FALSE(victim_bodies.empty());
  ASSERT_LT(victim_bodies.size(), all_bodies.size());
  // Let the replicas copy the entries.
  std::this_thread::sleep_for(300ms);

  Load load(gw.port, all_bodies, 3);
  ASSERT_TRUE(load.wait_for_more(30));
  // Phase 1: a master dies; its replica is promoted after the node timeout.
  cluster.kill(victim);
  const double killed_at = load.now_ms();
  const double promoted = poll_until(
      [&] {
        auto m = cluster.master_for_slot(slot.at(*victim_bodies.begin()));
        return m.has_value() && *m == *replica;
      },
      15s);
  ASSERT_GE(promoted, 0) << "replica never promoted";
  const double promoted_at = load.now_ms();
  const double hits_back = poll_until(
      [&] {
        for (const auto& s : load.samples()) {
          if (s.at_ms > promoted_at && victim_bodies.count(s.body_index) && s.cache == "hit") {
            return true;
          }
        }
        return false;
      },
      15s);
  EXPECT_GE(hits_back, 0) << "no hit on the failed-over slots within 15 s of the promotion";

  // Phase 2: the promoted replica dies too: that slot range has no node at all.
  cluster.kill(*replica);
  const double both_dead_at = load.now_ms();
  std::this_thread::sleep_for(2500ms);  // > node timeout: the others mark it failed
  ASSERT_TRUE(load.wait_for_more(30));
  load.stop();

  const auto samples = load.samples();
  const auto counts = status_counts(samples);
  EXPECT_EQ(counts.size(), 1u) << describe(counts);
  EXPECT_EQ(counts.begin()->first, 200) << describe(counts) << gw.log();
  // After both died: the other masters' bodies keep hitting, the dead range only misses.
  int other_hits = 0, other_total = 0, dead_hits = 0;
  for (const auto& s : samples) {
    if (s.at_ms < both_dead_at + 2500) continue;
    if (victim_bodies.count(s.body_index)) {
      dead_hits += s.cache == "hit";
    } else {
      ++other_total;
      other_hits += s.cache == "hit";
    }
  }
  EXPECT_GT(other_total, 0);
  EXPECT_GT(other_hits, other_total / 2) << other_hits << "/" << other_total;
  EXPECT_EQ(dead_hits, 0);
  EXPECT_TRUE(gw.running()) << gw.log();
  std::printf("[fault] cluster: %zu requests, all 200; master killed -> replica promoted after "
              "%.0f ms, hits on its slots back %.0f ms later; master+replica dead: other slots "
              "%d/%d hits\n",
              samples.size(), promoted_at - killed_at, hits_back, other_hits, other_total);
}

}  // namespace
}  // namespace redline::fault
