// One multiplexed, automatically pipelined connection to one Redis node, living on the
// caller's io_context thread: commands from any number of coroutines are queued, leave in one
// write per loop turn, and replies are matched FIFO. It reconnects on its own with capped,
// jittered backoff. It does not route keys (cluster.h) and is not thread-safe: use one
// Connection per node per thread and call it only from its executor's thread.
#pragma once

#include <atomic>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "redis/resp3.h"
#include "redis/result.h"

namespace redline::redis {

template <typename T>
using Awaitable = boost::asio::awaitable<T>;
using Millis = std::chrono::milliseconds;

// Everything needed to reach and set up one node. Defaults are safe for a gateway.
struct ConnectionOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 6379;
  std::string user;      // ACL user; empty = "default"
  std::string password;  // AUTH; empty = no AUTH
  int db = 0;            // SELECT when non-zero (standalone only)
  bool tls = false;      // rediss://
  std::string ca_file;   // PEM CA bundle for TLS; empty = system trust store
  bool verify_peer = true;
  std::string client_name;  // CLIENT SETNAME (inside HELLO when RESP3)
  bool readonly = false;    // send READONLY after connecting (cluster replica reads)
  int protocol = 3;         // 3: HELLO 3, falling back to RESP2 if refused; 2: never HELLO
  // Sent after every (re)connect, e.g. CLIENT TRACKING ON for client-side caching.
  std::vector<Command> init_commands;

  Millis connect_timeout{1000};  // TCP + TLS + handshake
  Millis command_timeout{1000};  // default per-command deadline
  size_t max_queue = 65536;      // commands queued or awaiting a reply; beyond: kQueueFull
  // A command still unanswered after this long means the peer is gone without a reset (a
  // partition, a hung server): the connection is dropped and rebuilt. 0 = never.
  Millis stall_reset{5000};
  Millis reconnect_min{20};    // backoff starts here, doubles per failed attempt ...
  Millis reconnect_max{2000};  // ... up to this, with jitter
  ParserLimits limits;
};

// redis://[user:pass@]host[:port][/db] and rediss://... ("redis://:pass@h" = password only,
// "redis://pass@h" = password only too). Percent-escapes in user and password are decoded.
Result<ConnectionOptions> parse_url(std::string_view url, ConnectionOptions base = {});

// Counters a caller can read to measure round trips and batching.
struct ConnectionStats {
  uint64_t writes = 0;         // write syscalls (write_some calls)
  uint64_t commands_sent = 0;  // commands handed to the socket
  uint64_t replies = 0;        // replies matched to commands
  uint64_t pushes = 0;         // RESP3 push messages delivered to the push handler
  uint64_t timeouts = 0;       // commands that missed their deadline
  uint64_t discarded = 0;      // late replies of timed-out commands, consumed and dropped
  uint64_t connects = 0;       // successful (re)connects
  uint64_t connect_failures = 0;
  uint64_t disconnects = 0;
};

// The same events summed over every connection of the process, readable from any thread
// (the metrics scrape): redline_redis_* in docs/operations.md. Updated once per event or per
// write syscall (never per command), so the cost stays off the per-command path.
struct ProcessRedisStats {
  std::atomic<uint64_t> writes{0};
  std::atomic<uint64_t> commands_sent{0};
  std::atomic<uint64_t> timeouts{0};
  std::atomic<uint64_t> server_errors{0};  // error replies (-ERR, -MOVED, ...)
  std::atomic<uint64_t> connects{0};
  std::atomic<uint64_t> connect_failures{0};
  std::atomic<uint64_t> disconnects{0};
  std::atomic<int64_t> connections{0};  // ready right now
};
ProcessRedisStats& process_stats();

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Executor = boost::asio::any_io_executor;
  enum class State { kIdle, kConnecting, kReady, kBackoff, kStopped };

  static std::shared_ptr<Connection> create(Executor ex, ConnectionOptions options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts connecting in the background (also done lazily by the first command).
  void start();
  // Waits until the connection is ready, or the current attempt fails (its error).
  Awaitable<Result<void>> connect();
  // Closes the socket, fails everything queued with kStopped and stops reconnecting. The
  // background coroutines hold a reference, so call stop() before dropping the last pointer.
  void stop();

  // Sends one command and waits for its reply. An error reply becomes kServerError.
  // While the connection is backing off after a failure, fails fast with kNotConnected.
  Awaitable<Result<Reply>> execute(const Command& cmd);
  Awaitable<Result<Reply>> execute(const Command& cmd, Millis timeout);
  // Sends commands back to back (nothing interleaves) and returns one result per command.
  Awaitable<std::vector<Result<Reply>>> batch(std::span<const Command> cmds);
  Awaitable<std::vector<Result<Reply>>> batch(std::span<const Command> cmds, Millis timeout);
  // The same for commands that are not contiguous (e.g. one node's share of a cluster batch).
  Awaitable<std::vector<Result<Reply>>> batch(std::span<const Command* const> cmds, Millis timeout);

  // RESP3 push messages (e.g. client-side caching invalidations); never matched to commands.
  void on_push(std::function<void(const Reply&)> handler) { on_push_ = std::move(handler); }
  // Called when an established connection drops: pushes (invalidations) may have been missed.
  void on_disconnect(std::function<void(const Error&)> handler) {
    on_disconnect_ = std::move(handler);
  }

  State state() const { return state_; }
  int protocol() const { return protocol_; }  // 3 or 2 once connected
  const ConnectionStats& stats() const { return stats_; }
  size_t queued() const { return queued_; }  // commands awaiting a reply
  const ConnectionOptions& options() const { return options_; }
  std::string address() const;
  const std::optional<Error>& last_error() const { return last_error_; }

 private:
  struct Transport;
  struct Pending;

  Connection(Executor ex, ConnectionOptions options);
  Awaitable<void> run();
  Awaitable<Result<void>> open(std::shared_ptr<Transport> t);
  Awaitable<Result<Reply>> roundtrip(Transport& t, const Command& cmd);
  Awaitable<void> reader(std::shared_ptr<Transport> t, uint64_t gen);
  Awaitable<void> writer(std::shared_ptr<Transport> t, uint64_t gen);
  Awaitable<std::vector<Result<Reply>>> submit(std::span<const Command* const> cmds,
                                               Millis timeout);
  // Reads into rbuf_ and parses until one reply is complete (handshake) or feeds dispatch().
  // Takes the reply from where the parser built it (moved into the waiter, or shown to the
  // push handler in place).
  bool dispatch(Reply& reply);
  void fail_connection(const Error& error);
  void fail_queued(const Error& error);
  void notify_state(State s);
  Millis next_backoff();

  Executor ex_;
  ConnectionOptions options_;
  std::shared_ptr<boost::asio::ssl::context> tls_ctx_;
  std::shared_ptr<Transport> transport_;
  State state_ = State::kIdle;
  uint64_t generation_ = 0;
  int protocol_ = 0;
  int attempt_ = 0;

  // Outgoing bytes not yet handed to the socket, and how many commands they hold.
  std::string wbuf_;
  size_t wbuf_commands_ = 0;
  bool writer_idle_ = false;
  boost::asio::steady_timer writer_wake_;
  boost::asio::steady_timer state_changed_;  // cancelled on every state change
  boost::asio::steady_timer down_;           // cancelled when the live connection fails
  boost::asio::steady_timer backoff_;

  // Commands in FIFO order of their replies (queued or written).
  std::deque<std::shared_ptr<Pending>> inflight_;
  size_t queued_ = 0;

  // Read side.
  std::vector<char> rbuf_;
  size_t rpos_ = 0, rend_ = 0;
  Parser parser_;

  std::function<void(const Reply&)> on_push_;
  std::function<void(const Error&)> on_disconnect_;
  std::optional<Error> last_error_;
  std::optional<Error> tls_setup_error_;
  ConnectionStats stats_;
  std::minstd_rand rng_;
};

}  // namespace redline::redis
