// Spending limits (budgets) per virtual key and per tenant over UTC calendar periods, computed
// from the provider's usage and the price table (`prices:`, US dollars per million tokens).
// Spend is counted in integer micro-dollars in the state Redis, one hash per subject and
// period (see README.md here for the layout), so many gateway instances add up exactly.
//
// The pipeline calls check() after authentication (a request whose key or tenant has already
// spent its limit is refused: 429 budget_exceeded) and record() once the answer is out (the
// request that crosses the limit completes; the next one is refused). A cache hit costs
// nothing: record() counts what it would have cost as "saved". While Redis is unreachable
// check() admits (degraded) and record() loses that request's spend (counted in stats).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "redis/client.h"

namespace redline::budget {

// Cost of one answer in micro-dollars (rounded to nearest); 0 without a price.
int64_t cost_micros(const config::ModelPrice& price, uint64_t input_tokens, uint64_t output_tokens);

// The period containing `now_ms` (UTC): its id ("d2026-11-27", "w2026-11-23" for the week
// starting Monday 2026-11-23, "m2026-11") and its start and end (exclusive), in unix ms.
struct Period {
  std::string id;
  int64_t start_ms = 0;
  int64_t end_ms = 0;
};
Period period_at(config::BudgetPeriod period, int64_t now_ms);

// Whose money a request spends.
struct Subject {
  std::string key_id;                       // "" = open gateway (no key budget)
  std::optional<config::Budget> key_budget; // the key's own (static config or Redis record)
  std::string tenant;
};

struct Decision {
  bool allowed = true;
  bool degraded = false;     // Redis did not answer in time: admitted unchecked
  std::string scope;         // refused by: "key" | "tenant"
  double limit_usd = 0;
  double spent_usd = 0;
  int64_t reset_ms = 0;      // end of the refusing period (unix ms)
};

struct BudgetStats {
  std::atomic<uint64_t> checks{0}, refusals{0}, degraded{0}, records{0}, record_failures{0};
};

class Budgets {
 public:
  explicit Budgets(const config::Config& config);  // copies prices and tenant budgets

  // The price of a model (the name the client asked for, or the provider's model name);
  // null when the table has none.
  const config::ModelPrice* price(std::string_view model) const;
  // True when the subject has a key budget or its tenant has one (else check() is free).
  bool limited(const Subject& subject) const;

  // One pipelined read of the applicable periods' spend (key and tenant), bounded by
  // `timeout`. No budget applies: allowed without touching Redis.
  boost::asio::awaitable<Decision> check(redis::Client& redis, const Subject& subject,
                                         int64_t now_ms, config::Millis timeout) const;

  // Adds one answer's cost (or, for a cache hit, its saving) to the key's and the tenant's
  // current-period hashes for every period kind in use (day/week/month of the budgets that
  // apply, and always the month, so spend is visible without a budget), per model too, in one
  // pipelined write. Returns the cost in micro-dollars (0 without a price).
  boost::asio::awaitable<int64_t> record(redis::Client& redis, const Subject& subject,
                                         std::string_view model, uint64_t input_tokens,
                                         uint64_t output_tokens, bool cache_hit, int64_t now_ms) const;

  // The admin API's spend view of one key ("key", key id) or tenant ("tenant", name) for a
  // period kind: {"scope","id","period","period_start","period_end","spent_usd","saved_usd",
  // "input_tokens","output_tokens","requests","cache_hits","by_model":{model:{spent_usd,
  // saved_usd}},"limit_usd" (when a budget applies),"remaining_usd"}. `budget` is the key's
  // own budget for scope "key" (the tenant's comes from the config).
  boost::asio::awaitable<redis::Result<boost::json::object>> report(
      redis::Client& redis, std::string_view scope, std::string_view id,
      std::optional<config::Budget> budget, config::BudgetPeriod period, int64_t now_ms) const;

  BudgetStats& stats() const { return stats_; }

 private:
  struct Limit;  // one budget that applies to a request: scope, limit, period, hash name
  std::vector<Limit> limits(const Subject& subject, int64_t now_ms) const;
  // At most one warning per kind every 10 s while Redis fails (the stats count every one).
  void warn_throttled(std::atomic<int64_t>& last_ms, std::string_view what,
                      std::string_view error) const;

  std::map<std::string, config::ModelPrice, std::less<>> prices_;
  std::map<std::string, config::Budget, std::less<>> tenants_;
  mutable BudgetStats stats_;
  mutable std::atomic<int64_t> last_check_warn_ms_{0}, last_record_warn_ms_{0};
};

}  // namespace redline::budget
