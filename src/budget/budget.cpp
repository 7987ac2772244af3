// Budgets: prices a request's usage, refuses a key or tenant that has spent its limit for the
// current period, adds each answer's cost (or a cache hit's saving) to the spend hashes, and
// builds the admin API's spend report. Hash and field names come from layout.h; period ids
// from period_at(). It does not decide HTTP statuses or bodies (the pipeline does).
#include "budget/budget.h"

#include <spdlog/spdlog.h>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <span>

#include "budget/layout.h"
#include "config/config_loader.h"

namespace redline::budget {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kWarnIntervalMs = 10'000;

// A price in pico-dollars per token: $/Mtok x 10^6, rounded. Prices are thereby exact to six
// decimals of a dollar per million tokens (0.15 is 150'000, not 0.1499999...). Not a positive
// number: 0. Absurdly large: capped so the sums below cannot overflow 128 bits.
uint64_t pico_per_token(double usd_per_mtok) {
  if (!(usd_per_mtok > 0)) {
    return 0;  // also NaN
  }
  constexpr double kMaxPico = 1e18;  // $10^12 per million tokens
  const double pico = usd_per_mtok * 1e6;
  if (pico >= kMaxPico) {
    return static_cast<uint64_t>(kMaxPico);
  }
  return static_cast<uint64_t>(std::llround(pico));
}

int64_t usd_to_micros(double usd) {
  if (!(usd > 0)) {
    return 0;
  }
  if (usd >= 9e12) {
    return kInt64Max;  // beyond any real budget; avoids llround overflow
  }
  return std::llround(usd * 1e6);
}

double micros_to_usd(int64_t micros) {
  return static_cast<double>(micros) / 1e6;
}

int64_t clamp_tokens(uint64_t n) {
  return n > static_cast<uint64_t>(kInt64Max) ? kInt64Max : static_cast<int64_t>(n);
}

bool parse_int(std::string_view text, int64_t& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

// An integer field of a reply: HGET answers a bulk string (RESP2 and RESP3), null when absent.
bool reply_int(const redis::Reply& r, int64_t& out) {
  out = 0;
  if (r.is_null()) {
    return true;
  }
  if (r.type() == redis::Type::kInteger) {
    out = r.integer();
    return true;
  }
  return r.is_string() && parse_int(r.str(), out);
}

// True for a version or date suffix: digits and dashes, starting with a digit
// ("2024-07-18", "20241022", "0613", "002").
bool version_suffix(std::string_view s) {
  if (s.empty() || s.front() < '0' || s.front() > '9') {
    return false;
  }
  for (const char c : s) {
    if (c != '-' && (c < '0' || c > '9')) {
      return false;
    }
  }
  return true;
}

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string_view scope_name(layout::Scope s) {
  return s == layout::Scope::kKey ? "key" : "tenant";
}

// Runs one or two commands at once, each with its own deadline. Both are queued in the same
// turn of the event loop, so the connection writes them in one pipelined write (cluster: one
// per node, in parallel).
asio::awaitable<std::vector<redis::Result<redis::Reply>>> execute_concurrently(
    redis::Client& redis, const std::vector<redis::Command>& cmds, config::Millis timeout) {
  std::vector<redis::Result<redis::Reply>> out;
  out.reserve(cmds.size());
  if (cmds.size() == 1) {
    auto r = co_await redis.execute(cmds[0], timeout);
    out.push_back(std::move(r));
  } else if (cmds.size() == 2) {
    using namespace asio::experimental::awaitable_operators;
    auto both = co_await (redis.execute(cmds[0], timeout) && redis.execute(cmds[1], timeout));
    out.push_back(std::move(std::get<0>(both)));
    out.push_back(std::move(std::get<1>(both)));
  } else {
    for (const auto& cmd : cmds) {  // never more than two today (key + tenant)
      auto r = co_await redis.execute(cmd, timeout);
      out.push_back(std::move(r));
    }
  }
  co_return out;
}

}  // namespace

int64_t cost_micros(const config::ModelPrice& price, uint64_t input_tokens,
                    uint64_t output_tokens) {
  // Integer math: tokens x pico-dollars per token fits 128 bits for any 64-bit token count.
  using u128 = unsigned __int128;
  const u128 pico = static_cast<u128>(input_tokens) * pico_per_token(price.input_per_mtok) +
                    static_cast<u128>(output_tokens) * pico_per_token(price.output_per_mtok);
  const u128 micros = (pico + 500'000) / 1'000'000;  // round half up (all terms >= 0)
  return micros > static_cast<u128>(kInt64Max) ? kInt64Max : static_cast<int64_t>(micros);
}

// ---------------------------------------------------------------------------------------
// Budgets.

struct Budgets::Limit {
  layout::Scope scope;
  config::Budget budget;
  int64_t limit_micros = 0;
  Period period;
  std::string hash;
};

Budgets::Budgets(const config::Config& config)
    : prices_(config.prices.begin(), config.prices.end()),
      tenants_(config.budgets.tenants.begin(), config.budgets.tenants.end()) {}

const config::ModelPrice* Budgets::price(std::string_view model) const {
  if (auto it = prices_.find(model); it != prices_.end()) {
    return &it->second;
  }
  // A dated or versioned name ("gpt-4o-mini-2024-07-18") takes the price of the longest
  // configured name it extends by "-<digits and dashes>" ("gpt-4o-mini", not "gpt-4o").
  for (size_t dash = model.rfind('-'); dash != std::string_view::npos && dash > 0;
       dash = model.rfind('-', dash - 1)) {
    if (!version_suffix(model.substr(dash + 1))) {
      break;  // a longer suffix would hold it too
    }
    if (auto it = prices_.find(model.substr(0, dash)); it != prices_.end()) {
      return &it->second;
    }
  }
  return nullptr;
}

bool Budgets::limited(const Subject& subject) const {
  return (!subject.key_id.empty() && subject.key_budget) || tenants_.contains(subject.tenant);
}

std::vector<Budgets::Limit> Budgets::limits(const Subject& subject, int64_t now_ms) const {
  std::vector<Limit> out;
  auto add = [&](layout::Scope scope, std::string_view id, const config::Budget& b) {
    Limit l{scope, b, usd_to_micros(b.limit_usd), period_at(b.period, now_ms), {}};
    l.hash = layout::hash_key(scope, id, l.period.id);
    out.push_back(std::move(l));
  };
  if (!subject.key_id.empty() && subject.key_budget) {
    add(layout::Scope::kKey, subject.key_id, *subject.key_budget);
  }
  if (auto it = tenants_.find(subject.tenant); it != tenants_.end()) {
    add(layout::Scope::kTenant, subject.tenant, it->second);
  }
  return out;
}

void Budgets::warn_throttled(std::atomic<int64_t>& last_ms, std::string_view what,
                             std::string_view error) const {
  const int64_t now = steady_ms();
  int64_t last = last_ms.load(std::memory_order_relaxed);
  if (last != 0 && now - last < kWarnIntervalMs) {
    return;
  }
  if (!last_ms.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
    return;
  }
  spdlog::warn("budget: {}: {} (budget stats count every occurrence)", what, error);
}

asio::awaitable<Decision> Budgets::check(redis::Client& redis, const Subject& subject,
                                         int64_t now_ms, config::Millis timeout) const {
  stats_.checks.fetch_add(1, std::memory_order_relaxed);
  Decision d;
  const std::vector<Limit> applicable = limits(subject, now_ms);
  if (applicable.empty()) {
    co_return d;
  }

  std::vector<redis::Command> reads;
  reads.reserve(applicable.size());
  for (const auto& l : applicable) {
    reads.emplace_back("HGET", l.hash, layout::kSpent);
  }
  std::vector<redis::Result<redis::Reply>> replies;
  std::string failure;
  try {
    replies = co_await execute_concurrently(redis, reads, timeout);
  } catch (const std::exception& e) {
    failure = e.what();
  }

  const Limit* refusing = nullptr;
  int64_t refusing_spent = 0;
  for (size_t i = 0; i < replies.size(); ++i) {
    const auto& r = replies[i];
    int64_t spent = 0;
    if (!r.ok()) {
      failure = r.error().to_string();
      continue;
    }
    if (!reply_int(*r, spent)) {
      failure = "non-integer spend in " + applicable[i].hash + ": " + r->debug_string();
      continue;
    }
    const Limit& l = applicable[i];
    // Both exhausted: name the one that stays exhausted longer (a retry before then fails).
    if (spent >= l.limit_micros && (!refusing || l.period.end_ms > refusing->period.end_ms)) {
      refusing = &l;
      refusing_spent = spent;
    }
  }
  if (replies.size() != applicable.size() && failure.empty()) {
    failure = "missing replies";
  }

  if (refusing) {
    stats_.refusals.fetch_add(1, std::memory_order_relaxed);
    d.allowed = false;
    d.scope = std::string(scope_name(refusing->scope));
    d.limit_usd = refusing->budget.limit_usd;
    d.spent_usd = micros_to_usd(refusing_spent);
    d.reset_ms = refusing->period.end_ms;
  } else if (!failure.empty()) {
    stats_.degraded.fetch_add(1, std::memory_order_relaxed);
    d.degraded = true;
    warn_throttled(last_check_warn_ms_, "spend unreadable, admitting unchecked", failure);
  }
  co_return d;
}

asio::awaitable<int64_t> Budgets::record(redis::Client& redis, const Subject& subject,
                                         std::string_view model, uint64_t input_tokens,
                                         uint64_t output_tokens, bool cache_hit,
                                         int64_t now_ms) const {
  stats_.records.fetch_add(1, std::memory_order_relaxed);
  const config::ModelPrice* p = price(model);
  const int64_t cost = p ? cost_micros(*p, input_tokens, output_tokens) : 0;

  std::vector<redis::Command> writes;
  const std::string model_spent = layout::model_field(layout::kSpent, model);
  const std::string model_saved = layout::model_field(layout::kSaved, model);
  auto add_hash = [&](layout::Scope scope, std::string_view id, config::BudgetPeriod kind) {
    const Period period = period_at(kind, now_ms);
    const std::string key = layout::hash_key(scope, id, period.id);
    if (cache_hit) {
      writes.emplace_back("HINCRBY", key, layout::kSaved, cost);
      writes.emplace_back("HINCRBY", key, layout::kHits, 1);
      if (!model.empty()) {
        writes.emplace_back("HINCRBY", key, model_saved, cost);
      }
    } else {
      writes.emplace_back("HINCRBY", key, layout::kSpent, cost);
      writes.emplace_back("HINCRBY", key, layout::kIn, clamp_tokens(input_tokens));
      writes.emplace_back("HINCRBY", key, layout::kOut, clamp_tokens(output_tokens));
      if (!model.empty()) {
        writes.emplace_back("HINCRBY", key, model_spent, cost);
      }
    }
    writes.emplace_back("HINCRBY", key, layout::kReq, 1);
    // The same deadline every time, so setting it again is idempotent (works on Redis 6 too).
    writes.emplace_back("PEXPIREAT", key, period.end_ms + layout::kRetentionMs);
  };
  // The month always (spend is visible without a budget), plus the budget's own period.
  auto add_subject = [&](layout::Scope scope, std::string_view id, const config::Budget* budget) {
    add_hash(scope, id, config::BudgetPeriod::kMonth);
    if (budget && budget->period != config::BudgetPeriod::kMonth) {
      add_hash(scope, id, budget->period);
    }
  };
  if (!subject.key_id.empty()) {
    add_subject(layout::Scope::kKey, subject.key_id,
                subject.key_budget ? &*subject.key_budget : nullptr);
  }
  const auto tenant = tenants_.find(subject.tenant);
  add_subject(layout::Scope::kTenant, subject.tenant,
              tenant == tenants_.end() ? nullptr : &tenant->second);

  std::string failure;
  try {
    const std::span<const redis::Command> view(writes);
    auto results = co_await redis.batch(view);
    for (const auto& r : results) {
      if (!r.ok()) {
        failure = r.error().to_string();
        break;
      }
    }
    if (failure.empty() && results.size() != writes.size()) {
      failure = "missing replies";
    }
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (!failure.empty()) {
    stats_.record_failures.fetch_add(1, std::memory_order_relaxed);
    warn_throttled(last_record_warn_ms_, "spend not recorded", failure);
  }
  co_return cost;
}

asio::awaitable<redis::Result<json::object>> Budgets::report(
    redis::Client& redis, std::string_view scope, std::string_view id,
    std::optional<config::Budget> budget, config::BudgetPeriod period, int64_t now_ms) const {
  layout::Scope s = layout::Scope::kKey;
  if (scope == "tenant") {
    s = layout::Scope::kTenant;
    budget.reset();
    if (auto it = tenants_.find(id); it != tenants_.end()) {
      budget = it->second;
    }
  } else if (scope != "key") {
    co_return redis::Error{redis::ErrorKind::kInvalidArgument,
                           "budget report scope must be \"key\" or \"tenant\""};
  }
  const Period p = period_at(period, now_ms);
  const redis::Command read("HGETALL", layout::hash_key(s, id, p.id));
  auto r = co_await redis.execute(read);
  if (!r.ok()) {
    co_return r.error();
  }

  int64_t spent = 0, saved = 0, in = 0, out = 0, req = 0, hits = 0;
  json::object by_model;
  auto model_entry = [&](std::string_view model) -> json::object& {
    auto it = by_model.find(model);
    if (it == by_model.end()) {
      it = by_model.emplace(model, json::object{{"spent_usd", 0.0}, {"saved_usd", 0.0}}).first;
    }
    return it->value().as_object();
  };
  const std::string spent_prefix = layout::model_field(layout::kSpent, "");
  const std::string saved_prefix = layout::model_field(layout::kSaved, "");
  // RESP3 answers a map, RESP2 a flat array: both are field, value, field, value ...
  const auto& elems = r->elements();
  for (size_t i = 0; i + 1 < elems.size(); i += 2) {
    const std::string& field = elems[i].str();
    int64_t v = 0;
    if (!reply_int(elems[i + 1], v)) {
      continue;  // not ours; never written by record()
    }
    const std::string_view f(field);
    if (f == layout::kSpent) {
      spent = v;
    } else if (f == layout::kSaved) {
      saved = v;
    } else if (f == layout::kIn) {
      in = v;
    } else if (f == layout::kOut) {
      out = v;
    } else if (f == layout::kReq) {
      req = v;
    } else if (f == layout::kHits) {
      hits = v;
    } else if (f.starts_with(spent_prefix)) {
      model_entry(f.substr(spent_prefix.size()))["spent_usd"] = micros_to_usd(v);
    } else if (f.starts_with(saved_prefix)) {
      model_entry(f.substr(saved_prefix.size()))["saved_usd"] = micros_to_usd(v);
    }
  }

  json::object o;
  o["scope"] = scope_name(s);
  o["id"] = id;
  o["period"] = config::period_name(period);
  o["period_id"] = p.id;
  o["period_start"] = p.start_ms;
  o["period_end"] = p.end_ms;
  o["spent_usd"] = micros_to_usd(spent);
  o["saved_usd"] = micros_to_usd(saved);
  o["input_tokens"] = in;
  o["output_tokens"] = out;
  o["requests"] = req;
  o["cache_hits"] = hits;
  o["by_model"] = std::move(by_model);
  // A limit is shown for the period kind it counts over (a daily budget's remaining amount
  // means nothing in a monthly report).
  if (budget && budget->period == period) {
    const int64_t limit = usd_to_micros(budget->limit_usd);
    o["limit_usd"] = budget->limit_usd;
    o["remaining_usd"] = micros_to_usd(spent >= limit ? 0 : limit - spent);
  }
  co_return o;
}

}  // namespace redline::budget
