// The shipped Prometheus alerting rules parse (`promtool check rules`) and name only metrics
// Redline exports.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "metrics/process.h"
#include "metrics/redis_health.h"
#include "metrics/registry.h"
#include "metrics/standard.h"
#include "support/redis_server.h"

namespace redline::metrics {
namespace {

const std::filesystem::path kRules =
    std::filesystem::path(REDLINE_SOURCE_DIR) / "deploy/prometheus/alerts.yml";

TEST(Deploy, PromtoolChecksAlertRules) {
  const std::string promtool = "/usr/bin/promtool";
  if (!std::filesystem::exists(promtool)) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus; scripts/install-deps.sh)";
  }
  int rc = -1;
  const auto out = test::run_command({promtool, "check", "rules", kRules.string()}, &rc);
  EXPECT_EQ(rc, 0) << out;
}

TEST(Deploy, AlertRulesNameExportedMetrics) {
  Registry reg;
  standard::declare_all(reg);
  ProcessMetrics process(reg);
  boost::asio::io_context io;
  RedisHealth health(io.get_executor(), {}, reg);  // declares the redline_redis_* families
  std::set<std::string> known;
  for (Family* f : reg.families()) {
    known.insert(f->name());
    if (f->kind() == Kind::kHistogram) {
      for (const char* s : {"_bucket", "_sum", "_count"}) known.insert(f->name() + s);
    }
  }
  std::ifstream in(kRules);
  std::stringstream text;
  text << in.rdbuf();
  const std::string rules = text.str();
  const std::regex name("redline_[a-z0-9_]+");
  int found = 0;
  for (auto it = std::sregex_iterator(rules.begin(), rules.end(), name);
       it != std::sregex_iterator(); ++it) {
    ++found;
    EXPECT_TRUE(known.contains(it->str())) << it->str();
  }
  EXPECT_GT(found, 5);
}

}  // namespace
}  // namespace redline::metrics
