// The admin port of a real in-process Gateway (ephemeral ports, a mock provider): /metrics in
// the Prometheus text format (checked by promtool when installed) moving with traffic,
// /admin/stats JSON, the admin token rules, and the model label bounded by the config.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <cctype>
#include <filesystem>
#include <thread>

#include "admin/admin_handler.h"
#include "app/gateway.h"
#include "config/config_loader.h"
#include "metrics/standard.h"
#include "mock/mock_server.h"
#include "support/http_client.h"
#include "support/process.h"
#include "support/redis_server.h"

namespace redline {
namespace {

const std::string kChat =
    R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello there"}]})";

config::Config load(const std::string& yaml) {
  auto env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  return config::load_config_string(yaml, "test.yaml", env).config;
}

std::string yaml(int mock_port, const std::string& admin_extra = "",
                 const std::string& redis_url = "redis://127.0.0.1:1") {
  const std::string url = "http://127.0.0.1:" + std::to_string(mock_port);
  return "listen: \"127.0.0.1:0\"\n"
         "threads: 2\n"
         "admin: {listen: \"127.0.0.1:0\"" +
         admin_extra +
         "}\n"
         "logging: {access_log: false, level: warn}\n"
         "redis: {urls: [\"" +
         redis_url +
         "\"]}\n"
         "providers:\n"
         "  - {name: openai, type: openai, base_url: \"" +
         url +
         "/v1\", api_key: sk-p}\n"
         "models:\n"
         "  gpt-4o-mini: openai\n";
}

// The value of one sample line ("name{labels} value") of a scrape, or -1.
double sample(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

class AdminTest : public ::testing::Test {
 protected:
  void start(const std::string& admin_extra = "", const std::string& redis_url = "") {
    mock::MockOptions o;
    mock_ = std::make_unique<mock::MockServer>(std::move(o));
    mock_->start();
    gw_ = std::make_unique<app::Gateway>(load(redis_url.empty()
                                                  ? yaml(mock_->port(), admin_extra)
                                                  : yaml(mock_->port(), admin_extra, redis_url)));
    gw_->start();
  }
  test::HttpResponse admin(const std::string& path, const test::Headers& h = {}) {
    return test::http_request(gw_->admin_port(), "GET", path, "", h);
  }
  std::unique_ptr<mock::MockServer> mock_;
  std::unique_ptr<app::Gateway> gw_;
};

TEST_F(AdminTest, MetricsMoveWithTraffic) {
  start();
  auto before = admin("/metrics");
  ASSERT_EQ(before.status, 200);
  EXPECT_EQ(before.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const std::string proxy_requests = "redline_http_requests_total{server=\"proxy\"}";
  const double n0 = sample(before.body, proxy_requests);
  ASSERT_GE(n0, 0) << before.body;
  for (int i = 0; i < 5; ++i) {
    auto r = test::http_request(gw_->port(), "POST", "/v1/chat/completions", kChat);
    ASSERT_EQ(r.status, 200) << r.body;
  }
  // A request leaves the in-flight gauge when its handler returns, which can be a moment
  // after the client has read the answer: scrape until it has.
  std::string after = admin("/metrics").body;
  for (int i = 0; i < 100 && sample(after, "redline_http_requests_in_flight{server=\"proxy\"}") != 0;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    after = admin("/metrics").body;
  }
  EXPECT_EQ(sample(after, proxy_requests), n0 + 5) << after;
  EXPECT_EQ(sample(after, "redline_http_requests_in_flight{server=\"proxy\"}"), 0);
  EXPECT_GE(sample(after, "redline_http_connections_accepted_total{server=\"proxy\"}"), 5);
  // The admin server counts its own scrapes.
  EXPECT_GE(sample(after, "redline_http_requests_total{server=\"admin\"}"), 2);
  EXPECT_GT(sample(after, "redline_process_resident_memory_bytes"), 1e6);
  EXPECT_GT(sample(after, "redline_process_open_fds"), 3);
  EXPECT_GE(sample(after, "redline_process_uptime_seconds"), 0);
  EXPECT_EQ(sample(after, "redline_build_info{version=\"" REDLINE_VERSION "\"}"), 1);
  // Pre-declared families show their HELP and TYPE before anything updates them.
  for (const char* family :
       {"redline_requests_total counter", "redline_cache_results_total counter",
        "redline_ratelimit_decisions_total counter", "redline_request_duration_seconds histogram",
        "redline_gateway_overhead_seconds histogram", "redline_upstream_ttfb_seconds histogram",
        "redline_upstream_duration_seconds histogram",
        "redline_redis_command_duration_seconds histogram"}) {
    EXPECT_NE(after.find(std::string("# TYPE ") + family + "\n"), std::string::npos) << family;
  }
}

TEST_F(AdminTest, PromtoolAcceptsALiveScrape) {
  const std::string promtool = "/usr/bin/promtool";
  if (!std::filesystem::exists(promtool)) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus; scripts/install-deps.sh)";
  }
  start();
  for (int i = 0; i < 3; ++i)
    test::http_request(gw_->port(), "POST", "/v1/chat/completions", kChat);
  metrics::standard::request_duration()
      .labels("chat_completions")
      .observe(std::chrono::milliseconds(12));
  auto scrape = admin("/metrics");
  ASSERT_EQ(scrape.status, 200);
  test::TempDir dir;
  const auto file = dir.write("scrape.txt", scrape.body);
  int rc = -1;
  const auto out =
      test::run_command({"sh", "-c", promtool + " check metrics < " + file.string()}, &rc);
  EXPECT_EQ(rc, 0) << out;
}

TEST_F(AdminTest, StatsJson) {
  start();
  test::http_request(gw_->port(), "POST", "/v1/chat/completions", kChat);
  for (int i = 1; i <= 100; ++i) {
    metrics::standard::upstream_ttfb().labels("openai").observe(std::chrono::milliseconds(i));
  }
  auto r = admin("/admin/stats");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/json");
  auto v = boost::json::parse(r.body);
  const auto& ttfb = v.at("latency").at("redline_upstream_ttfb_seconds");
  for (const char* span : {"last_minute", "since_start"}) {
    const auto& p = ttfb.at(span);
    EXPECT_GE(p.at("count").to_number<double>(), 100) << span;
    for (const char* q : {"p50", "p90", "p99", "p999"}) EXPECT_GT(p.at(q).to_number<double>(), 0);
  }
  EXPECT_TRUE(v.at("latency").as_object().contains("redline_request_duration_seconds"));
  EXPECT_GE(v.at("counters").at("redline_http_requests_total").at("total").to_number<double>(), 1);
  EXPECT_TRUE(v.at("redis").is_array());
  EXPECT_GE(v.at("uptime_seconds").to_number<double>(), 0);
}

TEST_F(AdminTest, TokenRules) {
  start();
  // No admin.token configured: the protected API is off, the open endpoints are not.
  EXPECT_EQ(admin("/admin/slowlog").status, 403);
  EXPECT_EQ(admin("/admin/slowlog", {{"authorization", "Bearer "}}).status, 403);
  EXPECT_EQ(admin("/metrics").status, 200);
  EXPECT_EQ(admin("/admin/stats").status, 200);
  EXPECT_EQ(admin("/healthz").status, 200);
  EXPECT_EQ(admin("/nope").status, 404);
  gw_.reset();
  start(", token: s3cret-admin");
  EXPECT_EQ(admin("/admin/slowlog").status, 401);
  EXPECT_EQ(admin("/admin/slowlog", {{"authorization", "Bearer wrong"}}).status, 401);
  EXPECT_EQ(admin("/admin/slowlog", {{"authorization", "Bearer s3cret-admin2"}}).status, 401);
  auto ok = admin("/admin/slowlog", {{"authorization", "Bearer s3cret-admin"}});
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_TRUE(boost::json::parse(ok.body).at("nodes").is_array());
  EXPECT_EQ(admin("/admin/unknown", {{"authorization", "Bearer s3cret-admin"}}).status, 404);
  EXPECT_EQ(admin("/admin/stats").status, 200);  // open, like /metrics
}

TEST_F(AdminTest, UnknownModelAddsNoLabelValue) {
  start();
  auto& req = metrics::standard::requests();
  req.labels("chat_completions", "gpt-4o-mini", "200").inc();
  req.labels("chat_completions", "no-such-model-1", "200").inc();
  req.labels("chat_completions", "no-such-model-2", "200").inc();
  const auto text = admin("/metrics").body;
  EXPECT_NE(text.find("model=\"gpt-4o-mini\""), std::string::npos);
  EXPECT_EQ(text.find("no-such-model"), std::string::npos);
  EXPECT_GE(sample(text,
                   "redline_requests_total{route=\"chat_completions\",model=\"other\","
                   "status=\"200\"}"),
            2);
}

TEST_F(AdminTest, DashboardIsSelfContained) {
  start();
  auto r = admin("/");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(r.body.find("fetch(\"/admin/stats\""), std::string::npos);
  // No external scripts, styles, fonts or images: nothing is fetched from another origin.
  EXPECT_EQ(r.body.find("://"), std::string::npos);
  EXPECT_EQ(r.body.find("<script src"), std::string::npos);
  EXPECT_EQ(r.body.find("<link"), std::string::npos);
  EXPECT_EQ(r.body.find("@import"), std::string::npos);
}

// Opens the dashboard in headless Chromium while traffic runs, checks the numbers are drawn
// (the DOM after the page's script ran), and saves a screenshot next to the build.
TEST_F(AdminTest, DashboardDrawsNumbersInHeadlessChromium) {
  const std::string chromium = "/usr/bin/chromium";
  if (!std::filesystem::exists(chromium)) {
    GTEST_SKIP() << "chromium not installed (Debian package chromium)";
  }
  // A Redis master with a replica, so the node table has rows to draw.
  test::RedisServer redis;
  test::RedisServerOptions ro;
  ro.extra_config = {"replicaof 127.0.0.1 " + std::to_string(redis.port())};
  test::RedisServer replica(ro);
  start("", redis.url());
  std::atomic<bool> stop{false};
  std::thread traffic([&] {
    while (!stop.load()) {
      test::http_request(gw_->port(), "POST", "/v1/chat/completions", kChat);
      metrics::standard::request_duration()
          .labels("chat_completions")
          .observe(std::chrono::microseconds(1500));
      metrics::standard::cache_results().labels("hit", "l1").inc();
      metrics::standard::cache_results().labels("miss", "l2").inc(3);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  test::TempDir dir;
  const std::string url = "http://127.0.0.1:" + std::to_string(gw_->admin_port()) + "/";
  const std::vector<std::string> common{chromium,
                                        "--headless",
                                        "--no-sandbox",
                                        "--disable-gpu",
                                        "--disable-dev-shm-usage",
                                        "--user-data-dir=" + (dir.path() / "profile").string(),
                                        "--virtual-time-budget=5000",
                                        "--window-size=1280,900"};
  auto dom_args = common;
  dom_args.push_back("--dump-dom");
  dom_args.push_back(url);
  test::Process dom(dom_args, dir.path() / "dom.html");
  const int rc = dom.wait(std::chrono::seconds(60));
  const std::string png = std::string(REDLINE_BINARY_DIR) + "/dashboard.png";
  auto shot_args = common;
  shot_args.push_back("--screenshot=" + png);
  shot_args.push_back(url);
  test::Process shot(shot_args, dir.path() / "shot.log");
  const int shot_rc = shot.wait(std::chrono::seconds(60));
  stop = true;
  traffic.join();
  ASSERT_EQ(rc, 0) << dom.log();
  const std::string html = dom.log();
  auto text_of = [&](const std::string& id) {
    const auto at = html.find("id=\"" + id + "\"");
    if (at == std::string::npos) return std::string();
    const auto open = html.find('>', at);
    return html.substr(open + 1, html.find('<', open) - open - 1);
  };
  EXPECT_NE(html.find("live, "), std::string::npos) << html.substr(0, 2000);
  EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(text_of("rps")[0]))) << text_of("rps");
  EXPECT_NE(text_of("hit").find('%'), std::string::npos) << text_of("hit");
  EXPECT_NE(text_of("p99").find("ms"), std::string::npos) << text_of("p99");
  EXPECT_NE(html.find("<td>request_duration</td>"), std::string::npos);
  EXPECT_EQ(shot_rc, 0) << shot.log();
  EXPECT_TRUE(std::filesystem::exists(png));
  if (std::filesystem::exists(png)) {
    EXPECT_GT(std::filesystem::file_size(png), 10000u);
  }
}

TEST_F(AdminTest, SlowlogAndRedisNodesFromThePoller) {
  test::RedisServerOptions ro;
  ro.extra_config = {"slowlog-log-slower-than 0"};
  test::RedisServer redis(ro);
  redis.cli("SET", "a", "1");
  start(", token: tok", redis.url());
  const test::Headers auth{{"authorization", "Bearer tok"}};
  // The first poll runs as the gateway starts; wait for it (bounded).
  boost::json::value v;
  for (int i = 0; i < 100; ++i) {
    auto r = admin("/admin/slowlog", auth);
    ASSERT_EQ(r.status, 200) << r.body;
    v = boost::json::parse(r.body);
    if (!v.at("nodes").as_array().empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const auto& nodes = v.at("nodes").as_array();
  ASSERT_EQ(nodes.size(), 1u) << v;
  const auto& n = nodes[0].as_object();
  EXPECT_EQ(n.at("node").as_string(), redis.address());
  EXPECT_EQ(n.at("redis").as_string(), "state");
  EXPECT_TRUE(n.at("up").as_bool());
  EXPECT_FALSE(n.at("slowlog").as_array().empty());
  auto stats = boost::json::parse(admin("/admin/stats").body);
  ASSERT_EQ(stats.at("redis").as_array().size(), 1u);
  EXPECT_FALSE(stats.at("redis").at(0).as_object().contains("slowlog"));
  const auto text = admin("/metrics").body;
  EXPECT_EQ(sample(text, "redline_redis_up{redis=\"state\",node=\"" + redis.address() + "\"}"), 1)
      << text;
}

}  // namespace
}  // namespace redline
