// Virtual keys in Redis: the create body parser, the record's JSON forms, and KeyStore against
// real redis-server processes (standalone and a 3-master cluster): create/find/list/get,
// revoke reaching a second instance through CLIENT TRACKING, expiry, rotation, cache hits
// without Redis traffic, negative caching, and the grace rules while Redis is down.
#include "auth/key_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <random>
#include <sstream>
#include <thread>

#include "auth/key_cache.h"
#include "config/config_loader.h"
#include "redis/async_test_util.h"
#include "redis/config_options.h"
#include "support/redis_server.h"

namespace redline::auth {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr int64_t kNow = 1'700'000'000'000;  // a fixed "now" for the parser tests

// prefix + i (spelled out: g++ 12 -O3 warns falsely on "literal" + std::string&&).
std::string numbered(std::string_view prefix, int i) {
  std::string s(prefix);
  s += std::to_string(i);
  return s;
}

std::string random_sha() {
  static std::mt19937_64 rng(std::random_device{}());
  return config::sha256_hex("unknown-" + std::to_string(rng()));
}

// --- parse_key_spec ---------------------------------------------------------------------

TEST(ParseKeySpec, FullBody) {
  auto parsed = parse_key_spec(R"({
    "name": "ci", "tenant": "acme", "models": ["gpt-4o", "claude"],
    "rate_limits": [{"requests": 10, "window": "1m"}, {"tokens": 1000, "window": 60}],
    "budget": {"limit": 12.5, "period": "day"}, "cache": false,
    "metadata": {"team": "infra", "ticket": "OPS-1"}, "expires_in": 3600})",
                               kNow);
  ASSERT_TRUE(std::holds_alternative<KeySpec>(parsed)) << std::get<std::string>(parsed);
  const auto& s = std::get<KeySpec>(parsed);
  EXPECT_EQ(s.name, "ci");
  EXPECT_EQ(s.tenant, "acme");
  EXPECT_EQ(s.models, (std::vector<std::string>{"gpt-4o", "claude"}));
  ASSERT_EQ(s.rate_limits.size(), 2u);
  EXPECT_EQ(s.rate_limits[0].requests, 10u);
  EXPECT_EQ(s.rate_limits[0].window, 60s);
  EXPECT_EQ(s.rate_limits[1].tokens, 1000u);
  EXPECT_FALSE(s.rate_limits_json.empty());
  ASSERT_TRUE(s.budget.has_value());
  EXPECT_DOUBLE_EQ(s.budget->limit_usd, 12.5);
  EXPECT_EQ(s.budget->period, config::BudgetPeriod::kDay);
  EXPECT_FALSE(s.cache);
  EXPECT_EQ(s.metadata.at("team"), "infra");
  EXPECT_EQ(s.expires_ms, kNow + 3'600'000);
}

TEST(ParseKeySpec, DefaultsAndExpiresAt) {
  auto empty = parse_key_spec("{}", kNow);
  ASSERT_TRUE(std::holds_alternative<KeySpec>(empty));
  EXPECT_EQ(std::get<KeySpec>(empty).tenant, "default");
  EXPECT_EQ(std::get<KeySpec>(empty).expires_ms, 0);
  EXPECT_TRUE(std::get<KeySpec>(empty).cache);
  EXPECT_TRUE(std::get<KeySpec>(empty).rate_limits_json.empty());

  auto at = parse_key_spec(R"({"expires_at": 1700000100})", kNow);
  ASSERT_TRUE(std::holds_alternative<KeySpec>(at));
  EXPECT_EQ(std::get<KeySpec>(at).expires_ms, 1'700'000'100'000);
}

TEST(ParseKeySpec, EveryErrorNamesItsField) {
  const std::string long_value(1025, 'x');
  std::string many = "{";
  for (int i = 0; i < 65; ++i) {
    if (i > 0) many += ',';
    many += numbered("\"k", i);
    many += "\":\"v\"";
  }
  many += "}";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json", "body:"},
      {"[1,2]", "body:"},
      {R"({"name": 5})", "name:"},
      {R"({"tenant": ""})", "tenant:"},
      {R"({"tenant": 7})", "tenant:"},
      {R"({"models": "gpt-4o"})", "models:"},
      {R"({"models": ["ok", 3]})", "models[1]:"},
      {R"({"rate_limits": {"requests": 1}})", "rate_limits:"},
      {R"({"rate_limits": [{"requests": 1, "window": "soon"}]})", "rate_limits:"},
      {R"({"rate_limits": [{"requests": 1, "colour": "red"}]})", "rate_limits:"},
      {R"({"budget": {"limit": -1}})", "budget:"},
      {R"({"budget": {"period": "day"}})", "budget:"},
      {R"({"budget": 5})", "budget:"},
      {R"({"cache": "yes"})", "cache:"},
      {R"({"metadata": {"a": 1}})", "metadata.a:"},
      {R"({"metadata": []})", "metadata:"},
      {R"({"metadata": )" + many + "}", "metadata:"},
      {R"({"metadata": {"a": ")" + long_value + "\"}}", "metadata.a:"},
      {R"({"expires_at": 1600000000})", "expires_at:"},
      {R"({"expires_at": "tomorrow"})", "expires_at:"},
      {R"({"expires_in": 0})", "expires_in:"},
      {R"({"expires_in": 1.5})", "expires_in:"},
      {R"({"expires_in": 60, "expires_at": 1700000100})", "expires_in:"},
      {R"({"colour": "red"})", "colour:"},
  };
  for (const auto& [body, field] : cases) {
    auto parsed = parse_key_spec(body, kNow);
    ASSERT_TRUE(std::holds_alternative<std::string>(parsed)) << body.substr(0, 80);
    const auto& msg = std::get<std::string>(parsed);
    EXPECT_EQ(msg.rfind(field, 0), 0u) << body.substr(0, 80) << " -> " << msg;
  }
}

// --- KeyRecord --------------------------------------------------------------------------

KeyRecord sample_record() {
  auto parsed = parse_key_spec(
      R"({"name":"n","tenant":"t","models":["m"],"rate_limits":[{"requests":5,"window":"10s"}],
          "budget":{"limit":3,"period":"week"},"metadata":{"a":"b"}})",
      kNow);
  const auto& s = std::get<KeySpec>(parsed);
  KeyRecord r;
  r.id = "key_0123456789abcdef";
  r.sha256_hex = config::sha256_hex("sk-test");
  r.name = s.name;
  r.tenant = s.tenant;
  r.models = s.models;
  r.rate_limits = s.rate_limits;
  r.rate_limits_json = s.rate_limits_json;
  r.budget = s.budget;
  r.metadata = s.metadata;
  r.created_ms = kNow;
  r.expires_ms = kNow + 5'000;
  return r;
}

TEST(KeyRecord, SerializeRoundTrip) {
  const KeyRecord r = sample_record();
  auto back = KeyRecord::parse(r.serialize());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->id, r.id);
  EXPECT_EQ(back->sha256_hex, r.sha256_hex);
  EXPECT_EQ(back->tenant, "t");
  EXPECT_EQ(back->models, r.models);
  ASSERT_EQ(back->rate_limits.size(), 1u);
  EXPECT_EQ(back->rate_limits[0].requests, 5u);
  EXPECT_EQ(back->rate_limits[0].window, 10s);
  ASSERT_TRUE(back->budget.has_value());
  EXPECT_EQ(back->budget->period, config::BudgetPeriod::kWeek);
  EXPECT_EQ(back->metadata, r.metadata);
  EXPECT_EQ(back->expires_ms, r.expires_ms);
  EXPECT_FALSE(KeyRecord::parse("{}").has_value());
  EXPECT_FALSE(KeyRecord::parse("garbage").has_value());
  EXPECT_FALSE(KeyRecord::parse(R"({"id":"key_1","sha256":"ab","models":"x"})").has_value());
}

TEST(KeyRecord, ToJsonStatusAndTimes) {
  KeyRecord r = sample_record();
  auto active = r.to_json(kNow);
  EXPECT_EQ(active.at("status").as_string(), "active");
  EXPECT_FALSE(active.contains("sha256"));
  EXPECT_EQ(active.at("created_at").as_int64(), kNow / 1000);
  EXPECT_EQ(active.at("expires_at").as_int64(), (kNow + 5'000) / 1000);
  EXPECT_TRUE(active.at("revoked_at").is_null());
  EXPECT_EQ(active.at("rate_limits").as_array().at(0).as_object().at("requests").as_int64(), 5);
  EXPECT_EQ(active.at("budget").as_object().at("period").as_string(), "week");
  EXPECT_EQ(r.to_json(kNow + 5'000).at("status").as_string(), "expired");
  EXPECT_EQ(r.to_json(kNow, true).at("sha256").as_string(), r.sha256_hex);
  r.revoked_ms = kNow + 1'000;
  auto revoked = r.to_json(kNow + 2'000);
  EXPECT_EQ(revoked.at("status").as_string(), "revoked");
  EXPECT_EQ(revoked.at("revoked_at").as_int64(), (kNow + 1'000) / 1000);
}

// --- KeyCache ---------------------------------------------------------------------------

TEST(KeyCache, BoundedWithFewAbsentEntries) {
  KeyCache cache(8);
  auto record = std::make_shared<const KeyRecord>(sample_record());
  for (int i = 0; i < 20; ++i) {
    cache.put(numbered("r", i), KeyCache::Entry{record, 1, {}}, cache.generation());
  }
  EXPECT_EQ(cache.size(), 8u);
  cache.clear();
  for (int i = 0; i < 20; ++i) {
    cache.put(numbered("n", i), KeyCache::Entry{nullptr, 1, {}}, cache.generation());
  }
  EXPECT_EQ(cache.size(), 2u);  // a quarter of the bound may be "no such key"
  cache.put("n0", KeyCache::Entry{record, 1, {}}, cache.generation());
  cache.put("n1", KeyCache::Entry{record, 1, {}}, cache.generation());
  cache.put("n2", KeyCache::Entry{nullptr, 1, {}}, cache.generation());  // room again
  EXPECT_TRUE(cache.get("n2").has_value());
}

TEST(KeyCache, AnswerReadBeforeAnInvalidationIsNotTrusted) {
  KeyCache cache(8);
  uint64_t seen = cache.generation();
  cache.invalidate("k");  // a push for this key arrives while its read is in flight
  cache.put("k", KeyCache::Entry{nullptr, 7, {}}, seen);
  ASSERT_TRUE(cache.get("k").has_value());
  EXPECT_EQ(cache.get("k")->epoch, 0u);
  seen = cache.generation();
  cache.invalidate("other");  // another key's push does not matter
  cache.put("k", KeyCache::Entry{nullptr, 7, {}}, seen);
  EXPECT_EQ(cache.get("k")->epoch, 7u);
  seen = cache.generation();
  cache.clear();  // FLUSHALL: every read in flight is suspect
  cache.put("k", KeyCache::Entry{nullptr, 7, {}}, seen);
  EXPECT_EQ(cache.get("k")->epoch, 0u);
  seen = cache.generation();
  for (int i = 0; i < 2000; ++i) cache.invalidate(numbered("x", i));  // more than remembered
  cache.put("k", KeyCache::Entry{nullptr, 7, {}}, seen);
  EXPECT_EQ(cache.get("k")->epoch, 0u);
  cache.put("k", KeyCache::Entry{nullptr, 7, {}}, cache.generation());
  EXPECT_EQ(cache.get("k")->epoch, 7u);
  cache.invalidate("k");
  EXPECT_FALSE(cache.get("k").has_value());
}

// --- KeyStore against Redis ---------------------------------------------------------------

config::RedisConfig standalone(const test::RedisServer& server) {
  config::RedisConfig c;
  c.urls = {server.url()};
  c.command_timeout = 500ms;
  c.connect_timeout = 500ms;
  return c;
}

config::RedisConfig clustered(const test::RedisCluster& cluster) {
  config::RedisConfig c;
  c.mode = config::RedisMode::kCluster;
  c.urls = cluster.urls();
  c.command_timeout = 500ms;
  c.connect_timeout = 500ms;
  return c;
}

// A settable wall clock shared by the test and a store.
struct TestClock {
  std::shared_ptr<std::atomic<int64_t>> now = std::make_shared<std::atomic<int64_t>>(kNow);
  std::function<int64_t()> fn() const {
    return [n = now] { return n->load(); };
  }
  void advance(std::chrono::milliseconds d) { now->fetch_add(d.count()); }
};

// One gateway process as far as keys go: an io_context thread, a Redis client on it (the
// request path's and the admin API's), and a KeyStore tracking on it.
class Instance {
 public:
  explicit Instance(const config::RedisConfig& redis, config::KeyStoreConfig ks = {},
                    std::function<int64_t()> clock = {})
      : guard_(asio::make_work_guard(ioc_)), store_(ks, redis) {
    if (clock) store_.set_clock(std::move(clock));
    client_ = redis::make_client(ioc_.get_executor(), redis::client_options(redis, "test")).value();
    store_.start(ioc_);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~Instance() {
    run(shutdown());
    std::this_thread::sleep_for(50ms);  // lets the tracking coroutine see the stop
    guard_.reset();
    ioc_.stop();
    thread_.join();
  }

  template <class T>
  T run(asio::awaitable<T> aw) {
    return asio::co_spawn(ioc_, std::move(aw), asio::use_future).get();
  }
  void run(asio::awaitable<void> aw) {
    asio::co_spawn(ioc_, std::move(aw), asio::use_future).get();
  }

  KeyLookup find(const std::string& sha) { return run(store_.find(*client_, sha)); }
  KeyStore::Created create(std::string_view body) {
    auto spec = parse_key_spec(body, now_ms());
    EXPECT_TRUE(std::holds_alternative<KeySpec>(spec));
    auto created = run(store_.create(*client_, std::get<KeySpec>(spec)));
    EXPECT_TRUE(created.ok()) << created.error().to_string();
    return std::move(created).value();
  }
  std::optional<KeyRecord> revoke(const std::string& id) {
    auto r = run(store_.revoke(*client_, id));
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return r.ok() ? *r : std::nullopt;
  }
  bool wait_tracking(std::chrono::milliseconds limit = 5s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!store_.tracking()) {
      if (std::chrono::steady_clock::now() > until) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }
  int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  KeyStore& store() { return store_; }
  redis::Client& client() { return *client_; }

 private:
  asio::awaitable<void> shutdown() {
    store_.stop();
    client_->stop();
    co_return;
  }

  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::unique_ptr<redis::Client> client_;
  KeyStore store_;
  std::thread thread_;
};

// Polls `find` until it reports `want` or `limit` passes; returns how long it took.
std::optional<std::chrono::milliseconds> wait_status(Instance& inst, const std::string& sha,
                                                     KeyStatus want,
                                                     std::chrono::milliseconds limit) {
  const auto start = std::chrono::steady_clock::now();
  while (true) {
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    if (inst.find(sha).status == want) return took;
    if (took > limit) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
}

uint64_t commands_processed(const test::RedisServer& server) {
  std::istringstream info(server.cli("INFO", "stats"));
  std::string line;
  while (std::getline(info, line)) {
    if (line.rfind("total_commands_processed:", 0) == 0) return std::stoull(line.substr(25));
  }
  return 0;
}

TEST(KeyStore, CreateFindActiveStoresOnlyTheHash) {
  test::RedisServer server;
  Instance a(standalone(server));
  ASSERT_TRUE(a.wait_tracking());
  auto created = a.create(R"({"name":"ci","tenant":"acme","models":["gpt-4o"]})");
  const config::KeyStoreConfig defaults;
  EXPECT_EQ(created.plaintext.rfind(defaults.key_prefix, 0), 0u);
  EXPECT_EQ(created.plaintext.size(), defaults.key_prefix.size() + 43);
  EXPECT_EQ(created.record.id.size(), 20u);
  EXPECT_EQ(created.record.id.rfind("key_", 0), 0u);
  EXPECT_EQ(created.record.sha256_hex, config::sha256_hex(created.plaintext));

  auto found = a.find(created.record.sha256_hex);
  ASSERT_EQ(found.status, KeyStatus::kActive);
  ASSERT_TRUE(found.record);
  EXPECT_EQ(found.record->tenant, "acme");
  EXPECT_EQ(found.record->id, created.record.id);
  EXPECT_EQ(found.record->models, (std::vector<std::string>{"gpt-4o"}));

  // Every key is under k:, and no stored value holds the plaintext (or its random part).
  const std::string secret = created.plaintext.substr(defaults.key_prefix.size());
  std::istringstream keys(server.cli("--scan", "--pattern", "*"));
  std::string key;
  int seen = 0;
  while (std::getline(keys, key)) {
    if (key.empty()) continue;
    ++seen;
    EXPECT_EQ(key.rfind("k:", 0), 0u) << key;
    const std::string type = server.cli("TYPE", key);
    const std::string value = type == "zset" ? server.cli("ZRANGE", key, "0", "-1", "WITHSCORES")
                                             : server.cli("GET", key);
    EXPECT_EQ(value.find(secret), std::string::npos) << key;
    EXPECT_EQ(key.find(secret), std::string::npos) << key;
  }
  EXPECT_EQ(seen, 4);  // k:h:<sha>, k:i:<id>, k:ids, k:t:acme
  EXPECT_NE(server.cli("GET", "k:h:" + created.record.sha256_hex).find(created.record.id),
            std::string::npos);
  EXPECT_EQ(server.cli("GET", "k:i:" + created.record.id), created.record.sha256_hex);

  EXPECT_EQ(a.find(random_sha()).status, KeyStatus::kUnknown);
  EXPECT_EQ(a.find("not-a-hash").status, KeyStatus::kUnknown);
}

TEST(KeyStore, ListByTenantAndGet) {
  test::RedisServer server;
  TestClock clock;
  Instance a(standalone(server), {}, clock.fn());
  auto k1 = a.create(R"({"name":"one","tenant":"acme"})");
  clock.advance(1ms);  // listed by created time (equal times would sort by id)
  auto k2 = a.create(R"({"name":"two","tenant":"acme"})");
  clock.advance(1ms);
  auto k3 = a.create(R"({"name":"three","tenant":"other"})");

  auto acme = a.run(a.store().list(a.client(), "acme"));
  ASSERT_TRUE(acme.ok());
  ASSERT_EQ(acme->size(), 2u);
  EXPECT_EQ((*acme)[0].name, "one");  // created order
  EXPECT_EQ((*acme)[1].name, "two");
  auto all = a.run(a.store().list(a.client(), ""));
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 3u);
  auto none = a.run(a.store().list(a.client(), "nobody"));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());

  auto got = a.run(a.store().get(a.client(), k3.record.id));
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->name, "three");
  EXPECT_EQ((*got)->sha256_hex, k3.record.sha256_hex);
  auto missing = a.run(a.store().get(a.client(), "key_0000000000000000"));
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  auto bad = a.run(a.store().get(a.client(), "../etc"));
  ASSERT_TRUE(bad.ok());
  EXPECT_FALSE(bad->has_value());
  auto revoke_missing = a.run(a.store().revoke(a.client(), "key_0000000000000000"));
  ASSERT_TRUE(revoke_missing.ok());
  EXPECT_FALSE(revoke_missing->has_value());
  (void)k1;
  (void)k2;
}

TEST(KeyStore, RevokeReachesAnotherInstanceThroughTracking) {
  test::RedisServer server;
  Instance a(standalone(server));
  Instance b(standalone(server));
  ASSERT_TRUE(a.wait_tracking());
  ASSERT_TRUE(b.wait_tracking());
  auto created = a.create(R"({"tenant":"acme"})");
  const std::string& sha = created.record.sha256_hex;
  std::this_thread::sleep_for(20ms);  // the create's own push reaches b before it reads

  ASSERT_EQ(b.find(sha).status, KeyStatus::kActive);  // read from Redis, cached
  const auto cached = b.store().stats();
  ASSERT_EQ(b.find(sha).status, KeyStatus::kActive);  // served by b's cache
  EXPECT_EQ(b.store().stats().hits, cached.hits + 1);
  EXPECT_EQ(b.store().stats().misses, cached.misses);

  auto revoked = a.revoke(created.record.id);
  ASSERT_TRUE(revoked.has_value());
  EXPECT_NE(revoked->revoked_ms, 0);
  EXPECT_EQ(a.find(sha).status, KeyStatus::kRevoked);  // the revoking instance: at once

  auto took = wait_status(b, sha, KeyStatus::kRevoked, 1000ms);
  ASSERT_TRUE(took.has_value()) << "b still serves the revoked key after 1 s";
  EXPECT_GT(b.store().stats().invalidations, cached.invalidations);
  auto found = b.find(sha);
  ASSERT_TRUE(found.record);
  EXPECT_EQ(found.record->id, created.record.id);
  // Revoking again keeps the first revocation time.
  auto again = a.revoke(created.record.id);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->revoked_ms, revoked->revoked_ms);
}

TEST(KeyStore, ExpiryIsCheckedAtFindTime) {
  test::RedisServer server;
  TestClock clock;
  Instance a(standalone(server), {}, clock.fn());
  ASSERT_TRUE(a.wait_tracking());
  auto spec = parse_key_spec(R"({"expires_in": 60})", kNow);
  ASSERT_TRUE(std::holds_alternative<KeySpec>(spec));
  auto created = a.run(a.store().create(a.client(), std::get<KeySpec>(spec)));
  ASSERT_TRUE(created.ok());
  const std::string& sha = created->record.sha256_hex;
  EXPECT_EQ(created->record.expires_ms, kNow + 60'000);
  EXPECT_EQ(a.find(sha).status, KeyStatus::kActive);
  clock.advance(59'999ms);
  EXPECT_EQ(a.find(sha).status, KeyStatus::kActive);
  const auto before = a.store().stats();
  clock.advance(1ms);
  auto expired = a.find(sha);
  EXPECT_EQ(expired.status, KeyStatus::kExpired);
  ASSERT_TRUE(expired.record);
  EXPECT_EQ(a.store().stats().hits, before.hits + 1);  // from the cache, not a Redis TTL
  EXPECT_EQ(expired.record->to_json(clock.now->load()).at("status").as_string(), "expired");
}

TEST(KeyStore, RotateKeepsOldKeyForGraceThenExpiresIt) {
  test::RedisServer server;
  TestClock clock;
  Instance a(standalone(server), {}, clock.fn());
  ASSERT_TRUE(a.wait_tracking());
  auto spec = parse_key_spec(
      R"({"name":"svc","tenant":"acme","models":["m1"],"rate_limits":[{"requests":7,"window":"1m"}],
          "metadata":{"owner":"x"}})",
      kNow);
  auto old = a.run(a.store().create(a.client(), std::get<KeySpec>(spec)));
  ASSERT_TRUE(old.ok());

  auto rotated = a.run(a.store().rotate(a.client(), old->record.id, 30));
  ASSERT_TRUE(rotated.ok()) << rotated.error().to_string();
  ASSERT_TRUE(rotated->has_value());
  const auto& fresh = **rotated;
  EXPECT_NE(fresh.record.id, old->record.id);
  EXPECT_NE(fresh.plaintext, old->plaintext);
  EXPECT_EQ(fresh.record.tenant, "acme");
  EXPECT_EQ(fresh.record.models, (std::vector<std::string>{"m1"}));
  ASSERT_EQ(fresh.record.rate_limits.size(), 1u);
  EXPECT_EQ(fresh.record.rate_limits[0].requests, 7u);
  EXPECT_EQ(fresh.record.metadata.at("owner"), "x");

  auto old_now = a.find(old->record.sha256_hex);
  EXPECT_EQ(old_now.status, KeyStatus::kActive);
  ASSERT_TRUE(old_now.record);
  EXPECT_EQ(old_now.record->rotated_to, fresh.record.id);
  EXPECT_EQ(old_now.record->expires_ms, kNow + 30'000);
  EXPECT_EQ(a.find(fresh.record.sha256_hex).status, KeyStatus::kActive);

  clock.advance(30s);
  EXPECT_EQ(a.find(old->record.sha256_hex).status, KeyStatus::kExpired);
  EXPECT_EQ(a.find(fresh.record.sha256_hex).status, KeyStatus::kActive);

  // A key is rotated once; the new one can be rotated, here without grace: revoked at once.
  auto twice = a.run(a.store().rotate(a.client(), old->record.id, 30));
  EXPECT_FALSE(twice.ok());
  auto next = a.run(a.store().rotate(a.client(), fresh.record.id, 0));
  ASSERT_TRUE(next.ok());
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ(a.find(fresh.record.sha256_hex).status, KeyStatus::kRevoked);
  EXPECT_EQ(a.find((*next)->record.sha256_hex).status, KeyStatus::kActive);
  auto listed = a.run(a.store().list(a.client(), "acme"));
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 3u);
  auto unknown = a.run(a.store().rotate(a.client(), "key_0000000000000000", 5));
  ASSERT_TRUE(unknown.ok());
  EXPECT_FALSE(unknown->has_value());
}

TEST(KeyStore, CacheHitsDoNotTouchRedis) {
  test::RedisServer server;
  Instance a(standalone(server));
  ASSERT_TRUE(a.wait_tracking());
  auto created = a.create("{}");
  const std::string& sha = created.record.sha256_hex;
  ASSERT_EQ(a.find(sha).status, KeyStatus::kActive);
  const auto before = a.store().stats();
  const uint64_t commands_before = commands_processed(server);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(a.find(sha).status, KeyStatus::kActive);
  const uint64_t commands_after = commands_processed(server);
  const auto after = a.store().stats();
  EXPECT_EQ(after.hits, before.hits + 100);
  EXPECT_EQ(after.misses, before.misses);
  // The INFO call itself and at most a couple of tracking heartbeats.
  EXPECT_LE(commands_after - commands_before, 5u);
}

TEST(KeyStore, UnknownKeysAreCachedUntilAWriteMakesThemKnown) {
  test::RedisServer server;
  Instance a(standalone(server));
  ASSERT_TRUE(a.wait_tracking());
  // A record for a hash we know, written by "another instance" (redis-cli) later on.
  KeyRecord r;
  r.id = "key_00000000000000aa";
  r.sha256_hex = config::sha256_hex("sk-redline-known-later");
  r.tenant = "late";
  r.created_ms = kNow;

  ASSERT_EQ(a.find(r.sha256_hex).status, KeyStatus::kUnknown);
  const auto before = a.store().stats();
  ASSERT_EQ(a.find(r.sha256_hex).status, KeyStatus::kUnknown);
  EXPECT_EQ(a.store().stats().hits, before.hits + 1);  // the "no such key" answer was cached
  EXPECT_EQ(a.store().stats().misses, before.misses);

  server.cli("SET", "k:h:" + r.sha256_hex, r.serialize());
  auto took = wait_status(a, r.sha256_hex, KeyStatus::kActive, 1000ms);
  ASSERT_TRUE(took.has_value());
  EXPECT_EQ(a.find(r.sha256_hex).record->tenant, "late");
  EXPECT_GT(a.store().stats().invalidations, before.invalidations);
}

TEST(KeyStore, RedisDownServesKnownKeysForGraceOnly) {
  test::RedisServerOptions opts;
  opts.extra_config = {"appendonly yes", "appendfsync always"};
  test::RedisServer server(opts);
  config::KeyStoreConfig ks;
  ks.grace = 1s;
  ks.lookup_timeout = 100ms;
  Instance a(standalone(server), ks);
  ASSERT_TRUE(a.wait_tracking());
  auto created = a.create(R"({"tenant":"acme"})");
  const std::string& sha = created.record.sha256_hex;
  const std::string unknown = random_sha();
  ASSERT_EQ(a.find(sha).status, KeyStatus::kActive);
  ASSERT_EQ(a.find(unknown).status, KeyStatus::kUnknown);

  const auto resets = a.store().stats().tracking_resets;
  server.stop();
  const auto stopped = std::chrono::steady_clock::now();
  while (a.store().tracking() && std::chrono::steady_clock::now() - stopped < 3s) {
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_FALSE(a.store().tracking());
  EXPECT_EQ(a.store().stats().tracking_resets, resets + 1);

  const auto before = a.store().stats();
  EXPECT_EQ(a.find(sha).status, KeyStatus::kActive);
  EXPECT_EQ(a.store().stats().grace_served, before.grace_served + 1);
  EXPECT_EQ(a.find(random_sha()).status, KeyStatus::kUnavailable);
  EXPECT_EQ(a.find(unknown).status, KeyStatus::kUnavailable);  // cached "no", not trusted now
  EXPECT_EQ(a.store().stats().unavailable, before.unavailable + 2);

  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(a.find(sha).status, KeyStatus::kUnavailable);  // grace is over

  server.restart();
  // Redis answers the request path again (only a read can say "unknown").
  auto back = wait_status(a, unknown, KeyStatus::kUnknown, 5000ms);
  ASSERT_TRUE(back.has_value()) << "Redis did not come back";
  ASSERT_TRUE(a.wait_tracking());
  const auto misses = a.store().stats().misses;
  EXPECT_EQ(a.find(sha).status, KeyStatus::kActive);  // re-read: cached in a lost epoch
  EXPECT_EQ(a.store().stats().misses, misses + 1);
  // Coherent again: a revoke is seen and cached answers are hits.
  ASSERT_TRUE(a.revoke(created.record.id).has_value());
  EXPECT_EQ(a.find(sha).status, KeyStatus::kRevoked);
  const auto hits = a.store().stats().hits;
  EXPECT_EQ(a.find(sha).status, KeyStatus::kRevoked);
  EXPECT_EQ(a.store().stats().hits, hits + 1);
}

// Gateway threads share one store, each with its own client; a revoke lands mid-way.
TEST(KeyStore, ConcurrentFindsFromSeveralThreads) {
  test::RedisServer server;
  const config::RedisConfig redis = standalone(server);
  Instance a(redis);
  ASSERT_TRUE(a.wait_tracking());
  auto created = a.create("{}");
  const std::string sha = created.record.sha256_hex;
  std::atomic<int> bad{0};
  std::atomic<int> revoked_seen{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      asio::io_context ioc;
      auto client =
          redis::make_client(ioc.get_executor(), redis::client_options(redis, "t")).value();
      while (!go.load()) std::this_thread::yield();
      // Find until this thread sees the revoke (or gives up after 10 s).
      const auto until = std::chrono::steady_clock::now() + 10s;
      while (std::chrono::steady_clock::now() < until) {
        ioc.restart();  // a run of cache hits may leave it without work, i.e. stopped
        const KeyStatus s =
            redis::testing::run_until_done(ioc, a.store().find(*client, sha)).status;
        if (s != KeyStatus::kActive && s != KeyStatus::kRevoked) ++bad;
        if (s == KeyStatus::kRevoked) {
          ++revoked_seen;
          break;
        }
      }
      client->stop();
      redis::testing::run_for(ioc, 20ms);
    });
  }
  go.store(true);
  // Revoke once the threads are hitting the cache (a fixed sleep was too short under TSan on
  // a loaded machine: 5 hits by then, where the check below wants more than 10).
  const auto hits_by = std::chrono::steady_clock::now() + 5s;
  while (a.store().stats().hits <= 10u && std::chrono::steady_clock::now() < hits_by) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_TRUE(a.revoke(created.record.id).has_value());
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(revoked_seen.load(), 3);  // every thread saw the revoke
  EXPECT_GT(a.store().stats().hits, 10u);
  EXPECT_EQ(a.find(sha).status, KeyStatus::kRevoked);
}

TEST(KeyStore, ClusterCreateFindRevokeAcrossInstances) {
  test::RedisClusterOptions opts;
  opts.masters = 3;
  opts.replicas_per_master = 1;
  test::RedisCluster cluster(opts);
  Instance a(clustered(cluster));
  Instance b(clustered(cluster));
  ASSERT_TRUE(a.wait_tracking(10s));
  ASSERT_TRUE(b.wait_tracking(10s));

  std::vector<KeyStore::Created> keys;
  for (int i = 0; i < 6; ++i) keys.push_back(a.create(R"({"tenant":"acme"})"));
  std::this_thread::sleep_for(20ms);  // the creates' own pushes reach b before it reads
  for (const auto& k : keys) {
    ASSERT_EQ(b.find(k.record.sha256_hex).status, KeyStatus::kActive);
  }
  const auto cached = b.store().stats();
  for (const auto& k : keys) ASSERT_EQ(b.find(k.record.sha256_hex).status, KeyStatus::kActive);
  EXPECT_EQ(b.store().stats().hits, cached.hits + keys.size());

  auto listed = b.run(b.store().list(b.client(), "acme"));
  ASSERT_TRUE(listed.ok()) << listed.error().to_string();
  EXPECT_EQ(listed->size(), keys.size());

  // Records spread over the masters; every one's revoke reaches b's cache within 1 s.
  for (const auto& k : keys) ASSERT_TRUE(a.revoke(k.record.id).has_value());
  for (const auto& k : keys) {
    auto took = wait_status(b, k.record.sha256_hex, KeyStatus::kRevoked, 1000ms);
    ASSERT_TRUE(took.has_value()) << k.record.id;
  }
  EXPECT_GE(b.store().stats().invalidations, cached.invalidations + keys.size());
}

}  // namespace
}  // namespace redline::auth
