// Redis Cluster client: CRC16 key slots with hash tags, a slot map loaded from CLUSTER SHARDS
// (CLUSTER SLOTS on older servers), per-slot routing over one pipelined Connection per node,
// MOVED/ASK/TRYAGAIN/CLUSTERDOWN handling, periodic and error-triggered refreshes, optional
// replica reads and parallel per-node batches. It never sends cross-slot commands itself.
#pragma once

#include <array>
#include <map>
#include <optional>

#include "redis/client.h"

namespace redline::redis {

constexpr uint16_t kClusterSlots = 16384;

// CRC16-CCITT (XMODEM), the hash Redis Cluster uses.
uint16_t crc16(std::string_view data);
// The slot of a key: CRC16 of the first non-empty {hash tag} if any, else of the whole key.
uint16_t key_slot(std::string_view key);
// The key a command is routed by (nullopt for commands without keys such as PING or INFO).
std::optional<std::string_view> routing_key(const Command& cmd);
// True for commands that only read (may go to a replica when replica reads are enabled).
bool is_read_only(const Command& cmd);

// One shard of the slot map.
struct ClusterShard {
  std::string master;                 // "host:port"
  std::vector<std::string> replicas;  // healthy replicas, "host:port"
};

// The parsed topology: shards and which shard owns each slot (-1 = none).
struct SlotMap {
  std::vector<ClusterShard> shards;
  std::array<int16_t, kClusterSlots> owner{};
  SlotMap() { owner.fill(-1); }
  bool complete() const;
};

// Parse CLUSTER SHARDS / CLUSTER SLOTS replies; `queried_host` fills empty endpoints.
Result<SlotMap> parse_cluster_shards(const Reply& reply, std::string_view queried_host, bool tls);
Result<SlotMap> parse_cluster_slots(const Reply& reply, std::string_view queried_host);

class ClusterClient : public Client {
 public:
  ClusterClient(Connection::Executor ex, ClientOptions options);
  ~ClusterClient() override;

  Awaitable<Result<Reply>> execute(const Command& cmd) override;
  Awaitable<Result<Reply>> execute(const Command& cmd, Millis timeout) override;
  Awaitable<std::vector<Result<Reply>>> batch(std::span<const Command> cmds) override;
  Awaitable<Result<void>> connect() override;
  ClientStats stats() const override;
  bool is_cluster() const override { return true; }
  void on_push(PushHandler handler) override;
  void on_disconnect(DisconnectHandler handler) override;
  void stop() override;

  // Reloads the slot map now (single flight: concurrent callers share one refresh).
  Awaitable<Result<void>> refresh();
  // "host:port" of the master currently believed to own `slot` (empty if none).
  std::string master_for_slot(uint16_t slot) const;
  const SlotMap& slot_map() const { return map_; }
  uint64_t refreshes() const { return refreshes_; }
  uint64_t redirects() const { return redirects_; }

  static Result<std::vector<ConnectionOptions>> seeds_from_urls(const ClientOptions& options);

 private:
  struct Target {
    std::string address;
    bool asking = false;
  };
  std::shared_ptr<Connection> connection(const std::string& address);
  // Where a command goes now: by slot (replica for reads if enabled), else any master.
  std::optional<std::string> route(const Command& cmd, std::optional<uint16_t> slot,
                                   bool master_only);
  // Runs a command through redirects/retries starting at `first`.
  // timeout 0: the connection's command_timeout.
  Awaitable<Result<Reply>> execute_from(const Command& cmd, std::optional<Target> first,
                                        Millis timeout = Millis(0));
  void request_refresh();  // rate-limited, in the background
  Awaitable<void> periodic_refresh();
  void apply_moved(uint16_t slot, const std::string& address);

  Connection::Executor ex_;
  ClientOptions options_;
  std::vector<ConnectionOptions> seeds_;
  ConnectionOptions node_template_;
  std::map<std::string, std::shared_ptr<Connection>> nodes_;
  PushHandler on_push_;
  DisconnectHandler on_disconnect_;
  SlotMap map_;
  bool refreshing_ = false;
  bool stopped_ = false;
  bool started_ = false;
  std::chrono::steady_clock::time_point last_refresh_{};
  boost::asio::steady_timer refresh_done_;
  boost::asio::steady_timer periodic_;
  std::shared_ptr<bool> alive_;
  std::optional<Error> last_refresh_error_;
  uint64_t refreshes_ = 0;
  uint64_t redirects_ = 0;
  size_t rr_ = 0;
};

}  // namespace redline::redis
