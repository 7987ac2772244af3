// The phases that keep per-tenant state in Redis besides the cache and the limits: the
// conversation session (loaded and merged before routing, the turn appended after the
// answer), the budget check and the spend record, and the client's own sessions API
// (GET / DELETE /v1/sessions/{id}).
#include <spdlog/spdlog.h>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/json.hpp>

#include "common/json_text.h"
#include <chrono>
#include <cmath>

#include "cache/entry.h"
#include "metrics/registry.h"
#include "metrics/standard.h"
#include "proxy/pipeline.h"
#include "session/session_json.h"

namespace redline::proxy {

namespace {

constexpr std::string_view kSessionHeader = "x-redline-session";

metrics::CounterFamily& session_counter() {
  static auto& c = metrics::counter(
      "redline_session_operations_total",
      "Conversation session operations (load: found | new | error; append: ok | no_reply | "
      "error).",
      {"operation", "outcome"});
  return c;
}
metrics::CounterFamily& budget_counter() {
  static auto& c = metrics::counter("redline_budget_decisions_total",
                                    "Budget checks by outcome (allowed, refused, degraded).",
                                    {"outcome"});
  return c;
}

std::string usd(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", v);
  std::string s(buf);
  while (s.size() > 1 && s.back() == '0' && s[s.size() - 2] != '.') s.pop_back();
  return "$" + s;
}

std::string iso_utc(int64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

bool session_endpoint(Endpoint e) {
  return e == Endpoint::kChatCompletions || e == Endpoint::kMessages;
}

}  // namespace

bool ProxyHandler::state_prepare(RequestContext& ctx) {
  if (state_.budgets != nullptr) {
    ctx.spender = budget::Subject{ctx.identity.key_id, ctx.identity.budget, ctx.identity.tenant};
  }
  return !ctx.exchange.request()[kSessionHeader].empty() ||
         (ctx.spender && state_.budgets->limited(*ctx.spender));
}

asio::awaitable<std::optional<Reject>> ProxyHandler::state_phase(RequestContext& ctx) {
  const bool session = !ctx.exchange.request()[kSessionHeader].empty();
  const bool budget = ctx.spender && state_.budgets->limited(*ctx.spender);
  const auto t0 = Clock::now();
  std::optional<Reject> reject;
  if (session && budget) {
    // Both read Redis: one round trip of latency.
    using namespace boost::asio::experimental::awaitable_operators;
    auto [s, b] = co_await (session_load(ctx) && budget_check(ctx));
    reject = b ? std::move(b) : std::move(s);  // a budget refusal wins: nothing to merge for
    redis_waited(ctx, "session_load+budget_check", t0);
  } else if (session) {
    reject = co_await session_load(ctx);
    redis_waited(ctx, "session_load", t0);
  } else if (budget) {
    reject = co_await budget_check(ctx);
    redis_waited(ctx, "budget_check", t0);
  }
  co_return reject;
}

asio::awaitable<std::optional<Reject>> ProxyHandler::session_load(RequestContext& ctx) {
  const std::string id(ctx.exchange.request()[kSessionHeader]);
  if (state_.sessions == nullptr) {
    co_return Reject{400, "sessions are disabled on this gateway (sessions.enabled: false)",
                     "sessions_disabled"};
  }
  if (!session_endpoint(ctx.endpoint)) {
    co_return Reject{400,
                     "x-redline-session works with POST /v1/chat/completions and POST "
                     "/v1/messages",
                     "session_unsupported"};
  }
  if (!session::valid_session_id(id, config_.sessions.max_id_bytes)) {
    co_return Reject{400,
                     "x-redline-session must be 1-" +
                         std::to_string(config_.sessions.max_id_bytes) +
                         " characters of letters, digits and . _ : -",
                     "invalid_session_id"};
  }
  auto history = co_await state_.sessions->load(state_redis(ctx), ctx.identity.tenant, id);
  if (!history.ok()) {
    session_counter().labels("load", "error").inc();
    spdlog::warn("session load failed: {}", history.error().to_string());
    co_return Reject{503, "the session store is unreachable; retry shortly",
                     "session_store_unavailable", "1"};
  }
  session_counter().labels("load", history->exists ? "found" : "new").inc();
  ctx.session_api =
      ctx.endpoint == Endpoint::kMessages ? session::Api::kMessages : session::Api::kChat;
  auto merged = session::merge_history(ctx.session_api, *history, ctx.exchange.request().body());
  if (auto* err = std::get_if<session::MergeError>(&merged)) {
    co_return Reject{400, err->message, err->code};
  }
  ctx.session_turn = std::move(std::get<session::Merged>(merged));
  ctx.session_id = id;
  ctx.capture_answer = true;
  co_return std::nullopt;
}

asio::awaitable<std::optional<Reject>> ProxyHandler::budget_check(RequestContext& ctx) {
  const int64_t now = cache::now_unix_ms();
  auto d = co_await state_.budgets->check(state_redis(ctx), *ctx.spender, now,
                                          config_.redis.command_timeout);
  if (d.degraded) {
    budget_counter().labels("degraded").inc();
    co_return std::nullopt;
  }
  if (d.allowed) {
    budget_counter().labels("allowed").inc();
    co_return std::nullopt;
  }
  budget_counter().labels("refused").inc();
  const int64_t wait_s = std::max<int64_t>(1, (d.reset_ms - now + 999) / 1000);
  co_return Reject{429,
                   "budget exceeded: this " + d.scope + " has spent " + usd(d.spent_usd) +
                       " of its " + usd(d.limit_usd) + " budget for the period; it resets at " +
                       iso_utc(d.reset_ms),
                   "budget_exceeded", std::to_string(wait_s)};
}

std::string_view ProxyHandler::spend_model(const RequestContext& ctx) const {
  if (!ctx.spender || ctx.exchange.status() != 200 || ctx.model.empty()) return {};
  // The price of the model the client asked for, else of the provider's model name.
  std::string_view model = ctx.model;
  if (state_.budgets->price(model) == nullptr && ctx.provider != nullptr && !ctx.hops.empty()) {
    model = ctx.hops.front().model;
  }
  const bool priced = state_.budgets->price(model) != nullptr;
  if (!priced && !state_.budgets->limited(*ctx.spender)) return {};  // nothing to count
  return model;
}

asio::awaitable<void> ProxyHandler::record_spend(RequestContext& ctx, std::string_view model) {
  const bool from_cache = ctx.cache_status == cache::CacheStatus::kHit ||
                          ctx.cache_status == cache::CacheStatus::kCoalesced;
  const auto t0 = Clock::now();
  const int64_t cost = co_await state_.budgets->record(
      state_redis(ctx), *ctx.spender, model, ctx.usage->input_tokens, ctx.usage->output_tokens,
      from_cache, cache::now_unix_ms());
  redis_timed("spend_record", t0);
  if (cost > 0) {
    auto& family = from_cache ? metrics::standard::cache_saved_usd() : metrics::standard::spend_usd();
    family.labels(ctx.model).inc(static_cast<uint64_t>(cost));  // micro-dollars
  }
}

asio::awaitable<void> ProxyHandler::session_append(RequestContext& ctx) {
  if (ctx.session_id.empty() || ctx.session_appended) co_return;
  ctx.session_appended = true;
  std::optional<std::string> reply =
      ctx.answer_streamed ? session::reply_message_from_events(ctx.session_api, ctx.answer_events)
                          : session::reply_message(ctx.session_api, ctx.answer_body);
  if (!reply) {
    // A cut stream or an answer without a message: the turn is not stored.
    session_counter().labels("append", "no_reply").inc();
    co_return;
  }
  const auto t0 = Clock::now();
  auto appended = co_await state_.sessions->append(state_redis(ctx), ctx.identity.tenant,
                                                   ctx.session_id, ctx.session_api,
                                                   ctx.session_turn, *reply);
  redis_timed("session_append", t0);
  if (!appended.ok() && session::is_api_mismatch(appended.error())) {
    // The session was started through the other API between this turn's load and append.
    session_counter().labels("append", "api_mismatch").inc();
    co_return;
  }
  if (!appended.ok()) {
    session_counter().labels("append", "error").inc();
    spdlog::warn("session append failed: {}", appended.error().to_string());
    co_return;
  }
  session_counter().labels("append", "ok").inc();
}

asio::awaitable<void> ProxyHandler::sessions_api(RequestContext& ctx, std::string_view id) {
  auto& ex = ctx.exchange;
  const auto method = ex.request().method();
  if (auto q = id.find('?'); q != std::string_view::npos) id = id.substr(0, q);
  if (state_.sessions == nullptr) {
    co_await ex.respond_error(404, "sessions are disabled on this gateway", "sessions_disabled");
    co_return;
  }
  if (method != bhttp::verb::get && method != bhttp::verb::delete_) {
    co_await ex.respond_error(405, "use GET or DELETE /v1/sessions/{id}", "method_not_allowed");
    co_return;
  }
  if (!session::valid_session_id(id, config_.sessions.max_id_bytes)) {
    co_await ex.respond_error(400, "invalid session id", "invalid_session_id");
    co_return;
  }
  http::Response res{bhttp::status::ok, 11};
  res.set(bhttp::field::content_type, "application/json");
  res.set(bhttp::field::cache_control, "no-store");
  boost::json::object out;
  if (method == bhttp::verb::delete_) {
    auto removed = co_await state_.sessions->remove(state_redis(ctx), ctx.identity.tenant, id);
    if (!removed.ok()) {
      co_await ex.respond_error(503, "the session store is unreachable; retry shortly",
                                "session_store_unavailable", "1");
      co_return;
    }
    if (!*removed) {
      co_await ex.respond_error(404, "no session " + std::string(id), "session_not_found");
      co_return;
    }
    out["id"] = id;
    out["object"] = "session";
    out["deleted"] = true;
  } else {
    auto h = co_await state_.sessions->load(state_redis(ctx), ctx.identity.tenant, id);
    if (!h.ok()) {
      co_await ex.respond_error(503, "the session store is unreachable; retry shortly",
                                "session_store_unavailable", "1");
      co_return;
    }
    if (!h->exists) {
      co_await ex.respond_error(404, "no session " + std::string(id), "session_not_found");
      co_return;
    }
    out = session::to_json(*h, id);
  }
  res.body() = json_text(out);
  co_await ex.respond(res);
}

}  // namespace redline::proxy
