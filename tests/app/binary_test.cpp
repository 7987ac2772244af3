// Tests of the real `redline` binary as an operator runs it: --version, --check-config
// (valid and invalid files, exit codes and messages), CLI overrides, the access log, and
// SIGTERM draining a streaming response to completion before exiting 0.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/http_client.h"
#include "support/process.h"
#include "support/redis_server.h"

namespace redline {
namespace {

using namespace std::chrono_literals;

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct MockProcess {
  explicit MockProcess(const test::TempDir& dir, std::vector<std::string> extra = {})
      : port(test::free_port()) {
    std::vector<std::string> argv{test::built_binary("redline-mock"), "--listen",
                                  "127.0.0.1:" + std::to_string(port)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc.emplace(argv, dir.path() / "mock.log");
    if (!test::wait_for_port(port)) throw std::runtime_error("mock did not start");
  }
  int port;
  std::optional<test::Process> proc;
};

std::string gateway_yaml(int port, int admin_port, int mock_port, const std::string& extra = "") {
  return "listen: \"127.0.0.1:" + std::to_string(port) + "\"\n" +
         "threads: 2\n"
         "admin: {listen: \"127.0.0.1:" +
         std::to_string(admin_port) +
         "\"}\n"
         "drain_timeout: 10s\n"
         "cache: {enabled: false}\n"
         "providers:\n"
         "  - {name: openai, type: openai, base_url: \"http://127.0.0.1:" +
         std::to_string(mock_port) + "/v1\", api_key: sk-upstream-secret}\n" + extra;
}

TEST(Binary, Version) {
  test::TempDir dir;
  test::Process p({test::built_binary("redline"), "--version"}, dir.path() / "out.log");
  EXPECT_EQ(p.wait(10s), 0);
  EXPECT_NE(p.log().find("redline "), std::string::npos);
  // The allocator the build chose, and (with mimalloc) that malloc really is mimalloc's.
#ifdef REDLINE_WITH_MIMALLOC
  EXPECT_NE(p.log().find("allocator: mimalloc "), std::string::npos) << p.log();
  EXPECT_EQ(p.log().find("not redirected"), std::string::npos) << p.log();
#else
  EXPECT_NE(p.log().find("allocator: system malloc"), std::string::npos) << p.log();
#endif
}

TEST(Binary, CheckConfigValidAndInvalid) {
  test::TempDir dir;
  auto good = dir.write("good.yaml", gateway_yaml(1, 2, 3));
  test::Process ok({test::built_binary("redline"), "--config", good.string(), "--check-config"},
                   dir.path() / "ok.log");
  EXPECT_EQ(ok.wait(10s), 0) << ok.log();

  auto bad = dir.write("bad.yaml", gateway_yaml(1, 2, 3) + "threads: many\n");
  test::Process ko({test::built_binary("redline"), "--config", bad.string(), "--check-config"},
                   dir.path() / "ko.log");
  EXPECT_EQ(ko.wait(10s), 1);
  const auto log = ko.log();
  EXPECT_NE(log.find("bad.yaml"), std::string::npos) << log;
  EXPECT_NE(log.find("threads"), std::string::npos) << log;

  test::Process missing({test::built_binary("redline"), "--config",
                         (dir.path() / "nope.yaml").string(), "--check-config"},
                        dir.path() / "missing.log");
  EXPECT_EQ(missing.wait(10s), 1);
}

TEST(Binary, SigtermLetsStreamingResponseFinish) {
  test::TempDir dir;
  MockProcess mock(dir, {"--stream-delay-ms", "100", "--words", "10"});
  const int port = test::free_port(), admin = test::free_port();
  auto cfg = dir.write("redline.yaml", gateway_yaml(port, admin, mock.port));
  test::Process gw({test::built_binary("redline"), "--config", cfg.string()},
                   dir.path() / "gw.log");
  ASSERT_TRUE(test::wait_for_port(port)) << gw.log();

  test::HttpClient client("127.0.0.1", port);
  bool signalled = false;
  const std::string body =
      R"({"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hi"}]})";
  auto r = client.stream("POST", "/v1/chat/completions", body, {}, [&](const std::string&) {
    if (!signalled) {
      gw.signal(SIGTERM);  // mid-stream: about 1 s of events are still to come
      signalled = true;
    }
  });
  ASSERT_TRUE(signalled);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("data: [DONE]"), std::string::npos) << "stream cut by the drain";
  EXPECT_EQ(gw.wait(15s), 0) << gw.log();
  // New connections are refused once draining finished.
  EXPECT_FALSE(test::wait_for_port(port, 200ms));
}

TEST(Binary, AccessLogLinesAreJsonWithoutKeys) {
  test::TempDir dir;
  MockProcess mock(dir);
  const int port = test::free_port(), admin = test::free_port();
  const auto log_path = dir.path() / "access.log";
  auto cfg =
      dir.write("redline.yaml", gateway_yaml(port, admin, mock.port,
                                             "keys:\n  - {key: sk-client-secret, tenant: acme}\n"
                                             "logging: {access_log: true, access_log_path: \"" +
                                                 log_path.string() + "\"}\n"));
  test::Process gw({test::built_binary("redline"), "--config", cfg.string()},
                   dir.path() / "gw.log");
  ASSERT_TRUE(test::wait_for_port(port)) << gw.log();
  auto r = test::http_request(
      port, "POST", "/v1/chat/completions",
      R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]})",
      {{"authorization", "Bearer sk-client-secret"}, {"x-request-id", "trace-42"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(gw.stop(SIGTERM, 10s), 0);
  const auto log = read_file(log_path);
  auto v = boost::json::parse(log.substr(0, log.find('\n')));
  EXPECT_EQ(v.at("request_id").as_string(), "trace-42");
  EXPECT_EQ(v.at("tenant").as_string(), "acme");
  EXPECT_EQ(v.at("status").as_int64(), 200);
  EXPECT_EQ(v.at("model").as_string(), "gpt-4o-mini");
  EXPECT_EQ(v.at("provider").as_string(), "openai");
  EXPECT_TRUE(v.at("duration_ms").is_double());
  EXPECT_EQ(log.find("sk-client-secret"), std::string::npos);
  EXPECT_EQ(log.find("sk-upstream-secret"), std::string::npos);
}

TEST(Binary, CliOverridesListenAndUpstream) {
  test::TempDir dir;
  MockProcess mock(dir);
  const int port = test::free_port(), admin = test::free_port();
  // The file points at a dead upstream and other ports; the flags fix both.
  auto cfg = dir.write("redline.yaml", gateway_yaml(1, 2, test::free_port()));
  test::Process gw(
      {test::built_binary("redline"), "--config", cfg.string(), "--listen",
       "127.0.0.1:" + std::to_string(port), "--admin-listen", "127.0.0.1:" + std::to_string(admin),
       "--upstream", "http://127.0.0.1:" + std::to_string(mock.port) + "/v1", "--threads", "1"},
      dir.path() / "gw.log");
  ASSERT_TRUE(test::wait_for_port(port)) << gw.log();
  auto r =
      test::http_request(port, "POST", "/v1/chat/completions",
                         R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]})");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(test::http_request(admin, "GET", "/healthz").status, 200);
}

TEST(Binary, PortInUseFailsClearly) {
  test::TempDir dir;
  // A plain listener (no SO_REUSEPORT) holds the port: the gateway must fail, not hang.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int held = ntohs(addr.sin_port);
  auto cfg = dir.write("redline.yaml", gateway_yaml(held, test::free_port(), test::free_port()));
  test::Process gw({test::built_binary("redline"), "--config", cfg.string()},
                   dir.path() / "gw.log");
  EXPECT_EQ(gw.wait(10s), 1);
  EXPECT_NE(gw.log().find("cannot listen"), std::string::npos) << gw.log();
  ::close(fd);
}

TEST(Binary, UnwritableAccessLogFailsAtStart) {
  test::TempDir dir;
  MockProcess mock(dir);
  // A regular file where a directory is expected: nobody, root included, can create it.
  const auto blocker = dir.write("not-a-dir", "x");
  const auto bad_path = (blocker / "access.log").string();
  auto cfg = dir.write(
      "redline.yaml",
      gateway_yaml(test::free_port(), test::free_port(), mock.port,
                   "logging: {access_log: true, access_log_path: \"" + bad_path + "\"}\n"));
  test::Process gw({test::built_binary("redline"), "--config", cfg.string()},
                   dir.path() / "gw.log");
  EXPECT_EQ(gw.wait(10s), 1);
  EXPECT_NE(gw.log().find(bad_path), std::string::npos) << gw.log();
}

}  // namespace
}  // namespace redline
