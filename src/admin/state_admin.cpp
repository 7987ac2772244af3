// The admin API over the state kept in Redis: virtual keys, sessions, spend, rate-limit state,
// and the running configuration with its secrets redacted (see admin_handler.h and
// docs/admin-api.md). Every handler answers JSON; bad input is a 400 naming the field.
#include <boost/json.hpp>

#include "common/json_text.h"
#include <boost/url/parse.hpp>
#include <charconv>

#include "admin/admin_handler.h"
#include "cache/entry.h"
#include "config/config_loader.h"
#include "ratelimit/policy.h"
#include "session/session_json.h"

namespace redline::admin {

namespace bhttp = boost::beast::http;
namespace json = boost::json;

namespace {

struct Query {
  std::map<std::string, std::string, std::less<>> params;
  std::optional<std::string_view> get(std::string_view name) const {
    auto it = params.find(name);
    if (it == params.end()) return std::nullopt;
    return it->second;
  }
};

Query parse_query(std::string_view target) {
  Query q;
  auto url = boost::urls::parse_origin_form(target);
  if (!url) return q;
  for (auto p : url->params()) q.params[std::string(p.key)] = std::string(p.value);
  return q;
}

// Splits "/admin/keys/abc/rotate" after `prefix` into its segments.
std::vector<std::string_view> segments(std::string_view path, std::string_view prefix) {
  std::vector<std::string_view> out;
  path.remove_prefix(prefix.size());
  while (!path.empty()) {
    auto slash = path.find('/');
    auto seg = path.substr(0, slash);
    if (!seg.empty()) out.push_back(seg);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

std::string redact_url(const std::string& url) {
  // redis://user:secret@host -> redis://user:***@host
  auto scheme = url.find("://");
  auto at = url.rfind('@');
  if (scheme == std::string::npos || at == std::string::npos || at < scheme) return url;
  auto colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return url.substr(0, scheme + 3) + "***" + url.substr(at);
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

json::value secret(const std::string& s) {
  if (s.empty()) return "";
  return "<redacted>";
}

json::object redis_json(const config::RedisConfig& r) {
  json::object o;
  o["mode"] = r.mode == config::RedisMode::kCluster ? "cluster" : "standalone";
  json::array urls;
  for (const auto& u : r.urls) urls.push_back(json::value(redact_url(u)));
  o["urls"] = std::move(urls);
  o["connect_timeout_ms"] = r.connect_timeout.count();
  o["command_timeout_ms"] = r.command_timeout.count();
  o["read_from_replicas"] = r.read_from_replicas;
  return o;
}

json::object budget_json(const config::Budget& b) {
  return {{"limit", b.limit_usd}, {"period", std::string(config::period_name(b.period))}};
}

json::array policies_json(std::span<const config::RateLimitPolicy> policies, bool own) {
  json::array out;
  for (const auto& p : ratelimit::compile_policies(policies, own)) {
    json::object o;
    o["id"] = p.id;
    o["description"] = p.description;
    out.push_back(std::move(o));
  }
  return out;
}

json::value reply_json(const redis::Reply& r) {
  if (r.is_null()) return nullptr;
  if (r.is_string() || r.is_error()) return json::value(r.str());
  if (r.is_aggregate()) {
    json::array a;
    for (const auto& e : r.elements()) a.push_back(reply_json(e));
    return a;
  }
  if (r.format() == "dbl") return r.as_double();
  return r.integer();
}

}  // namespace

json::object redacted_config(const config::Config& c) {
  json::object o;
  o["source"] = c.source;
  o["listen"] = c.listen.str();
  o["threads"] = c.threads;
  o["admin"] = {{"listen", c.admin.listen.str()}, {"token", secret(c.admin.token)}};
  o["redis"] = redis_json(c.redis);
  json::array providers;
  for (const auto& p : c.providers) {
    json::object po;
    po["name"] = p.name;
    po["type"] = p.type == config::ProviderType::kAnthropic ? "anthropic" : "openai";
    po["base_url"] = p.base_url;
    po["api_key"] = secret(p.api_key);
    po["enabled"] = p.enabled;
    json::array headers;  // names only: values often carry credentials
    for (const auto& [name, value] : p.headers) headers.push_back(json::value(name));
    po["headers"] = std::move(headers);
    providers.push_back(std::move(po));
  }
  o["providers"] = std::move(providers);
  json::object models;
  for (const auto& m : c.models) {
    json::array fallbacks;
    for (const auto& f : m.fallbacks) fallbacks.push_back(json::value(f));
    models[m.name] = {{"provider", m.provider},
                      {"upstream_model", m.upstream_model},
                      {"fallbacks", std::move(fallbacks)}};
  }
  o["models"] = std::move(models);
  json::array keys;
  for (const auto& k : c.keys) {
    json::object ko;
    ko["name"] = k.name;
    ko["key_id"] = k.sha256_hex.substr(0, 12);
    ko["tenant"] = k.tenant;
    json::array allowed;
    for (const auto& m : k.models) allowed.push_back(json::value(m));
    ko["models"] = std::move(allowed);
    ko["cache"] = k.cache;
    ko["rate_limits"] = policies_json(k.rate_limits, true);
    if (k.budget) ko["budget"] = budget_json(*k.budget);
    keys.push_back(std::move(ko));
  }
  o["keys"] = std::move(keys);
  const auto& cc = c.cache;
  json::object cache{{"enabled", cc.enabled},
                     {"ttl", cc.ttl.count()},
                     {"l1", {{"enabled", cc.l1_enabled}, {"max_bytes", cc.l1_max_bytes}}},
                     {"compress_min_bytes", cc.compress_min_bytes},
                     {"max_entry_bytes", cc.max_entry_bytes},
                     {"lookup_timeout_ms", cc.lookup_timeout.count()},
                     {"coalesce", cc.coalesce}};
  if (cc.redis) cache["redis"] = redis_json(*cc.redis);
  o["cache"] = std::move(cache);
  o["rate_limits"] = policies_json(c.rate_limits, false);
  o["key_store"] = {{"enabled", c.key_store.enabled},
                    {"grace", c.key_store.grace.count()},
                    {"lookup_timeout_ms", c.key_store.lookup_timeout.count()},
                    {"max_cached", c.key_store.max_cached}};
  json::object prices;
  for (const auto& [model, p] : c.prices) {
    prices[model] = {{"input", p.input_per_mtok}, {"output", p.output_per_mtok}};
  }
  o["prices"] = std::move(prices);
  json::object tenants;
  for (const auto& [tenant, b] : c.budgets.tenants) tenants[tenant] = budget_json(b);
  o["budgets"] = {{"tenants", std::move(tenants)}};
  o["sessions"] = {{"enabled", c.sessions.enabled},
                   {"ttl", c.sessions.ttl.count()},
                   {"max_messages", c.sessions.max_messages},
                   {"max_bytes", c.sessions.max_bytes}};
  o["responses"] = {{"enabled", c.responses.enabled},
                    {"ttl", c.responses.ttl.count()},
                    {"max_chain_bytes", c.responses.max_chain_bytes}};
  return o;
}

boost::asio::awaitable<void> AdminHandler::state_admin(http::Exchange& ex, std::string_view path) {
  auto& req = ex.request();
  const auto method = req.method();
  const Query query = parse_query(req.target());
  http::Response res{bhttp::status::ok, 11};
  res.set(bhttp::field::content_type, "application/json");
  res.set(bhttp::field::cache_control, "no-store");
  json::value out;
  std::optional<std::tuple<int, std::string, std::string>> error;  // status, message, code
  auto fail = [&](int status, std::string message, std::string code) {
    error.emplace(status, std::move(message), std::move(code));
  };
  auto method_is = [&](std::initializer_list<bhttp::verb> allowed, std::string_view usage) {
    for (auto v : allowed) {
      if (v == method) return true;
    }
    fail(405, std::string(usage), "method_not_allowed");
    return false;
  };
  auto unavailable = [&](const redis::Error& e) {
    fail(503, "the state Redis did not answer: " + e.to_string(), "redis_unavailable");
  };
  const int64_t now = cache::now_unix_ms();

  if (state_.redis == nullptr) {
    fail(404, "the state Redis is not configured", "not_found");
  } else if (path == "/admin/config") {
    if (method_is({bhttp::verb::get}, "read the config with GET /admin/config")) {
      out = config_ != nullptr ? redacted_config(*config_) : json::object();
    }
  } else if (path == "/admin/keys" || path.starts_with("/admin/keys/")) {
    auto seg = segments(path, "/admin/keys");
    if (state_.keys == nullptr) {
      fail(404, "the key store is disabled (key_store.enabled: false)", "key_store_disabled");
    } else if (seg.empty() && method == bhttp::verb::post) {
      auto spec = auth::parse_key_spec(req.body(), now);
      if (auto* msg = std::get_if<std::string>(&spec)) {
        fail(400, *msg, "invalid_request");
      } else {
        auto created = co_await state_.keys->create(*state_.redis, std::get<auth::KeySpec>(spec));
        if (!created.ok()) {
          unavailable(created.error());
        } else {
          auto o = created->record.to_json(now);
          o["key"] = created->plaintext;  // shown once
          out = std::move(o);
          res.result(bhttp::status::created);
        }
      }
    } else if (seg.empty()) {
      if (method_is({bhttp::verb::get, bhttp::verb::post},
                    "GET /admin/keys lists, POST /admin/keys creates")) {
        const std::string tenant(query.get("tenant").value_or(""));
        auto listed = co_await state_.keys->list(*state_.redis, tenant);
        if (!listed.ok()) {
          unavailable(listed.error());
        } else {
          json::array keys;
          for (const auto& r : *listed) keys.push_back(r.to_json(now));
          out = json::object{{"object", "list"}, {"data", std::move(keys)}};
        }
      }
    } else if (seg.size() == 1 && method == bhttp::verb::get) {
      const std::string id(seg[0]);
      auto got = co_await state_.keys->get(*state_.redis, id);
      if (!got.ok()) {
        unavailable(got.error());
      } else if (!*got) {
        fail(404, "no key " + id, "key_not_found");
      } else {
        out = (*got)->to_json(now);
      }
    } else if ((seg.size() == 1 && method == bhttp::verb::delete_) ||
               (seg.size() == 2 && seg[1] == "revoke" && method == bhttp::verb::post)) {
      const std::string id(seg[0]);
      auto revoked = co_await state_.keys->revoke(*state_.redis, id);
      if (!revoked.ok()) {
        unavailable(revoked.error());
      } else if (!*revoked) {
        fail(404, "no key " + id, "key_not_found");
      } else {
        out = (*revoked)->to_json(now);
      }
    } else if (seg.size() == 2 && seg[1] == "rotate") {
      if (method_is({bhttp::verb::post}, "rotate with POST /admin/keys/{id}/rotate")) {
        int64_t grace = 0;
        boost::system::error_code ec;
        auto body = req.body().empty() ? json::value(json::object()) : json::parse(req.body(), ec);
        const json::value* g = body.is_object() ? body.as_object().if_contains("grace_seconds")
                                                : nullptr;
        if (ec || !body.is_object()) {
          fail(400, "the body must be a JSON object like {\"grace_seconds\": 3600}",
               "invalid_request");
        } else if (g != nullptr && (!g->is_int64() || g->as_int64() < 0)) {
          fail(400, "grace_seconds: expected a whole number of seconds >= 0", "invalid_request");
        } else {
          if (g != nullptr) grace = g->as_int64();
          const std::string id(seg[0]);
          auto rotated = co_await state_.keys->rotate(*state_.redis, id, grace);
          if (!rotated.ok()) {
            unavailable(rotated.error());
          } else if (!*rotated) {
            fail(404, "no key " + id, "key_not_found");
          } else {
            auto o = (*rotated)->record.to_json(now);
            o["key"] = (*rotated)->plaintext;
            out = std::move(o);
          }
        }
      }
    } else {
      fail(404, "unknown admin path " + std::string(path), "not_found");
    }
  } else if (path == "/admin/sessions" || path.starts_with("/admin/sessions/")) {
    auto seg = segments(path, "/admin/sessions");
    if (state_.sessions == nullptr) {
      fail(404, "sessions are disabled (sessions.enabled: false)", "sessions_disabled");
    } else if (seg.empty()) {
      auto tenant = query.get("tenant");
      if (method_is({bhttp::verb::get}, "list with GET /admin/sessions?tenant=T")) {
        if (!tenant || tenant->empty()) {
          fail(400, "tenant: the query parameter is required (?tenant=NAME)", "invalid_request");
        } else {
          const std::string t(*tenant);
          auto ids = co_await state_.sessions->list(*state_.redis, t, 1000);
          if (!ids.ok()) {
            unavailable(ids.error());
          } else {
            json::array data;
            for (const auto& id : *ids) data.push_back(json::value(id));
            out = json::object{{"object", "list"}, {"tenant", t}, {"data", std::move(data)}};
          }
        }
      }
    } else if (seg.size() == 2 &&
               method_is({bhttp::verb::get, bhttp::verb::delete_},
                         "GET or DELETE /admin/sessions/{tenant}/{id}")) {
      const std::string tenant(seg[0]), id(seg[1]);
      if (method == bhttp::verb::delete_) {
        auto removed = co_await state_.sessions->remove(*state_.redis, tenant, id);
        if (!removed.ok()) {
          unavailable(removed.error());
        } else if (!*removed) {
          fail(404, "no session " + id + " for tenant " + tenant, "session_not_found");
        } else {
          out = json::object{{"id", id}, {"tenant", tenant}, {"deleted", true}};
        }
      } else {
        auto h = co_await state_.sessions->load(*state_.redis, tenant, id);
        if (!h.ok()) {
          unavailable(h.error());
        } else if (!h->exists) {
          fail(404, "no session " + id + " for tenant " + tenant, "session_not_found");
        } else {
          auto o = session::to_json(*h, id);
          o["tenant"] = tenant;
          out = std::move(o);
        }
      }
    } else if (!error) {
      fail(404, "unknown admin path " + std::string(path), "not_found");
    }
  } else if (path == "/admin/spend") {
    auto key = query.get("key");
    auto tenant = query.get("tenant");
    auto period_text = query.get("period").value_or("month");
    std::optional<config::BudgetPeriod> period;
    if (period_text == "day") period = config::BudgetPeriod::kDay;
    if (period_text == "week") period = config::BudgetPeriod::kWeek;
    if (period_text == "month") period = config::BudgetPeriod::kMonth;
    if (!method_is({bhttp::verb::get}, "read spend with GET /admin/spend?key=ID|tenant=T")) {
    } else if (state_.budgets == nullptr) {
      fail(404, "budgets are off", "not_found");
    } else if (key.has_value() == tenant.has_value() || (key && key->empty()) ||
               (tenant && tenant->empty())) {
      fail(400, "key / tenant: give exactly one of ?key=ID or ?tenant=NAME", "invalid_request");
    } else if (!period) {
      fail(400, "period: expected day, week or month", "invalid_request");
    } else {
      std::optional<config::Budget> budget;
      const std::string id(key ? *key : *tenant);
      if (key) {
        // The key's own budget: a config key (by key_id) or one issued through the API.
        for (const auto& k : config_->keys) {
          if (k.sha256_hex.starts_with(id) && id.size() == 12) budget = k.budget;
        }
        if (state_.keys != nullptr && id.starts_with("key_")) {
          auto got = co_await state_.keys->get(*state_.redis, id);
          if (got.ok() && *got) budget = (*got)->budget;
        }
      }
      auto report = co_await state_.budgets->report(*state_.redis, key ? "key" : "tenant", id,
                                                    budget, *period, now);
      if (!report.ok()) {
        unavailable(report.error());
      } else {
        out = std::move(*report);
      }
    }
  } else if (path == "/admin/ratelimits") {
    // The stored limiter state of the policies that apply to one key (scopes key, tenant and
    // global; per-model and per-IP states depend on the request and are not listed).
    auto key = query.get("key");
    if (!method_is({bhttp::verb::get}, "read with GET /admin/ratelimits?key=ID")) {
    } else if (!key || key->empty()) {
      fail(400, "key: the query parameter is required (?key=ID)", "invalid_request");
    } else {
      const std::string id(*key);
      std::string tenant;
      std::vector<config::RateLimitPolicy> own;
      bool found = false;
      for (const auto& k : config_->keys) {
        if (id.size() == 12 && k.sha256_hex.starts_with(id)) {
          tenant = k.tenant;
          own = k.rate_limits;
          found = true;
        }
      }
      if (!found && state_.keys != nullptr && id.starts_with("key_")) {
        auto got = co_await state_.keys->get(*state_.redis, id);
        if (!got.ok()) {
          unavailable(got.error());
        } else if (*got) {
          tenant = (*got)->tenant;
          own = (*got)->rate_limits;
          found = true;
        }
      }
      if (!error && !found) fail(404, "no key " + id, "key_not_found");
      if (!error) {
        ratelimit::RequestFacts facts;
        facts.key_id = id;
        facts.tenant = tenant;
        json::array policies;
        for (int pass = 0; pass < 2; ++pass) {
          const auto list = pass == 0 ? ratelimit::compile_policies(config_->rate_limits)
                                      : ratelimit::compile_policies(own, true);
          for (const auto& p : list) {
            auto subject = ratelimit::subject_of(p.def, facts);
            if (!subject) continue;
            json::object po{{"id", p.id}, {"description", p.description}};
            json::array keys;
            const auto base = ratelimit::key_base(p.id, *subject);
            for (auto q : {ratelimit::Quantity::kRequests, ratelimit::Quantity::kTokens}) {
              if (p.limit(q) == 0) continue;
              for (const auto& k :
                   ratelimit::state_keys(ratelimit::state_key(base, q), p.def.algorithm)) {
                const redis::Command type("TYPE", k);
                auto t = co_await state_.redis->execute(type);
                if (!t.ok()) {
                  unavailable(t.error());
                  break;
                }
                json::object ko{{"key", k}, {"type", t->str()}};
                std::optional<redis::Command> read;
                if (t->str() == "string") read.emplace("GET", k);
                if (t->str() == "hash") read.emplace("HGETALL", k);
                if (t->str() == "zset") read.emplace("ZCARD", k);
                if (read) {
                  auto v = co_await state_.redis->execute(*read);
                  if (v.ok()) ko["value"] = reply_json(*v);
                }
                const redis::Command pttl("PTTL", k);
                auto ttl = co_await state_.redis->execute(pttl);
                if (ttl.ok()) ko["ttl_ms"] = ttl->integer();
                keys.push_back(std::move(ko));
              }
            }
            po["keys"] = std::move(keys);
            policies.push_back(std::move(po));
          }
        }
        out = json::object{{"key", id}, {"tenant", tenant}, {"policies", std::move(policies)}};
      }
    }
  } else {
    fail(404, "unknown admin path " + std::string(path), "not_found");
  }

  if (error) {
    auto& [status, message, code] = *error;
    co_await ex.respond_error(status, message, code);
    co_return;
  }
  res.body() = json_text(out);
  co_await ex.respond(res);
}

}  // namespace redline::admin
