// Microbenchmarks of the request path's pure-CPU pieces (no I/O): the cache key
// (canonicalize + XXH3-128) of 1 KB, 10 KB and 100 KB chat bodies, RESP3 parsing of a 2 KB
// GET reply and of a pipeline of small replies, the cache entry envelope with zstd, L1 hits
// and misses, building the rate limiter's EVALSHA commands, and a whole rate-limit decision
// (plan, reply, decide, headers) without the round trip. bench/run.sh runs it with a short
// --benchmark_min_time and copies the table into bench/results/latest.md.
#include <benchmark/benchmark.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "cache/cache_key.h"
#include "cache/entry.h"
#include "cache/l1_cache.h"
#include "config/config.h"
#include "ratelimit/limiter.h"
#include "ratelimit/policy.h"
#include "ratelimit/script.h"
#include "redis/resp3.h"

namespace {

using namespace redline;

// A chat body of about `bytes` bytes: a system prompt, alternating user/assistant turns of
// ~400 characters of prose, and the usual sampling fields, keys in no particular order.
std::string chat_body(std::size_t bytes) {
  static const std::string prose =
      "The quick brown fox jumps over the lazy dog while the gateway answers from its cache; "
      "latency matters, so every copy and allocation on the hot path is counted. ";
  std::string body = R"({"temperature":0,"model":"gpt-4o-mini","max_tokens":256,"messages":[)"
                     R"({"role":"system","content":"You are a helpful assistant."})";
  int turn = 0;
  while (body.size() + 600 < bytes) {
    std::string content;
    while (content.size() < 400) content += prose;
    body +=
        turn % 2 == 0 ? R"(,{"role":"user","content":")" : R"(,{"role":"assistant","content":")";
    body += content;
    body += "\"}";
    ++turn;
  }
  body += R"(],"top_p":1,"stream":false,"user":"bench"})";
  return body;
}

void BM_CacheKey(benchmark::State& state) {
  const std::string body = chat_body(static_cast<std::size_t>(state.range(0)));
  cache::KeyRequest req;
  req.tenant = "default";
  req.endpoint = "chat_completions";
  req.provider = "openai";
  req.model = "gpt-4o-mini";
  req.body = body;
  for (auto _ : state) {
    cache::KeyResult r = cache::compute_cache_key(req);
    if (r.error != cache::KeyError::kNone) state.SkipWithError("key error");
    benchmark::DoNotOptimize(r.key);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
  state.counters["body_bytes"] = static_cast<double>(body.size());
}
BENCHMARK(BM_CacheKey)->Arg(1 << 10)->Arg(10 << 10)->Arg(100 << 10);

// A GET reply carrying a 2 KB cache entry, parsed as it arrives in one read.
void BM_Resp3ParseBulk2K(benchmark::State& state) {
  const std::string payload(2048, 'x');
  const std::string wire = "$2048\r\n" + payload + "\r\n";
  redis::Parser parser;
  for (auto _ : state) {
    auto step = parser.feed(wire);
    if (step.status != redis::Parser::Status::kReply) state.SkipWithError("no reply");
    redis::Reply r = parser.take();
    benchmark::DoNotOptimize(r.str().data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * wire.size()));
}
BENCHMARK(BM_Resp3ParseBulk2K);

// A pipeline of 17 small replies in one read, as a batch of cache and rate-limit commands
// gets back: a 4-integer script reply, then four times +OK, :n, a null and a short bulk.
void BM_Resp3ParsePipeline(benchmark::State& state) {
  std::string wire = "*4\r\n:1\r\n:59\r\n:60000\r\n:0\r\n";
  for (int i = 0; i < 4; ++i) wire += "+OK\r\n:12345\r\n_\r\n$5\r\nhello\r\n";
  redis::Parser parser;
  int64_t replies = 0;
  for (auto _ : state) {
    std::string_view data = wire;
    while (!data.empty()) {
      auto step = parser.feed(data);
      if (step.status != redis::Parser::Status::kReply) {
        state.SkipWithError("parse");
        break;
      }
      redis::Reply r = parser.take();
      benchmark::DoNotOptimize(r.integer());
      data.remove_prefix(step.consumed);
      ++replies;
    }
  }
  state.SetItemsProcessed(replies);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * wire.size()));
}
BENCHMARK(BM_Resp3ParsePipeline);

cache::Entry sample_entry(std::size_t body_bytes) {
  cache::Entry e;
  e.status = 200;
  e.content_type = "application/json";
  e.headers = {{"openai-model", "gpt-4o-mini-2024-07-18"}, {"openai-processing-ms", "312"}};
  e.created_unix_ms = 1'700'000'000'000;
  e.ttl_seconds = 3600;
  e.body = R"({"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[)"
           R"({"index":0,"message":{"role":"assistant","content":")";
  while (e.body.size() + 200 < body_bytes) e.body += "a cached answer with ordinary words ";
  e.body += R"("},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":12}})";
  return e;
}

void BM_EntryEncode(benchmark::State& state) {
  const cache::Entry e = sample_entry(static_cast<std::size_t>(state.range(0)));
  std::size_t out = 0;
  for (auto _ : state) {
    std::string bytes = cache::encode_entry(e);
    out = bytes.size();
    benchmark::DoNotOptimize(bytes.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * e.body.size()));
  state.counters["encoded_bytes"] = static_cast<double>(out);
}
BENCHMARK(BM_EntryEncode)->Arg(512)->Arg(2048)->Arg(16384);

void BM_EntryDecode(benchmark::State& state) {
  const cache::Entry e = sample_entry(static_cast<std::size_t>(state.range(0)));
  const std::string bytes = cache::encode_entry(e);
  cache::Entry out;
  for (auto _ : state) {
    if (cache::decode_entry(bytes, out) != cache::DecodeError::kNone) state.SkipWithError("dec");
    benchmark::DoNotOptimize(out.body.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * e.body.size()));
  state.counters["compressed"] = cache::entry_compressed(bytes) ? 1 : 0;
}
BENCHMARK(BM_EntryDecode)->Arg(512)->Arg(2048)->Arg(16384);

cache::KeyDigest digest(uint64_t i) {
  cache::KeyDigest d{};
  uint64_t x = i * 0x9E3779B97F4A7C15ull + 1;
  for (std::size_t b = 0; b < d.size(); ++b) {
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    d[b] = static_cast<unsigned char>(x >> 56);
  }
  return d;
}

// An L1 shard holding 10,000 entries of 1 KB; lookups of present (hit) or absent (miss) keys.
void BM_L1Lookup(benchmark::State& state) {
  const bool hit = state.range(0) == 1;
  constexpr uint64_t kEntries = 10'000;
  cache::L1Shard shard(64 << 20);
  const std::string value(1024, 'v');
  for (uint64_t i = 0; i < kEntries; ++i) shard.put(digest(i), value, INT64_MAX);
  uint64_t i = 0;
  for (auto _ : state) {
    const auto key = digest(hit ? i % kEntries : kEntries + i);
    const std::string* v = shard.get(key, 1);
    if ((v != nullptr) != hit) state.SkipWithError("unexpected L1 result");
    benchmark::DoNotOptimize(v);
    ++i;
  }
  state.SetLabel(hit ? "hit" : "miss");
}
BENCHMARK(BM_L1Lookup)->Arg(1)->Arg(0);

// The rate limiter's EVALSHA 'check' for one policy limiting requests and tokens (two
// states, sliding-window counter), as the limiter builds it per request: the keys from the
// policy id and subject, then the command.
void BM_RateLimitCheckCommand(benchmark::State& state) {
  using config::RateLimitAlgorithm;
  for (auto _ : state) {
    const std::string base = ratelimit::key_base("key-60s-swc", "3f9a1c2b");
    ratelimit::StateRef req, tok;
    req.algorithm = tok.algorithm = RateLimitAlgorithm::kSlidingWindowCounter;
    req.keys = ratelimit::state_keys(ratelimit::state_key(base, ratelimit::Quantity::kRequests),
                                     req.algorithm);
    tok.keys = ratelimit::state_keys(ratelimit::state_key(base, ratelimit::Quantity::kTokens),
                                     tok.algorithm);
    req.limit = 1000;
    tok.limit = 1'000'000;
    req.window_ms = tok.window_ms = 60'000;
    req.cost = 1;
    tok.cost = 4200;
    const ratelimit::StateRef* states[] = {&req, &tok};
    redis::Command cmd = ratelimit::check_command(states);
    std::string wire;
    cmd.append_to(wire);
    benchmark::DoNotOptimize(wire.data());
  }
}
BENCHMARK(BM_RateLimitCheckCommand);

// Only the command assembly, with the StateRefs already built.
void BM_RateLimitCheckCommandOnly(benchmark::State& state) {
  using config::RateLimitAlgorithm;
  const std::string base = ratelimit::key_base("key-60s-swc", "3f9a1c2b");
  ratelimit::StateRef req, tok;
  req.algorithm = tok.algorithm = RateLimitAlgorithm::kSlidingWindowCounter;
  req.keys = ratelimit::state_keys(ratelimit::state_key(base, ratelimit::Quantity::kRequests),
                                   req.algorithm);
  tok.keys = ratelimit::state_keys(ratelimit::state_key(base, ratelimit::Quantity::kTokens),
                                   tok.algorithm);
  req.limit = 1000;
  tok.limit = 1'000'000;
  req.window_ms = tok.window_ms = 60'000;
  req.cost = 1;
  tok.cost = 4200;
  const ratelimit::StateRef* states[] = {&req, &tok};
  for (auto _ : state) {
    redis::Command cmd = ratelimit::check_command(states);
    benchmark::DoNotOptimize(cmd.size());
  }
}
BENCHMARK(BM_RateLimitCheckCommandOnly);

// The settle command for the token state of that policy (what settle() sends per request).
void BM_RateLimitSettleCommand(benchmark::State& state) {
  using config::RateLimitAlgorithm;
  const std::string base = ratelimit::key_base("key-60s-swc", "3f9a1c2b");
  ratelimit::StateRef tok;
  tok.algorithm = RateLimitAlgorithm::kSlidingWindowCounter;
  tok.keys = ratelimit::state_keys(ratelimit::state_key(base, ratelimit::Quantity::kTokens),
                                   tok.algorithm);
  tok.limit = 1'000'000;
  tok.window_ms = 60'000;
  tok.burst = 1'000'000;
  tok.cost = 4200;
  tok.handle = 29'000'000;
  const ratelimit::StateRef* states[] = {&tok};
  const uint64_t actual[] = {950};
  for (auto _ : state) {
    redis::Command cmd = ratelimit::settle_command(states, actual);
    benchmark::DoNotOptimize(cmd.size());
  }
}
BENCHMARK(BM_RateLimitSettleCommand);

// A whole admitted decision as RateLimiter::check() makes it, minus the round trip: plan()
// (keys, the EVALSHA command), the script's 13-integer reply for two states, complete()
// (parse, decide, the x-ratelimit-* / RateLimit headers, the token reservation) run on an
// io_context, and the Decision handed out. Arg 0: one global policy limiting requests and
// tokens (bench/callgrind.sh's miss_cl); arg 1: the same scoped by key and model.
void BM_RateLimitDecision(benchmark::State& state) {
  using config::RateLimitAlgorithm;
  using config::RateLimitScope;
  boost::asio::io_context io;
  redis::ConnectionOptions co;
  co.port = 1;  // never connected: no command is sent
  redis::StandaloneClient client(io.get_executor(), co);
  config::RateLimitPolicy p;
  p.scopes = {state.range(0) == 0 ? RateLimitScope::kGlobal : RateLimitScope::kKey};
  if (state.range(0) == 1) p.scopes.push_back(RateLimitScope::kModel);
  p.algorithm = RateLimitAlgorithm::kSlidingWindowCounter;
  p.requests = 1'000'000'000;
  p.tokens = 100'000'000'000;
  const std::vector<config::RateLimitPolicy> policies{p};
  ratelimit::RateLimiter limiter(client, policies);
  ratelimit::RequestFacts facts;
  facts.key_id = "3f9a1c2b4d5e";
  facts.tenant = "default";
  facts.model = "gpt-4o-mini";
  facts.ip = "127.0.0.1";
  facts.estimated_tokens = 4117;
  redis::Reply reply(redis::Type::kArray);
  const std::vector<int64_t> values{
      1, 1, 999'999'000, 60'000, 1, 0, 29'000'000, 1, 99'999'000'000, 60'000, 1, 0, 29'000'000};
  for (int64_t v : values) {
    reply.mutable_elements().push_back(redis::Reply::integer(v));
  }
  size_t headers = 0;
  for (auto _ : state) {
    ratelimit::CheckPlan plan = limiter.plan(facts);
    std::vector<redis::Result<redis::Reply>> replies;
    replies.emplace_back(reply);
    ratelimit::Decision out;
    boost::asio::co_spawn(
        io,
        [&]() -> boost::asio::awaitable<void> {
          std::span<redis::Result<redis::Reply>> answered = replies;
          ratelimit::Decision d = co_await limiter.complete(plan, answered);
          out = std::move(d);
        },
        boost::asio::detached);
    io.run();
    io.restart();
    if (out.outcome != ratelimit::Outcome::kAdmitted) state.SkipWithError("not admitted");
    headers = out.headers.size();
    benchmark::DoNotOptimize(out.headers.data());
  }
  state.counters["headers"] = static_cast<double>(headers);
  state.SetLabel(state.range(0) == 0 ? "global" : "key+model");
}
BENCHMARK(BM_RateLimitDecision)->Arg(0)->Arg(1);

}  // namespace

BENCHMARK_MAIN();
