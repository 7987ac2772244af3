// Tests for the L1 tier (src/cache/l1_cache.h): LRU order, the byte budget, oversize rejection,
// expiry, erase, the stats, and cross-thread invalidation reaching a shard whose owner thread is
// busy using it (race-free by design; run under TSan too). It does not test entry encoding.
#include "cache/l1_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace redline::cache {
namespace {

KeyDigest key(unsigned n) {
  KeyDigest k{};
  for (int i = 0; i < 4; ++i) k[i] = static_cast<unsigned char>(n >> (8 * i));
  k[15] = 0x5a;
  return k;
}

constexpr int64_t kNever = INT64_MAX;

TEST(L1Shard, GetPutAndLruOrder) {
  L1Shard s(3 * L1Shard::charge(10));
  s.put(key(1), std::string(10, 'a'), kNever);
  s.put(key(2), std::string(10, 'b'), kNever);
  s.put(key(3), std::string(10, 'c'), kNever);
  ASSERT_NE(s.get(key(1), 0), nullptr);  // 1 becomes MRU; 2 is now LRU
  s.put(key(4), std::string(10, 'd'), kNever);
  EXPECT_EQ(s.get(key(2), 0), nullptr);
  ASSERT_NE(s.get(key(1), 0), nullptr);
  EXPECT_EQ(*s.get(key(3), 0), std::string(10, 'c'));
  EXPECT_EQ(*s.get(key(4), 0), std::string(10, 'd'));
  EXPECT_EQ(s.stats().evictions, 1u);
  EXPECT_EQ(s.stats().entries, 3u);
}

TEST(L1Shard, ReplaceUpdatesValueAndBytes) {
  L1Shard s(1 << 20);
  s.put(key(1), "old", kNever);
  s.put(key(1), "newer", kNever);
  EXPECT_EQ(*s.get(key(1), 0), "newer");
  EXPECT_EQ(s.stats().entries, 1u);
  EXPECT_EQ(s.stats().bytes, L1Shard::charge(5));
}

TEST(L1Shard, ByteBudgetNeverExceeded) {
  const std::size_t budget = 64 * 1024;
  L1Shard s(budget);
  uint64_t x = 12345;
  for (unsigned i = 0; i < 5000; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    const std::size_t size = (x >> 33) % 9000;
    s.put(key(i % 700), std::string(size, 'v'), kNever);
    ASSERT_LE(s.stats().bytes, budget);
    if (i % 3 == 0) s.get(key((i * 7) % 700), 0);
  }
  EXPECT_GT(s.stats().evictions, 0u);
  EXPECT_GT(s.stats().entries, 0u);
}

TEST(L1Shard, OversizeEntryRejected) {
  L1Shard s(1000);
  s.put(key(1), "small", kNever);
  s.put(key(2), std::string(1000, 'x'), kNever);
  EXPECT_EQ(s.get(key(2), 0), nullptr);
  EXPECT_NE(s.get(key(1), 0), nullptr);  // nothing evicted for it
  EXPECT_EQ(s.stats().rejected, 1u);
  EXPECT_EQ(s.stats().evictions, 0u);
}

TEST(L1Shard, Expiry) {
  L1Shard s(1 << 20);
  s.put(key(1), "v", 1000);
  EXPECT_NE(s.get(key(1), 999), nullptr);
  EXPECT_EQ(s.get(key(1), 1000), nullptr);
  EXPECT_EQ(s.stats().expirations, 1u);
  EXPECT_EQ(s.stats().entries, 0u);
  EXPECT_EQ(s.stats().bytes, 0u);
}

TEST(L1Shard, EraseClearAndStats) {
  L1Shard s(1 << 20);
  s.put(key(1), "a", kNever);
  s.put(key(2), "b", kNever);
  EXPECT_TRUE(s.erase(key(1)));
  EXPECT_FALSE(s.erase(key(1)));
  EXPECT_EQ(s.get(key(1), 0), nullptr);
  EXPECT_NE(s.get(key(2), 0), nullptr);
  EXPECT_EQ(s.stats().hits, 1u);
  EXPECT_EQ(s.stats().misses, 1u);
  EXPECT_EQ(s.stats().invalidations, 1u);
  s.clear();
  EXPECT_EQ(s.get(key(2), 0), nullptr);
  EXPECT_EQ(s.stats().entries, 0u);
  EXPECT_EQ(s.stats().bytes, 0u);
  EXPECT_EQ(s.stats().clears, 1u);
}

TEST(L1Cache, SplitsBudgetAcrossShards) {
  L1Cache c(4 << 20, 4);
  ASSERT_EQ(c.shard_count(), 4u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(c.shard(i).budget_bytes(), 1u << 20);
  L1Cache one(100, 0);
  EXPECT_EQ(one.shard_count(), 1u);
}

TEST(L1Cache, InvalidationReachesEveryShard) {
  L1Cache c(1 << 20, 3);
  for (std::size_t i = 0; i < 3; ++i) {
    c.shard(i).put(key(1), "x", kNever);
    c.shard(i).put(key(2), "y", kNever);
  }
  c.invalidate_all_shards(key(1));
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(c.shard(i).get(key(1), 0), nullptr);
    EXPECT_NE(c.shard(i).get(key(2), 0), nullptr);
  }
  c.clear_all();
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(c.shard(i).get(key(2), 0), nullptr);
}

TEST(L1Cache, InboxOverflowBecomesClear) {
  L1Cache c(1 << 20, 1);
  c.shard(0).put(key(999999), "keep?", kNever);
  for (unsigned i = 0; i <= kL1MaxPendingInvalidations; ++i) c.invalidate_all_shards(key(i));
  EXPECT_EQ(c.shard(0).get(key(999999), 0), nullptr);  // safe side: the shard was cleared
  EXPECT_EQ(c.shard(0).stats().clears, 1u);
}

// The owner threads keep using their shards while another thread invalidates. Invalidation
// number i is called only after `round` reached i, and `round` becomes i + 1 once it returned.
// An owner that put the hot key and then read round == t knows invalidation t + 1 started after
// its put; once it sees round >= t + 2 that invalidation has returned, so the hot key must be gone.
TEST(L1Cache, CrossThreadInvalidationWhileOwnersRun) {
  constexpr std::size_t kShards = 2;
  L1Cache c(1 << 20, kShards);
  std::atomic<int> round{0};
  std::atomic<bool> done{false};
  std::atomic<int> violations{0};
  std::atomic<int> owner_gets{0};
  std::vector<std::thread> owners;
  for (std::size_t t = 0; t < kShards; ++t) {
    owners.emplace_back([&, t] {
      L1Shard& s = c.shard(t);
      int tag = -1;  // round seen right after our latest put of the hot key
      while (!done.load()) {
        const int r = round.load();
        const std::string* v = s.get(key(0), 0);
        owner_gets.fetch_add(1, std::memory_order_relaxed);
        if (v != nullptr && r >= tag + 2) violations.fetch_add(1);
        if (v == nullptr) {
          s.put(key(0), "hot", kNever);
          tag = round.load();
        }
        s.put(key(1 + (r % 50)), std::string(100, 'z'), kNever);
        s.get(key(1 + (r % 37)), 0);
      }
    });
  }
  for (int i = 0; i < 2000 || owner_gets.load() < 20000; ++i) {
    c.invalidate_all_shards(key(0));
    round.fetch_add(1);
    if (i % 500 == 499) c.clear_all();
  }
  done.store(true);
  for (auto& th : owners) th.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_GT(owner_gets.load(), 0);
  // After the last invalidation, the owners' next get (here, after join) sees no hot key.
  c.invalidate_all_shards(key(0));
  for (std::size_t t = 0; t < kShards; ++t) EXPECT_EQ(c.shard(t).get(key(0), 0), nullptr);
}

}  // namespace
}  // namespace redline::cache
