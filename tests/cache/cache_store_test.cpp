// CacheStore's Redis tier against a real redis-server: the lookup that also takes the
// cross-instance coalescing lock (a lock marker in c:<hex>, `SET ... NX GET PX`), what every
// reader does with a marker (a miss, never served, never counted or deleted as corrupt,
// never in L1), releasing only our own marker, a store replacing it, waiting on another
// request's marker, an admin purge that deletes entries but never a marker, a write-behind
// store that fails releasing our marker (and only ours), and the two-step mode for
// Redis < 7.0 (parameter: forced on / off).
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "cache/cache_store.h"
#include "redis/async_test_util.h"
#include "support/redis_server.h"

namespace redline::cache {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using redis::testing::run_for;
using redis::testing::run_until_done;

CacheKey key_of(unsigned char seed) {
  CacheKey k;
  for (std::size_t i = 0; i < k.digest.size(); ++i) {
    k.digest[i] = static_cast<unsigned char>(seed + i * 7);
  }
  return k;
}

Entry answer(std::string body, uint32_t ttl_seconds = 3600) {
  Entry e;
  e.status = 200;
  e.content_type = "application/json";
  e.created_unix_ms = now_unix_ms();
  e.ttl_seconds = ttl_seconds;
  e.body = std::move(body);
  return e;
}

class CacheStoreTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    redis_ = std::make_unique<test::RedisServer>();
    store_ = make_store(/*l1=*/true);
  }
  void TearDown() override {
    stop(store_);
    redis_.reset();
  }

  std::unique_ptr<CacheStore> make_store(bool l1) {
    config::CacheConfig c;
    c.l1_enabled = l1;
    c.lookup_timeout = 2000ms;  // generous: sanitizer builds on a busy machine
    c.store_timeout = 2000ms;
    c.coalesce_lock_ttl = 30'000ms;
    config::RedisConfig r;
    r.urls = {redis_->url()};
    auto s = std::make_unique<CacheStore>(c, r, std::vector<asio::io_context*>{&io_});
    s->start();
    s->set_two_step_lock(GetParam());
    return s;
  }
  void stop(std::unique_ptr<CacheStore>& s) {
    if (!s) return;
    s->stop();
    run_for(io_, 50ms);
    s.reset();
  }

  Lookup lookup(CacheStore& s, const CacheKey& k, LookupMode mode = LookupMode::kReadOrLock) {
    return run_until_done(io_, s.lookup(0, k, mode));
  }
  bool store(CacheStore& s, const CacheKey& k, const Entry& e) {
    return run_until_done(io_, s.store(0, k, e));
  }
  bool release(CacheStore& s, const CacheKey& k, const std::string& marker) {
    return run_until_done(io_, s.release_lock(0, k, marker));
  }
  std::string redis_get(const CacheKey& k) { return redis_->cli("GET", "c:" + k.hex()); }
  long pttl(const CacheKey& k) { return std::stol(redis_->cli("PTTL", "c:" + k.hex())); }
  uint64_t l1_entries(const CacheStore& s) { return s.l1()->shard_stats(0).entries.load(); }
  std::optional<bool> purge(CacheStore& s, const CacheKey& k) {
    return run_until_done(io_, s.purge_key(0, k.hex()));
  }
  // Runs the io_context until the write-behind queue is empty (bounded).
  void drain(CacheStore& s) {
    const auto until = std::chrono::steady_clock::now() + 20s;
    while (s.pending_writes() > 0 && std::chrono::steady_clock::now() < until) run_for(io_, 10ms);
    ASSERT_EQ(s.pending_writes(), 0u);
  }

  asio::io_context io_;
  std::unique_ptr<test::RedisServer> redis_;
  std::unique_ptr<CacheStore> store_;
};

TEST_P(CacheStoreTest, AbsentKeyIsLockedWithAMarkerThatExpires) {
  const auto k = key_of(1);
  auto first = lookup(*store_, k);
  EXPECT_FALSE(first.entry);
  EXPECT_FALSE(first.error);
  EXPECT_EQ(first.lock, LockState::kAcquired);
  ASSERT_TRUE(is_lock_marker(first.lock_marker)) << first.lock_marker;
  EXPECT_EQ(first.round_trips, GetParam() ? 2u : 1u);  // two-step: GET, then SET NX
  EXPECT_EQ(redis_get(k), first.lock_marker);
  const long left = pttl(k);
  EXPECT_GT(left, 0);
  EXPECT_LE(left, 30'000);  // PX = coalesce_lock_ttl
  EXPECT_EQ(store_->stats().misses.load(), 1u);
  EXPECT_EQ(store_->stats().lookup_errors.load(), 0u);
}

TEST_P(CacheStoreTest, SecondLookupFindsTheLockHeldAndChangesNothing) {
  const auto k = key_of(2);
  auto first = lookup(*store_, k);
  ASSERT_EQ(first.lock, LockState::kAcquired);
  auto second = lookup(*store_, k);
  EXPECT_EQ(second.lock, LockState::kHeldByOther);
  EXPECT_FALSE(second.entry);
  EXPECT_TRUE(second.lock_marker.empty());
  EXPECT_EQ(second.round_trips, 1u);
  // A plain read sees the same: a miss, not a corrupt entry, and the marker stays.
  auto read = lookup(*store_, k, LookupMode::kRead);
  EXPECT_FALSE(read.entry);
  EXPECT_EQ(read.lock, LockState::kHeldByOther);
  EXPECT_EQ(redis_get(k), first.lock_marker);
  EXPECT_EQ(store_->stats().decode_errors.load(), 0u);
  EXPECT_EQ(store_->stats().misses.load(), 3u);
  EXPECT_EQ(store_->stats().hits_l2.load(), 0u);
  EXPECT_EQ(l1_entries(*store_), 0u);  // the L1 never holds a marker
  // Nor do the other readers take it for an entry.
  auto many = run_until_done(io_, store_->lookup_many(0, {k}));
  ASSERT_EQ(many.size(), 1u);
  EXPECT_FALSE(many[0]);
  EXPECT_FALSE(run_until_done(io_, store_->redis_created_ms(0, k)));
  EXPECT_EQ(store_->stats().decode_errors.load(), 0u);
  EXPECT_EQ(redis_get(k), first.lock_marker);
}

TEST_P(CacheStoreTest, AnEntryIsAHitAndIsLeftAsItWas) {
  const auto k = key_of(3);
  ASSERT_TRUE(store(*store_, k, answer(R"({"id":"one"})")));
  const redis::Command get("GET", "c:" + k.hex());
  auto writer_view = run_until_done(io_, store_->client(0).execute(get));
  ASSERT_TRUE(writer_view.ok());
  const std::string bytes = writer_view->str();
  const long ttl_before = pttl(k);
  ASSERT_GT(ttl_before, 30'000);
  // Another instance (no L1, so the lookup goes to Redis).
  auto reader = make_store(/*l1=*/false);
  auto hit = lookup(*reader, k);
  ASSERT_TRUE(hit.entry);
  EXPECT_EQ(hit.entry->body, R"({"id":"one"})");
  EXPECT_EQ(hit.tier, Tier::kL2);
  EXPECT_EQ(hit.lock, LockState::kNone);
  EXPECT_TRUE(hit.lock_marker.empty());
  EXPECT_EQ(hit.round_trips, 1u);
  auto after = run_until_done(io_, reader->client(0).execute(get));
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->str(), bytes);
  const long ttl_after = pttl(k);
  EXPECT_LE(ttl_after, ttl_before);
  EXPECT_GT(ttl_after, 30'000);  // not reset to the lock's PX
  EXPECT_EQ(reader->stats().hits_l2.load(), 1u);
  stop(reader);
  // With L1 on, the hit is copied into L1 and the next one costs no Redis command.
  auto l1_reader = make_store(/*l1=*/true);
  ASSERT_TRUE(lookup(*l1_reader, k).entry);
  auto again = lookup(*l1_reader, k);
  EXPECT_EQ(again.tier, Tier::kL1);
  EXPECT_EQ(again.round_trips, 0u);
  stop(l1_reader);
}

// A large answer is compressed in Redis but kept uncompressed in L1 (a hit then never
// decompresses), whether L1 got it from a store or from a Redis-tier hit.
TEST_P(CacheStoreTest, LargeAnswersAreCompressedInRedisButNotInL1) {
  const auto k = key_of(11);
  std::string body = R"({"choices":[{"message":{"content":")";
  while (body.size() < 20'000) body += "a compressible answer, said again and again. ";
  body += R"("}}]})";
  ASSERT_TRUE(store(*store_, k, answer(body)));
  const redis::Command get("GET", "c:" + k.hex());
  auto in_redis = run_until_done(io_, store_->client(0).execute(get));
  ASSERT_TRUE(in_redis.ok());
  EXPECT_TRUE(entry_compressed(in_redis->str()));
  EXPECT_LT(in_redis->str().size(), body.size() / 4);
  // The writer's L1 holds the whole answer's bytes, not the compressed ones.
  EXPECT_GE(store_->l1()->shard_stats(0).bytes.load(), body.size());
  auto hit = lookup(*store_, k);
  ASSERT_TRUE(hit.entry);
  EXPECT_EQ(hit.tier, Tier::kL1);
  EXPECT_EQ(hit.entry->body, body);
  // Another instance fills its L1 from Redis: uncompressed there too.
  auto reader = make_store(/*l1=*/true);
  auto from_redis = lookup(*reader, k);
  ASSERT_TRUE(from_redis.entry);
  EXPECT_EQ(from_redis.tier, Tier::kL2);
  EXPECT_GE(reader->l1()->shard_stats(0).bytes.load(), body.size());
  auto from_l1 = lookup(*reader, k);
  ASSERT_TRUE(from_l1.entry);
  EXPECT_EQ(from_l1.tier, Tier::kL1);
  EXPECT_EQ(from_l1.entry->body, body);
  stop(reader);
}

// The store in steps (cache-aside: L1 before the answer goes out, the SET after it): L1 has
// the entry, uncompressed, before anything reaches Redis; the SET then carries the compressed
// bytes of a large answer and the plain encoding of a small one; without L1 the same SET.
TEST_P(CacheStoreTest, StagedStoresFillL1FirstAndCompressOnlyForRedis) {
  std::string large = R"({"choices":[{"message":{"content":")";
  while (large.size() < 20'000) large += "a compressible answer, said again and again. ";
  large += R"("}}]})";
  const std::string small = R"({"id":"small"})";
  const std::string* bodies[] = {&large, &small};
  auto no_l1 = make_store(/*l1=*/false);
  unsigned char seed = 40;
  for (CacheStore* s : {store_.get(), no_l1.get()}) {
    for (const std::string* body : bodies) {
      const auto k = key_of(seed++);
      const Entry e = answer(*body);
      const auto raw_before = s->stats().bytes_raw.load();
      std::string staged = s->stage_local(0, k, e);
      if (s->l1() != nullptr) {
        auto local = lookup(*s, k);  // before the SET: from L1
        ASSERT_TRUE(local.entry);
        EXPECT_EQ(local.tier, Tier::kL1);
        EXPECT_EQ(local.entry->body, *body);
      }
      EXPECT_EQ(redis_get(k), "");  // nothing in Redis yet
      const redis::Command set = s->stage_remote(k, e, std::move(staged));
      ASSERT_TRUE(run_until_done(io_, s->send_store(0, k, set)));
      EXPECT_EQ(s->stats().bytes_raw.load() - raw_before, body->size());
      const redis::Command get("GET", "c:" + k.hex());
      auto in_redis = run_until_done(io_, s->client(0).execute(get));
      ASSERT_TRUE(in_redis.ok());
      EXPECT_EQ(entry_compressed(in_redis->str()), body == &large);
      Entry decoded;
      ASSERT_EQ(decode_entry(in_redis->str(), decoded), DecodeError::kNone);
      EXPECT_EQ(decoded.body, *body);
    }
  }
  stop(no_l1);
}

// A finished answer whose store is still on its way (FlightTable::answered) serves as an L1
// hit only when L1 is on: with L1 off every hit comes from Redis, so the lookup goes there
// (and, Redis down, stays a miss).
TEST_P(CacheStoreTest, LocalAnswersServeOnlyWithL1On) {
  const auto k = key_of(9);
  int asked = 0;
  auto local = [&](const KeyDigest& d) -> std::optional<Entry> {
    ++asked;
    if (d != k.digest) return std::nullopt;
    return answer(R"({"id":"local"})");
  };
  store_->set_local_answers(local);
  auto with_l1 = lookup(*store_, k);
  ASSERT_TRUE(with_l1.entry);
  EXPECT_EQ(with_l1.entry->body, R"({"id":"local"})");
  EXPECT_EQ(with_l1.tier, Tier::kL1);
  EXPECT_EQ(with_l1.round_trips, 0u);
  EXPECT_EQ(asked, 1);

  auto no_l1 = make_store(/*l1=*/false);
  no_l1->set_local_answers(local);
  auto from_redis = lookup(*no_l1, k);
  EXPECT_FALSE(from_redis.entry);
  EXPECT_EQ(from_redis.lock, LockState::kAcquired);  // Redis was asked: the key is absent
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(no_l1->stats().hits_l1.load(), 0u);
  EXPECT_EQ(no_l1->stats().misses.load(), 1u);
  stop(no_l1);
  store_->set_local_answers(nullptr);  // `local` refers to this test's locals
}

TEST_P(CacheStoreTest, ACorruptEntryIsStillCountedAndDropped) {
  const auto k = key_of(4);
  redis_->cli("SET", "c:" + k.hex(), "RLCgarbage");
  auto r = lookup(*store_, k);
  EXPECT_FALSE(r.entry);
  EXPECT_EQ(r.lock, LockState::kNone);
  EXPECT_EQ(store_->stats().decode_errors.load(), 1u);
  EXPECT_EQ(redis_->cli("EXISTS", "c:" + k.hex()), "0");
}

TEST_P(CacheStoreTest, ReleaseDeletesOnlyOurOwnMarker) {
  const auto k = key_of(5);
  auto ours = lookup(*store_, k);
  ASSERT_EQ(ours.lock, LockState::kAcquired);
  EXPECT_FALSE(release(*store_, k, std::string(kLockMarkerPrefix) + "someone-else"));
  EXPECT_EQ(redis_get(k), ours.lock_marker);
  EXPECT_TRUE(release(*store_, k, ours.lock_marker));
  EXPECT_EQ(redis_->cli("EXISTS", "c:" + k.hex()), "0");
  // Once an answer is stored over it, the old marker releases nothing.
  auto again = lookup(*store_, k);
  ASSERT_EQ(again.lock, LockState::kAcquired);
  ASSERT_TRUE(store(*store_, k, answer("{}")));
  EXPECT_FALSE(release(*store_, k, again.lock_marker));
  EXPECT_EQ(redis_->cli("EXISTS", "c:" + k.hex()), "1");
  auto reader = make_store(/*l1=*/false);
  EXPECT_TRUE(lookup(*reader, k).entry);
  stop(reader);
}

TEST_P(CacheStoreTest, AStoreReplacesTheMarker) {
  const auto k = key_of(6);
  auto ours = lookup(*store_, k);
  ASSERT_EQ(ours.lock, LockState::kAcquired);
  ASSERT_TRUE(store(*store_, k, answer(R"({"id":"stored"})", 600)));
  EXPECT_GT(pttl(k), 30'000);  // the entry's TTL, not the lock's
  auto reader = make_store(/*l1=*/false);
  auto hit = lookup(*reader, k);
  ASSERT_TRUE(hit.entry);
  EXPECT_EQ(hit.entry->body, R"({"id":"stored"})");
  stop(reader);
}

TEST_P(CacheStoreTest, WaitingEndsWithTheEntryOrTheLockOrTheTimeout) {
  const auto k = key_of(7);
  auto holder = lookup(*store_, k);
  ASSERT_EQ(holder.lock, LockState::kAcquired);
  auto waiter = make_store(/*l1=*/false);
  ASSERT_EQ(lookup(*waiter, k).lock, LockState::kHeldByOther);

  // The holder stores while the other waits: the wait returns the entry.
  auto waited = run_until_done(io_, [&]() -> asio::awaitable<Lookup> {
    auto exec = co_await asio::this_coro::executor;
    asio::co_spawn(
        exec,
        [&]() -> asio::awaitable<void> {
          co_await redis::testing::sleep_for(50ms);
          const Entry late = answer(R"({"id":"late"})");  // named: g++ 12
          co_await store_->store(0, k, late);
        },
        asio::detached);
    co_return co_await waiter->wait_for_entry(0, k, 20'000ms);
  }());
  ASSERT_TRUE(waited.entry);
  EXPECT_EQ(waited.entry->body, R"({"id":"late"})");
  EXPECT_GE(waited.round_trips, 1u);
  EXPECT_EQ(waiter->stats().coalesced_remote.load(), 1u);

  // The holder gives up (releases): the waiter takes the lock over.
  const auto k2 = key_of(8);
  auto holder2 = lookup(*store_, k2);
  ASSERT_EQ(holder2.lock, LockState::kAcquired);
  auto taken = run_until_done(io_, [&]() -> asio::awaitable<Lookup> {
    auto exec = co_await asio::this_coro::executor;
    asio::co_spawn(
        exec,
        [&]() -> asio::awaitable<void> {
          co_await redis::testing::sleep_for(50ms);
          co_await store_->release_lock(0, k2, holder2.lock_marker);
        },
        asio::detached);
    co_return co_await waiter->wait_for_entry(0, k2, 20'000ms);
  }());
  EXPECT_FALSE(taken.entry);
  EXPECT_EQ(taken.lock, LockState::kAcquired);
  ASSERT_TRUE(is_lock_marker(taken.lock_marker));
  EXPECT_EQ(redis_get(k2), taken.lock_marker);

  // A holder that never answers: the wait ends after `wait`, without the lock.
  const auto k3 = key_of(9);
  ASSERT_EQ(lookup(*store_, k3).lock, LockState::kAcquired);
  const auto t0 = std::chrono::steady_clock::now();
  auto timed_out = run_until_done(io_, waiter->wait_for_entry(0, k3, 150ms));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 150ms);
  EXPECT_FALSE(timed_out.entry);
  EXPECT_EQ(timed_out.lock, LockState::kNone);
  EXPECT_TRUE(timed_out.lock_marker.empty());
  stop(waiter);
}

TEST_P(CacheStoreTest, RedisDownIsAnErrorMissWithoutTheLock) {
  const auto k = key_of(10);
  redis_->stop();
  auto r = lookup(*store_, k);
  EXPECT_TRUE(r.error);
  EXPECT_FALSE(r.entry);
  EXPECT_NE(r.lock, LockState::kAcquired);
  EXPECT_EQ(store_->stats().lookup_errors.load(), 1u);
}

TEST_P(CacheStoreTest, PurgeDeletesAnEntryButNeverALockMarker) {
  const auto k = key_of(11);
  auto ours = lookup(*store_, k);
  ASSERT_EQ(ours.lock, LockState::kAcquired);
  // A call in flight: the purge reports nothing deleted and leaves the marker, with its TTL.
  auto purged = purge(*store_, k);
  ASSERT_TRUE(purged);
  EXPECT_FALSE(*purged);
  EXPECT_EQ(redis_get(k), ours.lock_marker);
  EXPECT_GT(pttl(k), 0);
  // Its waiters still wait for the answer rather than calling the provider.
  auto waiter = make_store(/*l1=*/false);
  EXPECT_EQ(lookup(*waiter, k).lock, LockState::kHeldByOther);
  // Once the answer is stored, the purge deletes it, in Redis and in L1.
  ASSERT_TRUE(store(*store_, k, answer(R"({"id":"purged"})")));
  ASSERT_TRUE(lookup(*store_, k, LookupMode::kRead).entry);  // an L1 hit now
  purged = purge(*store_, k);
  ASSERT_TRUE(purged);
  EXPECT_TRUE(*purged);
  EXPECT_EQ(redis_->cli("EXISTS", "c:" + k.hex()), "0");
  EXPECT_FALSE(lookup(*store_, k, LookupMode::kRead).entry);
  // An absent key: nothing deleted.
  purged = purge(*store_, k);
  ASSERT_TRUE(purged);
  EXPECT_FALSE(*purged);
  stop(waiter);
  // Redis down: no answer (the admin API says 503), not "not found".
  redis_->stop();
  EXPECT_FALSE(purge(*store_, k));
}

TEST_P(CacheStoreTest, AFailedWriteBehindStoreReleasesOurMarkerOnly) {
  const auto k = key_of(12);
  auto ours = lookup(*store_, k);
  ASSERT_EQ(ours.lock, LockState::kAcquired);
  // Another key whose lock is someone else's now (ours expired and was taken over).
  const auto k2 = key_of(13);
  auto other = make_store(/*l1=*/false);
  auto theirs = lookup(*other, k2);
  ASSERT_EQ(theirs.lock, LockState::kAcquired);
  // Every write that may grow memory is refused (OOM) from now on; DEL still works.
  ASSERT_EQ(redis_->cli("CONFIG", "SET", "maxmemory-policy", "noeviction"), "OK");
  ASSERT_EQ(redis_->cli("CONFIG", "SET", "maxmemory", "1"), "OK");
  ASSERT_TRUE(store_->enqueue_store(0, k, answer(R"({"id":"lost"})"), ours.lock_marker));
  ASSERT_TRUE(store_->enqueue_store(0, k2, answer(R"({"id":"lost2"})"),
                                    std::string(kLockMarkerPrefix) + "expired-one-of-ours"));
  drain(*store_);
  EXPECT_EQ(store_->stats().store_errors.load(), 2u);
  EXPECT_EQ(store_->stats().write_behind_written.load(), 0u);
  EXPECT_EQ(redis_->cli("EXISTS", "c:" + k.hex()), "0");  // our marker went
  EXPECT_EQ(redis_get(k2), theirs.lock_marker);           // the other one stays
  ASSERT_EQ(redis_->cli("CONFIG", "SET", "maxmemory", "0"), "OK");
  // A waiter on another instance takes the lock over at once instead of waiting it out.
  auto taken = run_until_done(io_, other->wait_for_entry(0, k, 20'000ms));
  EXPECT_EQ(taken.lock, LockState::kAcquired);
  EXPECT_EQ(redis_get(k), taken.lock_marker);

  // A write-behind store that succeeds replaces the marker and sends nothing else.
  const auto k3 = key_of(14);
  auto third = lookup(*store_, k3);
  ASSERT_EQ(third.lock, LockState::kAcquired);
  ASSERT_EQ(redis_->cli("CONFIG", "RESETSTAT"), "OK");
  ASSERT_TRUE(store_->enqueue_store(0, k3, answer(R"({"id":"kept"})"), third.lock_marker));
  drain(*store_);
  EXPECT_EQ(store_->stats().write_behind_written.load(), 1u);
  const std::string commands = redis_->cli("INFO", "commandstats");
  EXPECT_NE(commands.find("cmdstat_set:"), std::string::npos) << commands;
  EXPECT_EQ(commands.find("cmdstat_eval"), std::string::npos) << commands;  // and evalsha
  auto hit = lookup(*other, k3, LookupMode::kRead);
  ASSERT_TRUE(hit.entry);
  EXPECT_EQ(hit.entry->body, R"({"id":"kept"})");
  stop(other);
}

INSTANTIATE_TEST_SUITE_P(Modes, CacheStoreTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? std::string("TwoStep") : std::string("OneCommand");
                         });

}  // namespace
}  // namespace redline::cache
