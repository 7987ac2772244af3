// The interface later modules (cache, rate limiting, sessions) use to talk to Redis without
// caring whether it is one server or a Redis Cluster, plus the factory that builds either from
// URLs. Implementations: StandaloneClient (client.cpp) and ClusterClient (cluster.h). Like
// Connection, a Client belongs to one thread's io_context: create one per thread.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "redis/connection.h"

namespace redline::redis {

// Sum of the counters of every connection a client owns.
using ClientStats = ConnectionStats;

struct ClientOptions {
  enum class Mode { kStandalone, kCluster };
  Mode mode = Mode::kStandalone;
  std::vector<std::string> urls;  // standalone: the first one; cluster: seed nodes
  // Timeouts, queue bound, backoff, TLS CA, client name ... for every connection; the URL's
  // host, port, credentials, TLS flag and db override the matching fields.
  ConnectionOptions connection;

  // Cluster only.
  bool read_from_replicas = false;  // READONLY; read-only commands go to replicas
  Millis refresh_interval{5000};    // periodic topology refresh
  Millis min_refresh_gap{100};      // error-triggered refreshes at most this often
  int max_redirects = 5;            // MOVED/ASK hops per command
  int max_retries = 8;              // TRYAGAIN / CLUSTERDOWN retries per command
  Millis retry_backoff{10};         // doubles per retry, capped at 200 ms
  // Open a connection to every master after each topology refresh, not only on first use,
  // so that push-based features (CLIENT TRACKING BCAST) hear from every node.
  bool connect_all_masters = false;
};

class Client {
 public:
  virtual ~Client() = default;
  // One command; an error reply is a kServerError. Cluster: routed by the command's key.
  virtual Awaitable<Result<Reply>> execute(const Command& cmd) = 0;
  // The same with its own deadline instead of the connection's command_timeout (a cache
  // lookup that must give up after a few milliseconds).
  virtual Awaitable<Result<Reply>> execute(const Command& cmd, Millis timeout) = 0;
  // Many commands, one result each, in input order. Cluster: split per node, sent in parallel
  // (one pipelined write per node); standalone: one pipelined write.
  virtual Awaitable<std::vector<Result<Reply>>> batch(std::span<const Command> cmds) = 0;
  // Waits until the client can serve commands (standalone: connected; cluster: slot map
  // loaded), or returns the error that prevents it.
  virtual Awaitable<Result<void>> connect() = 0;
  virtual ClientStats stats() const = 0;
  virtual bool is_cluster() const = 0;
  // Client-side caching hooks, applied to every connection (cluster: every node, also ones
  // found later). Enable tracking with ClientOptions::connection.init_commands, e.g.
  // CLIENT TRACKING ON BCAST PREFIX c:, so it is re-enabled after every reconnect.
  using PushHandler = std::function<void(const Reply&)>;
  using DisconnectHandler = std::function<void(const Error&)>;
  virtual void on_push(PushHandler handler) = 0;
  // A connection carrying pushes dropped: invalidations may have been missed.
  virtual void on_disconnect(DisconnectHandler handler) = 0;
  // Stops every connection; queued commands fail with kStopped. Call before destruction.
  virtual void stop() = 0;
};

// One Redis server through one multiplexed connection.
class StandaloneClient : public Client {
 public:
  StandaloneClient(Connection::Executor ex, ConnectionOptions options);
  ~StandaloneClient() override;
  Awaitable<Result<Reply>> execute(const Command& cmd) override;
  Awaitable<Result<Reply>> execute(const Command& cmd, Millis timeout) override;
  Awaitable<std::vector<Result<Reply>>> batch(std::span<const Command> cmds) override;
  Awaitable<Result<void>> connect() override;
  ClientStats stats() const override { return conn_->stats(); }
  bool is_cluster() const override { return false; }
  void on_push(PushHandler handler) override { conn_->on_push(std::move(handler)); }
  void on_disconnect(DisconnectHandler handler) override {
    conn_->on_disconnect(std::move(handler));
  }
  void stop() override { conn_->stop(); }
  Connection& connection() { return *conn_; }

 private:
  std::shared_ptr<Connection> conn_;
};

// Builds a standalone or cluster client from options.urls (an error for a bad URL or none).
Result<std::unique_ptr<Client>> make_client(Connection::Executor ex, const ClientOptions& options);

// Adds the URL's endpoint and credentials to a copy of `base`.
Result<ConnectionOptions> options_from_url(std::string_view url, const ConnectionOptions& base);

}  // namespace redline::redis
