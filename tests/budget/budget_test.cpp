// Budgets: cost math (rounding, fractional prices, huge counts), UTC calendar periods across
// month, year, leap-day and Sunday/Monday boundaries, the Redis layout, price lookup with the
// dated-name fallback; then against real redis-server processes: refusal exactly at the limit
// per key and per tenant (scope and reset in the decision), cache hits counted as saved, the
// admin report, two instances recording concurrently summing exactly, Redis stopped or paused
// (degraded, bounded, never a throw), and the same on a 3-master cluster.
#include "budget/budget.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <ctime>
#include <limits>
#include <thread>

#include "budget/layout.h"
#include "redis/async_test_util.h"
#include "redis/cluster.h"
#include "support/redis_server.h"

namespace redline::budget {
namespace {

namespace asio = boost::asio;
using config::BudgetPeriod;
using config::ModelPrice;
using redis::testing::run_for;
using redis::testing::run_until_done;

// Unix ms of a UTC civil time, through glibc's timegm (not the code under test).
int64_t utc_ms(int y, int mo, int d, int h = 0, int mi = 0, int s = 0, int ms = 0) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

int64_t real_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

config::Config make_config() {
  config::Config c;
  c.prices["gpt-4o"] = ModelPrice{2.5, 10};
  c.prices["gpt-4o-mini"] = ModelPrice{0.15, 0.6};
  c.prices["unit"] = ModelPrice{1, 2};  // 1 micro-dollar per input token, 2 per output token
  c.prices["claude-3-5-sonnet"] = ModelPrice{3, 15};
  c.prices["gpt-4"] = ModelPrice{30, 60};
  c.prices["llama3:8b"] = ModelPrice{0.5, 0.5};
  c.budgets.tenants["acme"] = config::Budget{0.005, BudgetPeriod::kMonth};  // 5000 micro-$
  c.budgets.tenants["weekly:co"] = config::Budget{0.002, BudgetPeriod::kWeek};
  return c;
}

// ---------------------------------------------------------------------------------------
// Cost.

TEST(CostMicros, ZeroTokensAndNoPriceCostNothing) {
  EXPECT_EQ(cost_micros(ModelPrice{2.5, 10}, 0, 0), 0);
  EXPECT_EQ(cost_micros(ModelPrice{}, 1'000'000, 1'000'000), 0);
}

TEST(CostMicros, PerMillionPricesGiveMicroDollarsPerToken) {
  EXPECT_EQ(cost_micros(ModelPrice{2.5, 10}, 1'000'000, 0), 2'500'000);  // $2.50
  EXPECT_EQ(cost_micros(ModelPrice{2.5, 10}, 1000, 500), 2'500 + 5'000);
  EXPECT_EQ(cost_micros(ModelPrice{1, 2}, 7, 3), 13);
}

TEST(CostMicros, FractionalPricesRoundHalfUpOnTheExactDecimal) {
  const ModelPrice mini{0.15, 0.6};
  EXPECT_EQ(cost_micros(mini, 1000, 0), 150);
  EXPECT_EQ(cost_micros(mini, 1, 0), 0);  // 0.15
  EXPECT_EQ(cost_micros(mini, 3, 0), 0);  // 0.45
  EXPECT_EQ(cost_micros(mini, 4, 0), 1);  // 0.60
  // 1.5 exactly: 0.15 as a double is 0.1499999...; long double math on it rounds down to 1.
  EXPECT_EQ(cost_micros(mini, 10, 0), 2);
  EXPECT_EQ(cost_micros(mini, 30, 0), 5);  // 4.5
  // 1234 x 0.15 + 567 x 0.6 = 185.1 + 340.2 = 525.3
  EXPECT_EQ(cost_micros(mini, 1234, 567), 525);
  EXPECT_EQ(cost_micros(ModelPrice{0.075, 0.3}, 1'000'000'000, 0), 75'000'000);
  EXPECT_EQ(cost_micros(ModelPrice{0.0375, 0}, 20, 0), 1);  // 0.75
}

TEST(CostMicros, HugeCountsAreExactAndSaturateInsteadOfOverflowing) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  // 18446744073709551615 x 0.15 = 2767011611056432742.25
  EXPECT_EQ(cost_micros(ModelPrice{0.15, 0}, kMax, 0), 2'767'011'611'056'432'742LL);
  EXPECT_EQ(cost_micros(ModelPrice{0, 0.15}, 0, kMax), 2'767'011'611'056'432'742LL);
  EXPECT_EQ(cost_micros(ModelPrice{10, 10}, kMax, kMax), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(cost_micros(ModelPrice{1e300, 0}, 1, 0), 1'000'000'000'000LL);  // capped price
}

TEST(CostMicros, NegativeOrNanPricesCountAsZero) {
  EXPECT_EQ(cost_micros(ModelPrice{-1, std::nan("")}, 1000, 1000), 0);
}

// ---------------------------------------------------------------------------------------
// Periods.

void expect_period(BudgetPeriod kind, int64_t at, std::string_view id, int64_t start, int64_t end) {
  const Period p = period_at(kind, at);
  EXPECT_EQ(p.id, id);
  EXPECT_EQ(p.start_ms, start) << p.id;
  EXPECT_EQ(p.end_ms, end) << p.id;
}

TEST(PeriodAt, DayWeekAndMonthOfAnOrdinaryFriday) {
  const int64_t t = utc_ms(2026, 11, 27, 13, 45, 7, 250);  // Friday
  expect_period(BudgetPeriod::kDay, t, "d2026-11-27", utc_ms(2026, 11, 27), utc_ms(2026, 11, 28));
  expect_period(BudgetPeriod::kWeek, t, "w2026-11-23", utc_ms(2026, 11, 23), utc_ms(2026, 11, 30));
  expect_period(BudgetPeriod::kMonth, t, "m2026-11", utc_ms(2026, 11, 1), utc_ms(2026, 12, 1));
}

TEST(PeriodAt, DayBoundaryIsMidnightUtc) {
  expect_period(BudgetPeriod::kDay, utc_ms(2026, 11, 27, 23, 59, 59, 999), "d2026-11-27",
                utc_ms(2026, 11, 27), utc_ms(2026, 11, 28));
  expect_period(BudgetPeriod::kDay, utc_ms(2026, 11, 28), "d2026-11-28", utc_ms(2026, 11, 28),
                utc_ms(2026, 11, 29));
}

TEST(PeriodAt, WeekTurnsBetweenSundayAndMonday) {
  // 2026-11-29 is a Sunday, 2026-11-30 a Monday.
  expect_period(BudgetPeriod::kWeek, utc_ms(2026, 11, 29, 23, 59, 59, 999), "w2026-11-23",
                utc_ms(2026, 11, 23), utc_ms(2026, 11, 30));
  expect_period(BudgetPeriod::kWeek, utc_ms(2026, 11, 30), "w2026-11-30", utc_ms(2026, 11, 30),
                utc_ms(2026, 12, 7));
  expect_period(BudgetPeriod::kWeek, utc_ms(2026, 11, 23), "w2026-11-23", utc_ms(2026, 11, 23),
                utc_ms(2026, 11, 30));
  // A week that spans two months keeps the id of its Monday.
  expect_period(BudgetPeriod::kWeek, utc_ms(2026, 12, 2, 12), "w2026-11-30", utc_ms(2026, 11, 30),
                utc_ms(2026, 12, 7));
}

TEST(PeriodAt, YearBoundary) {
  const int64_t last = utc_ms(2026, 12, 31, 23, 59, 59, 999);  // Thursday
  const int64_t first = utc_ms(2027, 1, 1);                    // Friday
  expect_period(BudgetPeriod::kDay, last, "d2026-12-31", utc_ms(2026, 12, 31), utc_ms(2027, 1, 1));
  expect_period(BudgetPeriod::kDay, first, "d2027-01-01", utc_ms(2027, 1, 1), utc_ms(2027, 1, 2));
  expect_period(BudgetPeriod::kMonth, last, "m2026-12", utc_ms(2026, 12, 1), utc_ms(2027, 1, 1));
  expect_period(BudgetPeriod::kMonth, first, "m2027-01", utc_ms(2027, 1, 1), utc_ms(2027, 2, 1));
  // The week of 2026-12-28 runs into 2027.
  expect_period(BudgetPeriod::kWeek, last, "w2026-12-28", utc_ms(2026, 12, 28), utc_ms(2027, 1, 4));
  expect_period(BudgetPeriod::kWeek, first, "w2026-12-28", utc_ms(2026, 12, 28),
                utc_ms(2027, 1, 4));
}

TEST(PeriodAt, LeapDayAndShortFebruary) {
  const int64_t leap = utc_ms(2028, 2, 29, 12);
  expect_period(BudgetPeriod::kDay, leap, "d2028-02-29", utc_ms(2028, 2, 29), utc_ms(2028, 3, 1));
  expect_period(BudgetPeriod::kMonth, leap, "m2028-02", utc_ms(2028, 2, 1), utc_ms(2028, 3, 1));
  EXPECT_EQ(
      period_at(BudgetPeriod::kMonth, leap).end_ms - period_at(BudgetPeriod::kMonth, leap).start_ms,
      29LL * 86'400'000);
  expect_period(BudgetPeriod::kWeek, leap, "w2028-02-28", utc_ms(2028, 2, 28), utc_ms(2028, 3, 6));
  expect_period(BudgetPeriod::kDay, utc_ms(2028, 3, 1), "d2028-03-01", utc_ms(2028, 3, 1),
                utc_ms(2028, 3, 2));
  const int64_t feb27 = utc_ms(2027, 2, 15);
  expect_period(BudgetPeriod::kMonth, feb27, "m2027-02", utc_ms(2027, 2, 1), utc_ms(2027, 3, 1));
}

TEST(PeriodAt, InstantsBefore1970FloorToTheirDay) {
  // -1 ms is 1969-12-31T23:59:59.999Z, a Wednesday.
  expect_period(BudgetPeriod::kDay, -1, "d1969-12-31", -86'400'000, 0);
  expect_period(BudgetPeriod::kWeek, -1, "w1969-12-29", -3 * 86'400'000LL, 4 * 86'400'000LL);
  expect_period(BudgetPeriod::kMonth, 0, "m1970-01", 0, 31 * 86'400'000LL);
}

// ---------------------------------------------------------------------------------------
// Layout and prices.

TEST(Layout, HashNamesEscapeSeparatorsAndHashTags) {
  EXPECT_EQ(layout::hash_key(layout::Scope::kKey, "k1", "d2026-11-27"), "sp:k:k1:d2026-11-27");
  EXPECT_EQ(layout::hash_key(layout::Scope::kTenant, "acme", "m2026-11"), "sp:t:acme:m2026-11");
  EXPECT_EQ(layout::hash_key(layout::Scope::kTenant, "a:b", "m2026-11"), "sp:t:a%3Ab:m2026-11");
  EXPECT_EQ(layout::escape_id("{x}"), "%7Bx%7D");
  EXPECT_EQ(layout::escape_id("50%"), "50%25");
  EXPECT_EQ(layout::escape_id("a b\n"), "a%20b%0A");
  // Injective: the escaped form of "a:b" is not what "a%3Ab" becomes.
  EXPECT_NE(layout::escape_id("a:b"), layout::escape_id("a%3Ab"));
  EXPECT_EQ(layout::model_field(layout::kSpent, "llama3:8b"), "spent:llama3:8b");
}

TEST(Price, ExactNameThenLongestDatedPrefix) {
  const Budgets b(make_config());
  ASSERT_NE(b.price("gpt-4o"), nullptr);
  EXPECT_EQ(b.price("gpt-4o")->input_per_mtok, 2.5);
  EXPECT_EQ(b.price("gpt-4o-mini")->input_per_mtok, 0.15);
  // Dated names: the longest configured name they extend.
  ASSERT_NE(b.price("gpt-4o-mini-2024-07-18"), nullptr);
  EXPECT_EQ(b.price("gpt-4o-mini-2024-07-18")->input_per_mtok, 0.15);
  ASSERT_NE(b.price("gpt-4o-2024-08-06"), nullptr);
  EXPECT_EQ(b.price("gpt-4o-2024-08-06")->input_per_mtok, 2.5);
  ASSERT_NE(b.price("claude-3-5-sonnet-20241022"), nullptr);
  EXPECT_EQ(b.price("claude-3-5-sonnet-20241022")->output_per_mtok, 15);
  ASSERT_NE(b.price("gpt-4-0613"), nullptr);
  EXPECT_EQ(b.price("gpt-4-0613")->input_per_mtok, 30);
  // Not a date or version suffix: a different model, no price.
  EXPECT_EQ(b.price("gpt-4-1106-preview"), nullptr);
  EXPECT_EQ(b.price("gpt-4o-mini-audio-preview"), nullptr);
  EXPECT_EQ(b.price("gpt-4o-mini-audio-2024-12-17"), nullptr);
  EXPECT_EQ(b.price("gpt-4o-"), nullptr);
  EXPECT_EQ(b.price("gpt-4o2"), nullptr);
  EXPECT_EQ(b.price("GPT-4O"), nullptr);
  EXPECT_EQ(b.price(""), nullptr);
  EXPECT_EQ(b.price("-2024"), nullptr);
}

TEST(Limited, KeyBudgetNeedsAKeyIdTenantBudgetComesFromConfig) {
  const Budgets b(make_config());
  EXPECT_FALSE(b.limited(Subject{"k1", std::nullopt, "other"}));
  EXPECT_TRUE(b.limited(Subject{"k1", config::Budget{1, BudgetPeriod::kDay}, "other"}));
  EXPECT_FALSE(b.limited(Subject{"", config::Budget{1, BudgetPeriod::kDay}, "other"}));
  EXPECT_TRUE(b.limited(Subject{"", std::nullopt, "acme"}));
}

// ---------------------------------------------------------------------------------------
// Against one redis-server.

class BudgetRedis : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new test::RedisServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (!server_->running()) server_->restart();
    server_->cli("FLUSHALL");
    client_ = connect(io_);
  }
  void TearDown() override {
    client_->stop();
    run_for(io_, std::chrono::milliseconds(5));
  }
  static redis::ClientOptions client_options() {
    redis::ClientOptions o;
    o.urls = {server_->url()};
    // Generous: 1000 concurrent records on a loaded 2-core machine under ASan must not time out.
    o.connection.command_timeout = std::chrono::milliseconds(5000);
    o.connection.reconnect_max = std::chrono::milliseconds(50);
    return o;
  }
  static std::unique_ptr<redis::Client> connect(asio::io_context& io) {
    auto c = redis::make_client(io.get_executor(), client_options()).value();
    EXPECT_TRUE(run_until_done(io, c->connect()).ok());
    return c;
  }
  Decision check(const Subject& s, int64_t at, config::Millis timeout = config::Millis(200)) {
    return run_until_done(io_, budgets_.check(*client_, s, at, timeout));
  }
  int64_t record(const Subject& s, std::string_view model, uint64_t in, uint64_t out,
                 bool hit = false, int64_t at = 0) {
    return run_until_done(io_, budgets_.record(*client_, s, model, in, out, hit, at ? at : now_));
  }
  boost::json::object report(std::string_view scope, std::string_view id,
                             std::optional<config::Budget> budget, BudgetPeriod kind) {
    auto r = run_until_done(io_, budgets_.report(*client_, scope, id, budget, kind, now_));
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().to_string());
    return r.ok() ? *r : boost::json::object();
  }
  std::string hget(std::string_view scope_key, std::string_view field) {
    return server_->cli("HGET", std::string(scope_key), std::string(field));
  }

  static test::RedisServer* server_;
  asio::io_context io_;
  std::unique_ptr<redis::Client> client_;
  Budgets budgets_{make_config()};
  const int64_t now_ = real_now_ms();
};

test::RedisServer* BudgetRedis::server_ = nullptr;

TEST_F(BudgetRedis, KeyBudgetRefusesExactlyWhenSpentReachesTheLimit) {
  const Subject s{"k1", config::Budget{0.001, BudgetPeriod::kDay}, "other"};  // 1000 micro-$
  EXPECT_TRUE(check(s, now_).allowed);
  EXPECT_EQ(record(s, "unit", 600, 0), 600);
  EXPECT_TRUE(check(s, now_).allowed);
  EXPECT_EQ(record(s, "unit", 399, 0), 399);
  const Decision below = check(s, now_);
  EXPECT_TRUE(below.allowed);
  EXPECT_FALSE(below.degraded);
  EXPECT_EQ(record(s, "unit", 1, 0), 1);  // exactly 1000
  const Decision d = check(s, now_);
  EXPECT_FALSE(d.allowed);
  EXPECT_FALSE(d.degraded);
  EXPECT_EQ(d.scope, "key");
  EXPECT_DOUBLE_EQ(d.limit_usd, 0.001);
  EXPECT_DOUBLE_EQ(d.spent_usd, 0.001);
  EXPECT_EQ(d.reset_ms, period_at(BudgetPeriod::kDay, now_).end_ms);
  // Another key of the same tenant is not affected; the next day starts from zero.
  EXPECT_TRUE(check(Subject{"k2", s.key_budget, "other"}, now_).allowed);
  EXPECT_TRUE(check(s, d.reset_ms).allowed);
  EXPECT_EQ(budgets_.stats().checks, 6u);
  EXPECT_EQ(budgets_.stats().refusals, 1u);
  EXPECT_EQ(budgets_.stats().records, 3u);
  EXPECT_EQ(budgets_.stats().record_failures, 0u);
}

TEST_F(BudgetRedis, TenantBudgetRefusesEveryKeyOfTheTenant) {
  const Subject a{"ka", std::nullopt, "acme"};  // acme: 5000 micro-$ a month
  const Subject b{"kb", std::nullopt, "acme"};
  EXPECT_EQ(record(a, "unit", 2000, 1000), 4000);
  EXPECT_TRUE(check(b, now_).allowed);
  EXPECT_EQ(record(b, "unit", 999, 0), 999);
  EXPECT_TRUE(check(a, now_).allowed);  // 4999
  EXPECT_EQ(record(b, "unit", 1, 0), 1);
  for (const Subject& s : {a, b}) {
    const Decision d = check(s, now_);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.scope, "tenant");
    EXPECT_DOUBLE_EQ(d.limit_usd, 0.005);
    EXPECT_DOUBLE_EQ(d.spent_usd, 0.005);
    EXPECT_EQ(d.reset_ms, period_at(BudgetPeriod::kMonth, now_).end_ms);
  }
  // A tenant name with ':' has its own (escaped) hash.
  const Subject w{"", std::nullopt, "weekly:co"};
  EXPECT_EQ(record(w, "unit", 2000, 0), 2000);
  const Decision d = check(w, now_);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reset_ms, period_at(BudgetPeriod::kWeek, now_).end_ms);
  const std::string week = period_at(BudgetPeriod::kWeek, now_).id;
  EXPECT_EQ(hget("sp:t:weekly%3Aco:" + week, "spent"), "2000");
}

TEST_F(BudgetRedis, BothExhaustedNamesTheOneThatResetsLater) {
  const Subject s{"k1", config::Budget{0.000001, BudgetPeriod::kDay}, "acme"};
  record(s, "unit", 5000, 0);
  const Decision d = check(s, now_);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.scope, "tenant");  // month outlasts day
  EXPECT_EQ(d.reset_ms, period_at(BudgetPeriod::kMonth, now_).end_ms);
}

TEST_F(BudgetRedis, RecordWritesTheBudgetPeriodAndTheMonthWithRetention) {
  const Subject s{"k1", config::Budget{1, BudgetPeriod::kDay}, "weekly:co"};
  EXPECT_EQ(record(s, "gpt-4o-mini-2024-07-18", 1234, 567), 525);
  const Period day = period_at(BudgetPeriod::kDay, now_);
  const Period week = period_at(BudgetPeriod::kWeek, now_);
  const Period month = period_at(BudgetPeriod::kMonth, now_);
  for (const std::string& h : {"sp:k:k1:" + day.id, "sp:k:k1:" + month.id,
                               "sp:t:weekly%3Aco:" + week.id, "sp:t:weekly%3Aco:" + month.id}) {
    SCOPED_TRACE(h);
    EXPECT_EQ(hget(h, "spent"), "525");
    EXPECT_EQ(hget(h, "in"), "1234");
    EXPECT_EQ(hget(h, "out"), "567");
    EXPECT_EQ(hget(h, "req"), "1");
    EXPECT_EQ(hget(h, "spent:gpt-4o-mini-2024-07-18"), "525");
    EXPECT_EQ(hget(h, "hits"), "");
  }
  EXPECT_EQ(server_->cli("EXISTS", "sp:k:k1:" + week.id), "0");
  EXPECT_EQ(server_->cli("EXISTS", "sp:t:weekly%3Aco:" + day.id), "0");
  EXPECT_EQ(server_->cli("DBSIZE"), "4");
  EXPECT_EQ(server_->cli("PEXPIRETIME", "sp:k:k1:" + day.id),
            std::to_string(day.end_ms + layout::kRetentionMs));
  EXPECT_EQ(server_->cli("PEXPIRETIME", "sp:t:weekly%3Aco:" + month.id),
            std::to_string(month.end_ms + layout::kRetentionMs));
}

TEST_F(BudgetRedis, CacheHitsAreSavedNotSpent) {
  const Subject s{"k1", config::Budget{0.001, BudgetPeriod::kMonth}, "other"};
  for (int i = 0; i < 3; ++i) EXPECT_EQ(record(s, "unit", 500, 0, /*hit=*/true), 500);
  EXPECT_TRUE(check(s, now_).allowed);  // 1500 saved, nothing spent
  const std::string h = "sp:k:k1:" + period_at(BudgetPeriod::kMonth, now_).id;
  EXPECT_EQ(hget(h, "saved"), "1500");
  EXPECT_EQ(hget(h, "saved:unit"), "1500");
  EXPECT_EQ(hget(h, "hits"), "3");
  EXPECT_EQ(hget(h, "req"), "3");
  EXPECT_EQ(hget(h, "spent"), "");
  EXPECT_EQ(hget(h, "in"), "");
}

TEST_F(BudgetRedis, ReportsSpendSavingsTokensPerModelAndRemaining) {
  const config::Budget key_budget{0.01, BudgetPeriod::kMonth};  // 10'000 micro-$
  const Subject s{"k1", key_budget, "acme"};
  record(s, "gpt-4o", 1000, 500);                   // 7500
  record(s, "gpt-4o-mini", 1234, 567);              // 525
  record(s, "gpt-4o-mini", 1000, 0, /*hit=*/true);  // saved 150
  record(s, "no-such-model", 100, 100);             // priced 0, tokens count
  const auto o = report("key", "k1", key_budget, BudgetPeriod::kMonth);
  EXPECT_EQ(o.at("scope").as_string(), "key");
  EXPECT_EQ(o.at("id").as_string(), "k1");
  EXPECT_EQ(o.at("period").as_string(), "month");
  const Period month = period_at(BudgetPeriod::kMonth, now_);
  EXPECT_EQ(o.at("period_id").as_string(), month.id);
  EXPECT_EQ(o.at("period_start").as_int64(), month.start_ms);
  EXPECT_EQ(o.at("period_end").as_int64(), month.end_ms);
  EXPECT_DOUBLE_EQ(o.at("spent_usd").as_double(), 0.008025);
  EXPECT_DOUBLE_EQ(o.at("saved_usd").as_double(), 0.00015);
  EXPECT_EQ(o.at("input_tokens").as_int64(), 1000 + 1234 + 100);
  EXPECT_EQ(o.at("output_tokens").as_int64(), 500 + 567 + 100);
  EXPECT_EQ(o.at("requests").as_int64(), 4);
  EXPECT_EQ(o.at("cache_hits").as_int64(), 1);
  EXPECT_DOUBLE_EQ(o.at("limit_usd").as_double(), 0.01);
  EXPECT_DOUBLE_EQ(o.at("remaining_usd").as_double(), 0.001975);
  const auto& by_model = o.at("by_model").as_object();
  ASSERT_EQ(by_model.size(), 3u);
  EXPECT_DOUBLE_EQ(by_model.at("gpt-4o").at("spent_usd").as_double(), 0.0075);
  EXPECT_DOUBLE_EQ(by_model.at("gpt-4o").at("saved_usd").as_double(), 0);
  EXPECT_DOUBLE_EQ(by_model.at("gpt-4o-mini").at("spent_usd").as_double(), 0.000525);
  EXPECT_DOUBLE_EQ(by_model.at("gpt-4o-mini").at("saved_usd").as_double(), 0.00015);
  EXPECT_DOUBLE_EQ(by_model.at("no-such-model").at("spent_usd").as_double(), 0);

  // The tenant's budget comes from the config (the argument is ignored).
  const auto t = report("tenant", "acme", std::nullopt, BudgetPeriod::kMonth);
  EXPECT_DOUBLE_EQ(t.at("spent_usd").as_double(), 0.008025);
  EXPECT_DOUBLE_EQ(t.at("limit_usd").as_double(), 0.005);
  EXPECT_DOUBLE_EQ(t.at("remaining_usd").as_double(), 0);
  // No hash for a day report of a key without a daily budget: zeros, no limit.
  const auto day = report("key", "k1", key_budget, BudgetPeriod::kDay);
  EXPECT_DOUBLE_EQ(day.at("spent_usd").as_double(), 0);
  EXPECT_EQ(day.at("requests").as_int64(), 0);
  EXPECT_EQ(day.at("period_id").as_string(), period_at(BudgetPeriod::kDay, now_).id);
  EXPECT_FALSE(day.contains("limit_usd"));
  EXPECT_FALSE(day.contains("remaining_usd"));
  EXPECT_TRUE(day.at("by_model").as_object().empty());
  // An unknown scope is an error, not a report.
  auto bad = run_until_done(
      io_, budgets_.report(*client_, "model", "x", std::nullopt, BudgetPeriod::kMonth, now_));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.kind(), redis::ErrorKind::kInvalidArgument);
}

TEST_F(BudgetRedis, EscapedTenantsAndModelNamesWithColonsReportVerbatim) {
  const Subject s{"", std::nullopt, "weekly:co"};  // weekly budget of 2000 micro-$
  EXPECT_EQ(record(s, "llama3:8b", 1000, 1000), 1000);
  const auto o = report("tenant", "weekly:co", std::nullopt, BudgetPeriod::kWeek);
  EXPECT_EQ(o.at("id").as_string(), "weekly:co");
  EXPECT_DOUBLE_EQ(o.at("spent_usd").as_double(), 0.001);
  EXPECT_DOUBLE_EQ(o.at("limit_usd").as_double(), 0.002);
  EXPECT_DOUBLE_EQ(o.at("remaining_usd").as_double(), 0.001);
  ASSERT_TRUE(o.at("by_model").as_object().contains("llama3:8b"));
  EXPECT_DOUBLE_EQ(o.at("by_model").at("llama3:8b").at("spent_usd").as_double(), 0.001);
  // The month report has the spend but not the weekly limit.
  const auto m = report("tenant", "weekly:co", std::nullopt, BudgetPeriod::kMonth);
  EXPECT_DOUBLE_EQ(m.at("spent_usd").as_double(), 0.001);
  EXPECT_FALSE(m.contains("limit_usd"));
}

TEST_F(BudgetRedis, UnlimitedSubjectsAreCheckedWithoutRedis) {
  const uint64_t before = client_->stats().commands_sent;
  const Decision d = check(Subject{"k1", std::nullopt, "nobody"}, now_);
  EXPECT_TRUE(d.allowed);
  EXPECT_FALSE(d.degraded);
  EXPECT_EQ(client_->stats().commands_sent, before);
  check(Subject{"k1", config::Budget{1, BudgetPeriod::kDay}, "acme"}, now_);
  EXPECT_EQ(client_->stats().commands_sent, before + 2);  // key and tenant spend
}

// Two "gateway instances" (own thread, io_context, client, Budgets), 500 concurrent records
// each, on one key and tenant.
void record_concurrently(const redis::ClientOptions& co, const Subject& s, int64_t now_ms, int n,
                         uint64_t* failures) {
  asio::io_context io;
  auto client = redis::make_client(io.get_executor(), co).value();
  EXPECT_TRUE(run_until_done(io, client->connect()).ok());
  const Budgets budgets(make_config());
  int done = 0;
  for (int i = 0; i < n; ++i) {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          const int64_t cost =
              co_await budgets.record(*client, s, "gpt-4o-mini", 123, 45, false, now_ms);
          EXPECT_EQ(cost, 45);  // 18.45 + 27 = 45.45
          ++done;
        },
        asio::detached);
  }
  while (done < n) io.run_one();
  *failures = budgets.stats().record_failures;
  client->stop();
  run_for(io, std::chrono::milliseconds(5));
}

TEST_F(BudgetRedis, TwoInstancesRecordingConcurrentlySumExactly) {
  const Subject s{"k1", config::Budget{100, BudgetPeriod::kWeek}, "acme"};
  uint64_t f1 = 99, f2 = 99;
  std::thread t1([&] { record_concurrently(client_options(), s, now_, 500, &f1); });
  std::thread t2([&] { record_concurrently(client_options(), s, now_, 500, &f2); });
  t1.join();
  t2.join();
  EXPECT_EQ(f1 + f2, 0u);
  const std::string week = "sp:k:k1:" + period_at(BudgetPeriod::kWeek, now_).id;
  const std::string month = "sp:t:acme:" + period_at(BudgetPeriod::kMonth, now_).id;
  for (const auto& h : {week, month}) {
    EXPECT_EQ(hget(h, "spent"), "45000");
    EXPECT_EQ(hget(h, "spent:gpt-4o-mini"), "45000");
    EXPECT_EQ(hget(h, "in"), "123000");
    EXPECT_EQ(hget(h, "out"), "45000");
    EXPECT_EQ(hget(h, "req"), "1000");
  }
}

TEST_F(BudgetRedis, StoppedRedisAdmitsDegradedAndCountsLostRecords) {
  const Subject s{"k1", config::Budget{0.000001, BudgetPeriod::kDay}, "acme"};
  record(s, "unit", 10, 0);
  EXPECT_FALSE(check(s, now_).allowed);
  server_->stop();
  Decision d;
  EXPECT_NO_THROW(d = check(s, now_));
  EXPECT_TRUE(d.allowed);
  EXPECT_TRUE(d.degraded);
  EXPECT_EQ(budgets_.stats().degraded, 1u);
  int64_t cost = -1;
  EXPECT_NO_THROW(cost = record(s, "unit", 10, 5));
  EXPECT_EQ(cost, 20);  // the cost is still known
  EXPECT_EQ(budgets_.stats().record_failures, 1u);
  EXPECT_EQ(budgets_.stats().records, 2u);
  auto r = run_until_done(
      io_, budgets_.report(*client_, "key", "k1", std::nullopt, BudgetPeriod::kDay, now_));
  EXPECT_FALSE(r.ok());
  server_->restart();
}

TEST_F(BudgetRedis, PausedRedisCheckReturnsWithinItsTimeout) {
  const Subject s{"k1", config::Budget{1, BudgetPeriod::kDay}, "acme"};
  EXPECT_TRUE(check(s, now_).allowed);
  server_->pause();
  const auto start = std::chrono::steady_clock::now();
  const Decision d = check(s, now_, std::chrono::milliseconds(50));
  const auto took = std::chrono::steady_clock::now() - start;
  server_->resume();
  EXPECT_TRUE(d.allowed);
  EXPECT_TRUE(d.degraded);
  EXPECT_GE(took, std::chrono::milliseconds(45));  // it did wait for Redis
  EXPECT_LT(took, std::chrono::milliseconds(1000));
  EXPECT_EQ(budgets_.stats().degraded, 1u);
}

// ---------------------------------------------------------------------------------------
// Redis Cluster: 3 masters + 3 replicas; the key's and the tenant's hashes on different nodes.

class BudgetCluster : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = new test::RedisCluster(); }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    options_.mode = redis::ClientOptions::Mode::kCluster;
    options_.urls = cluster_->urls();
    options_.connection.command_timeout = std::chrono::milliseconds(5000);
    client_ = redis::make_client(io_.get_executor(), options_).value();
    ASSERT_TRUE(run_until_done(io_, client_->connect()).ok());
    ++run_;
  }
  void TearDown() override {
    client_->stop();
    run_for(io_, std::chrono::milliseconds(5));
  }
  std::string hget(const std::string& key, std::string_view field) {
    const redis::Command c("HGET", key, field);
    auto r = run_until_done(io_, client_->execute(c));
    EXPECT_TRUE(r.ok());
    return r.ok() && !r->is_null() ? r->str() : "";
  }

  static test::RedisCluster* cluster_;
  static int run_;
  redis::ClientOptions options_;
  asio::io_context io_;
  std::unique_ptr<redis::Client> client_;
  const int64_t now_ = real_now_ms();
};

test::RedisCluster* BudgetCluster::cluster_ = nullptr;
int BudgetCluster::run_ = 0;

TEST_F(BudgetCluster, RecordCheckAndReportAcrossNodes) {
  const std::string key_id = "ck" + std::to_string(run_);
  config::Config c = make_config();
  // Pick a tenant whose month hash lives on another master than the key's day hash.
  const std::string key_hash = "sp:k:" + key_id + ":" + period_at(BudgetPeriod::kDay, now_).id;
  std::string tenant;
  for (int i = 0; tenant.empty(); ++i) {
    const std::string t = "tenant" + std::to_string(i);
    const std::string h = "sp:t:" + t + ":" + period_at(BudgetPeriod::kMonth, now_).id;
    if (cluster_->master_for_slot(redis::key_slot(h)) !=
        cluster_->master_for_slot(redis::key_slot(key_hash))) {
      tenant = t;
    }
  }
  c.budgets.tenants[tenant] = config::Budget{0.002, BudgetPeriod::kMonth};
  const Budgets budgets(c);
  const Subject s{key_id, config::Budget{0.001, BudgetPeriod::kDay}, tenant};

  EXPECT_EQ(run_until_done(io_, budgets.record(*client_, s, "unit", 999, 0, false, now_)), 999);
  EXPECT_TRUE(run_until_done(io_, budgets.check(*client_, s, now_, config::Millis(500))).allowed);
  EXPECT_EQ(run_until_done(io_, budgets.record(*client_, s, "unit", 1, 0, false, now_)), 1);
  Decision d = run_until_done(io_, budgets.check(*client_, s, now_, config::Millis(500)));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.scope, "key");
  EXPECT_EQ(d.reset_ms, period_at(BudgetPeriod::kDay, now_).end_ms);

  // Another key of the tenant pushes the tenant over its month limit.
  const Subject other{key_id + "b", std::nullopt, tenant};
  run_until_done(io_, budgets.record(*client_, other, "unit", 1000, 0, false, now_));
  d = run_until_done(io_, budgets.check(*client_, other, now_, config::Millis(500)));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.scope, "tenant");
  EXPECT_DOUBLE_EQ(d.spent_usd, 0.002);
  EXPECT_EQ(d.reset_ms, period_at(BudgetPeriod::kMonth, now_).end_ms);
  EXPECT_EQ(budgets.stats().degraded, 0u);
  EXPECT_EQ(budgets.stats().record_failures, 0u);

  auto r = run_until_done(
      io_, budgets.report(*client_, "tenant", tenant, std::nullopt, BudgetPeriod::kMonth, now_));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->at("requests").as_int64(), 3);
  EXPECT_DOUBLE_EQ(r->at("spent_usd").as_double(), 0.002);
  EXPECT_DOUBLE_EQ(r->at("remaining_usd").as_double(), 0);
  EXPECT_DOUBLE_EQ(r->at("by_model").at("unit").at("spent_usd").as_double(), 0.002);
}

TEST_F(BudgetCluster, APausedMasterDegradesTheCheckWithinItsTimeout) {
  const std::string key_id = "ck" + std::to_string(run_);
  const Budgets budgets(make_config());
  const Subject s{key_id, config::Budget{1, BudgetPeriod::kDay}, "acme"};
  EXPECT_TRUE(run_until_done(io_, budgets.check(*client_, s, now_, config::Millis(500))).allowed);
  const std::string key_hash = "sp:k:" + key_id + ":" + period_at(BudgetPeriod::kDay, now_).id;
  const auto master = cluster_->master_for_slot(redis::key_slot(key_hash));
  ASSERT_TRUE(master.has_value());
  cluster_->node(*master).pause();  // well below the node timeout: no failover
  const auto start = std::chrono::steady_clock::now();
  const Decision d = run_until_done(io_, budgets.check(*client_, s, now_, config::Millis(50)));
  const auto took = std::chrono::steady_clock::now() - start;
  cluster_->node(*master).resume();
  EXPECT_TRUE(d.allowed);
  EXPECT_TRUE(d.degraded);
  EXPECT_LT(took, std::chrono::milliseconds(1000));
  EXPECT_EQ(budgets.stats().degraded, 1u);
  EXPECT_TRUE(cluster_->wait_healthy(std::chrono::seconds(10)));
}

TEST_F(BudgetCluster, TwoInstancesRecordingConcurrentlySumExactly) {
  const std::string key_id = "ck" + std::to_string(run_);
  const Subject s{key_id, config::Budget{100, BudgetPeriod::kDay}, "acme"};
  const std::string tenant_hash = "sp:t:acme:" + period_at(BudgetPeriod::kMonth, now_).id;
  const std::string before = hget(tenant_hash, "spent");  // the other test may have recorded
  uint64_t f1 = 99, f2 = 99;
  std::thread t1([&] { record_concurrently(options_, s, now_, 500, &f1); });
  std::thread t2([&] { record_concurrently(options_, s, now_, 500, &f2); });
  t1.join();
  t2.join();
  EXPECT_EQ(f1 + f2, 0u);
  const std::string day = "sp:k:" + key_id + ":" + period_at(BudgetPeriod::kDay, now_).id;
  const std::string month = "sp:k:" + key_id + ":" + period_at(BudgetPeriod::kMonth, now_).id;
  for (const auto& h : {day, month}) {
    EXPECT_EQ(hget(h, "spent"), "45000");
    EXPECT_EQ(hget(h, "req"), "1000");
  }
  const int64_t before_n = before.empty() ? 0 : std::stoll(before);
  EXPECT_EQ(std::stoll(hget(tenant_hash, "spent")) - before_n, 45000);
}

}  // namespace
}  // namespace redline::budget
