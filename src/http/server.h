// The client-facing HTTP/1.1 server: one acceptor per io_context thread on a shared
// SO_REUSEPORT port, one coroutine per connection, keep-alive, pipelined requests answered
// in order, chunked request bodies, `Expect: 100-continue`, and every limit from
// config::HttpLimits answered with its own status and an OpenAI-shaped error body.
// What a request means is not decided here: that is the Handler's job (src/proxy/).
#pragma once

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <string_view>
#include <vector>

#include "common/interrupt.h"
#include "config/config.h"
#include "http/request_guard.h"

namespace redline::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

using Request = bhttp::request<bhttp::string_body>;
using Response = bhttp::response<bhttp::string_body>;
using ResponseHeader = bhttp::response_header<>;

class Connection;

// One request and the means to answer it. Handlers answer exactly once: either
// respond(), or begin_stream() + write_chunk()* + end_stream(). Every call returns false
// once the client is gone; the handler should then stop its work.
class Exchange {
 public:
  Exchange(Connection& conn, Request& request) : conn_(conn), request_(request) {}

  Request& request() { return request_; }
  const std::string& peer_ip() const;
  // The client's address: peer_ip(), or from X-Forwarded-For / X-Real-IP when the peer is
  // one of `trusted_proxies` (see resolve_client_ip in request_guard.h). Computed once.
  const std::string& client_ip() const;
  // Which of the server's threads (0..threads-1) runs this request.
  std::size_t thread_index() const;

  asio::awaitable<bool> respond(Response& response);
  // An OpenAI-shaped error: {"error":{"message","type","code"}}.
  asio::awaitable<bool> respond_error(int status, std::string_view message,
                                      std::string_view code = {},
                                      std::string_view retry_after = {});

  asio::awaitable<bool> begin_stream(ResponseHeader& header);
  // begin_stream() and write_chunk(first) in one gather write: the client gets the header
  // and the first body bytes in one segment (one wakeup instead of two).
  asio::awaitable<bool> begin_stream(ResponseHeader& header, std::string_view first);
  asio::awaitable<bool> write_chunk(std::string_view data);
  asio::awaitable<bool> end_stream();

  // A header added to every response of this exchange (e.g. x-request-id).
  void add_response_header(std::string name, std::string value) {
    extra_headers_.emplace_back(std::move(name), std::move(value));
  }

  bool responded() const { return status_ != 0; }
  bool streaming() const { return streaming_; }
  int status() const { return status_; }
  std::size_t body_bytes_sent() const { return body_bytes_sent_; }
  // True once a write to the client failed or the client closed its side.
  bool client_gone() const;
  // Until the returned guard is destroyed, calls stop.fire() (on this thread) when the
  // client closes or resets the connection; client_gone() is then true. Nothing is read:
  // one readiness wait on the socket, no coroutine. A client that sends more meanwhile (a
  // pipelined request) is no longer watched. Only while no response bytes are being
  // written; one watch per connection at a time.
  common::WatchGuard watch_client(common::Interrupt& stop);

 private:
  // Version, Connection: close when closing, the status; `extras_into_fields`: also set the
  // exchange's own headers into `header` (for Beast's serializer; the flat writers append
  // them instead).
  void prepare(ResponseHeader& header, bool extras_into_fields = true);

  Connection& conn_;
  Request& request_;
  int status_ = 0;
  bool streaming_ = false;
  std::size_t body_bytes_sent_ = 0;
  std::vector<std::pair<std::string, std::string>> extra_headers_;
  mutable std::optional<std::string> client_ip_;
};

// The OpenAI-shaped error response ({"error":{"message","type","code"}}) respond_error sends.
Response error_response(int status, std::string_view message, std::string_view code = {},
                        std::string_view retry_after = {});

class Handler {
 public:
  virtual ~Handler() = default;
  virtual asio::awaitable<void> handle(Exchange& exchange) = 0;
};

// Counters read by /metrics and by drain. Shared by all threads (relaxed atomics; they
// are bumped once per connection or request, not per byte).
struct ServerStats {
  std::atomic<std::int64_t> connections{0};
  std::atomic<std::int64_t> requests_in_flight{0};
  std::atomic<std::uint64_t> connections_total{0};
  std::atomic<std::uint64_t> connections_rejected{0};
  std::atomic<std::uint64_t> requests_total{0};
  std::atomic<std::uint64_t> limit_rejections{0};
};

class Server {
 public:
  // `contexts`: one per thread; each gets its own acceptor on the same port.
  Server(std::string name, const config::HostPort& listen, const config::HttpLimits& limits,
         Handler& handler, std::vector<asio::io_context*> contexts);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds every acceptor (throws std::system_error naming the address on failure) and
  // starts accepting. With port 0 the first acceptor picks the port, the others share it.
  void start();
  uint16_t port() const { return port_; }

  // Stops accepting and closes idle keep-alive connections; requests in flight finish
  // and their connections close after the response. Safe to call from any thread.
  void drain();
  bool draining() const { return draining_.load(std::memory_order_relaxed); }

  // Destroys the acceptors. Call after the threads stopped, before the io_contexts die.
  void close_io();

  const ServerStats& stats() const { return stats_; }
  // Open connections counted against max_connections_per_ip for this peer address.
  std::size_t connections_from(const std::string& ip) const;
  const config::HttpLimits& limits() const { return limits_; }

 private:
  friend class Connection;
  friend class Exchange;
  struct PerThread;
  asio::awaitable<void> accept_loop(PerThread& pt);
  // Counts conn against max_connections_per_ip; false when its address is at the cap.
  bool admit_ip(Connection& conn);
  void release_ip(const std::string& ip);

  std::string name_;
  config::HostPort listen_;
  config::HttpLimits limits_;
  Handler& handler_;
  std::vector<std::unique_ptr<PerThread>> threads_;
  uint16_t port_ = 0;
  std::atomic<bool> draining_{false};
  ServerStats stats_;
  TrustedProxies trusted_;
  mutable std::mutex ip_mutex_;
  std::unordered_map<std::string, std::size_t> per_ip_;  // open connections per peer address
};

}  // namespace redline::http
