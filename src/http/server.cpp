// HTTP/1.1 server implementation (see server.h). Each connection is one coroutine that
// reads a request, hands it to the Handler, writes the answer, and loops for keep-alive.
// Timeouts use a per-connection deadline (common/deadlines.h: one timer per thread serves
// them all, so arming one per read or write costs no syscall) that cancels the socket's
// pending operation, so the connection is still open afterwards and can carry a 408
// before it closes.
#include "http/server.h"

#include <boost/beast/core.hpp>
#include <spdlog/spdlog.h>

#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <unordered_set>

#include "common/deadlines.h"
#include "common/error_body.h"
#include "common/write_now.h"
#include "http/request_reader.h"

namespace redline::http {

using namespace std::string_view_literals;  // "..."sv appends: no strlen at run time

namespace {
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadChunk = 16 * 1024;  // keep-alive wait and read-ahead

// An address as text, once per connection. IPv4 by hand (to_chars per byte): neither
// inet_ntop's printf nor fmt's formatter, whose code is cold when a connection arrives after
// an idle period. Connection's constructor, timed with TSC probes over 960 streams on new
// connections 5 ms apart: median 4.9 us with fmt::format, 2.1 us without.
std::string address_text(const asio::ip::address& a) {
  if (!a.is_v4()) return a.to_string();
  const auto b = a.to_v4().to_bytes();
  std::string text;  // at most 15 characters: no allocation (short string)
  text.reserve(15);
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (i > 0) text += '.';
    char digits[3];
    const auto r = std::to_chars(digits, digits + sizeof digits, b[i]);
    text.append(digits, r.ptr);
  }
  return text;
}
}  // namespace

struct Server::PerThread {
  PerThread(asio::io_context& c, std::size_t i)
      : ioc(c), index(i), acceptor(std::in_place, c), deadlines(c.get_executor()) {}
  asio::io_context& ioc;
  std::size_t index;
  std::optional<tcp::acceptor> acceptor;
  common::DeadlineSet deadlines;
  std::unordered_set<Connection*> connections;  // touched only on this thread
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // `peer`: the address accept() returned (no getpeername).
  Connection(Server& server, Server::PerThread& pt, tcp::socket socket, const tcp::endpoint& peer)
      : server_(server),
        pt_(pt),
        socket_(std::move(socket)),
        deadline_(pt.deadlines, &Connection::on_deadline, this),
        watch_start_(pt.deadlines, &Connection::on_watch_start, this),
        peer_ip_(address_text(peer.address())) {
    // TCP_NODELAY comes from the listening socket (Linux copies it to accepted sockets).
    pt_.connections.insert(this);
    server_.stats_.connections.fetch_add(1, std::memory_order_relaxed);
    server_.stats_.connections_total.fetch_add(1, std::memory_order_relaxed);
  }
  ~Connection() {
    if (ip_counted_) server_.release_ip(peer_ip_);
    pt_.connections.erase(this);
    server_.stats_.connections.fetch_sub(1, std::memory_order_relaxed);
  }

  asio::awaitable<void> run();

  // Called on this connection's thread by Server::drain().
  void on_drain() {
    if (idle_) {
      beast::error_code ec;
      socket_.cancel(ec);
    }
  }

  // Arms the connection deadline: when it passes, the pending socket operation is
  // cancelled and timed_out_ is set. disarm() before the deadline means it never fires.
  void arm(config::Millis d) {
    timed_out_ = false;
    deadline_.arm(d);
  }
  void disarm() { deadline_.disarm(); }
  static void on_deadline(void* self) {
    auto* c = static_cast<Connection*>(self);
    c->timed_out_ = true;
    beast::error_code ignored;
    c->socket_.cancel(ignored);
  }
  bool timed_out() const { return timed_out_; }

  // The client watch (Exchange::watch_client). A readiness wait on the socket, bound to
  // its own cancellation signal so ending the watch cancels that wait alone. Arming it
  // re-registers the socket with epoll (asio's EPOLL_CTL_MOD for a non-speculative wait),
  // which reports a FIN or RST that arrived earlier as well. The wait starts only once the
  // watch has lasted kWatchDelay (a Deadline of the thread's set: no syscall to arm or
  // disarm): an answer that comes sooner, such as every cache-speed or local provider's,
  // costs neither that registration nor the cancelled wait's trip through the event loop,
  // and a client that leaves is noticed at most kWatchDelay plus the set's granularity late.
  static constexpr std::chrono::milliseconds kWatchDelay{50};
  void watch(common::Interrupt& stop) {
    watch_stop_ = &stop;
    ++watch_generation_;
    watch_start_.arm(kWatchDelay);
  }
  static void on_watch_start(void* self) {
    auto* c = static_cast<Connection*>(self);
    if (c->watch_stop_ != nullptr && !c->watch_waiting_) c->start_watch_wait();
  }
  static void end_watch(void* self) {
    auto* c = static_cast<Connection*>(self);
    c->watch_start_.disarm();
    c->watch_stop_ = nullptr;
    ++c->watch_generation_;
    if (c->watch_waiting_) {
      c->watch_waiting_ = false;
      c->watch_cancel_.emit(asio::cancellation_type::terminal);
    }
  }
  void start_watch_wait() {
    watch_waiting_ = true;
    socket_.async_wait(
        tcp::socket::wait_read,
        asio::bind_cancellation_slot(
            watch_cancel_.slot(),
            [self = shared_from_this(), generation = watch_generation_](beast::error_code ec) {
              self->on_watch(ec, generation);
            }));
  }
  void on_watch(beast::error_code ec, std::uint64_t generation) {
    if (ec == asio::error::operation_aborted || generation != watch_generation_ ||
        watch_stop_ == nullptr) {
      return;  // ended (or a deadline/drain cancelled the socket's operations)
    }
    watch_waiting_ = false;
    // Readable: closed (FIN), reset, or more bytes (a pipelined request).
    pollfd p{socket_.native_handle(), POLLIN | POLLRDHUP, 0};
    const bool closed =
        ec || (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0);
    if (!closed) return;  // bytes to read: the next request's; stop watching
    gone_ = true;
    auto* stop = std::exchange(watch_stop_, nullptr);
    stop->fire();
  }

  // A whole answer (`now` false) goes through async_write: its completion comes back
  // through the event loop, so after writing it the connection lets the thread's other
  // ready connections write theirs before doing its bookkeeping (metrics, logs, settle).
  // Writing it with common::write_now and carrying on measured a worse p99 for L1 hits at
  // 32 connections (0.68-0.80 vs 0.57-0.67 ms) for +3 % req/s. Stream writes (`now` true:
  // the header and first event, each later event) take what the socket takes at once and
  // wait only for the rest: between events there is little bookkeeping, and the first
  // event reached clients earlier that way (time to first event, focus A/B: 98/99 vs
  // 108/112 us added).
  template <class Buffers>
  asio::awaitable<bool> write_buffers(const Buffers& buffers, bool now = false) {
    if (gone_) co_return false;
    std::size_t sent = 0;
    if (now) {
      beast::error_code ec;
      sent = common::write_now(socket_, buffers, ec);
      if (ec) {
        gone_ = true;
        co_return false;
      }
      if (sent == asio::buffer_size(buffers)) co_return true;
    }
    beast::buffers_suffix<Buffers> rest(buffers);
    rest.consume(sent);
    arm(server_.limits_.send_timeout);
    auto [ec, n] = co_await asio::async_write(socket_, rest, use_nothrow);
    disarm();
    if (ec) gone_ = true;
    co_return !ec;
  }

  // Answers a protocol-level failure (408, 413, 431, 400) and marks the connection to close.
  asio::awaitable<void> reject(int status, std::string_view message, std::string_view code) {
    keep_alive_ = false;
    server_.stats_.limit_rejections.fetch_add(1, std::memory_order_relaxed);
    Request dummy;
    Exchange ex(*this, dummy);
    co_await ex.respond_error(status, message, code);
  }

  Server& server_;
  Server::PerThread& pt_;
  tcp::socket socket_;
  common::Deadline deadline_;
  common::Deadline watch_start_;  // the client watch's wait starts when it passes
  beast::flat_buffer buffer_;
  std::string peer_ip_;
  bool timed_out_ = false;
  bool idle_ = false;
  bool keep_alive_ = true;
  bool gone_ = false;
  bool ip_counted_ = false;  // counted in Server::per_ip_
  common::Interrupt* watch_stop_ = nullptr;
  std::uint64_t watch_generation_ = 0;
  bool watch_waiting_ = false;
  asio::cancellation_signal watch_cancel_;
};

asio::awaitable<void> Connection::run() {
  auto self = shared_from_this();
  const auto& limits = server_.limits_;
  {
    // A new connection's first request is usually there already (clients write it right
    // after connecting): read it now, without a trip through the event loop.
    // MSG_DONTWAIT: no ioctl to switch the socket's mode (asio does it when it first waits).
    const auto into = buffer_.prepare(kReadChunk);
    ssize_t n;
    do {
      n = ::recv(socket_.native_handle(), into.data(), into.size(), MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0) buffer_.commit(static_cast<std::size_t>(n));
    // Nothing yet (EAGAIN): the loop waits as for any keep-alive request; an error (a reset)
    // or the end of the stream shows again on that read.
  }
  unsigned without_wait = 0;  // requests served from the buffer since the last socket wait
  while (true) {
    // Keep-alive wait for the first byte of the next request (pipelined bytes skip it).
    if (buffer_.size() == 0) {
      if (server_.draining()) break;
      idle_ = true;
      arm(limits.idle_timeout);
      auto [ec, n] = co_await socket_.async_read_some(buffer_.prepare(kReadChunk), use_nothrow);
      disarm();
      idle_ = false;
      if (ec) break;  // closed, idle timeout or drain: close quietly
      buffer_.commit(n);
      without_wait = 0;
    } else if (++without_wait % 32 == 0) {
      // Pipelined requests answered from L1 may never wait (writes rarely do): let the
      // thread's other connections run now and then.
      co_await asio::post(socket_.get_executor(), asio::use_awaitable);
    }

    Request request;
    auto outcome = co_await read_request(socket_, buffer_, limits, request, *this);
    if (outcome.kind == ReadOutcome::Kind::kReject) {
      co_await reject(outcome.status, outcome.message, outcome.code);
      break;
    }
    if (outcome.kind == ReadOutcome::Kind::kClose) break;

    keep_alive_ = request.keep_alive() && !server_.draining();
    server_.stats_.requests_total.fetch_add(1, std::memory_order_relaxed);
    server_.stats_.requests_in_flight.fetch_add(1, std::memory_order_relaxed);
    Exchange exchange(*this, request);
    try {
      co_await server_.handler_.handle(exchange);
    } catch (const std::exception& e) {
      spdlog::error("{}: handler failed: {}", server_.name_, e.what());
    }
    if (!exchange.responded() && !gone_) {
      co_await exchange.respond_error(500, "internal error: no response produced", "internal");
    }
    server_.stats_.requests_in_flight.fetch_sub(1, std::memory_order_relaxed);
    if (!keep_alive_ || gone_ || server_.draining()) break;
  }
  beast::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  socket_.close(ec);
}

const std::string& Exchange::peer_ip() const { return conn_.peer_ip_; }

const std::string& Exchange::client_ip() const {
  if (!client_ip_) {
    client_ip_ = resolve_client_ip(conn_.peer_ip_, request_.base(), conn_.server_.trusted_);
  }
  return *client_ip_;
}

common::WatchGuard Exchange::watch_client(common::Interrupt& stop) {
  if (conn_.gone_) {
    stop.fire();
    return {};
  }
  conn_.watch(stop);
  return {&Connection::end_watch, &conn_};
}

bool Exchange::client_gone() const { return conn_.gone_; }

std::size_t Exchange::thread_index() const { return conn_.pt_.index; }

void Exchange::prepare(ResponseHeader& header, bool extras_into_fields) {
  header.version(11);
  if (conn_.server_.draining()) conn_.keep_alive_ = false;
  if (!conn_.keep_alive_) header.set(bhttp::field::connection, "close");
  if (extras_into_fields) {
    for (const auto& [k, v] : extra_headers_) header.set(k, v);
  }
  status_ = static_cast<int>(header.result_int());
}

namespace {
using Extras = std::vector<std::pair<std::string, std::string>>;

bool named_in(std::string_view name, const Extras& extras, std::size_t from = 0) {
  for (std::size_t i = from; i < extras.size(); ++i) {
    if (beast::iequals(name, extras[i].first)) return true;
  }
  return false;
}

// The status line and fields as Beast's serializer writes them (HTTP/1.1, the stored
// reason or the standard one), then the exchange's own headers, which replace fields of the
// same name as header.set() would (written here instead of inserted: no allocation per
// field), and the blank line.
// The body's framing, for a header without Content-Length or Transfer-Encoding: written
// after the fields as Beast's serializer would write them after message::chunked(true)
// (`Transfer-Encoding: chunked`) or prepare_payload() (`Content-Length: n`), which append the
// field last, without changing the fields.
struct Framing {
  enum Kind { kAsIs, kChunked, kLength } kind = kAsIs;
  std::size_t length = 0;
};

void append_head(std::string& out, const ResponseHeader& h, const Extras& extras,
                 Framing framing = {}) {
  const bool chunked = framing.kind == Framing::kChunked;
  out += "HTTP/1.1 "sv;
  char code[12];
  const auto [code_end, ec] = std::to_chars(code, code + sizeof code, h.result_int());
  out.append(code, code_end);
  out += ' ';
  const auto reason = h.reason();
  out += reason.empty() ? bhttp::obsolete_reason(static_cast<bhttp::status>(h.result_int()))
                        : reason;
  out += "\r\n"sv;
  for (const auto& f : h) {
    if (chunked && f.name() == bhttp::field::content_length) continue;
    const auto name = f.name_string();
    if (!extras.empty() && named_in(std::string_view(name.data(), name.size()), extras)) continue;
    out.append(name.data(), name.size());
    out += ": "sv;
    out.append(f.value().data(), f.value().size());
    out += "\r\n"sv;
  }
  if (chunked) {
    out += "Transfer-Encoding: chunked\r\n"sv;
  } else if (framing.kind == Framing::kLength) {
    out += "Content-Length: "sv;
    char digits[24];
    const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, framing.length);
    out.append(digits, end);
    out += "\r\n"sv;
  }
  for (std::size_t i = 0; i < extras.size(); ++i) {
    if (named_in(extras[i].first, extras, i + 1)) continue;  // set twice: the last one wins
    out += extras[i].first;
    out += ": "sv;
    out += extras[i].second;
    out += "\r\n"sv;
  }
  out += "\r\n"sv;
}
}  // namespace

asio::awaitable<bool> Exchange::respond(Response& response) {
  prepare(response.base(), false);
  body_bytes_sent_ = response.body().size();
  // One flat head and the body in one gather write (no Beast serializer). The usual answer
  // has no framing fields yet (providers' are dropped): its Content-Length is written, not
  // set. Others take prepare_payload() (which also refuses a body on 1xx, 204 and 304).
  std::string head;
  head.reserve(512);
  const int status = response.result_int();
  if (status >= 200 && status != 204 && status != 304 &&
      response.find(bhttp::field::content_length) == response.end() &&
      response.find(bhttp::field::transfer_encoding) == response.end()) {
    append_head(head, response.base(), extra_headers_,
                Framing{Framing::kLength, response.body().size()});
  } else {
    response.prepare_payload();
    append_head(head, response.base(), extra_headers_);
  }
  const std::array<asio::const_buffer, 2> wire{asio::buffer(head),
                                               asio::buffer(response.body())};
  co_return co_await conn_.write_buffers(wire);
}

asio::awaitable<bool> Exchange::respond_error(int status, std::string_view message,
                                              std::string_view code,
                                              std::string_view retry_after) {
  Response res = error_response(status, message, code, retry_after);
  co_return co_await respond(res);
}

Response error_response(int status, std::string_view message, std::string_view code,
                        std::string_view retry_after) {
  Response res{static_cast<bhttp::status>(status), 11};
  res.set(bhttp::field::content_type, "application/json");
  if (!retry_after.empty()) res.set(bhttp::field::retry_after, retry_after);
  res.body() = openai_error_body(message, error_type_for_status(status), code);
  return res;
}

asio::awaitable<bool> Exchange::begin_stream(ResponseHeader& header) {
  co_return co_await begin_stream(header, std::string_view{});
}

asio::awaitable<bool> Exchange::begin_stream(ResponseHeader& header, std::string_view first) {
  prepare(header, false);
  streaming_ = true;
  // The same bytes Beast's serializer writes for the header after chunked(true), then the
  // chunk's size line. Without a Transfer-Encoding (providers' are dropped) the framing is
  // written, not set in the fields.
  std::string head;
  head.reserve(512);
  if (header.find(bhttp::field::transfer_encoding) == header.end()) {
    append_head(head, header, extra_headers_, Framing{Framing::kChunked});
  } else {
    bhttp::response<bhttp::empty_body> res(std::move(header));
    res.chunked(true);
    append_head(head, res.base(), extra_headers_);
  }
  if (first.empty()) co_return co_await conn_.write_buffers(asio::buffer(head), true);
  char size[2 * sizeof(std::size_t) + 1];
  const auto [end, ec] = std::to_chars(size, size + sizeof size, first.size(), 16);
  head.append(size, end);
  head += "\r\n"sv;
  static constexpr std::string_view kCrlf = "\r\n";
  body_bytes_sent_ += first.size();
  const std::array<asio::const_buffer, 3> buffers{asio::buffer(head), asio::buffer(first),
                                                  asio::buffer(kCrlf)};
  co_return co_await conn_.write_buffers(buffers, true);
}

// A chunk is framed here as three buffers (size line, data, CRLF): the bytes Beast's
// make_chunk writes, without walking its seven-part buffers_cat_view per event.
asio::awaitable<bool> Exchange::write_chunk(std::string_view data) {
  if (data.empty()) co_return !conn_.gone_;
  body_bytes_sent_ += data.size();
  char size[2 * sizeof(std::size_t) + 2];
  auto [end, ec] = std::to_chars(size, size + sizeof size - 2, data.size(), 16);
  *end++ = '\r';
  *end++ = '\n';
  static constexpr std::string_view kCrlf = "\r\n";
  const std::array<asio::const_buffer, 3> buffers{
      asio::buffer(size, static_cast<std::size_t>(end - size)), asio::buffer(data),
      asio::buffer(kCrlf)};
  co_return co_await conn_.write_buffers(buffers, true);
}

asio::awaitable<bool> Exchange::end_stream() {
  static constexpr std::string_view kLastChunk = "0\r\n\r\n";
  co_return co_await conn_.write_buffers(asio::buffer(kLastChunk), true);
}

Server::Server(std::string name, const config::HostPort& listen,
               const config::HttpLimits& limits, Handler& handler,
               std::vector<asio::io_context*> contexts)
    : name_(std::move(name)),
      listen_(listen),
      limits_(limits),
      handler_(handler),
      trusted_(limits.trusted_proxies) {
  for (auto* c : contexts) threads_.push_back(std::make_unique<PerThread>(*c, threads_.size()));
}

Server::~Server() = default;

void Server::start() {
  beast::error_code ec;
  auto address = asio::ip::make_address(listen_.host, ec);
  if (ec) throw std::system_error(ec, name_ + ": bad listen address " + listen_.host);
  uint16_t port = listen_.port;
  for (auto& pt : threads_) {
    tcp::endpoint ep(address, port);
    pt->acceptor->open(ep.protocol());
    pt->acceptor->set_option(asio::socket_base::reuse_address(true));
    // Inherited by every accepted socket: no setsockopt per connection.
    pt->acceptor->set_option(tcp::no_delay(true));
    int one = 1;
    ::setsockopt(pt->acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    pt->acceptor->bind(ep, ec);
    if (ec) {
      throw std::system_error(ec, name_ + ": cannot listen on " + listen_.host + ":" +
                                      std::to_string(port));
    }
    pt->acceptor->listen(asio::socket_base::max_listen_connections);
    port = pt->acceptor->local_endpoint().port();
  }
  port_ = port;
  for (auto& pt : threads_) {
    asio::co_spawn(pt->ioc, accept_loop(*pt), asio::detached);
  }
}

asio::awaitable<void> Server::accept_loop(PerThread& pt) {
  while (pt.acceptor->is_open()) {
    tcp::endpoint peer;
    auto [ec, socket] = co_await pt.acceptor->async_accept(peer, use_nothrow);
    if (ec) {
      if (!pt.acceptor->is_open() || ec == asio::error::operation_aborted) break;
      // EMFILE and friends: back off briefly instead of spinning.
      asio::steady_timer t(pt.ioc, std::chrono::milliseconds(10));
      co_await t.async_wait(use_nothrow);
      continue;
    }
    if (draining()) break;
    auto conn = std::make_shared<Connection>(*this, pt, std::move(socket), peer);
    if (static_cast<std::size_t>(stats_.connections.load(std::memory_order_relaxed)) >
        limits_.max_connections) {
      stats_.connections_rejected.fetch_add(1, std::memory_order_relaxed);
      asio::co_spawn(
          pt.ioc,
          [conn]() -> asio::awaitable<void> {
            co_await conn->reject(503, "too many connections", "connection_limit");
            beast::error_code ignored;
            conn->socket_.shutdown(tcp::socket::shutdown_send, ignored);
          },
          asio::detached);
      continue;
    }
    if (!admit_ip(*conn)) {
      stats_.connections_rejected.fetch_add(1, std::memory_order_relaxed);
      asio::co_spawn(
          pt.ioc,
          [conn]() -> asio::awaitable<void> {
            co_await conn->reject(503, "too many connections from this address",
                                  "connection_limit_per_ip");
            beast::error_code ignored;
            conn->socket_.shutdown(tcp::socket::shutdown_send, ignored);
          },
          asio::detached);
      continue;
    }
    asio::co_spawn(pt.ioc, conn->run(), asio::detached);
  }
}

bool Server::admit_ip(Connection& conn) {
  const auto cap = limits_.max_connections_per_ip;
  if (cap == 0 || conn.peer_ip_.empty() || trusted_.contains(std::string_view(conn.peer_ip_))) {
    return true;
  }
  std::lock_guard lock(ip_mutex_);
  auto& n = per_ip_[conn.peer_ip_];
  if (n >= cap) {
    if (n == 0) per_ip_.erase(conn.peer_ip_);
    return false;
  }
  ++n;
  conn.ip_counted_ = true;
  return true;
}

void Server::release_ip(const std::string& ip) {
  std::lock_guard lock(ip_mutex_);
  auto it = per_ip_.find(ip);
  if (it != per_ip_.end() && --it->second == 0) per_ip_.erase(it);
}

std::size_t Server::connections_from(const std::string& ip) const {
  std::lock_guard lock(ip_mutex_);
  auto it = per_ip_.find(ip);
  return it == per_ip_.end() ? 0 : it->second;
}

void Server::close_io() {
  for (auto& pt : threads_) {
    pt->acceptor.reset();
    pt->deadlines.close();
  }
}

void Server::drain() {
  draining_.store(true, std::memory_order_relaxed);
  for (auto& pt : threads_) {
    auto* p = pt.get();
    asio::post(p->ioc, [p] {
      beast::error_code ec;
      p->acceptor->close(ec);
      for (auto* c : p->connections) c->on_drain();
    });
  }
}

}  // namespace redline::http
