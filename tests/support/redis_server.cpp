// Test support: redis-server / redis-cli / openssl processes for integration tests (see
// redis_server.h). Each server lives in its own TempDir with its own config file and log.
// Every process is a Process object, so it is stopped by its own PID and nothing else.
#include "support/redis_server.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace redline::test {
namespace {

constexpr const char* kRedisServer = "/usr/bin/redis-server";
constexpr const char* kRedisCli = "/usr/bin/redis-cli";

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string tail(const std::string& s, size_t n = 2000) {
  return s.size() > n ? s.substr(s.size() - n) : s;
}

// "key:value" lookup in INFO output.
std::string info_field(const std::string& info, const std::string& key) {
  std::istringstream in(info);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return trim(line.substr(key.size() + 1));
  }
  return {};
}

void make_tls_material(const std::filesystem::path& dir) {
  auto p = [&](const char* name) { return (dir / name).string(); };
  std::ofstream(dir / "ext.cnf") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
  const std::vector<std::vector<std::string>> steps = {
      {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-nodes", "-keyout", p("ca.key"), "-out", p("ca.crt"), "-days", "2", "-subj",
       "/CN=Redline Test CA"},
      {"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
       "-keyout", p("server.key"), "-out", p("server.csr"), "-subj", "/CN=localhost"},
      {"openssl", "x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
       "-CAcreateserial", "-out", p("server.crt"), "-days", "2", "-extfile", p("ext.cnf")},
  };
  for (const auto& argv : steps) {
    int rc = 0;
    std::string out = run_command(argv, &rc);
    if (rc != 0) throw std::runtime_error("openssl failed: " + out);
  }
  std::filesystem::permissions(
      dir / "server.key", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

}  // namespace

std::string run_command(const std::vector<std::string>& argv, int* rc) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/redline-cmd-XXXXXX";
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  ::close(fd);
  int status = -1;
  {
    Process proc(argv, tmpl);
    status = proc.wait(std::chrono::seconds(10));
    if (status < 0) status = proc.stop(SIGKILL);
  }
  std::string out = read_file(tmpl);
  std::filesystem::remove(tmpl);
  if (rc) *rc = status;
  return trim(out);
}

RedisServer::RedisServer(RedisServerOptions options) : options_(std::move(options)) {
  port_ = free_port();
  if (options_.tls) make_tls_material(dir_.path());
  write_config();
  start();
}

RedisServer::~RedisServer() {
  if (paused_ && process_) process_->signal(SIGCONT);
  if (process_ && process_->running() && process_->stop(SIGTERM, std::chrono::seconds(5)) < 0) {
    process_->stop(SIGKILL);
  }
}

void RedisServer::write_config() {
  std::ostringstream c;
  // Defaults an included file may override (a deploy config turning AOF on is fine here).
  c << "save \"\"\nappendonly no\nenable-debug-command yes\nprotected-mode no\n";
  if (!options_.config_file.empty()) c << "include " << options_.config_file.string() << "\n";
  // What the harness needs, after the include so it wins.
  c << "bind 127.0.0.1\ndaemonize no\nlogfile \"\"\npidfile \"\"\n";
  c << "dir " << dir_.path().string() << "\n";
  if (options_.tls) {
    auto d = dir_.path().string();
    c << "port 0\ntls-port " << port_ << "\ntls-cert-file " << d << "/server.crt\n"
      << "tls-key-file " << d << "/server.key\ntls-ca-cert-file " << d << "/ca.crt\n"
      << "tls-auth-clients no\n";
  } else {
    c << "port " << port_ << "\n";
  }
  if (!options_.password.empty()) c << "requirepass " << options_.password << "\n";
  if (!options_.acl_user.empty() && options_.acl_user_in_config) {
    c << "user " << options_.acl_user << " on >" << options_.acl_password << " ~* &* +@all\n";
  }
  if (options_.cluster) {
    // The bus port defaults to port+10000, which may be taken or beyond 65535: pick one.
    if (bus_port_ == 0) bus_port_ = free_port();
    c << "cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-port " << bus_port_ << "\n"
      << "cluster-node-timeout " << options_.cluster_node_timeout_ms << "\n"
      << "cluster-require-full-coverage no\ncluster-replica-validity-factor 0\n"
      << "repl-diskless-sync-delay 0\nrepl-diskless-sync yes\n";
  }
  for (const auto& line : options_.extra_config) c << line << "\n";
  dir_.write("redis.conf", c.str());
}

void RedisServer::start() {
  std::vector<std::string> argv = {kRedisServer, (dir_.path() / "redis.conf").string()};
  process_ = std::make_unique<Process>(argv, dir_.path() / "redis.log");
  paused_ = false;
  auto deadline = std::chrono::steady_clock::now() + options_.ready_timeout;
  while (!wait_for_port(port_, std::chrono::milliseconds(100))) {
    if (process_->running() && std::chrono::steady_clock::now() < deadline) continue;
    throw std::runtime_error("redis-server did not listen on " + address() + ":\n" + tail(log()));
  }
  while (std::chrono::steady_clock::now() < deadline) {
    if (!process_->running()) break;
    if (cli("PING") == "PONG") return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("redis-server on " + address() + " never answered PING:\n" +
                           tail(log()));
}

std::string RedisServer::url() const {
  std::string u = options_.tls ? "rediss://" : "redis://";
  if (!options_.acl_user.empty()) {
    u += options_.acl_user + ":" + options_.acl_password + "@";
  } else if (!options_.password.empty()) {
    u += ":" + options_.password + "@";
  }
  return u + address();
}

bool RedisServer::running() const {
  return process_ && process_->running();
}

void RedisServer::stop() {
  if (!process_) return;
  if (paused_) resume();
  if (process_->stop(SIGTERM, std::chrono::seconds(5)) < 0) process_->stop(SIGKILL);
}

void RedisServer::stop_async() {
  if (!process_ || !process_->running()) return;
  if (paused_) resume();
  process_->signal(SIGTERM);
}

void RedisServer::kill(int sig) {
  if (!process_) return;
  process_->stop(sig, std::chrono::seconds(5));
  paused_ = false;
}

void RedisServer::pause() {
  if (process_) process_->signal(SIGSTOP);
  paused_ = true;
}

void RedisServer::resume() {
  if (process_) process_->signal(SIGCONT);
  paused_ = false;
}

void RedisServer::restart() {
  if (running()) stop();
  start();
}

std::vector<std::string> RedisServer::cli_prefix() const {
  std::vector<std::string> argv = {kRedisCli, "-h", host(), "-p", std::to_string(port_)};
  if (options_.tls) {
    argv.insert(argv.end(), {"--tls", "--cacert", ca_file().string()});
  }
  if (!options_.acl_user.empty()) {
    argv.insert(argv.end(), {"--user", options_.acl_user, "--pass", options_.acl_password});
  } else if (!options_.password.empty()) {
    argv.insert(argv.end(), {"-a", options_.password});
  }
  argv.push_back("--no-auth-warning");
  return argv;
}

std::string RedisServer::cli_argv(const std::vector<std::string>& args) const {
  auto argv = cli_prefix();
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

std::string RedisServer::log() const {
  return read_file(dir_.path() / "redis.log");
}

RedisCluster::RedisCluster(RedisClusterOptions options) : options_(std::move(options)) {
  auto t0 = std::chrono::steady_clock::now();
  const int n = options_.masters * (1 + options_.replicas_per_master);
  for (int i = 0; i < n; ++i) {
    RedisServerOptions o;
    o.cluster = true;
    o.cluster_node_timeout_ms = options_.node_timeout_ms;
    o.config_file = options_.config_file;
    o.extra_config = options_.extra_config;
    nodes_.push_back(std::make_unique<RedisServer>(o));
  }
  std::vector<std::string> argv = {kRedisCli, "--cluster", "create"};
  for (const auto& node : nodes_) argv.push_back(node->address());
  argv.insert(argv.end(), {"--cluster-replicas", std::to_string(options_.replicas_per_master),
                           "--cluster-yes"});
  int rc = 0;
  std::string out = run_command(argv, &rc);
  if (rc != 0) throw std::runtime_error("redis-cli --cluster create failed:\n" + tail(out));
  if (!wait_healthy(options_.ready_timeout) || !wait_roles_agreed(options_.ready_timeout)) {
    throw std::runtime_error("cluster not healthy in time; node 0 log:\n" + tail(nodes_[0]->log()));
  }
  startup_ =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
}

RedisCluster::~RedisCluster() {
  // Signal every node first so they shut down in parallel, then reap them one by one.
  for (auto& node : nodes_) node->stop_async();
  for (auto& node : nodes_) node->stop();
}

std::vector<std::string> RedisCluster::urls() const {
  std::vector<std::string> out;
  for (const auto& node : nodes_) out.push_back(node->url());
  return out;
}

std::optional<size_t> RedisCluster::index_of_port(int port) const {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i]->port() == port) return i;
  }
  return std::nullopt;
}

std::vector<RedisCluster::NodeInfo> RedisCluster::topology(std::optional<size_t> ask) const {
  size_t who = 0;
  if (ask) {
    who = *ask;
  } else {
    while (who < nodes_.size() && !nodes_[who]->running()) ++who;
    if (who == nodes_.size()) return {};
  }
  // <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot> ...
  std::istringstream in(nodes_[who]->cli("CLUSTER", "NODES"));
  std::vector<NodeInfo> out;
  std::map<std::string, size_t> index_by_id;
  std::vector<std::pair<size_t, std::string>> master_ids;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, addr, flags, master;
    if (!(f >> id >> addr >> flags >> master)) continue;
    auto colon = addr.find(':');
    auto at = addr.find('@');
    if (colon == std::string::npos) continue;
    int port = std::atoi(addr.substr(colon + 1, at - colon - 1).c_str());
    auto idx = index_of_port(port);
    if (!idx) continue;
    NodeInfo info;
    info.index = *idx;
    info.id = id;
    info.master = flags.find("master") != std::string::npos;
    info.failed =
        flags.find("fail") != std::string::npos && flags.find("fail?") == std::string::npos;
    index_by_id[id] = *idx;
    if (master != "-") master_ids.emplace_back(out.size(), master);
    out.push_back(info);
  }
  for (auto& [pos, mid] : master_ids) {
    auto it = index_by_id.find(mid);
    if (it != index_by_id.end()) out[pos].master_index = it->second;
  }
  std::sort(out.begin(), out.end(),
            [](const NodeInfo& a, const NodeInfo& b) { return a.index < b.index; });
  return out;
}

std::vector<size_t> RedisCluster::masters() const {
  std::vector<size_t> out;
  for (const auto& n : topology()) {
    if (n.master && !n.failed) out.push_back(n.index);
  }
  return out;
}

std::optional<size_t> RedisCluster::replica_of(size_t master) const {
  for (const auto& n : topology()) {
    if (!n.master && n.master_index == master) return n.index;
  }
  return std::nullopt;
}

std::optional<size_t> RedisCluster::master_for_slot(int slot) const {
  for (const auto& node : nodes_) {
    if (!node->running()) continue;
    // CLUSTER NODES: masters list their slots from field 9 on, as "a-b" or "a".
    std::istringstream in(node->cli("CLUSTER", "NODES"));
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::vector<std::string> fields;
      std::string w;
      while (f >> w) fields.push_back(w);
      if (fields.size() < 9 || fields[2].find("master") == std::string::npos) continue;
      for (size_t i = 8; i < fields.size(); ++i) {
        if (fields[i].empty() || fields[i][0] == '[') continue;
        auto dash = fields[i].find('-');
        int a = std::atoi(fields[i].c_str());
        int b = dash == std::string::npos ? a : std::atoi(fields[i].c_str() + dash + 1);
        if (slot >= a && slot <= b) {
          auto colon = fields[1].find(':');
          return index_of_port(std::atoi(fields[1].c_str() + colon + 1));
        }
      }
    }
    return std::nullopt;
  }
  return std::nullopt;
}

bool RedisCluster::wait_roles_agreed(std::chrono::milliseconds timeout) {
  // Gossip may lag behind replication: wait until every node sees every replica's master.
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    bool agreed = true;
    for (size_t i = 0; i < nodes_.size() && agreed; ++i) {
      size_t masters = 0, linked = 0;
      for (const auto& n : topology(i)) {
        if (n.master) ++masters;
        if (!n.master && n.master_index) ++linked;
      }
      agreed = masters == static_cast<size_t>(options_.masters) &&
               linked == static_cast<size_t>(options_.masters * options_.replicas_per_master);
    }
    if (agreed) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

bool RedisCluster::wait_healthy(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    bool ok = true;
    for (const auto& node : nodes_) {
      if (!node->running()) continue;
      if (info_field(node->cli("CLUSTER", "INFO"), "cluster_state") != "ok") {
        ok = false;
        break;
      }
      std::string repl = node->cli("INFO", "replication");
      if (info_field(repl, "role") == "slave" && info_field(repl, "master_link_status") != "up") {
        ok = false;
        break;
      }
    }
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace redline::test
