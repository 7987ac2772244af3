// Provider faults through the real binaries (tests/proxy/gateway_test.cpp covers 500 retries
// then fallback, a reset without fallback (502), the breaker's open / probe / close cycle in
// process and a stall turning into an SSE error). Added here: a provider resetting every
// connection under load with a fallback (every client answered 200, the circuit opens and
// stops the resets from costing a connection each), and the time a stalled stream takes to
// become a clean SSE error event, bounded by the idle timeout.
#include <gtest/gtest.h>

#include "fault/fault_util.h"

namespace redline::fault {
namespace {

std::string two_providers(int port, int admin, int primary, int backup) {
  return "listen: \"127.0.0.1:" + std::to_string(port) +
         "\"\nthreads: 2\n"
         "admin: {listen: \"127.0.0.1:" +
         std::to_string(admin) + "\", token: " + kAdminToken +
         "}\n"
         "logging: {access_log: false, level: warn}\n"
         "cache: {enabled: false}\nkey_store: {enabled: false}\nsessions: {enabled: false}\n"
         "redis: {urls: [\"redis://127.0.0.1:1\"]}\n"
         "providers:\n"
         "  - {name: primary, type: openai, base_url: \"http://127.0.0.1:" +
         std::to_string(primary) +
         "/v1\", api_key: k1, retry: {max_attempts: 2, base_backoff: 5ms, max_backoff: 20ms},"
         " circuit: {failures: 3, open_for: 1s}}\n"
         "  - {name: backup, type: openai, base_url: \"http://127.0.0.1:" +
         std::to_string(backup) +
         "/v1\", api_key: k2}\n"
         "models:\n"
         "  gpt-4o-mini: {provider: primary, fallbacks: [backup-model]}\n"
         "  backup-model: {provider: backup, model: gpt-4o}\n";
}

int64_t mock_total(int port) {
  auto r = test::http_request(port, "GET", "/mock/stats");
  return boost::json::parse(r.body).at("total").to_number<int64_t>();
}

TEST(ProviderFault, ResettingProviderFallsBackAndOpensItsCircuit) {
  test::TempDir dir;
  MockProc primary(dir, {"--reset"}, "primary");
  MockProc backup(dir, {}, "backup");
  GatewayProc gw(dir, "gw", [&](int p, int a) {
    return two_providers(p, a, primary.port, backup.port);
  });
  Load load(gw.port, bodies("reset-", 4), 3, "anything");
  ASSERT_TRUE(load.wait_for_more(40));
  // The circuit is open now: the primary is skipped, the backup answers.
  const auto during = metric(gw.admin, "redline_upstream_circuit_opens_total", "primary");
  const auto primary_seen = mock_total(primary.port);
  ASSERT_TRUE(load.wait_for_more(20));
  load.stop();
  const auto samples = load.samples();
  const auto counts = status_counts(samples);
  EXPECT_EQ(counts.size(), 1u) << describe(counts);
  EXPECT_EQ(counts.begin()->first, 200) << describe(counts);
  EXPECT_GE(during, 1);
  // While open, at most one probe per open_for (1 s) reaches the primary (2 attempts each).
  const auto primary_after = mock_total(primary.port);
  EXPECT_GT(mock_total(backup.port), 0);
  std::printf("[fault] provider resets: %zu requests all 200 via the fallback; circuit opened "
              "%.0f times; primary saw %lld connections in total (%lld during the last 20 "
              "requests)\n",
              samples.size(), metric(gw.admin, "redline_upstream_circuit_opens_total", "primary"),
              static_cast<long long>(primary_after),
              static_cast<long long>(primary_after - primary_seen));
  EXPECT_LE(primary_after - primary_seen, 8);
}

TEST(ProviderFault, StalledStreamEndsWithAnSseErrorWithinTheIdleBound) {
  test::TempDir dir;
  MockProc mock(dir, {"--stall-after", "2"});
  GatewayProc gw(dir, "gw", [&](int p, int a) {
    std::string y = base_yaml(p, a, mock.port, "cache: {enabled: false}\n");
    const std::string retry = "retry: {max_attempts: 1}";
    y.replace(y.find(retry), retry.size(), retry + ", timeouts: {idle: 500ms}");
    return y;
  });
  test::HttpClient c("127.0.0.1", gw.port);
  Clock::time_point first_event{};
  const auto t0 = Clock::now();
  auto r = c.stream("POST", "/v1/chat/completions", chat_body("stall", true),
                    bearer("sk-fault-a", {{"content-type", "application/json"}}),
                    [&](const std::string&) {
                      if (first_event == Clock::time_point{}) first_event = Clock::now();
                    });
  const double total = ms_since(t0);
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("upstream_stream_error"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("[DONE]"), std::string::npos);
  const double after_first =
      std::chrono::duration<double, std::milli>(Clock::now() - first_event).count();
  // idle 500 ms + generous slack for a sanitizer build; a hang would be the 60 s first-byte
  // or 600 s total timeout.
  EXPECT_LT(after_first, 500 + 3000);
  std::printf("[fault] stalled stream: SSE error event %.0f ms after the last data (idle "
              "timeout 500 ms), %.0f ms in total\n",
              after_first, total);
}

}  // namespace
}  // namespace redline::fault
