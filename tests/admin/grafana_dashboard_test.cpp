// deploy/grafana/redline.json against a live gateway: the dashboard is a Grafana dashboard
// (schemaVersion 36+, a Prometheus data-source variable every query uses), every metric name
// in every panel query and variable is a family the gateway declares once a gateway with the
// cache and rate limits has served a little traffic (histograms with _bucket/_sum/_count),
// every label a query selects or groups by belongs to those families, and `promtool` accepts
// every query as PromQL (when installed).
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "app/gateway.h"
#include "config/config_loader.h"
#include "metrics/registry.h"
#include "mock/mock_server.h"
#include "support/http_client.h"
#include "support/process.h"
#include "support/redis_server.h"

namespace redline {
namespace {

const std::filesystem::path kDashboard =
    std::filesystem::path(REDLINE_SOURCE_DIR) / "deploy/grafana/redline.json";

boost::json::object load_dashboard() {
  std::ifstream in(kDashboard);
  std::stringstream text;
  text << in.rdbuf();
  return boost::json::parse(text.str()).as_object();
}

// Every PromQL expression of the dashboard: panel targets (rows' nested panels too) and the
// query variables, with where it came from.
std::vector<std::pair<std::string, std::string>> expressions(const boost::json::object& dash) {
  std::vector<std::pair<std::string, std::string>> out;
  std::function<void(const boost::json::array&)> walk = [&](const boost::json::array& panels) {
    for (const auto& p : panels) {
      const auto& o = p.as_object();
      if (const auto* targets = o.if_contains("targets")) {
        for (const auto& t : targets->as_array()) {
          out.emplace_back(std::string(o.at("title").as_string()),
                           std::string(t.at("expr").as_string()));
        }
      }
      if (const auto* nested = o.if_contains("panels")) walk(nested->as_array());
    }
  };
  walk(dash.at("panels").as_array());
  for (const auto& v : dash.at("templating").at("list").as_array()) {
    if (v.at("type").as_string() == "query") {
      out.emplace_back("variable " + std::string(v.at("name").as_string()),
                       std::string(v.at("query").at("query").as_string()));
    }
  }
  return out;
}

TEST(GrafanaDashboard, IsAGrafanaDashboardWithADatasourceVariable) {
  const auto dash = load_dashboard();
  EXPECT_GE(dash.at("schemaVersion").to_number<int>(), 36);
  EXPECT_FALSE(dash.at("title").as_string().empty());
  EXPECT_FALSE(dash.at("uid").as_string().empty());
  bool datasource_var = false;
  for (const auto& v : dash.at("templating").at("list").as_array()) {
    if (v.at("type").as_string() == "datasource" && v.at("name").as_string() == "datasource") {
      EXPECT_EQ(v.at("query").as_string(), "prometheus");
      datasource_var = true;
    }
  }
  EXPECT_TRUE(datasource_var);
  std::set<int64_t> ids;
  int queries = 0;
  std::function<void(const boost::json::array&)> walk = [&](const boost::json::array& panels) {
    for (const auto& p : panels) {
      const auto& o = p.as_object();
      SCOPED_TRACE(std::string(o.at("title").as_string()));
      EXPECT_TRUE(ids.insert(o.at("id").as_int64()).second) << "duplicate panel id";
      const auto& grid = o.at("gridPos").as_object();
      EXPECT_LE(grid.at("x").as_int64() + grid.at("w").as_int64(), 24);
      if (o.at("type").as_string() != "row") {
        EXPECT_EQ(o.at("datasource").at("uid").as_string(), "${datasource}");
        for (const auto& t : o.at("targets").as_array()) {
          EXPECT_EQ(t.at("datasource").at("uid").as_string(), "${datasource}");
          ++queries;
        }
      }
      if (const auto* nested = o.if_contains("panels")) walk(nested->as_array());
    }
  };
  walk(dash.at("panels").as_array());
  EXPECT_GT(queries, 30);
}

config::Config load(const std::string& yaml) {
  auto env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  return config::load_config_string(yaml, "test.yaml", env).config;
}

TEST(GrafanaDashboard, NamesOnlyMetricsAndLabelsTheGatewayExports) {
  test::RedisServer redis;
  mock::MockServer mock(mock::MockOptions{});
  mock.start();
  const std::string yaml =
      "listen: \"127.0.0.1:0\"\n"
      "threads: 1\n"
      "admin: {listen: \"127.0.0.1:0\"}\n"
      "logging: {access_log: false, level: error}\n"
      "redis: {urls: [\"" +
      redis.url() +
      "\"]}\n"
      "cache: {enabled: true}\n"
      "rate_limits:\n"
      "  - {scope: global, algorithm: fixed-window, requests: 3, window: 60}\n"
      "providers:\n"
      "  - {name: openai, type: openai, base_url: \"http://127.0.0.1:" +
      std::to_string(mock.port()) +
      "/v1\", api_key: sk-p}\n"
      "models:\n"
      "  gpt-4o-mini: openai\n";
  app::Gateway gw(load(yaml));
  gw.start();
  const std::string chat =
      R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello there"}]})";
  std::set<int> statuses;
  for (int i = 0; i < 6; ++i) {
    statuses.insert(test::http_request(gw.port(), "POST", "/v1/chat/completions", chat).status);
  }
  EXPECT_TRUE(statuses.contains(200));
  EXPECT_TRUE(statuses.contains(429));  // the limit refused some: its families moved
  ASSERT_EQ(test::http_request(gw.admin_port(), "GET", "/metrics").status, 200);

  // Family name -> its label names, from the registry the gateway exports.
  std::map<std::string, std::set<std::string>> known;
  for (metrics::Family* f : metrics::registry().families()) {
    std::set<std::string> labels{"instance", "job"};  // added by Prometheus at scrape time
    for (const auto& l : f->labels()) labels.insert(l.name);
    known[f->name()] = labels;
    if (f->kind() == metrics::Kind::kHistogram) {
      labels.insert("le");
      for (const char* s : {"_bucket", "_sum", "_count"}) known[f->name() + s] = labels;
    }
  }
  const std::regex name_re("redline_[a-z0-9_]+");
  const std::regex selector_re("(redline_[a-z0-9_]+)\\{([^}]*)\\}");
  const std::regex matcher_re("([a-z_]+)\\s*(=~|!~|!=|=)");
  const std::regex by_re("\\bby\\s*\\(([^)]*)\\)");
  const std::regex word_re("[a-z_]+");
  std::set<std::string> used;
  for (const auto& [where, expr] : expressions(load_dashboard())) {
    SCOPED_TRACE(where + ": " + expr);
    std::set<std::string> expr_labels;
    for (auto it = std::sregex_iterator(expr.begin(), expr.end(), name_re);
         it != std::sregex_iterator(); ++it) {
      const auto name = it->str();
      used.insert(name);
      auto k = known.find(name);
      ASSERT_TRUE(k != known.end()) << "unknown metric " << name;
      expr_labels.insert(k->second.begin(), k->second.end());
    }
    for (auto it = std::sregex_iterator(expr.begin(), expr.end(), selector_re);
         it != std::sregex_iterator(); ++it) {
      const auto& labels = known.at((*it)[1].str());
      const std::string matchers = (*it)[2].str();
      for (auto m = std::sregex_iterator(matchers.begin(), matchers.end(), matcher_re);
           m != std::sregex_iterator(); ++m) {
        EXPECT_TRUE(labels.contains((*m)[1].str()))
            << (*it)[1].str() << " has no label " << (*m)[1].str();
      }
    }
    for (auto it = std::sregex_iterator(expr.begin(), expr.end(), by_re);
         it != std::sregex_iterator(); ++it) {
      const std::string list = (*it)[1].str();
      for (auto w = std::sregex_iterator(list.begin(), list.end(), word_re);
           w != std::sregex_iterator(); ++w) {
        EXPECT_TRUE(expr_labels.contains(w->str())) << "grouping by unknown label " << w->str();
      }
    }
  }
  // The panels the operations guide promises.
  for (const char* must :
       {"redline_requests_total", "redline_cache_results_total",
        "redline_request_duration_seconds_bucket", "redline_gateway_overhead_seconds_bucket",
        "redline_upstream_ttfb_seconds_bucket", "redline_ratelimit_decisions_total",
        "redline_cache_stores_total", "redline_cache_store_errors_total",
        "redline_cache_coalesced_total", "redline_redis_used_memory_bytes",
        "redline_redis_evicted_keys_total", "redline_redis_connected_clients",
        "redline_redis_replication_lag_bytes", "redline_redis_replication_lag_seconds"}) {
    EXPECT_TRUE(used.contains(must)) << must;
  }
}

TEST(GrafanaDashboard, PromtoolParsesEveryQuery) {
  const std::string promtool = "/usr/bin/promtool";
  if (!std::filesystem::exists(promtool)) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus; scripts/install-deps.sh)";
  }
  // Each panel query becomes a recording rule, with Grafana's variables given values.
  std::string rules = "groups:\n  - name: dashboard\n    rules:\n";
  int n = 0;
  for (auto [where, expr] : expressions(load_dashboard())) {
    if (expr.starts_with("label_values(")) continue;  // a Grafana function, not PromQL
    for (const auto& [var, value] : std::vector<std::pair<std::string, std::string>>{
             {"$__rate_interval", "5m"}, {"$instance", ".*"}, {"$redis", ".*"}}) {
      for (std::size_t at; (at = expr.find(var)) != std::string::npos;) {
        expr.replace(at, var.size(), value);
      }
    }
    EXPECT_EQ(expr.find('$'), std::string::npos) << where << ": " << expr;
    boost::json::string quoted(expr);
    rules += "      - record: redline:dashboard_query_" + std::to_string(n++) +
             "\n        expr: " + boost::json::serialize(boost::json::value(quoted)) + "\n";
  }
  test::TempDir dir;
  const auto file = dir.write("dashboard-rules.yml", rules);
  int rc = -1;
  const auto out = test::run_command({promtool, "check", "rules", file.string()}, &rc);
  EXPECT_EQ(rc, 0) << out << "\n" << rules;
}

}  // namespace
}  // namespace redline
