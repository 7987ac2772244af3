// Virtual key records as JSON: the storage form kept in Redis (serialize / parse), the admin
// API's view (to_json) and the admin create body (parse_key_spec). No I/O and no Redis here;
// key_store.cpp stores and caches what this file encodes.
#include <boost/json.hpp>

#include "auth/key_store.h"
#include "config/config_loader.h"

namespace redline::auth {

namespace json = boost::json;

namespace {

// Bounds on what one create body may hold (the admin API also caps the body size).
constexpr std::size_t kMaxNameBytes = 256;
constexpr std::size_t kMaxTenantBytes = 256;
constexpr std::size_t kMaxModels = 1024;
constexpr std::size_t kMaxModelBytes = 256;
constexpr std::size_t kMaxMetadataEntries = 64;
constexpr std::size_t kMaxMetadataKeyBytes = 128;
constexpr std::size_t kMaxMetadataValueBytes = 1024;
// Expiry further out than this is a typo (and would overflow milliseconds arithmetic).
constexpr int64_t kMaxExpirySeconds = int64_t{100} * 365 * 86'400;

constexpr int kStorageVersion = 1;

std::optional<int64_t> as_int64(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64() && v.get_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v.get_uint64());
  }
  return std::nullopt;
}

std::optional<config::BudgetPeriod> period_from_name(std::string_view name) {
  for (auto p :
       {config::BudgetPeriod::kDay, config::BudgetPeriod::kWeek, config::BudgetPeriod::kMonth}) {
    if (config::period_name(p) == name) return p;
  }
  return std::nullopt;
}

json::value budget_json(const std::optional<config::Budget>& b) {
  if (!b) return nullptr;
  return json::object{{"limit", b->limit_usd}, {"period", config::period_name(b->period)}};
}

json::value seconds_or_null(int64_t ms) {
  if (ms == 0) return nullptr;
  return ms / 1000;
}

// The stored rate_limits text as a JSON value ([] when none or unreadable).
json::value rate_limits_value(const std::string& text) {
  if (text.empty()) return json::array();
  std::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_array()) return json::array();
  return v;
}

json::array string_array(const std::vector<std::string>& items) {
  json::array out;
  out.reserve(items.size());
  for (const auto& s : items) out.emplace_back(s);
  return out;
}

json::object string_map(const std::map<std::string, std::string>& items) {
  json::object out;
  for (const auto& [k, v] : items) out[k] = v;
  return out;
}

// Reading a stored record: every field optional except id and sha256; wrong types fail.
struct Reader {
  const json::object& obj;
  bool ok = true;

  const json::value* field(std::string_view name) const {
    const json::value* v = obj.if_contains(name);
    return v != nullptr && !v->is_null() ? v : nullptr;
  }
  void read(std::string_view name, std::string& out) {
    if (const auto* v = field(name)) {
      if (v->is_string()) {
        out = std::string(v->get_string());
      } else {
        ok = false;
      }
    }
  }
  void read(std::string_view name, int64_t& out) {
    if (const auto* v = field(name)) {
      if (auto n = as_int64(*v)) {
        out = *n;
      } else {
        ok = false;
      }
    }
  }
  void read(std::string_view name, bool& out) {
    if (const auto* v = field(name)) {
      if (v->is_bool()) {
        out = v->get_bool();
      } else {
        ok = false;
      }
    }
  }
  void read(std::string_view name, std::vector<std::string>& out) {
    const auto* v = field(name);
    if (v == nullptr) return;
    if (!v->is_array()) {
      ok = false;
      return;
    }
    for (const auto& item : v->get_array()) {
      if (!item.is_string()) {
        ok = false;
        return;
      }
      out.emplace_back(item.get_string());
    }
  }
  void read(std::string_view name, std::map<std::string, std::string>& out) {
    const auto* v = field(name);
    if (v == nullptr) return;
    if (!v->is_object()) {
      ok = false;
      return;
    }
    for (const auto& [k, item] : v->get_object()) {
      if (!item.is_string()) {
        ok = false;
        return;
      }
      out.emplace(std::string(k), std::string(item.get_string()));
    }
  }
  void read(std::string_view name, std::optional<config::Budget>& out) {
    const auto* v = field(name);
    if (v == nullptr) return;
    const auto* b = v->if_object();
    const auto* limit = b != nullptr ? b->if_contains("limit") : nullptr;
    const auto* period = b != nullptr ? b->if_contains("period") : nullptr;
    if (limit == nullptr || !limit->is_number() || period == nullptr || !period->is_string()) {
      ok = false;
      return;
    }
    auto p = period_from_name(period->get_string());
    if (!p) {
      ok = false;
      return;
    }
    out = config::Budget{limit->to_number<double>(), *p};
  }
};

// --- create body ------------------------------------------------------------------------

// Thrown inside parse_key_spec only; its text becomes the returned error.
struct SpecError {
  std::string message;
};

[[noreturn]] void spec_fail(std::string_view field, std::string_view expected) {
  throw SpecError{std::string(field) + ": " + std::string(expected)};
}

std::string bounded_string(const json::value& v, std::string_view field, std::size_t max_bytes,
                           bool non_empty) {
  if (!v.is_string() || (non_empty && v.get_string().empty()) ||
      v.get_string().size() > max_bytes) {
    spec_fail(field, std::string("expected a ") + (non_empty ? "non-empty " : "") +
                         "string of at most " + std::to_string(max_bytes) + " bytes");
  }
  return std::string(v.get_string());
}

std::vector<std::string> read_models(const json::value& v) {
  if (!v.is_array() || v.get_array().size() > kMaxModels) {
    spec_fail("models",
              "expected an array of at most " + std::to_string(kMaxModels) + " model names");
  }
  std::vector<std::string> out;
  const auto& arr = v.get_array();
  for (std::size_t i = 0; i < arr.size(); ++i) {
    out.push_back(
        bounded_string(arr[i], "models[" + std::to_string(i) + "]", kMaxModelBytes, true));
  }
  return out;
}

std::map<std::string, std::string> read_metadata(const json::value& v) {
  if (!v.is_object()) spec_fail("metadata", "expected an object of string values");
  const auto& obj = v.get_object();
  if (obj.size() > kMaxMetadataEntries) {
    spec_fail("metadata", "expected at most " + std::to_string(kMaxMetadataEntries) + " entries");
  }
  std::map<std::string, std::string> out;
  for (const auto& [k, item] : obj) {
    if (k.empty() || k.size() > kMaxMetadataKeyBytes) {
      spec_fail("metadata",
                "expected names of 1 to " + std::to_string(kMaxMetadataKeyBytes) + " bytes");
    }
    const std::string field = "metadata." + std::string(k);
    out.emplace(std::string(k), bounded_string(item, field, kMaxMetadataValueBytes, false));
  }
  return out;
}

int64_t read_seconds(const json::value& v, std::string_view field, int64_t min, int64_t max,
                     std::string_view expected) {
  auto n = as_int64(v);
  if (!n || *n < min || *n > max) spec_fail(field, expected);
  return *n;
}

KeySpec parse_spec_or_throw(std::string_view body, int64_t now_ms) {
  std::error_code ec;
  json::value root = json::parse(body, ec);
  if (ec) spec_fail("body", "expected JSON (" + ec.message() + ")");
  if (!root.is_object()) spec_fail("body", "expected a JSON object");

  KeySpec spec;
  std::optional<int64_t> expires_at;
  std::optional<int64_t> expires_in;
  for (const auto& [key, v] : root.get_object()) {
    if (key == "name") {
      spec.name = bounded_string(v, "name", kMaxNameBytes, false);
    } else if (key == "tenant") {
      spec.tenant = bounded_string(v, "tenant", kMaxTenantBytes, true);
    } else if (key == "models") {
      spec.models = read_models(v);
    } else if (key == "rate_limits") {
      if (!v.is_array()) spec_fail("rate_limits", "expected an array of rate-limit policies");
      spec.rate_limits_json = json::serialize(v);
      try {
        spec.rate_limits = config::parse_rate_limits(spec.rate_limits_json, "rate_limits");
      } catch (const config::ConfigError& e) {
        throw SpecError{e.what()};  // "rate_limits: [0].window: expected ..."
      }
      if (spec.rate_limits.empty()) spec.rate_limits_json.clear();
    } else if (key == "budget") {
      if (v.is_null()) continue;
      if (!v.is_object()) spec_fail("budget", "expected an object {\"limit\", \"period\"}");
      const std::string text = json::serialize(v);
      try {
        spec.budget = config::parse_budget(text, "budget");
      } catch (const config::ConfigError& e) {
        throw SpecError{e.what()};
      }
    } else if (key == "cache") {
      if (!v.is_bool()) spec_fail("cache", "expected true or false");
      spec.cache = v.get_bool();
    } else if (key == "metadata") {
      spec.metadata = read_metadata(v);
    } else if (key == "expires_at") {
      expires_at =
          read_seconds(v, "expires_at", now_ms / 1000 + 1, now_ms / 1000 + kMaxExpirySeconds,
                       "expected unix seconds in the future");
    } else if (key == "expires_in") {
      expires_in = read_seconds(v, "expires_in", 1, kMaxExpirySeconds,
                                "expected a positive number of seconds");
    } else {
      spec_fail(std::string(key),
                "unknown field (expected name, tenant, models, rate_limits, budget, cache, "
                "metadata, expires_at or expires_in)");
    }
  }
  if (expires_at && expires_in) spec_fail("expires_in", "give expires_at or expires_in, not both");
  if (expires_at) spec.expires_ms = *expires_at * 1000;
  if (expires_in) spec.expires_ms = now_ms + *expires_in * 1000;
  return spec;
}

}  // namespace

// --- KeyRecord --------------------------------------------------------------------------

json::object KeyRecord::to_json(int64_t now_ms, bool with_hash) const {
  const char* status = "active";
  if (revoked_ms != 0) {
    status = "revoked";
  } else if (expires_ms != 0 && expires_ms <= now_ms) {
    status = "expired";
  }
  json::object o;
  o["id"] = id;
  if (with_hash) o["sha256"] = sha256_hex;
  o["name"] = name;
  o["tenant"] = tenant;
  o["status"] = status;
  o["models"] = string_array(models);
  o["rate_limits"] = rate_limits_value(rate_limits_json);
  o["budget"] = budget_json(budget);
  o["cache"] = cache;
  o["metadata"] = string_map(metadata);
  o["created_at"] = created_ms / 1000;
  o["expires_at"] = seconds_or_null(expires_ms);
  o["revoked_at"] = seconds_or_null(revoked_ms);
  o["rotated_to"] = rotated_to.empty() ? json::value(nullptr) : json::value(rotated_to);
  return o;
}

std::string KeyRecord::serialize() const {
  json::object o;
  o["v"] = kStorageVersion;
  o["id"] = id;
  o["sha256"] = sha256_hex;
  o["name"] = name;
  o["tenant"] = tenant;
  o["models"] = string_array(models);
  o["rate_limits"] = rate_limits_value(rate_limits_json);
  o["budget"] = budget_json(budget);
  o["cache"] = cache;
  o["metadata"] = string_map(metadata);
  o["created_ms"] = created_ms;
  o["expires_ms"] = expires_ms;
  o["revoked_ms"] = revoked_ms;
  o["rotated_to"] = rotated_to;
  return json::serialize(o);
}

std::optional<KeyRecord> KeyRecord::parse(std::string_view stored) {
  std::error_code ec;
  json::value root = json::parse(stored, ec);
  if (ec || !root.is_object()) return std::nullopt;
  KeyRecord r;
  Reader in{root.get_object()};
  in.read("id", r.id);
  in.read("sha256", r.sha256_hex);
  in.read("name", r.name);
  in.read("tenant", r.tenant);
  in.read("models", r.models);
  in.read("budget", r.budget);
  in.read("cache", r.cache);
  in.read("metadata", r.metadata);
  in.read("created_ms", r.created_ms);
  in.read("expires_ms", r.expires_ms);
  in.read("revoked_ms", r.revoked_ms);
  in.read("rotated_to", r.rotated_to);
  if (!in.ok || r.id.empty() || r.sha256_hex.empty()) return std::nullopt;
  if (const auto* rl = in.field("rate_limits")) {
    if (!rl->is_array()) return std::nullopt;
    if (!rl->get_array().empty()) {
      r.rate_limits_json = json::serialize(*rl);
      try {
        r.rate_limits = config::parse_rate_limits(r.rate_limits_json, "rate_limits");
      } catch (const std::exception&) {
        return std::nullopt;
      }
    }
  }
  return r;
}

std::variant<KeySpec, std::string> parse_key_spec(std::string_view json_body, int64_t now_ms) {
  try {
    return parse_spec_or_throw(json_body, now_ms);
  } catch (const SpecError& e) {
    return e.message;
  }
}

}  // namespace redline::auth
