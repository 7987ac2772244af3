// Unit tests without Redis: OpenAI duration format, the IETF RateLimit / RateLimit-Policy
// fields, policy ids and descriptions, scope-value escaping and key layout, burst sizing,
// token estimates, the script's argument layout and reply parsing, and the local limiter.
#include "ratelimit/headers.h"

#include <gtest/gtest.h>

#include <thread>

#include "ratelimit/limiter.h"
#include "ratelimit/local_limiter.h"
#include "ratelimit/policy.h"
#include "ratelimit/script.h"
#include "redis/cluster.h"

namespace redline::ratelimit {
namespace {

using config::RateLimitAlgorithm;
using config::RateLimitPolicy;
using config::RateLimitScope;

TEST(RateLimitHeaders, OpenAiDurationFormat) {
  struct Case {
    uint64_t ms;
    const char* text;
  };
  for (const Case& c : std::vector<Case>{{0, "0s"},
                                         {1, "1ms"},
                                         {120, "120ms"},
                                         {999, "999ms"},
                                         {1000, "1s"},
                                         {1500, "1.5s"},
                                         {1250, "1.25s"},
                                         {1001, "1.001s"},
                                         {59'000, "59s"},
                                         {60'000, "1m0s"},
                                         {360'000, "6m0s"},
                                         {61'500, "1m1.5s"},
                                         {3'600'000, "1h0m0s"},
                                         {3'723'000, "1h2m3s"},
                                         {3'600'250, "1h0m0.25s"},
                                         {90'000'000, "25h0m0s"}}) {
    EXPECT_EQ(format_duration(c.ms), c.text) << c.ms;
  }
}

TEST(RateLimitHeaders, IetfAndOpenAiFieldsForBothQuantities) {
  QuotaStatus req{"key-60s-swl", 60, 59, 60, 60'000, 1'000};
  QuotaStatus tok{"tenant-60s-tb", 100'000, 98'500, 60, 900, 1};
  std::vector<Header> h;
  append_quota_headers(req, tok, h);
  const std::vector<Header> expected = {
      {"x-ratelimit-limit-requests", "60"},
      {"x-ratelimit-remaining-requests", "59"},
      {"x-ratelimit-reset-requests", "1m0s"},
      {"x-ratelimit-limit-tokens", "100000"},
      {"x-ratelimit-remaining-tokens", "98500"},
      {"x-ratelimit-reset-tokens", "900ms"},
      {"ratelimit-policy",
       "\"key-60s-swl-requests\";q=60;w=60, \"tenant-60s-tb-tokens\";q=100000;qu=\"tokens\";w=60"},
      {"ratelimit", "\"key-60s-swl-requests\";r=59;t=1, \"tenant-60s-tb-tokens\";r=98500;t=1"},
  };
  EXPECT_EQ(h, expected);
}

TEST(RateLimitHeaders, OnlyPresentQuantitiesAndNothingWithoutPolicies) {
  std::vector<Header> h;
  append_quota_headers(std::nullopt, std::nullopt, h);
  EXPECT_TRUE(h.empty());
  append_quota_headers(QuotaStatus{"global-1s-fw", 10, 0, 1, 250, 250}, std::nullopt, h);
  ASSERT_EQ(h.size(), 5u);
  EXPECT_EQ(h[2], (Header{"x-ratelimit-reset-requests", "250ms"}));
  EXPECT_EQ(h[3], (Header{"ratelimit-policy", "\"global-1s-fw-requests\";q=10;w=1"}));
  EXPECT_EQ(h[4], (Header{"ratelimit", "\"global-1s-fw-requests\";r=0;t=1"}));
  EXPECT_EQ(sf_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(ceil_seconds(0), 0u);
  EXPECT_EQ(ceil_seconds(1), 1u);
  EXPECT_EQ(ceil_seconds(1000), 1u);
  EXPECT_EQ(ceil_seconds(1001), 2u);
}

RateLimitPolicy policy(std::vector<RateLimitScope> scopes, RateLimitAlgorithm a,
                       std::optional<uint64_t> requests, std::optional<uint64_t> tokens,
                       int window_s = 60) {
  RateLimitPolicy p;
  p.scopes = std::move(scopes);
  p.algorithm = a;
  p.requests = requests;
  p.tokens = tokens;
  p.window = config::Seconds(window_s);
  return p;
}

TEST(RateLimitPolicy, IdsDescriptionsAndRepeats) {
  std::vector<RateLimitPolicy> list = {
      policy({RateLimitScope::kKey}, RateLimitAlgorithm::kSlidingWindowLog, 60, std::nullopt),
      policy({RateLimitScope::kTenant, RateLimitScope::kModel}, RateLimitAlgorithm::kTokenBucket,
             std::nullopt, 100000),
      policy({RateLimitScope::kGlobal}, RateLimitAlgorithm::kFixedWindow, 10, 500, 1),
      policy({RateLimitScope::kKey}, RateLimitAlgorithm::kSlidingWindowLog, 5, std::nullopt),
  };
  auto compiled = compile_policies(list);
  ASSERT_EQ(compiled.size(), 4u);
  EXPECT_EQ(compiled[0].id, "key-60s-swl");
  EXPECT_EQ(compiled[1].id, "tenant+model-60s-tb");
  EXPECT_EQ(compiled[2].id, "global-1s-fw");
  EXPECT_EQ(compiled[3].id, "key-60s-swl-2");
  EXPECT_EQ(compiled[0].description, "60 requests per 60s per key (sliding-window-log)");
  EXPECT_EQ(compiled[1].description, "100000 tokens per 60s per tenant and model (token-bucket)");
  EXPECT_EQ(compiled[2].description, "10 requests and 500 tokens per 1s in total (fixed-window)");
  auto own = compile_policies(std::span(list).first(1), /*own=*/true);
  EXPECT_EQ(own[0].id, "own-key-60s-swl");
  EXPECT_EQ(compiled[2].limit(Quantity::kRequests), 10u);
  EXPECT_EQ(compiled[2].limit(Quantity::kTokens), 500u);
  EXPECT_EQ(compiled[0].limit(Quantity::kTokens), 0u);
  EXPECT_EQ(compiled[2].window_ms(), 1000u);
}

TEST(RateLimitPolicy, BurstDefaultsToTheLimitAndScalesToTokens) {
  auto p = policy({RateLimitScope::kKey}, RateLimitAlgorithm::kTokenBucket, 60, 6000);
  EXPECT_EQ(burst_for(p, Quantity::kRequests), 60u);
  EXPECT_EQ(burst_for(p, Quantity::kTokens), 6000u);
  p.burst = 10;
  EXPECT_EQ(burst_for(p, Quantity::kRequests), 10u);
  EXPECT_EQ(burst_for(p, Quantity::kTokens), 1000u);  // same ratio as requests
  auto t = policy({RateLimitScope::kKey}, RateLimitAlgorithm::kTokenBucket, std::nullopt, 6000);
  t.burst = 500;
  EXPECT_EQ(burst_for(t, Quantity::kTokens), 500u);  // tokens-only: burst counts tokens
  EXPECT_EQ(burst_for(t, Quantity::kRequests), 0u);
}

TEST(RateLimitPolicy, SubjectsEscapingAndKeys) {
  RequestFacts f;
  f.key_id = "ab12cd34";
  f.tenant = "acme";
  f.model = "ft:gpt-4o:org}x";
  f.ip = "::1";
  auto km = policy({RateLimitScope::kKey, RateLimitScope::kModel},
                   RateLimitAlgorithm::kSlidingWindowLog, 1, std::nullopt);
  EXPECT_EQ(subject_of(km, f).value(), "ab12cd34,ft%3Agpt-4o%3Aorg%7Dx");
  auto ip = policy({RateLimitScope::kIp}, RateLimitAlgorithm::kFixedWindow, 1, std::nullopt);
  EXPECT_EQ(subject_of(ip, f).value(), "%3A%3A1");
  auto g = policy({RateLimitScope::kGlobal}, RateLimitAlgorithm::kFixedWindow, 1, std::nullopt);
  EXPECT_EQ(subject_of(g, f).value(), "");
  f.model = "";
  EXPECT_FALSE(subject_of(km, f).has_value());  // no model: a per-model policy does not apply

  EXPECT_EQ(key_base("key-60s-swl", "ab12cd34"), "rl:{key-60s-swl:ab12cd34}");
  EXPECT_EQ(key_base("global-1s-fw", ""), "rl:{global-1s-fw}");
  EXPECT_EQ(state_key("rl:{x}", Quantity::kRequests), "rl:{x}:req");
  EXPECT_EQ(state_key("rl:{x}", Quantity::kTokens), "rl:{x}:tok");
  EXPECT_EQ(state_keys("rl:{x}:req", RateLimitAlgorithm::kSlidingWindowLog),
            (std::vector<std::string>{"rl:{x}:req", "rl:{x}:req:meta"}));
  EXPECT_EQ(state_keys("rl:{x}:tok", RateLimitAlgorithm::kTokenBucket),
            (std::vector<std::string>{"rl:{x}:tok"}));
  // Every key of one policy and subject lands in one cluster slot.
  EXPECT_EQ(redis::key_slot("rl:{key-60s-swl:ab12cd34}:req"),
            redis::key_slot("rl:{key-60s-swl:ab12cd34}:tok:meta"));

  const std::string long_value(200, 'x');
  const std::string hashed = escape_scope_value(long_value);
  EXPECT_EQ(hashed.size(), 17u);
  EXPECT_EQ(hashed[0], '~');
  EXPECT_EQ(hashed, escape_scope_value(long_value));
  EXPECT_NE(hashed, escape_scope_value(long_value + "y"));
  EXPECT_EQ(escape_scope_value("a~b{c}"), "a%7Eb%7Bc%7D");
}

TEST(RateLimitPolicy, TokenEstimate) {
  EXPECT_EQ(estimate_tokens("", std::nullopt, 4096), 4096u);
  EXPECT_EQ(estimate_tokens("12345678", 100, 4096), 2u + 100u);
  EXPECT_EQ(estimate_tokens("123456789", std::nullopt, 10), 3u + 10u);  // bytes / 4 rounded up
  LimiterOptions o;
  o.output_tokens_by_model["gpt-4o"] = 16384;
  EXPECT_EQ(o.output_cap("gpt-4o"), 16384u);
  EXPECT_EQ(o.output_cap("other"), 4096u);
  config::RateLimitOptions c;
  c.instances = 3;
  c.default_output_tokens = 100;
  c.output_tokens["m"] = 7;
  c.cache_hits_consume_tokens = true;
  c.settle_delay = std::chrono::milliseconds(7);
  auto from = LimiterOptions::from_config(c);
  EXPECT_EQ(from.instances, 3u);
  EXPECT_EQ(from.output_cap("m"), 7u);
  EXPECT_EQ(from.output_cap("n"), 100u);
  EXPECT_TRUE(from.cache_hits_consume_tokens);
  EXPECT_EQ(from.settle_delay, std::chrono::milliseconds(7));
  EXPECT_EQ(LimiterOptions{}.settle_delay, std::chrono::milliseconds(0));  // tests: at once
}

TEST(RateLimitScript, CommandLayoutAndReplyParsing) {
  StateRef a;
  a.algorithm = RateLimitAlgorithm::kSlidingWindowLog;
  a.keys = {"rl:{p:s}:req", "rl:{p:s}:req:meta"};
  a.limit = 5;
  a.window_ms = 60000;
  a.burst = 5;
  a.cost = 1;
  StateRef b = a;
  b.algorithm = RateLimitAlgorithm::kTokenBucket;
  b.keys = {"rl:{p:s}:tok"};
  b.cost = 300;
  b.handle = 7;
  const StateRef* both[] = {&a, &b};
  auto c = check_command(both, 1234);
  EXPECT_EQ(c.arg(0), "EVALSHA");
  EXPECT_EQ(c.arg(1), limiter_script().sha());
  EXPECT_EQ(c.arg(2), "3");
  EXPECT_EQ(c.arg(3), "rl:{p:s}:req");
  EXPECT_EQ(c.arg(5), "rl:{p:s}:tok");
  EXPECT_EQ(c.arg(6), "check");
  EXPECT_EQ(c.arg(7), "1234");
  EXPECT_EQ(c.arg(8), "2");
  EXPECT_EQ(c.arg(9), "swl");
  EXPECT_EQ(c.arg(16), "tb");
  EXPECT_EQ(c.arg(20), "300");
  EXPECT_EQ(c.arg(21), "7");
  EXPECT_EQ(c.size(), 23u);
  // A check carrying an earlier reservation: its keys after the check's, its items after
  // the check's items, behind their count.
  StateRef held = b;
  held.keys = {"rl:{p:s}:tok2"};
  held.handle = 9;
  const StateRef* carried[] = {&held};
  const uint64_t carried_cost[] = {120};
  auto cc = check_command(both, 1234, carried, carried_cost);
  EXPECT_EQ(cc.arg(2), "4");
  EXPECT_EQ(cc.arg(6), "rl:{p:s}:tok2");
  EXPECT_EQ(cc.arg(7), "check");
  EXPECT_EQ(cc.arg(24), "1");  // one carried item
  EXPECT_EQ(cc.arg(25), "tb");
  EXPECT_EQ(cc.arg(29), "300");
  EXPECT_EQ(cc.arg(30), "9");
  EXPECT_EQ(cc.arg(31), "120");
  EXPECT_EQ(cc.size(), 32u);
  const uint64_t zero[] = {0, 0};
  auto s = settle_command(both, zero);
  EXPECT_EQ(s.arg(6), "settle");
  EXPECT_EQ(s.arg(7), "");
  EXPECT_EQ(s.arg(15), "0");
  EXPECT_NE(limiter_script().source().find("redis.call('TIME')"), std::string_view::npos);

  redis::Reply r(redis::Type::kArray);
  for (int64_t v : {1, 1, 4, 60000, 60000, 0, 3, 1, 0, 12, 1, -1, 0}) {
    r.mutable_elements().push_back(redis::Reply::integer(v));
  }
  auto parsed = parse_check_reply(r, 2);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_TRUE(parsed->admitted);
  EXPECT_EQ(parsed->states[0].remaining, 4u);
  EXPECT_EQ(parsed->states[0].handle, 3);
  EXPECT_EQ(parsed->states[1].retry_ms, -1);
  EXPECT_FALSE(parse_check_reply(r, 3).has_value());
  EXPECT_FALSE(parse_check_reply(redis::Reply::integer(1), 0).has_value());
}

TEST(RateLimitLocal, FixedWindowPerStateSharedAcrossThreads) {
  LocalLimiter local;
  const int64_t t0 = 1'700'000'000'000;  // ms, a multiple of the 10 s window
  EXPECT_TRUE(local.acquire("a", 3, 10'000, 1, t0).admitted);
  EXPECT_TRUE(local.acquire("a", 3, 10'000, 2, t0 + 1).admitted);
  auto refused = local.acquire("a", 3, 10'000, 1, t0 + 2'000);
  EXPECT_FALSE(refused.admitted);
  EXPECT_EQ(refused.retry_ms, 8'000);
  EXPECT_EQ(refused.remaining, 0u);
  EXPECT_EQ(local.acquire("a", 3, 10'000, 4, t0).retry_ms, -1);
  local.adjust("a", refused.handle, -2);  // refund
  EXPECT_EQ(local.acquire("a", 3, 10'000, 0, t0).remaining, 2u);
  local.adjust("a", refused.handle, -10);  // never below zero
  EXPECT_EQ(local.acquire("a", 3, 10'000, 0, t0).remaining, 3u);
  EXPECT_TRUE(local.acquire("a", 3, 10'000, 3, t0 + 10'000).admitted);  // next window

  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        if (local.acquire("shared", 50, 60'000, 1, t0).admitted) admitted.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 50);
}

TEST(RateLimitStats, NamesAreListedOnce) {
  LimiterStats s;
  s.refused = 3;
  std::vector<std::string> names;
  uint64_t refused = 0;
  s.for_each([&](std::string_view name, std::string_view help, uint64_t v) {
    names.emplace_back(name);
    EXPECT_FALSE(help.empty());
    if (name == "refused") refused = v;
  });
  EXPECT_EQ(refused, 3u);
  EXPECT_EQ(names.front(), "checks");
  EXPECT_EQ(outcome_name(Outcome::kFailOpen), "fail_open");
  EXPECT_EQ(outcome_name(Outcome::kLocalRefused), "local_refused");
}

}  // namespace
}  // namespace redline::ratelimit
