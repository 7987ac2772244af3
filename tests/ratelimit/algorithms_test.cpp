// Table-driven tests of the four Lua algorithms on a real redis-server with a fixed time:
// each row is one call (time, cost) and the expected admit/refuse, remaining, reset, next and
// retry. Also settlement per algorithm (refund, charge, bounded at zero, expired handles),
// key expiry in whole milliseconds, and that a real (TIME-based) call works.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "ratelimit/policy.h"
#include "ratelimit/script.h"
#include "redis/async_test_util.h"
#include "support/redis_server.h"

namespace redline::ratelimit {
namespace {

namespace asio = boost::asio;
using config::RateLimitAlgorithm;
using redis::testing::run_for;
using redis::testing::run_until_done;

// 1,700,006,400 s (whole days): a multiple of every window used here, so windows start at kT0.
constexpr int64_t kT0 = 1'700'006'400LL * 1'000'000;
constexpr int64_t ms(int64_t v) {
  return v * 1000;
}

class Algorithms : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new test::RedisServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    server_->cli("FLUSHALL");
    redis::ClientOptions o;
    o.urls = {server_->url()};
    client_ = redis::make_client(io_.get_executor(), o).value();
    ASSERT_TRUE(run_until_done(io_, client_->connect()).ok());
  }
  void TearDown() override {
    client_->stop();
    run_for(io_, std::chrono::milliseconds(5));
  }

  StateRef state(RateLimitAlgorithm a, uint64_t limit, uint64_t window_ms, uint64_t burst = 0,
                 const std::string& name = "rl:{t}:req") {
    StateRef s;
    s.algorithm = a;
    s.keys = {name};
    if (a == RateLimitAlgorithm::kSlidingWindowLog) s.keys.push_back(name + ":meta");
    s.limit = limit;
    s.window_ms = window_ms;
    s.burst = burst ? burst : limit;
    return s;
  }

  CheckReply check(StateRef s, uint64_t cost, int64_t now_us) {
    s.cost = cost;
    const StateRef* one[] = {&s};
    auto cmd = check_command(one, now_us);
    auto r = run_until_done(io_, limiter_script().run(*client_, cmd));
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().to_string());
    auto parsed = parse_check_reply(*r, 1);
    EXPECT_TRUE(parsed.has_value()) << r->debug_string();
    return *parsed;
  }

  int64_t settle(StateRef s, uint64_t cost, int64_t handle, uint64_t new_cost, int64_t now_us) {
    s.cost = cost;
    s.handle = handle;
    const StateRef* one[] = {&s};
    const uint64_t costs[] = {new_cost};
    auto cmd = settle_command(one, costs, now_us);
    auto r = run_until_done(io_, limiter_script().run(*client_, cmd));
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().to_string());
    return r->integer();
  }

  struct Row {
    int64_t at_ms;  // after kT0
    uint64_t cost;
    bool admitted;
    uint64_t remaining;
    uint64_t reset_ms;
    uint64_t next_ms;
    int64_t retry_ms;
  };
  void run_table(const StateRef& s, const std::vector<Row>& rows) {
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& row = rows[i];
      auto r = check(s, row.cost, kT0 + ms(row.at_ms));
      ASSERT_EQ(r.states.size(), 1u);
      const StateResult& got = r.states[0];
      SCOPED_TRACE("row " + std::to_string(i) + " at +" + std::to_string(row.at_ms) + "ms cost " +
                   std::to_string(row.cost));
      EXPECT_EQ(r.admitted, row.admitted);
      EXPECT_EQ(got.admitted, row.admitted);
      EXPECT_EQ(got.remaining, row.remaining);
      EXPECT_EQ(got.reset_ms, row.reset_ms);
      EXPECT_EQ(got.next_ms, row.next_ms);
      EXPECT_EQ(got.retry_ms, row.retry_ms);
    }
  }

  static test::RedisServer* server_;
  asio::io_context io_;
  std::unique_ptr<redis::Client> client_;
};

test::RedisServer* Algorithms::server_ = nullptr;

TEST_F(Algorithms, FixedWindow) {
  // 3 per 10 s; windows start at multiples of 10 s.
  run_table(state(RateLimitAlgorithm::kFixedWindow, 3, 10'000),
            {
                {0, 1, true, 2, 10'000, 10'000, 0},
                {1'000, 1, true, 1, 9'000, 9'000, 0},
                {2'000, 1, true, 0, 8'000, 8'000, 0},
                {3'000, 1, false, 0, 7'000, 7'000, 7'000},  // until the window ends
                {9'999, 0, false, 0, 1, 1, 1},              // cost 0: refused when nothing left
                {10'000, 1, true, 2, 10'000, 10'000, 0},    // a new window
                {10'500, 3, false, 2, 9'500, 9'500, 9'500},
                {10'500, 4, false, 2, 9'500, 9'500, -1},  // more than the limit: never
                {10'500, 2, true, 0, 9'500, 9'500, 0},
            });
  EXPECT_EQ(server_->cli("HGET", "rl:{t}:req", "c"), "3");
  const auto pttl = std::stoll(server_->cli("PTTL", "rl:{t}:req"));
  EXPECT_GT(pttl, 0);  // whole ms, set from the fixed time: 9.5 s
  EXPECT_LE(pttl, 9'500);
}

TEST_F(Algorithms, SlidingWindowLog) {
  // 3 per 10 s; an entry at t counts while now - 10 s < t.
  run_table(state(RateLimitAlgorithm::kSlidingWindowLog, 3, 10'000),
            {
                {0, 1, true, 2, 10'000, 10'000, 0},
                {1'000, 1, true, 1, 10'000, 9'000, 0},
                {2'000, 1, true, 0, 10'000, 8'000, 0},
                {3'000, 1, false, 0, 9'000, 7'000, 7'000},  // the entry at 0 leaves at 10 s
                {10'000, 1, true, 0, 10'000, 1'000, 0},     // ... and has left
                {10'001, 1, false, 0, 9'999, 999, 999},
                {10'001, 4, false, 0, 9'999, 999, -1},
            });
  EXPECT_EQ(server_->cli("ZCARD", "rl:{t}:req"), "3");
  EXPECT_EQ(server_->cli("HGET", "rl:{t}:req:meta", "sum"), "3");
  const auto pttl = std::stoll(server_->cli("PTTL", "rl:{t}:req"));
  EXPECT_GT(pttl, 9'000);  // a window in whole ms, not the seed's EXPIRE window / 1000
  EXPECT_LE(pttl, 10'000);
}

TEST_F(Algorithms, SlidingWindowLogMembersAreUniqueAtTheSameMicrosecond) {
  auto s = state(RateLimitAlgorithm::kSlidingWindowLog, 5, 60'000);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(check(s, 1, kT0).admitted) << i;
  auto sixth = check(s, 1, kT0);
  EXPECT_FALSE(sixth.admitted);
  EXPECT_EQ(sixth.states[0].retry_ms, 60'000);
  EXPECT_EQ(server_->cli("ZCARD", "rl:{t}:req"), "5");
}

TEST_F(Algorithms, SlidingWindowLogCountsTokenCosts) {
  auto s = state(RateLimitAlgorithm::kSlidingWindowLog, 100, 10'000, 0, "rl:{t}:tok");
  run_table(s, {
                   {0, 60, true, 40, 10'000, 10'000, 0},
                   {1'000, 30, true, 10, 10'000, 9'000, 0},
                   {2'000, 50, false, 10, 9'000, 8'000, 8'000},  // needs the 60 at 0 gone
                   {2'000, 80, false, 10, 9'000, 8'000, 9'000},  // needs both gone
                   {10'000, 50, true, 20, 10'000, 1'000, 0},
               });
}

TEST_F(Algorithms, SlidingWindowCounter) {
  // 10 per 10 s: used = previous * (10 s - elapsed) / 10 s + current.
  run_table(state(RateLimitAlgorithm::kSlidingWindowCounter, 10, 10'000),
            {
                {0, 6, true, 4, 20'000, 11'667, 0},
                {5'000, 5, false, 4, 15'000, 6'667, 6'667},  // next window: 6 * 5/6 = 5 left
                {5'000, 4, true, 0, 15'000, 6'000, 0},
                {15'000, 5, true, 0, 15'000, 1'000, 0},  // 10 * 0.5 + 5
                {15'000, 1, false, 0, 15'000, 1'000, 1'000},
                {16'000, 1, true, 0, 14'000, 1'000, 0},   // 10 * 0.4 + 6
                {40'000, 1, true, 9, 20'000, 20'000, 0},  // long idle: both windows forgotten
                {40'000, 11, false, 9, 20'000, 20'000, -1},
            });
}

TEST_F(Algorithms, TokenBucketGcra) {
  // 10 per 10 s: one unit per second, bucket of 10 (the limit).
  run_table(state(RateLimitAlgorithm::kTokenBucket, 10, 10'000),
            {
                {0, 10, true, 0, 10'000, 1'000, 0},
                {0, 1, false, 0, 10'000, 1'000, 1'000},
                {2'500, 1, true, 1, 8'500, 500, 0},  // 2.5 units back, one used
                {2'500, 2, false, 1, 8'500, 500, 500},
                {2'500, 11, false, 1, 8'500, 500, -1},
                {30'000, 0, true, 10, 0, 0, 0},  // full again
            });
}

TEST_F(Algorithms, TokenBucketBurstSmallerThanTheLimit) {
  // 10 per 10 s with a bucket of 2: two at once, then one per second.
  run_table(state(RateLimitAlgorithm::kTokenBucket, 10, 10'000, 2),
            {
                {0, 1, true, 1, 1'000, 1'000, 0},
                {0, 1, true, 0, 2'000, 1'000, 0},
                {0, 1, false, 0, 2'000, 1'000, 1'000},
                {1'000, 1, true, 0, 2'000, 1'000, 0},
                {1'000, 3, false, 0, 2'000, 1'000, -1},
            });
}

TEST_F(Algorithms, TokenBucketExactAcrossManySmallCosts) {
  // 7 per 60 s: an emission interval of 8.571428... s that no double holds exactly.
  auto s = state(RateLimitAlgorithm::kTokenBucket, 7, 60'000);
  for (int i = 0; i < 7; ++i) EXPECT_TRUE(check(s, 1, kT0 + i).admitted) << i;
  EXPECT_FALSE(check(s, 1, kT0 + 10).admitted);
}

// Settlement: reserve 50 of 100, then turn the reservation into `actual`.
struct SettleCase {
  RateLimitAlgorithm algorithm;
  uint64_t actual;
  uint64_t remaining_after;
};

TEST_F(Algorithms, SettleRefundsAndChargesEveryAlgorithm) {
  const std::vector<SettleCase> cases = {
      {RateLimitAlgorithm::kFixedWindow, 20, 80},
      {RateLimitAlgorithm::kFixedWindow, 70, 30},
      {RateLimitAlgorithm::kFixedWindow, 130, 0},
      {RateLimitAlgorithm::kSlidingWindowLog, 20, 80},
      {RateLimitAlgorithm::kSlidingWindowLog, 70, 30},
      {RateLimitAlgorithm::kSlidingWindowLog, 0, 100},
      {RateLimitAlgorithm::kSlidingWindowCounter, 20, 80},
      {RateLimitAlgorithm::kSlidingWindowCounter, 130, 0},
      {RateLimitAlgorithm::kTokenBucket, 20, 80},
      {RateLimitAlgorithm::kTokenBucket, 70, 30},
      {RateLimitAlgorithm::kTokenBucket, 130, 0},
  };
  for (const auto& c : cases) {
    server_->cli("FLUSHALL");
    SCOPED_TRACE(std::string(algorithm_code(c.algorithm)) + " actual " + std::to_string(c.actual));
    auto s = state(c.algorithm, 100, 60'000, 0, "rl:{t}:tok");
    auto reserved = check(s, 50, kT0 + ms(1));
    ASSERT_TRUE(reserved.admitted);
    EXPECT_EQ(reserved.states[0].remaining, 50u);
    EXPECT_EQ(settle(s, 50, reserved.states[0].handle, c.actual, kT0 + ms(1)), 1);
    EXPECT_EQ(check(s, 0, kT0 + ms(1)).states[0].remaining, c.remaining_after);
  }
}

TEST_F(Algorithms, SettleNeverGoesBelowZeroAndIgnoresExpiredReservations) {
  for (auto a : {RateLimitAlgorithm::kFixedWindow, RateLimitAlgorithm::kSlidingWindowLog,
                 RateLimitAlgorithm::kSlidingWindowCounter}) {
    server_->cli("FLUSHALL");
    SCOPED_TRACE(std::string(algorithm_code(a)));
    auto s = state(a, 100, 10'000, 0, "rl:{t}:tok");
    auto first = check(s, 30, kT0);
    // A reservation from a window that has passed changes nothing.
    auto later = check(s, 40, kT0 + ms(25'000));
    ASSERT_TRUE(later.admitted);
    EXPECT_EQ(settle(s, 30, first.states[0].handle, 0, kT0 + ms(25'000)), 0);
    EXPECT_EQ(check(s, 0, kT0 + ms(25'000)).states[0].remaining, 60u);
    // A refund larger than what is counted stops at zero.
    EXPECT_EQ(settle(s, 1000, later.states[0].handle, 0, kT0 + ms(25'000)),
              a == RateLimitAlgorithm::kSlidingWindowLog ? 0 : 1);
    EXPECT_LE(check(s, 0, kT0 + ms(25'000)).states[0].remaining, 100u);
  }
  // Token bucket: a refund never makes the bucket more than full.
  server_->cli("FLUSHALL");
  auto tb = state(RateLimitAlgorithm::kTokenBucket, 100, 10'000, 0, "rl:{t}:tok");
  check(tb, 10, kT0);
  EXPECT_EQ(settle(tb, 1000, 0, 0, kT0), 1);
  auto full = check(tb, 100, kT0);
  EXPECT_TRUE(full.admitted);
  EXPECT_EQ(full.states[0].remaining, 0u);
  EXPECT_FALSE(check(tb, 1, kT0).admitted);
}

TEST_F(Algorithms, SeveralStatesAreAllOrNothing) {
  auto a = state(RateLimitAlgorithm::kFixedWindow, 5, 60'000, 0, "rl:{g}:a");
  auto b = state(RateLimitAlgorithm::kSlidingWindowLog, 1, 60'000, 0, "rl:{g}:b");
  auto c = state(RateLimitAlgorithm::kTokenBucket, 3, 60'000, 0, "rl:{g}:c");
  auto d = state(RateLimitAlgorithm::kSlidingWindowCounter, 4, 60'000, 0, "rl:{g}:d");
  for (StateRef* s : {&a, &b, &c, &d}) s->cost = 1;
  const StateRef* all[] = {&a, &b, &c, &d};
  auto first = run_until_done(io_, limiter_script().run(*client_, check_command(all, kT0)));
  auto r1 = parse_check_reply(*first, 4);
  ASSERT_TRUE(r1 && r1->admitted);
  auto second = run_until_done(io_, limiter_script().run(*client_, check_command(all, kT0)));
  auto r2 = parse_check_reply(*second, 4);
  ASSERT_TRUE(r2.has_value());
  EXPECT_FALSE(r2->admitted);
  EXPECT_TRUE(r2->states[0].admitted);
  EXPECT_FALSE(r2->states[1].admitted);  // b's single slot is taken
  // Nothing was consumed by the refused call: the others still show one use each.
  EXPECT_EQ(r2->states[0].remaining, 4u);
  EXPECT_EQ(r2->states[2].remaining, 2u);
  EXPECT_EQ(r2->states[3].remaining, 3u);
  EXPECT_EQ(server_->cli("HGET", "rl:{g}:a", "c"), "1");
  EXPECT_EQ(server_->cli("HGET", "rl:{g}:d", "c"), "1");
}

TEST_F(Algorithms, RedisTimeWhenNoFixedTimeIsGiven) {
  auto s = state(RateLimitAlgorithm::kSlidingWindowLog, 2, 60'000);
  s.cost = 1;
  const StateRef* one[] = {&s};
  for (int i = 0; i < 3; ++i) {
    auto r = run_until_done(io_, limiter_script().run(*client_, check_command(one)));
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(parse_check_reply(*r, 1)->admitted, i < 2);
  }
  // The entries carry the server's clock (within a minute of ours).
  const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const auto score = std::stoll(server_->cli("ZSCORE", "rl:{t}:req", "1:1"));
  EXPECT_LT(std::llabs(score - now_us), 60'000'000LL);
}

// Under the Redis clock a commit within a window whose expiry is already set leaves it
// alone (the window's end does not move); the key must still always carry an expiry that
// ends no later than the state can matter: the window's end (fixed window) or the next
// window's (sliding-window counter).
TEST_F(Algorithms, WindowKeysKeepTheirExpiryUnderTheRedisClock) {
  for (auto a : {RateLimitAlgorithm::kFixedWindow, RateLimitAlgorithm::kSlidingWindowCounter}) {
    SCOPED_TRACE(std::string(algorithm_name(a)));
    server_->cli("FLUSHALL");
    auto s = state(a, 100, 60'000);
    s.cost = 1;
    const StateRef* one[] = {&s};
    const int64_t bound = a == RateLimitAlgorithm::kFixedWindow ? 60'000 : 120'000;
    int64_t handle = 0;
    for (int i = 0; i < 4; ++i) {
      auto r = run_until_done(io_, limiter_script().run(*client_, check_command(one)));
      ASSERT_TRUE(r.ok()) << r.error().to_string();
      auto parsed = parse_check_reply(*r, 1);
      ASSERT_TRUE(parsed && parsed->admitted);
      handle = parsed->states[0].handle;
      const auto pttl = std::stoll(server_->cli("PTTL", "rl:{t}:req"));
      // -2: the window ended between the two commands (within its last milliseconds).
      EXPECT_TRUE(pttl == -2 || (pttl > 0 && pttl <= bound)) << "call " << i << ": " << pttl;
    }
    // A settlement changes the count, not the expiry (0: the window has just ended).
    s.handle = handle;
    const uint64_t refund[] = {0};
    auto settled = run_until_done(io_, limiter_script().run(*client_, settle_command(one, refund)));
    ASSERT_TRUE(settled.ok()) << settled.error().to_string();
    EXPECT_LE(settled->integer(), 1);
    const auto pttl = std::stoll(server_->cli("PTTL", "rl:{t}:req"));
    EXPECT_TRUE(pttl == -2 || (pttl > 0 && pttl <= bound)) << pttl;
  }
}

TEST_F(Algorithms, UnknownAlgorithmIsAServerError) {
  redis::Command bad("EVAL", limiter_script().source(), 1, "rl:{t}:x", "check", "", 1, "nope", 1,
                     1000, 1, 1, 0, 1);
  auto r = run_until_done(io_, client_->execute(bad));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("unknown algorithm"), std::string::npos);
}

}  // namespace
}  // namespace redline::ratelimit
