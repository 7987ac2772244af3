// Loads every file of deploy/redis/ into a real redis-server (with a small maxmemory), checks
// the settings the configs promise, that the cache evicts while state refuses writes when
// full, that the cluster configs and create-cluster.sh form a working cluster, and that the
// ACL users get exactly the rights they should.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <fstream>
#include <sstream>

#include "redis/async_test_util.h"
#include "redis/cluster.h"
#include "support/redis_server.h"

namespace redline::redis {
namespace {

namespace asio = boost::asio;
using test::RedisServer;
using test::RedisServerOptions;
using testing::run_for;
using testing::run_until_done;

std::filesystem::path deploy_file(const std::string& name) {
  return std::filesystem::path(REDLINE_SOURCE_DIR) / "deploy" / "redis" / name;
}

std::string config_get(const RedisServer& s, const std::string& key) {
  auto out = s.cli("CONFIG", "GET", key);  // "key\nvalue"
  auto nl = out.find('\n');
  return nl == std::string::npos ? std::string() : out.substr(nl + 1);
}

struct Standalone {
  explicit Standalone(const RedisServer& server, ConnectionOptions o = {}) {
    auto parsed = parse_url(server.url(), o);
    conn = Connection::create(io.get_executor(), parsed.value());
  }
  ~Standalone() {
    conn->stop();
    run_for(io, std::chrono::milliseconds(10));
  }
  Result<Reply> exec(const Command& c) { return run_until_done(io, conn->execute(c)); }
  asio::io_context io;
  std::shared_ptr<Connection> conn;
};

TEST(DeployRedis, CacheConfEvictsAndPersists) {
  RedisServerOptions o;
  o.config_file = deploy_file("cache.conf");
  o.extra_config = {"maxmemory 4mb"};
  RedisServer server(o);
  EXPECT_EQ(config_get(server, "maxmemory-policy"), "allkeys-lru");
  EXPECT_EQ(config_get(server, "appendonly"), "yes");
  EXPECT_EQ(config_get(server, "appendfsync"), "everysec");
  EXPECT_EQ(config_get(server, "save"), "900 1 300 10");
  EXPECT_EQ(config_get(server, "tcp-keepalive"), "300");
  EXPECT_EQ(config_get(server, "timeout"), "0");
  EXPECT_EQ(config_get(server, "tcp-backlog"), "511");
  EXPECT_EQ(config_get(server, "io-threads"), "4");
  EXPECT_EQ(config_get(server, "io-threads-do-reads"), "yes");
  EXPECT_EQ(config_get(server, "lazyfree-lazy-eviction"), "yes");
  EXPECT_EQ(config_get(server, "lazyfree-lazy-expire"), "yes");
  Standalone c(server);
  const std::string value(16 * 1024, 'x');
  for (int i = 0; i < 1000; ++i) {
    auto r = c.exec(Command("SET", "c:" + std::to_string(i), value));
    ASSERT_TRUE(r.ok()) << r.error().to_string();  // never OOM: old answers are evicted
  }
  auto info = c.exec(Command("INFO", "stats")).value().str();
  EXPECT_EQ(info.find("evicted_keys:0\r"), std::string::npos);
}

TEST(DeployRedis, StateConfNeverEvicts) {
  RedisServerOptions o;
  o.config_file = deploy_file("state.conf");
  o.extra_config = {"maxmemory 4mb"};
  RedisServer server(o);
  EXPECT_EQ(config_get(server, "maxmemory-policy"), "noeviction");
  EXPECT_EQ(config_get(server, "appendonly"), "yes");
  EXPECT_EQ(config_get(server, "appendfsync"), "everysec");
  Standalone c(server);
  const std::string value(16 * 1024, 'x');
  std::optional<Error> oom;
  for (int i = 0; i < 1000 && !oom; ++i) {
    auto r = c.exec(Command("SET", "s:" + std::to_string(i), value));
    if (!r.ok()) oom = r.error();
  }
  ASSERT_TRUE(oom.has_value());
  EXPECT_EQ(oom->kind, ErrorKind::kServerError);
  EXPECT_TRUE(oom->starts_with("OOM")) << oom->message;
  EXPECT_EQ(c.exec(Command("GET", "s:0")).value().str().size(), value.size());  // kept
}

TEST(DeployRedis, CacheClusterConfEnablesClusterMode) {
  RedisServerOptions o;
  o.config_file = deploy_file("cache-cluster.conf");
  o.extra_config = {"maxmemory 16mb", "cluster-port " + std::to_string(test::free_port())};
  RedisServer server(o);
  EXPECT_EQ(config_get(server, "cluster-enabled"), "yes");
  EXPECT_EQ(config_get(server, "cluster-node-timeout"), "5000");
  EXPECT_EQ(config_get(server, "cluster-require-full-coverage"), "no");
  EXPECT_EQ(config_get(server, "maxmemory-policy"), "allkeys-lru");
  EXPECT_NE(server.cli("CLUSTER", "INFO").find("cluster_state:"), std::string::npos);
}

TEST(DeployRedis, StateClusterConfFormsAWorkingCluster) {
  test::RedisClusterOptions o;
  o.config_file = deploy_file("state-cluster.conf");
  o.extra_config = {"maxmemory 32mb"};
  test::RedisCluster cluster(o);
  EXPECT_EQ(config_get(cluster.node(0), "maxmemory-policy"), "noeviction");
  EXPECT_EQ(config_get(cluster.node(0), "cluster-require-full-coverage"), "no");
  asio::io_context io;
  ClientOptions co;
  co.mode = ClientOptions::Mode::kCluster;
  co.urls = cluster.urls();
  ClusterClient client(io.get_executor(), co);
  std::vector<Command> cmds;
  for (int i = 0; i < 100; ++i) cmds.emplace_back("SET", "k:" + std::to_string(i), i);
  auto rs = run_until_done(io, client.batch(cmds));
  for (const auto& r : rs) EXPECT_TRUE(r.ok());
  client.stop();
  run_for(io, std::chrono::milliseconds(10));
}

bool port_free(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

TEST(DeployRedis, CreateClusterScriptStartsAndStopsSixNodes) {
  constexpr int kOffset = -20000;  // bus port = port - 20000 stays in range
  std::vector<int> ports;
  while (ports.size() < 6) {
    int p = test::free_port();
    if (p + kOffset > 1024 && port_free(p + kOffset) &&
        std::find(ports.begin(), ports.end(), p) == ports.end()) {
      ports.push_back(p);
    }
  }
  std::string port_list;
  for (int p : ports) port_list += (port_list.empty() ? "" : " ") + std::to_string(p);
  test::TempDir dir;
  const std::vector<std::string> env = {"env", "PORTS=" + port_list,
                                        "BUS_PORT_OFFSET=" + std::to_string(kOffset),
                                        "DATA_DIR=" + dir.path().string(), "MAXMEMORY=32mb"};
  auto script = [&](const std::vector<std::string>& args, int* rc) {
    auto argv = env;
    argv.push_back(deploy_file("create-cluster.sh").string());
    argv.insert(argv.end(), args.begin(), args.end());
    return test::run_command(argv, rc);
  };
  struct Stopper {
    std::function<void()> f;
    ~Stopper() { f(); }
  } stopper{[&] {
    int rc = 0;
    script({"stop"}, &rc);
  }};
  int rc = -1;
  auto out = script({"start", "cache-cluster.conf"}, &rc);
  if (rc != 0) {
    std::ifstream log(dir.path() / std::to_string(ports[0]) / "redis.log");
    std::stringstream l;
    l << log.rdbuf();
    out += "\nnode log:\n" + l.str();
  }
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("cluster ready"), std::string::npos) << out;
  auto info = test::run_command({"redis-cli", "-p", std::to_string(ports[0]), "CLUSTER", "INFO"});
  EXPECT_NE(info.find("cluster_state:ok"), std::string::npos);
  EXPECT_NE(info.find("cluster_known_nodes:6"), std::string::npos);
  out = script({"stop"}, &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(test::run_command({"redis-cli", "-p", std::to_string(ports[0]), "PING"}), "PONG");
}

TEST(DeployRedis, AclUsersHaveLeastPrivilege) {
  std::ifstream in(deploy_file("users.acl"));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string acl = ss.str();
  for (auto pos = acl.find("CHANGE_ME_"); pos != std::string::npos; pos = acl.find("CHANGE_ME_")) {
    auto end = acl.find(' ', pos);
    acl.replace(pos, end - pos, "test-pass");
  }
  test::TempDir dir;
  auto acl_path = dir.write("users.acl", acl);
  RedisServerOptions o;
  o.acl_user = "redline-gateway";
  o.acl_password = "test-pass";
  o.acl_user_in_config = false;
  o.config_file = deploy_file("state.conf");
  o.extra_config = {"aclfile " + acl_path.string(), "maxmemory 16mb"};
  RedisServer server(o);

  Standalone gw(server);
  EXPECT_TRUE(gw.exec(Command("SET", "k:abc", "1")).ok());
  EXPECT_TRUE(gw.exec(Command("HSET", "s:conv", "turns", "1")).ok());
  EXPECT_TRUE(gw.exec(Command("EVAL", "return redis.call('INCR', KEYS[1])", 1, "rl:x")).ok());
  EXPECT_EQ(gw.exec(Command("CONFIG", "GET", "maxmemory-policy")).value().size(), 1u);
  EXPECT_TRUE(gw.exec(Command("INFO", "memory")).ok());
  for (const auto& denied :
       {Command("SET", "other:x", "1"), Command("FLUSHALL"), Command("KEYS", "*"),
        Command("CONFIG", "SET", "maxmemory", "1"), Command("SCRIPT", "FLUSH")}) {
    auto r = gw.exec(denied);
    ASSERT_FALSE(r.ok()) << denied.describe();
    EXPECT_TRUE(r.error().starts_with("NOPERM")) << r.error().message;
  }
  ConnectionOptions monitor_opts;
  monitor_opts.user = "redline-monitor";
  monitor_opts.password = "test-pass";
  auto mon_url = "redis://redline-monitor:test-pass@" + server.address();
  Standalone mon(server);
  mon.conn->stop();
  mon.conn = Connection::create(mon.io.get_executor(), parse_url(mon_url).value());
  EXPECT_TRUE(mon.exec(Command("INFO", "server")).ok());
  EXPECT_TRUE(mon.exec(Command("GET", "k:abc")).error().starts_with("NOPERM"));
  // The default user is off: no anonymous access.
  Standalone anon(server);
  anon.conn->stop();
  anon.conn =
      Connection::create(anon.io.get_executor(), parse_url("redis://" + server.address()).value());
  EXPECT_EQ(anon.exec(Command("PING")).kind(), ErrorKind::kAuthFailed);
}

}  // namespace
}  // namespace redline::redis
