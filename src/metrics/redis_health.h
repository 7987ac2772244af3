// The Redis health poller: on an interval, asks every node of each configured Redis (the
// state Redis and a separate cache Redis) for INFO, SLOWLOG LEN, the latest SLOWLOG entries
// and, in a cluster, CLUSTER INFO, and exports per node: up/down, role, memory used and max,
// evicted and expired keys, keyspace hits and misses, connected and rejected clients, ops/s,
// replication offset, replication lag per replica (bytes behind its master and seconds since
// the master last heard from it), cluster state and slot coverage, slowlog length. Nodes are
// found from the seeds: a cluster's from CLUSTER NODES (failed ones included, so a dead node
// shows as down), a standalone master's replicas from its INFO. It uses its own connections
// (one per node, on the poller's executor) and never touches the gateway's data. Each round
// also decides whether each target is reachable, which /readyz reports.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/array.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "metrics/registry.h"
#include "redis/client.h"

namespace redline::metrics {

// One Redis deployment to watch.
struct RedisTarget {
  std::string name = "state";  // the redis="..." label: state | cache
  bool cluster = false;
  std::vector<std::string> urls;        // seeds: redis://[user:pass@]host:port, rediss://
  redis::ConnectionOptions connection;  // TLS CA, timeouts ...; each URL's fields override
};

struct RedisHealthOptions {
  std::vector<RedisTarget> targets;
  std::chrono::milliseconds interval{5000};
  std::chrono::milliseconds timeout{1000};  // connect and reply deadline per node and round
  std::size_t slowlog_entries = 10;         // SLOWLOG GET <n> per node and round
};

struct SlowlogEntry {
  int64_t id = 0;
  int64_t time = 0;         // Unix seconds
  int64_t duration_us = 0;  // execution time
  std::vector<std::string> command;
  std::string client;
};

// What one round learnt about one node.
struct NodeHealth {
  std::string redis;    // target name
  std::string address;  // host:port
  bool up = false;
  std::string error;   // why it is down
  std::string role;    // master | replica
  std::string master;  // replicas: host:port of their master
  double used_memory = 0, max_memory = 0;
  std::string maxmemory_policy;
  double evicted_keys = 0, expired_keys = 0, keyspace_hits = 0, keyspace_misses = 0;
  double connected_clients = 0, rejected_connections = 0, ops_per_sec = 0;
  double repl_offset = 0;
  std::optional<double> lag_bytes;    // replicas: master offset - replica offset
  std::optional<double> lag_seconds;  // replicas: since the master last heard from it
  std::optional<bool> master_link_up;
  bool cluster = false;
  std::string cluster_state;  // ok | fail
  double slots_assigned = 0, slots_ok = 0, slots_pfail = 0, slots_fail = 0, known_nodes = 0;
  double slowlog_length = 0;
  std::vector<SlowlogEntry> slowlog;  // newest first
};

class RedisHealth {
 public:
  RedisHealth(boost::asio::any_io_executor ex, RedisHealthOptions options,
              Registry& registry = metrics::registry());
  ~RedisHealth();
  RedisHealth(const RedisHealth&) = delete;
  RedisHealth& operator=(const RedisHealth&) = delete;

  // Polls now and then every interval, on the executor.
  void start();
  // Stops polling and closes the connections. Call on the executor's thread, or once it no
  // longer runs (the destructor does). Safe to call twice.
  void stop();
  // One round (what start() repeats); completes when every node answered or timed out.
  boost::asio::awaitable<void> poll_once();

  // The latest round, from any thread.
  std::vector<NodeHealth> nodes() const;
  boost::json::array nodes_json(bool with_slowlog) const;
  uint64_t rounds() const;

  // Whether a target ("state", "cache") answered the latest completed round: a standalone
  // target when its configured node answered (its replicas do not count); a cluster when a
  // node answered and reports cluster_state:ok. nullopt before the first round completes, or
  // for a name that is not a target. From any thread.
  std::optional<bool> reachable(std::string_view target) const;
  // Every target, in the configured order, with reachable(target).
  std::vector<std::pair<std::string, std::optional<bool>>> reachability() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Parses INFO text into field -> value ("# Section" lines and blanks skipped).
std::vector<std::pair<std::string, std::string>> parse_info(std::string_view text);
// host:port of every node in CLUSTER NODES output (noaddr nodes skipped), in order.
std::vector<std::string> parse_cluster_nodes(std::string_view text);

}  // namespace redline::metrics
