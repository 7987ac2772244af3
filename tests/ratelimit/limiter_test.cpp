// RateLimiter against real redis-server processes: headers and refusals, the most restrictive
// policy, a refused request consuming nothing (one script on standalone, refunds across slots
// on a cluster), token reservation and settlement, the two-step plan/complete form pipelined
// with another command, NOSCRIPT recovery, every fail mode with Redis stopped or paused, and
// 200 concurrent checks from two "instances" (threads with their own io_context and client)
// admitting exactly 50 per algorithm, standalone and on a 3-master cluster.
#include "ratelimit/limiter.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <thread>

#include "redis/async_test_util.h"
#include "redis/cluster.h"
#include "support/redis_server.h"

namespace redline::ratelimit {
namespace {

namespace asio = boost::asio;
using config::FailMode;
using config::RateLimitAlgorithm;
using config::RateLimitPolicy;
using config::RateLimitScope;
using redis::testing::run_for;
using redis::testing::run_until_done;

constexpr int64_t kT0 = 1'700'006'400LL * 1'000'000;  // whole days: a multiple of every window

RateLimitPolicy policy(std::vector<RateLimitScope> scopes, RateLimitAlgorithm a,
                       std::optional<uint64_t> requests, std::optional<uint64_t> tokens,
                       int window_s = 60, FailMode mode = FailMode::kOpen) {
  RateLimitPolicy p;
  p.scopes = std::move(scopes);
  p.algorithm = a;
  p.requests = requests;
  p.tokens = tokens;
  p.window = config::Seconds(window_s);
  p.fail_mode = mode;
  return p;
}

RequestFacts facts(uint64_t tokens = 0) {
  RequestFacts f;
  f.key_id = "k1";
  f.tenant = "acme";
  f.model = "gpt-4o";
  f.ip = "10.0.0.1";
  f.estimated_tokens = tokens;
  return f;
}

std::string header(const Decision& d, std::string_view name) {
  for (const auto& h : d.headers) {
    if (h.name == name) return h.value;
  }
  return "<absent>";
}

const std::vector<RateLimitAlgorithm> kAlgorithms = {
    RateLimitAlgorithm::kFixedWindow, RateLimitAlgorithm::kSlidingWindowLog,
    RateLimitAlgorithm::kSlidingWindowCounter, RateLimitAlgorithm::kTokenBucket};

// ---------------------------------------------------------------------------------------
// Standalone.

class Limiter : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new test::RedisServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (!server_->running()) server_->restart();
    server_->cli("FLUSHALL");
    client_ = connect();
  }
  void TearDown() override {
    client_->stop();
    run_for(io_, std::chrono::milliseconds(5));
  }
  std::unique_ptr<redis::Client> connect() {
    redis::ClientOptions o;
    o.urls = {server_->url()};
    o.connection.command_timeout = std::chrono::milliseconds(200);
    o.connection.reconnect_max = std::chrono::milliseconds(50);
    auto c = redis::make_client(io_.get_executor(), o).value();
    EXPECT_TRUE(run_until_done(io_, c->connect()).ok());
    return c;
  }
  LimiterOptions fixed(int64_t at_us = kT0) {
    LimiterOptions o;
    o.fixed_now_us = at_us;
    return o;
  }
  Decision check(RateLimiter& l, const RequestFacts& f,
                 std::span<const RateLimitPolicy> extra = {}) {
    return run_until_done(io_, l.check(f, extra));
  }

  static test::RedisServer* server_;
  asio::io_context io_;
  std::unique_ptr<redis::Client> client_;
};

test::RedisServer* Limiter::server_ = nullptr;

TEST_F(Limiter, AdmitsUpToTheLimitThenRefusesWithHeadersAndABody) {
  const std::vector<RateLimitPolicy> policies = {
      policy({RateLimitScope::kKey}, RateLimitAlgorithm::kSlidingWindowLog, 3, 1000)};
  RateLimiter limiter(*client_, policies, fixed());
  for (uint64_t i = 0; i < 3; ++i) {
    const Decision d = check(limiter, facts(100));
    ASSERT_EQ(d.outcome, Outcome::kAdmitted) << i;
    EXPECT_EQ(d.status(), 200);
    EXPECT_EQ(header(d, "x-ratelimit-limit-requests"), "3");
    EXPECT_EQ(header(d, "x-ratelimit-remaining-requests"), std::to_string(2 - i));
    EXPECT_EQ(header(d, "x-ratelimit-reset-requests"), "1m0s");
    EXPECT_EQ(header(d, "x-ratelimit-limit-tokens"), "1000");
    EXPECT_EQ(header(d, "x-ratelimit-remaining-tokens"), std::to_string(900 - 100 * i));
    EXPECT_EQ(
        header(d, "ratelimit-policy"),
        "\"key-60s-swl-requests\";q=3;w=60, \"key-60s-swl-tokens\";q=1000;qu=\"tokens\";w=60");
    EXPECT_EQ(header(d, "ratelimit"),
              "\"key-60s-swl-requests\";r=" + std::to_string(2 - i) +
                  ";t=60, \"key-60s-swl-tokens\";r=" + std::to_string(900 - 100 * i) + ";t=60");
    EXPECT_EQ(header(d, "retry-after"), "<absent>");
    EXPECT_EQ(header(d, "x-redline-ratelimit"), "<absent>");
    EXPECT_EQ(d.reservation.states.size(), 1u);  // the token state
  }
  limiter.set_fixed_now_us(kT0 + 20'500'000);
  const Decision refused = check(limiter, facts(100));
  EXPECT_EQ(refused.outcome, Outcome::kRefused);
  EXPECT_EQ(refused.status(), 429);
  EXPECT_EQ(refused.policy_id, "key-60s-swl");
  EXPECT_EQ(refused.policy, "3 requests and 1000 tokens per 60s per key (sliding-window-log)");
  EXPECT_EQ(refused.quantity, Quantity::kRequests);
  EXPECT_EQ(refused.retry_after, 40u);  // the first entry leaves at 60 s
  EXPECT_EQ(header(refused, "retry-after"), "40");
  EXPECT_EQ(header(refused, "x-ratelimit-remaining-requests"), "0");
  EXPECT_EQ(header(refused, "x-ratelimit-reset-requests"), "39.5s");
  EXPECT_EQ(header(refused, "x-ratelimit-remaining-tokens"), "700");  // nothing consumed
  EXPECT_TRUE(refused.reservation.empty());
  EXPECT_EQ(refused.message,
            "Rate limit reached for requests on policy key-60s-swl (3 requests and 1000 tokens "
            "per 60s per key (sliding-window-log)): limit 3, remaining 0, requested 1. Please "
            "try again in 39.5s.");
  const auto body = boost::json::parse(refused.error_body());
  EXPECT_EQ(body.at("error").at("type").as_string(), "requests");
  EXPECT_EQ(body.at("error").at("code").as_string(), "rate_limit_exceeded");
  EXPECT_EQ(server_->cli("ZCARD", "rl:{key-60s-swl:k1}:req"), "3");
  const auto s = limiter.stats();
  EXPECT_EQ(s.checks, 4u);
  EXPECT_EQ(s.admitted, 3u);
  EXPECT_EQ(s.refused, 1u);
  EXPECT_EQ(s.redis_errors, 0u);
}

TEST_F(Limiter, HeadersComeFromTheMostRestrictivePolicy) {
  const std::vector<RateLimitPolicy> policies = {
      policy({RateLimitScope::kKey}, RateLimitAlgorithm::kFixedWindow, 10, std::nullopt),
      policy({RateLimitScope::kGlobal}, RateLimitAlgorithm::kTokenBucket, 4, std::nullopt, 60),
      policy({RateLimitScope::kTenant}, RateLimitAlgorithm::kSlidingWindowCounter, std::nullopt,
             5000),
      policy({RateLimitScope::kModel}, RateLimitAlgorithm::kFixedWindow, std::nullopt, 800)};
  RateLimiter limiter(*client_, policies, fixed());
  const Decision d = check(limiter, facts(300));
  ASSERT_TRUE(d.admitted());
  ASSERT_TRUE(d.requests && d.tokens);
  EXPECT_EQ(d.requests->policy_id, "global-60s-tb");  // 3 left of 4 beats 9 of 10
  EXPECT_EQ(header(d, "x-ratelimit-remaining-requests"), "3");
  EXPECT_EQ(header(d, "x-ratelimit-reset-requests"), "15s");  // one unit per 15 s
  EXPECT_EQ(d.tokens->policy_id, "model-60s-fw");             // 500 left of 800 beats 4700 of 5000
  EXPECT_EQ(header(d, "x-ratelimit-remaining-tokens"), "500");
  EXPECT_EQ(header(d, "ratelimit"),
            "\"global-60s-tb-requests\";r=3;t=15, \"model-60s-fw-tokens\";r=500;t=60");
  // The key's own, stricter policy takes over the request headers.
  const std::vector<RateLimitPolicy> own = {
      policy({RateLimitScope::kKey}, RateLimitAlgorithm::kFixedWindow, 2, std::nullopt)};
  const Decision o = check(limiter, facts(300), own);
  EXPECT_EQ(o.requests->policy_id, "own-key-60s-fw");
  EXPECT_EQ(header(o, "x-ratelimit-remaining-requests"), "1");
}

TEST_F(Limiter, ARefusedRequestConsumesNothingFromTheOtherPolicies) {
  const std::vector<RateLimitPolicy> policies = {
      policy({RateLimitScope::kKey}, RateLimitAlgorithm::kSlidingWindowLog, 100, 10'000),
      policy({RateLimitScope::kTenant}, RateLimitAlgorithm::kFixedWindow, 2, std::nullopt),
      policy({RateLimitScope::kIp}, RateLimitAlgorithm::kTokenBucket, std::nullopt, 10'000)};
  RateLimiter limiter(*client_, policies, fixed());
  EXPECT_TRUE(check(limiter, facts(1000)).admitted());
  EXPECT_TRUE(check(limiter, facts(1000)).admitted());
  const auto before_log = server_->cli("ZCARD", "rl:{key-60s-swl:k1}:req");
  const auto before_tokens = server_->cli("HGET", "rl:{key-60s-swl:k1}:tok:meta", "sum");
  const auto before_ip = server_->cli("HGET", "rl:{ip-60s-tb:10.0.0.1}:tok", "d");
  for (int i = 0; i < 5; ++i) {
    const Decision d = check(limiter, facts(1000));
    EXPECT_EQ(d.outcome, Outcome::kRefused);
    EXPECT_EQ(d.policy_id, "tenant-60s-fw");
  }
  EXPECT_EQ(server_->cli("ZCARD", "rl:{key-60s-swl:k1}:req"), before_log);
  EXPECT_EQ(before_log, "2");
  EXPECT_EQ(server_->cli("HGET", "rl:{key-60s-swl:k1}:tok:meta", "sum"), before_tokens);
  EXPECT_EQ(before_tokens, "2000");
  EXPECT_EQ(server_->cli("HGET", "rl:{ip-60s-tb:10.0.0.1}:tok", "d"), before_ip);
  EXPECT_EQ(limiter.stats().refunds, 0u);  // standalone: one script, nothing to give back

  // The key's own policy refusing leaves the global ones untouched too.
  server_->cli("FLUSHALL");
  const std::vector<RateLimitPolicy> own = {
      policy({RateLimitScope::kKey}, RateLimitAlgorithm::kTokenBucket, 1, std::nullopt)};
  EXPECT_TRUE(check(limiter, facts(10), own).admitted());
  const Decision d = check(limiter, facts(10), own);
  EXPECT_EQ(d.policy_id, "own-key-60s-tb");
  EXPECT_EQ(server_->cli("HGET", "rl:{tenant-60s-fw:acme}:req", "c"), "1");
  EXPECT_EQ(server_->cli("HGET", "rl:{key-60s-swl:k1}:tok:meta", "sum"), "10");
}

TEST_F(Limiter, PoliciesWhoseFactIsUnknownDoNotApply) {
  const std::vector<RateLimitPolicy> policies = {
      policy({RateLimitScope::kModel}, RateLimitAlgorithm::kFixedWindow, 1, std::nullopt)};
  RateLimiter limiter(*client_, policies, fixed());
  RequestFacts f = facts();
  f.model = "";
  for (int i = 0; i < 3; ++i) {
    const Decision d = check(limiter, f);
    EXPECT_EQ(d.outcome, Outcome::kUnlimited);
    EXPECT_TRUE(d.headers.empty());
  }
  EXPECT_EQ(limiter.stats().unlimited, 3u);
  EXPECT_EQ(limiter.stats().script_calls, 0u);
}

TEST_F(Limiter, TokenReservationsSettleWithActualUsage) {
  for (auto a : kAlgorithms) {
    server_->cli("FLUSHALL");
    SCOPED_TRACE(std::string(algorithm_name(a)));
    const std::vector<RateLimitPolicy> policies = {
        policy({RateLimitScope::kKey}, a, 100, 1000),
        policy({RateLimitScope::kTenant}, RateLimitAlgorithm::kFixedWindow, std::nullopt, 5000)};
    RateLimiter limiter(*client_, policies, fixed());

    // Over-estimate: 300 reserved, 100 used -> 200 back on both token policies.
    Decision d = check(limiter, facts(300));
    ASSERT_TRUE(d.admitted());
    EXPECT_EQ(d.tokens->remaining, 700u);
    EXPECT_EQ(d.reservation.states.size(), 2u);
    EXPECT_EQ(d.reservation.estimated_tokens, 300u);
    run_until_done(io_, limiter.settle(d.reservation, 100));
    EXPECT_TRUE(d.reservation.settled);
    run_until_done(io_, limiter.settle(d.reservation, 0));  // a second call does nothing
    EXPECT_EQ(check(limiter, facts(0)).tokens->remaining, 900u);

    // Under-estimate (e.g. a streamed answer whose usage arrived in its last event): 100
    // reserved, 400 used -> 300 more charged.
    d = check(limiter, facts(100));
    EXPECT_EQ(d.tokens->remaining, 800u);
    run_until_done(io_, limiter.settle(d.reservation, 400));
    EXPECT_EQ(check(limiter, facts(0)).tokens->remaining, 500u);

    // Overshoot is bounded by the estimate's error: 100 reserved, 900 used -> 0 left, and
    // the next request is refused until the window moves on.
    d = check(limiter, facts(100));
    ASSERT_TRUE(d.admitted());
    run_until_done(io_, limiter.settle(d.reservation, 900));
    const Decision after = check(limiter, facts(1));
    EXPECT_EQ(after.outcome, Outcome::kRefused);
    EXPECT_EQ(after.quantity, Quantity::kTokens);
    EXPECT_EQ(header(after, "x-ratelimit-remaining-tokens"), "0");
    EXPECT_EQ(limiter.stats().settlements, 3u);
    EXPECT_EQ(limiter.stats().settle_errors, 0u);
  }
}

// settle_delay: a settlement waits in the limiter and rides on the next check (one script
// call for both), applied before that check decides; another instance sees the estimate until
// then.
TEST_F(Limiter, HeldSettlementsRideOnTheNextCheck) {
  for (auto a : kAlgorithms) {
    server_->cli("FLUSHALL");
    SCOPED_TRACE(std::string(algorithm_name(a)));
    const std::vector<RateLimitPolicy> policies = {
        policy({RateLimitScope::kKey}, a, 100, 1000),
        policy({RateLimitScope::kTenant}, RateLimitAlgorithm::kFixedWindow, std::nullopt, 5000)};
    LimiterOptions o = fixed();
    o.settle_delay = std::chrono::seconds(30);  // longer than the test: only a check sends it
    RateLimiter limiter(*client_, policies, o);
    RateLimiter other(*client_, policies, fixed());  // another instance, settling at once

    Decision d = check(limiter, facts(300));
    ASSERT_TRUE(d.admitted());
    EXPECT_EQ(d.tokens->remaining, 700u);
    run_until_done(io_, limiter.settle(d.reservation, 100));
    EXPECT_TRUE(d.reservation.settled);
    EXPECT_EQ(limiter.pending_settlements(), 2u);  // both token policies
    // Counted from here: the first call on a server may add an EVAL after NOSCRIPT.
    const uint64_t calls = limiter.stats().script_calls;
    EXPECT_EQ(check(other, facts(0)).tokens->remaining, 700u);

    const Decision next = check(limiter, facts(0));
    EXPECT_EQ(next.tokens->remaining, 900u);  // settled before it decided
    EXPECT_EQ(limiter.pending_settlements(), 0u);
    EXPECT_EQ(limiter.stats().script_calls, calls + 1);  // the check, no settle call
    EXPECT_EQ(check(other, facts(0)).tokens->remaining, 900u);

    // Under-estimate: the charge rides along too, and the check sees it.
    d = check(limiter, facts(100));
    ASSERT_TRUE(d.admitted());
    run_until_done(io_, limiter.settle(d.reservation, 900));
    const Decision refused = check(limiter, facts(1));
    EXPECT_EQ(refused.outcome, Outcome::kRefused);
    EXPECT_EQ(refused.quantity, Quantity::kTokens);
    EXPECT_EQ(limiter.pending_settlements(), 0u);
    EXPECT_EQ(limiter.stats().settle_errors, 0u);
  }
}

TEST_F(Limiter, HeldSettlementsGoOnTheirOwnAfterTheDelay) {
  const std::vector<RateLimitPolicy> policies = {
      policy({RateLimitScope::kKey}, RateLimitAlgorithm::kSlidingWindowCounter, std::nullopt,
             1000)};
  LimiterOptions o = fixed();
  // Long enough that the other instance's check below runs before it even on a loaded
  // machine; the test then waits for it.
  o.settle_delay = std::chrono::milliseconds(300);
  RateLimiter limiter(*client_, policies, o);
  RateLimiter other(*client_, policies, fixed());
  Decision d = check(limiter, facts(300));
  Decision e = check(limiter, facts(200));
  const uint64_t calls = limiter.stats().script_calls;
  run_until_done(io_, limiter.settle(d.reservation, 100));
  run_until_done(io_, limiter.settle(e.reservation, 50));
  EXPECT_EQ(limiter.pending_settlements(), 2u);
  EXPECT_EQ(check(other, facts(0)).tokens->remaining, 500u);
  for (int i = 0; i < 50 && limiter.pending_settlements() > 0; ++i) {
    run_for(io_, std::chrono::milliseconds(100));
  }
  EXPECT_EQ(limiter.pending_settlements(), 0u);
  EXPECT_EQ(limiter.stats().script_calls, calls + 1);  // one settle call for both
  EXPECT_EQ(check(other, facts(0)).tokens->remaining, 850u);
  EXPECT_EQ(limiter.stats().settle_errors, 0u);
}

TEST_F(Limiter, ASettlementCarriedByAFailedCheckIsCountedLost) {
  const std::vector<RateLimitPolicy> policies = {
      policy({RateLimitScope::kKey}, RateLimitAlgorithm::kFixedWindow, std::nullopt, 1000)};
  LimiterOptions o = fixed();
  o.settle_delay = std::chrono::seconds(30);  // longer than the test
  RateLimiter limiter(*client_, policies, o);
  Decision d = check(limiter, facts(300));
  ASSERT_TRUE(d.admitted());
  run_until_done(io_, limiter.settle(d.reservation, 100));
  server_->stop();
  const Decision next = check(limiter, facts(0));
  EXPECT_EQ(next.outcome, Outcome::kFailOpen);
  EXPECT_EQ(limiter.pending_settlements(), 0u);
  EXPECT_EQ(limiter.stats().settle_errors, 1u);
}

TEST_F(Limiter, CacheHitsRefundTokensUnlessConfiguredToConsume) {
  const std::vector<RateLimitPolicy> policies = {
      policy({RateLimitScope::kKey}, RateLimitAlgorithm::kSlidingWindowLog, std::nullopt, 1000)};
  RateLimiter refunding(*client_, policies, fixed());
  Decision d = check(refunding, facts(400));
  run_until_done(io_, refunding.settle_cache_hit(d.reservation, 250));
  EXPECT_EQ(check(refunding, facts(0)).tokens->remaining, 1000u);

  LimiterOptions o = fixed();
  o.cache_hits_consume_tokens = true;
  RateLimiter charging(*client_, policies, o);
  d = check(charging, facts(400));
  run_until_done(io_, charging.settle_cache_hit(d.reservation, 250));
  EXPECT_EQ(check(charging, facts(0)).tokens->remaining, 750u);
}

TEST_F(Limiter, TooLargeARequestIsRefusedForGood) {
  const std::vector<RateLimitPolicy> policies = {
      policy({RateLimitScope::kKey}, RateLimitAlgorithm::kTokenBucket, std::nullopt, 1000, 60)};
  RateLimiter limiter(*client_, policies, fixed());
  const Decision d = check(limiter, facts(5000));
  EXPECT_EQ(d.outcome, Outcome::kRefused);
  EXPECT_EQ(d.retry_after, 60u);
  EXPECT_EQ(d.message,
            "Request needs 5000 tokens, more than rate-limit policy key-60s-tb (1000 tokens per "
            "60s per key (token-bucket)) allows at once (1000); it cannot be admitted.");
  EXPECT_EQ(boost::json::parse(d.error_body()).at("error").at("type").as_string(), "tokens");
}

TEST_F(Limiter, PlanAndCompleteShareOneRoundTripWithAnotherCommand) {
  const std::vector<RateLimitPolicy> policies = {
      policy({RateLimitScope::kKey}, RateLimitAlgorithm::kSlidingWindowLog, 5, std::nullopt),
      policy({RateLimitScope::kGlobal}, RateLimitAlgorithm::kFixedWindow, 50, 10'000)};
  RateLimiter limiter(*client_, policies, fixed());
  EXPECT_TRUE(check(limiter, facts(10)).admitted());  // loads the script (EVAL once)
  server_->cli("SET", "c:answer", "cached");

  CheckPlan plan = limiter.plan(facts(10));
  ASSERT_EQ(plan.commands().size(), 1u);  // standalone: every policy in one script call
  std::vector<redis::Command> cmds(plan.commands().begin(), plan.commands().end());
  cmds.emplace_back("GET", "c:answer");  // e.g. the cache lookup, in the same pipeline
  const auto before = client_->stats();
  auto replies = run_until_done(io_, client_->batch(cmds));
  EXPECT_EQ(client_->stats().writes - before.writes, 1u);
  EXPECT_EQ(replies.back().value().str(), "cached");
  std::span<redis::Result<redis::Reply>> mine(replies.data(), plan.commands().size());
  const Decision d = run_until_done(io_, limiter.complete(plan, mine));
  EXPECT_EQ(d.outcome, Outcome::kAdmitted);
  EXPECT_EQ(d.requests->remaining, 3u);
  EXPECT_EQ(client_->stats().writes - before.writes, 1u);  // no second round trip
}

TEST_F(Limiter, ScriptFlushIsRecoveredWithEval) {
  const std::vector<RateLimitPolicy> policies = {
      policy({RateLimitScope::kKey}, RateLimitAlgorithm::kFixedWindow, 5, std::nullopt)};
  RateLimiter limiter(*client_, policies, fixed());
  EXPECT_TRUE(check(limiter, facts()).admitted());
  server_->cli("SCRIPT", "FLUSH");
  const Decision d = check(limiter, facts());
  EXPECT_EQ(d.outcome, Outcome::kAdmitted);
  EXPECT_EQ(d.requests->remaining, 3u);
  EXPECT_EQ(limiter.stats().redis_errors, 0u);
}

TEST_F(Limiter, FailModesWithRedisStopped) {
  auto shared = std::make_shared<SharedLimiterState>();
  auto make = [&](FailMode mode, uint64_t requests) {
    return std::vector<RateLimitPolicy>{policy(
        {RateLimitScope::kKey}, RateLimitAlgorithm::kSlidingWindowLog, requests, 1000, 60, mode)};
  };
  const auto open_p = make(FailMode::kOpen, 1);
  const auto closed_p = make(FailMode::kClosed, 1);
  const auto local_p = make(FailMode::kLocal, 10);
  LimiterOptions o = fixed();
  o.instances = 2;  // local: 10 / 2 = 5 per instance
  RateLimiter open(*client_, open_p, o, shared);
  RateLimiter closed(*client_, closed_p, o, shared);
  RateLimiter local(*client_, local_p, o, shared);
  EXPECT_TRUE(check(open, facts(10)).admitted());  // Redis up: the script is loaded

  server_->stop();
  for (int i = 0; i < 3; ++i) {  // open: admitted, not counted anywhere, flagged
    const Decision d = check(open, facts(10));
    EXPECT_EQ(d.outcome, Outcome::kFailOpen);
    EXPECT_EQ(d.status(), 200);
    EXPECT_EQ(header(d, "x-redline-ratelimit"), "degraded");
    EXPECT_EQ(header(d, "x-ratelimit-limit-requests"), "<absent>");
    EXPECT_TRUE(d.reservation.empty());
  }
  EXPECT_EQ(open.stats().fail_open, 3u);
  EXPECT_EQ(open.stats().redis_errors, 3u);

  const Decision c = check(closed, facts(10));
  EXPECT_EQ(c.outcome, Outcome::kFailClosed);
  EXPECT_EQ(c.status(), 503);
  EXPECT_EQ(c.policy_id, "key-60s-swl");
  EXPECT_EQ(header(c, "x-redline-ratelimit"), "degraded");
  const auto body = boost::json::parse(c.error_body());
  EXPECT_EQ(body.at("error").at("type").as_string(), "api_error");
  EXPECT_EQ(body.at("error").at("code").as_string(), "rate_limiter_unavailable");
  EXPECT_EQ(closed.stats().fail_closed, 1u);

  for (int i = 0; i < 5; ++i) {
    const Decision d = check(local, facts(10));
    EXPECT_EQ(d.outcome, Outcome::kLocalAdmitted) << i;
    EXPECT_EQ(header(d, "x-ratelimit-limit-requests"), "5");
    EXPECT_EQ(header(d, "x-ratelimit-remaining-requests"), std::to_string(4 - i));
    EXPECT_EQ(d.reservation.states.size(), 1u);
  }
  const Decision l = check(local, facts(10));
  EXPECT_EQ(l.outcome, Outcome::kLocalRefused);
  EXPECT_EQ(l.status(), 429);
  EXPECT_EQ(header(l, "retry-after"), "60");
  // A request without tokens is still refused: the requests state is exhausted.
  Decision last = check(local, facts(0));
  EXPECT_EQ(last.outcome, Outcome::kLocalRefused);  // requests exhausted, tokens fine
  EXPECT_EQ(local.stats().local_admitted, 5u);
  EXPECT_EQ(local.stats().local_refused, 2u);
  EXPECT_GE(shared->degraded_logs(), 3u);  // one line per mode, throttled after that

  server_->restart();
  const Decision back = [&] {
    for (int i = 0; i < 100; ++i) {
      Decision d = check(open, facts(10));
      if (d.outcome != Outcome::kFailOpen) return d;
      run_for(io_, std::chrono::milliseconds(20));
    }
    return Decision{};
  }();
  EXPECT_EQ(back.outcome, Outcome::kAdmitted);  // reconnected; EVAL reloads the script
}

TEST_F(Limiter, LocalReservationsSettleInProcess) {
  const std::vector<RateLimitPolicy> policies = {policy({RateLimitScope::kKey},
                                                        RateLimitAlgorithm::kTokenBucket,
                                                        std::nullopt, 1000, 60, FailMode::kLocal)};
  RateLimiter limiter(*client_, policies, fixed());
  server_->stop();
  Decision d = check(limiter, facts(600));
  ASSERT_EQ(d.outcome, Outcome::kLocalAdmitted);
  EXPECT_EQ(d.tokens->remaining, 400u);
  EXPECT_EQ(check(limiter, facts(600)).outcome, Outcome::kLocalRefused);
  run_until_done(io_, limiter.settle(d.reservation, 100));
  EXPECT_EQ(check(limiter, facts(0)).tokens->remaining, 900u);
  server_->restart();
}

TEST_F(Limiter, APausedRedisTimesOutIntoTheFailMode) {
  const std::vector<RateLimitPolicy> policies = {policy({RateLimitScope::kKey},
                                                        RateLimitAlgorithm::kFixedWindow, 5,
                                                        std::nullopt, 60, FailMode::kOpen)};
  RateLimiter limiter(*client_, policies, fixed());
  EXPECT_TRUE(check(limiter, facts()).admitted());
  server_->pause();
  const Decision d = check(limiter, facts());  // 200 ms command timeout
  server_->resume();
  EXPECT_EQ(d.outcome, Outcome::kFailOpen);
  EXPECT_EQ(limiter.stats().redis_errors, 1u);
}

// ---------------------------------------------------------------------------------------
// Two instances, 200 concurrent checks, one key limited to 50 per (long) window.

struct Burst {
  int admitted = 0;
  int refused = 0;
  int other = 0;
};

// One "gateway instance": its own thread, io_context, Redis client and limiter, sending
// `n` checks concurrently.
Burst run_instance(const redis::ClientOptions& co, const std::vector<RateLimitPolicy>& policies,
                   LimiterOptions options, const std::string& key_id, int n) {
  asio::io_context io;
  auto client = redis::make_client(io.get_executor(), co).value();
  EXPECT_TRUE(run_until_done(io, client->connect()).ok());
  RateLimiter limiter(*client, policies, std::move(options));
  Burst b;
  int done = 0;
  for (int i = 0; i < n; ++i) {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          RequestFacts f;
          f.key_id = key_id;
          f.tenant = "t";
          const Decision d = co_await limiter.check(f);
          if (d.outcome == Outcome::kAdmitted) {
            ++b.admitted;
          } else if (d.outcome == Outcome::kRefused) {
            ++b.refused;
          } else {
            ++b.other;
          }
          ++done;
        },
        asio::detached);
  }
  while (done < n) io.run_one();
  client->stop();
  run_for(io, std::chrono::milliseconds(5));
  return b;
}

// Real Redis TIME with a one-day window, unless the day is about to turn (then a fixed time
// mid-day), so a burst never straddles two fixed windows.
LimiterOptions day_window_options() {
  LimiterOptions o;
  const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  const auto into_day = now_s % 86'400;
  if (into_day < 300 || into_day > 86'400 - 300) {
    o.fixed_now_us = (now_s - into_day + 43'200) * 1'000'000LL;
  }
  return o;
}

void two_instances_admit_exactly_50(const redis::ClientOptions& co, const std::string& run_id) {
  for (auto a : kAlgorithms) {
    SCOPED_TRACE(std::string(algorithm_name(a)));
    const std::vector<RateLimitPolicy> policies = {
        policy({RateLimitScope::kKey}, a, 50, std::nullopt, 86'400)};
    const std::string key_id = run_id + "-" + std::string(algorithm_code(a));
    const LimiterOptions options = day_window_options();
    Burst first, second;
    std::thread t1([&] { first = run_instance(co, policies, options, key_id, 100); });
    std::thread t2([&] { second = run_instance(co, policies, options, key_id, 100); });
    t1.join();
    t2.join();
    EXPECT_EQ(first.admitted + second.admitted, 50);
    EXPECT_EQ(first.refused + second.refused, 150);
    EXPECT_EQ(first.other + second.other, 0);
  }
}

TEST_F(Limiter, TwoInstancesWith200ConcurrentChecksAdmitExactly50PerAlgorithm) {
  redis::ClientOptions co;
  co.urls = {server_->url()};
  two_instances_admit_exactly_50(co, "standalone");
}

// ---------------------------------------------------------------------------------------
// Redis Cluster: 3 masters + 3 replicas.

class ClusterLimiter : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = new test::RedisCluster(); }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    redis::ClientOptions o;
    o.mode = redis::ClientOptions::Mode::kCluster;
    o.urls = cluster_->urls();
    options_ = o;
    client_ = redis::make_client(io_.get_executor(), o).value();
    ASSERT_TRUE(run_until_done(io_, client_->connect()).ok());
    ++run_;
  }
  void TearDown() override {
    client_->stop();
    run_for(io_, std::chrono::milliseconds(5));
  }
  std::string run_id() const { return "run" + std::to_string(run_); }
  redis::Reply cmd(const redis::Command& c) {
    auto r = run_until_done(io_, client_->execute(c));
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().to_string());
    return r.ok() ? *r : redis::Reply();
  }

  static test::RedisCluster* cluster_;
  static int run_;
  redis::ClientOptions options_;
  asio::io_context io_;
  std::unique_ptr<redis::Client> client_;
};

test::RedisCluster* ClusterLimiter::cluster_ = nullptr;
int ClusterLimiter::run_ = 0;

TEST_F(ClusterLimiter, PoliciesInDifferentSlotsRefundWhatTheOthersReserved) {
  const std::string tenant = run_id();
  RequestFacts f = facts(100);
  f.tenant = tenant;
  const std::vector<RateLimitPolicy> policies = {
      policy({RateLimitScope::kKey}, RateLimitAlgorithm::kSlidingWindowLog, 100, 10'000),
      policy({RateLimitScope::kTenant}, RateLimitAlgorithm::kFixedWindow, 2, std::nullopt),
      policy({RateLimitScope::kModel}, RateLimitAlgorithm::kTokenBucket, std::nullopt, 100'000)};
  LimiterOptions o;
  o.fixed_now_us = kT0;
  RateLimiter limiter(*client_, policies, o);
  const std::string key_log = "rl:{key-60s-swl:k1}:req";
  const std::string tenant_state = "rl:{tenant-60s-fw:" + tenant + "}:req";
  ASSERT_NE(redis::key_slot(key_log), redis::key_slot(tenant_state));
  cmd(redis::Command("DEL", key_log, key_log + ":meta"));
  cmd(redis::Command("DEL", "rl:{key-60s-swl:k1}:tok", "rl:{key-60s-swl:k1}:tok:meta"));
  cmd(redis::Command("DEL", "rl:{model-60s-tb:gpt-4o}:tok"));

  CheckPlan plan = limiter.plan(f);
  EXPECT_GE(plan.commands().size(), 2u);  // one script call per slot

  EXPECT_TRUE(run_until_done(io_, limiter.check(f)).admitted());
  EXPECT_TRUE(run_until_done(io_, limiter.check(f)).admitted());
  const auto tb_before = cmd(redis::Command("HGET", "rl:{model-60s-tb:gpt-4o}:tok", "d")).str();
  for (int i = 0; i < 3; ++i) {
    const Decision d = run_until_done(io_, limiter.check(f));
    EXPECT_EQ(d.outcome, Outcome::kRefused);
    EXPECT_EQ(d.policy_id, "tenant-60s-fw");
    // Reported as before the request: the refund gave it back.
    EXPECT_EQ(d.requests->policy_id, "tenant-60s-fw");
    EXPECT_EQ(d.tokens->remaining, 9'800u);
  }
  EXPECT_EQ(cmd(redis::Command("ZCARD", key_log)).integer(), 2);
  EXPECT_EQ(cmd(redis::Command("HGET", "rl:{key-60s-swl:k1}:tok:meta", "sum")).str(), "200");
  EXPECT_EQ(cmd(redis::Command("HGET", "rl:{model-60s-tb:gpt-4o}:tok", "d")).str(), tb_before);
  EXPECT_EQ(limiter.stats().refunds, 9u);  // 3 refusals x (key req + key tok + model tok)
  EXPECT_EQ(limiter.stats().redis_errors, 0u);
}

TEST_F(ClusterLimiter, SettlementReachesEverySlot) {
  const std::string tenant = run_id();
  RequestFacts f = facts(500);
  f.tenant = tenant;
  const std::vector<RateLimitPolicy> policies = {
      policy({RateLimitScope::kTenant}, RateLimitAlgorithm::kSlidingWindowCounter, std::nullopt,
             1000),
      policy({RateLimitScope::kTenant, RateLimitScope::kModel}, RateLimitAlgorithm::kTokenBucket,
             std::nullopt, 2000)};
  LimiterOptions o;
  o.fixed_now_us = kT0;
  RateLimiter limiter(*client_, policies, o);
  Decision d = run_until_done(io_, limiter.check(f));
  ASSERT_TRUE(d.admitted());
  ASSERT_EQ(d.reservation.states.size(), 2u);
  run_until_done(io_, limiter.settle(d.reservation, 50));
  f.estimated_tokens = 0;
  const Decision after = run_until_done(io_, limiter.check(f));
  EXPECT_EQ(after.tokens->policy_id, "tenant-60s-swc");
  EXPECT_EQ(after.tokens->remaining, 950u);
  EXPECT_EQ(limiter.stats().settle_errors, 0u);
}

// A held settlement rides only on a check of its own slot; a check of another slot leaves it.
TEST_F(ClusterLimiter, HeldSettlementsRideOnlyOnChecksOfTheirSlot) {
  const std::string a = run_id() + "-a";
  std::string b = run_id() + "-b";
  const auto state_key = [](const std::string& tenant) {
    return "rl:{tenant-60s-swc:" + tenant + "}:tok";
  };
  for (int i = 0; redis::key_slot(state_key(b)) == redis::key_slot(state_key(a)); ++i) {
    b = run_id() + "-b" + std::to_string(i);
  }
  const std::vector<RateLimitPolicy> policies = {policy(
      {RateLimitScope::kTenant}, RateLimitAlgorithm::kSlidingWindowCounter, std::nullopt, 1000)};
  LimiterOptions o;
  o.fixed_now_us = kT0;
  o.settle_delay = std::chrono::seconds(30);  // longer than the test
  RateLimiter limiter(*client_, policies, o);
  RequestFacts fa = facts(500);
  fa.tenant = a;
  RequestFacts fb = facts(0);
  fb.tenant = b;
  Decision d = run_until_done(io_, limiter.check(fa));
  ASSERT_TRUE(d.admitted());
  run_until_done(io_, limiter.settle(d.reservation, 50));
  EXPECT_TRUE(run_until_done(io_, limiter.check(fb)).admitted());
  EXPECT_EQ(limiter.pending_settlements(), 1u);  // another slot: still held
  fa.estimated_tokens = 0;
  EXPECT_EQ(run_until_done(io_, limiter.check(fa)).tokens->remaining, 950u);
  EXPECT_EQ(limiter.pending_settlements(), 0u);
  EXPECT_EQ(limiter.stats().settle_errors, 0u);
}

TEST_F(ClusterLimiter, TwoInstancesWith200ConcurrentChecksAdmitExactly50PerAlgorithm) {
  two_instances_admit_exactly_50(options_, "cluster-" + run_id());
}

}  // namespace
}  // namespace redline::ratelimit
