// The outbound HTTP/1.1 client to providers: per-thread keep-alive pools per endpoint,
// TLS with SNI and certificate + host name verification (system CA store plus an
// optional CA file), and connect / first-byte / idle-between-chunks / total deadlines
// (coarse: common/deadlines.h, one timer per thread, up to 100 ms late).
// It reads a response incrementally so SSE can be forwarded as it arrives. Retries and
// fallbacks are policy and live in the proxy, not here.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "common/deadlines.h"
#include "common/interrupt.h"
#include "config/config.h"

namespace redline::upstream {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// Where a provider lives, parsed once from its base_url.
struct Endpoint {
  bool tls = false;
  std::string host;
  uint16_t port = 0;
  std::string base_path;  // without trailing '/'; "" or "/v1"
  std::string host_header;
  static Endpoint parse(const std::string& url);  // throws std::invalid_argument
};

// One provider's connection settings, built at start-up and shared read-only by threads.
struct Target {
  std::size_t index = 0;  // dense id, selects the per-thread pool
  Endpoint endpoint;
  std::shared_ptr<ssl::context> tls;  // null for http://
  config::UpstreamTimeouts timeouts;
  std::size_t max_idle = 64;
  static std::shared_ptr<ssl::context> make_tls_context(const std::string& ca_file, bool verify);
};

// Every way an exchange can fail, named once for the proxy's status mapping and metrics.
enum class Failure {
  kNone,
  kResolve,          // DNS
  kConnect,          // refused, unreachable
  kTls,              // handshake or certificate verification
  kConnectTimeout,
  kFirstByteTimeout, // request sent, no response header in time
  kIdleTimeout,      // no body bytes in time
  kDeadline,         // total deadline passed
  kConnectionLost,   // reset or closed mid-response
  kProtocol,         // unparseable response
  kCancelled,
};
std::string_view failure_name(Failure f);
// Failures that happened before the provider could have seen the request body.
bool failure_before_send(Failure f);

struct UpstreamRequest {
  bhttp::verb method = bhttp::verb::post;
  std::string target;  // path + query, base_path already prepended
  // The header lines as they go on the wire, "Name: value\r\n" each, without Host,
  // Content-Length and Transfer-Encoding (the client writes those). One flat string: no
  // allocation per field.
  std::string header_lines;
  // The body sent: a view of body_storage or of a buffer that outlives the exchange.
  std::string_view body;
  std::string body_storage;

  void add_header(std::string_view name, std::string_view value) {
    using namespace std::string_view_literals;
    header_lines.append(name);
    header_lines += ": "sv;
    header_lines.append(value);
    header_lines += "\r\n"sv;
  }
  void own_body(std::string b) {
    body_storage = std::move(b);
    body = body_storage;
  }
};

class Conn;

// A response being received. Read the header fields, then body chunks until done().
// Destroying it returns the connection to the pool only if the response was read whole
// and both sides allow keep-alive; otherwise the connection is closed.
class Exchange {
 public:
  Exchange(std::unique_ptr<Conn> conn, class HttpClient& client, Clock::time_point deadline);
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  int status() const;
  const bhttp::fields& headers() const;

  // Next body bytes (a view valid until the next call); empty with done()==true at the
  // end, empty with failure()!=kNone on error.
  asio::awaitable<std::string_view> next_chunk();
  // Like next_chunk(), but only from bytes already received (no I/O, no wait): empty when
  // none are buffered or the buffered ones hold no body bytes yet.
  std::string_view buffered_chunk();
  // True when received bytes wait unparsed (buffered_chunk() may have body bytes): lets a
  // caller keep a chunk's view without copying it when nothing else arrived with it.
  bool has_buffered() const;
  // Reads the rest of the body into `out`; false on failure or when over max_bytes.
  // `stop` fired meanwhile cancels the read (failure() == kCancelled).
  asio::awaitable<bool> read_all(std::string& out, std::size_t max_bytes,
                                 common::Interrupt* stop = nullptr);
  bool done() const;
  Failure failure() const { return failure_; }
  // Closes the connection now (client went away); the exchange is unusable afterwards.
  void abort();

 private:
  std::unique_ptr<Conn> conn_;
  HttpClient& client_;
  Clock::time_point deadline_;
  Failure failure_ = Failure::kNone;
};

struct SendResult {
  std::unique_ptr<Exchange> exchange;  // set on success (any HTTP status)
  Failure failure = Failure::kNone;
  std::string detail;  // human-readable cause for logs and error bodies
};

// Called once, right before send() first waits: for the connect, or for the provider's
// answer once the request is written (or for room to write the rest of it). The caller
// starts watching its client there, so that set-up is not on the way to the provider.
// When `stop` has fired by the time it returns, send() ends with Failure::kCancelled.
struct BeforeWait {
  void (*fn)(void* context) = nullptr;
  void* context = nullptr;
  void operator()() {
    if (fn != nullptr) std::exchange(fn, nullptr)(context);
  }
};

// Per-thread client. Not thread-safe: one per io_context, used only on that thread.
class HttpClient {
 public:
  explicit HttpClient(asio::io_context& ioc);
  ~HttpClient();

  // Sends `request` and reads the response header. `deadline` bounds the whole exchange;
  // `stop` fired meanwhile (the client left) cancels it with Failure::kCancelled;
  // `before_wait` (optional) is called once, before the first wait.
  asio::awaitable<SendResult> send(const Target& target, UpstreamRequest& request,
                                   Clock::time_point deadline,
                                   common::Interrupt* stop = nullptr,
                                   BeforeWait* before_wait = nullptr);

  std::size_t idle_connections() const;
  // Closes idle connections; later releases close instead of pooling. Call before the
  // io_context is destroyed.
  void shutdown();
  std::uint64_t connections_opened() const { return opened_; }

 private:
  friend class Exchange;
  asio::awaitable<SendResult> send_on(std::unique_ptr<Conn> conn, const Target& target,
                                      UpstreamRequest& request, Clock::time_point deadline,
                                      common::Interrupt* stop, BeforeWait* before_wait);
  asio::awaitable<std::unique_ptr<Conn>> connect(const Target& target,
                                                 Clock::time_point deadline, Failure& failure,
                                                 std::string& detail, common::Interrupt* stop);
  std::unique_ptr<Conn> take_idle(const Target& target);
  void release(std::unique_ptr<Conn> conn);

  asio::io_context& ioc_;
  // Deadlines of this thread's connections (declared before them: it outlives them).
  common::DeadlineSet deadlines_;
  std::vector<std::deque<std::unique_ptr<Conn>>> idle_;  // by Target::index
  std::uint64_t opened_ = 0;
  bool shut_down_ = false;
};

}  // namespace redline::upstream
