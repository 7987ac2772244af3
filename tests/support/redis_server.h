// Test support: real redis-server processes on free loopback ports in temporary directories
// (standalone, password / ACL user, TLS with a throwaway CA, a 6-node cluster), plus redis-cli.
// Only the processes started here are ever signalled, by PID; nothing is pkill'ed.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/process.h"

namespace redline::test {

struct RedisServerOptions {
  std::string password;            // requirepass (the "default" user)
  std::string acl_user;            // an extra ACL user with full rights ...
  std::string acl_password;        // ... and its password
  bool acl_user_in_config = true;  // false: an aclfile in extra_config defines the user
  bool tls = false;                // TLS only (port 0 + tls-port), CA + cert made with `openssl`
  bool cluster = false;            // cluster-enabled yes, with the settings below
  int cluster_node_timeout_ms = 1000;
  std::filesystem::path config_file;      // included first (e.g. deploy/redis/cache.conf)
  std::vector<std::string> extra_config;  // "key value" lines appended last (they win)
  std::chrono::milliseconds ready_timeout = std::chrono::seconds(10);
};

// A running redis-server. Constructed = started and answering PING.
class RedisServer {
 public:
  explicit RedisServer(RedisServerOptions options = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  std::string host() const { return "127.0.0.1"; }
  std::string address() const { return host() + ":" + std::to_string(port_); }
  // redis://[user:pass@]127.0.0.1:port (rediss:// with TLS).
  std::string url() const;
  // CA certificate that signed the server certificate (TLS only), and the working directory.
  std::filesystem::path ca_file() const { return dir_.path() / "ca.crt"; }
  const std::filesystem::path& dir() const { return dir_.path(); }
  const RedisServerOptions& options() const { return options_; }
  int pid() const { return process_ ? process_->pid() : -1; }
  bool running() const;

  void stop();             // SIGTERM and wait (resumes a paused server first)
  void stop_async();       // SIGTERM without waiting (stop() or the destructor reaps it)
  void kill(int sig = 9);  // send `sig` (default SIGKILL) and reap
  void pause();            // SIGSTOP: the socket stays open, nothing answers
  void resume();           // SIGCONT
  void restart();          // stop if running, start again on the same port and directory
  // Runs redis-cli against this server (with its credentials/TLS); returns trimmed stdout+stderr.
  std::string cli_argv(const std::vector<std::string>& args) const;
  template <typename... A>
  std::string cli(const A&... args) const {
    return cli_argv({std::string(args)...});
  }
  std::string log() const;

 private:
  void write_config();
  void start();
  std::vector<std::string> cli_prefix() const;

  RedisServerOptions options_;
  TempDir dir_;
  int port_ = 0;
  int bus_port_ = 0;
  bool paused_ = false;
  std::unique_ptr<Process> process_;
};

struct RedisClusterOptions {
  int masters = 3;
  int replicas_per_master = 1;
  int node_timeout_ms = 1000;
  std::filesystem::path config_file;  // per node, e.g. deploy/redis/state-cluster.conf
  std::vector<std::string> extra_config;
  std::chrono::milliseconds ready_timeout = std::chrono::seconds(20);
};

// A Redis Cluster formed with `redis-cli --cluster create --cluster-replicas N`, ready when
// every live node says cluster_state:ok and every replica's master link is up.
class RedisCluster {
 public:
  struct NodeInfo {
    size_t index = 0;
    std::string id;
    bool master = false;
    bool failed = false;
    std::optional<size_t> master_index;  // replicas: the node they replicate
  };

  explicit RedisCluster(RedisClusterOptions options = {});
  ~RedisCluster();

  size_t size() const { return nodes_.size(); }
  RedisServer& node(size_t i) { return *nodes_.at(i); }
  // "redis://127.0.0.1:port" of every node, for the client's seed list.
  std::vector<std::string> urls() const;
  // Current topology as the given node (default: the first live one) sees it in CLUSTER NODES.
  std::vector<NodeInfo> topology(std::optional<size_t> ask = std::nullopt) const;
  std::vector<size_t> masters() const;
  std::optional<size_t> replica_of(size_t master) const;  // a replica of that master
  // Index of the node that serves `slot` as master (CLUSTER SLOTS of a live node), if any.
  std::optional<size_t> master_for_slot(int slot) const;
  // Node index by port, or nullopt.
  std::optional<size_t> index_of_port(int port) const;
  // Blocks until every live node reports cluster_state:ok and all live replicas are linked.
  bool wait_healthy(std::chrono::milliseconds timeout);
  void kill(size_t i) { nodes_.at(i)->kill(); }
  std::chrono::milliseconds startup_time() const { return startup_; }

 private:
  bool wait_roles_agreed(std::chrono::milliseconds timeout);

  RedisClusterOptions options_;
  std::vector<std::unique_ptr<RedisServer>> nodes_;
  std::chrono::milliseconds startup_{0};
};

// Runs a command line to completion (10 s max); returns trimmed stdout+stderr, exit code in *rc.
std::string run_command(const std::vector<std::string>& argv, int* rc = nullptr);

}  // namespace redline::test
