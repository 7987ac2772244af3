// Outbound HTTP client implementation (see http_client.h). A Conn is a plain or TLS
// Beast stream plus its read buffer; idle Conns wait in a per-thread LIFO per target and
// are checked for a peer close before reuse. A request that fails on a reused connection
// before any response byte arrives is sent once more on a fresh one (the server closed
// the idle connection first), which is not counted as a retry.
#include "upstream/http_client.h"

#include <sys/socket.h>

#include <array>
#include <boost/url/parse.hpp>
#include <cerrno>
#include <charconv>
#include <stdexcept>

#include "common/write_now.h"

namespace redline::upstream {

using namespace std::string_view_literals;  // "..."sv appends: no strlen at run time

namespace {
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kBodyChunk = 16 * 1024;
constexpr std::uint32_t kMaxResponseHeader = 64 * 1024;
constexpr auto kMaxIdleAge = std::chrono::seconds(30);
// A connection idle for less than this is reused without asking the kernel whether the peer
// closed it (one recv(MSG_PEEK) per request saved under load): servers close idle keep-alive
// connections after seconds, not milliseconds, and a connection lost before the answer is
// retried on a fresh one anyway (send()).
constexpr auto kTrustIdleFor = std::chrono::milliseconds(500);

bool is_ip_literal(const std::string& host) {
  beast::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

Clock::time_point earliest(Clock::time_point a, Clock::time_point b) { return a < b ? a : b; }

Failure classify(const beast::error_code& ec, Failure on_timeout, bool deadline_hit) {
  if (ec == beast::error::timeout) return deadline_hit ? Failure::kDeadline : on_timeout;
  if (ec == asio::error::operation_aborted) return Failure::kCancelled;
  if (ec.category() == asio::error::get_ssl_category() ||
      ec.category() == asio::ssl::error::get_stream_category()) {
    return Failure::kTls;
  }
  if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
      ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
      ec == bhttp::error::partial_message) {
    return Failure::kConnectionLost;
  }
  if (ec.category() == bhttp::make_error_code(bhttp::error::bad_version).category()) {
    return Failure::kProtocol;
  }
  return Failure::kConnectionLost;
}
}  // namespace

std::string_view failure_name(Failure f) {
  switch (f) {
    case Failure::kNone: return "none";
    case Failure::kResolve: return "resolve";
    case Failure::kConnect: return "connect";
    case Failure::kTls: return "tls";
    case Failure::kConnectTimeout: return "connect_timeout";
    case Failure::kFirstByteTimeout: return "first_byte_timeout";
    case Failure::kIdleTimeout: return "idle_timeout";
    case Failure::kDeadline: return "deadline";
    case Failure::kConnectionLost: return "connection_lost";
    case Failure::kProtocol: return "protocol";
    case Failure::kCancelled: return "cancelled";
  }
  return "unknown";
}

bool failure_before_send(Failure f) {
  return f == Failure::kResolve || f == Failure::kConnect || f == Failure::kTls ||
         f == Failure::kConnectTimeout;
}

Endpoint Endpoint::parse(const std::string& url) {
  auto r = boost::urls::parse_uri(url);
  if (!r) throw std::invalid_argument("not a URL: " + url);
  Endpoint e;
  const auto scheme = r->scheme();
  if (scheme == "https") {
    e.tls = true;
  } else if (scheme != "http") {
    throw std::invalid_argument("scheme must be http or https: " + url);
  }
  e.host = r->host_address();
  if (e.host.size() > 2 && e.host.front() == '[') e.host = e.host.substr(1, e.host.size() - 2);
  if (e.host.empty()) throw std::invalid_argument("missing host: " + url);
  e.port = r->has_port() ? r->port_number() : (e.tls ? 443 : 80);
  e.base_path = r->encoded_path();
  while (!e.base_path.empty() && e.base_path.back() == '/') e.base_path.pop_back();
  const bool default_port = e.port == (e.tls ? 443 : 80);
  e.host_header = std::string(r->encoded_host_and_port());
  if (default_port && r->has_port()) e.host_header = std::string(r->encoded_host());
  return e;
}

std::shared_ptr<ssl::context> Target::make_tls_context(const std::string& ca_file, bool verify) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  ctx->set_default_verify_paths();
  if (!ca_file.empty()) ctx->load_verify_file(ca_file);
  ctx->set_verify_mode(verify ? ssl::verify_peer : ssl::verify_none);
  return ctx;
}

class Conn {
 public:
  using Plain = tcp::socket;
  using Tls = beast::ssl_stream<tcp::socket>;

  Conn(asio::io_context& ioc, const Target& t, common::DeadlineSet& deadlines)
      : target(&t), deadline(deadlines, &Conn::on_deadline, this) {
    // Beast reads at most the buffer's free capacity (512 bytes at first), which split a
    // typical answer over two reads; one read takes a whole small answer.
    buffer.reserve(kBodyChunk);
    if (t.tls) {
      stream.emplace<Tls>(ioc, *t.tls);
    } else {
      stream.emplace<Plain>(ioc);
    }
  }

  tcp::socket& lowest() {
    if (auto* p = std::get_if<Plain>(&stream)) return *p;
    return beast::get_lowest_layer(std::get<Tls>(stream));
  }
  void close() {
    deadline.disarm();
    beast::error_code ec;
    lowest().shutdown(tcp::socket::shutdown_both, ec);
    lowest().close(ec);
  }
  // An idle connection whose peer closed it (or sent anything unasked) is not reusable.
  bool peer_closed() {
    char b;
    ssize_t n = ::recv(lowest().native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
  }
  // The deadline of the operations that follow (the per-thread DeadlineSet, so arming it
  // per read costs no timer syscall): when it passes, the pending operation is cancelled
  // and finish() reports beast::error::timeout, as beast::tcp_stream's expiry did.
  void expires_at(Clock::time_point at) {
    timed_out = false;
    deadline.arm_at(at);
  }
  // An operation's result: a cancellation by the deadline reads as a timeout.
  beast::error_code finish(beast::error_code ec) const {
    if (ec && timed_out) return beast::error::timeout;
    return ec;
  }
  static void on_deadline(void* self) {
    auto* c = static_cast<Conn*>(self);
    c->timed_out = true;
    beast::error_code ignored;
    c->lowest().cancel(ignored);
  }
  // Hooked into a common::Interrupt while an operation is pending: the pending operation
  // ends with operation_aborted (Failure::kCancelled).
  static void on_interrupt(void* self) {
    beast::error_code ignored;
    static_cast<Conn*>(self)->lowest().cancel(ignored);
  }

  const Target* target;
  common::Deadline deadline;
  bool timed_out = false;
  std::variant<std::monostate, Plain, Tls> stream;
  beast::flat_buffer buffer;
  std::optional<bhttp::response_parser<bhttp::buffer_body>> parser;
  Clock::time_point idle_since{};
  bool reused = false;
  char body_buf[kBodyChunk];
};

// Runs `op(stream)` on whichever stream type the connection holds.
template <class Op>
auto on_stream(Conn& c, Op&& op) {
  if (auto* p = std::get_if<Conn::Plain>(&c.stream)) return op(*p);
  return op(std::get<Conn::Tls>(c.stream));
}

HttpClient::HttpClient(asio::io_context& ioc) : ioc_(ioc), deadlines_(ioc.get_executor()) {}
HttpClient::~HttpClient() = default;

std::size_t HttpClient::idle_connections() const {
  std::size_t n = 0;
  for (auto& q : idle_) n += q.size();
  return n;
}

std::unique_ptr<Conn> HttpClient::take_idle(const Target& target) {
  if (target.index >= idle_.size()) return nullptr;
  auto& q = idle_[target.index];
  const auto now = Clock::now();
  while (!q.empty()) {
    auto c = std::move(q.back());
    q.pop_back();
    const auto idle = now - c->idle_since;
    if (idle < kTrustIdleFor || (idle < kMaxIdleAge && !c->peer_closed())) {
      c->reused = true;
      return c;
    }
    c->close();
  }
  return nullptr;
}

void HttpClient::shutdown() {
  shut_down_ = true;
  idle_.clear();
  deadlines_.close();
}

void HttpClient::release(std::unique_ptr<Conn> conn) {
  if (shut_down_) return;  // destroyed here, while its io_context still exists
  const auto idx = conn->target->index;
  if (idle_.size() <= idx) idle_.resize(idx + 1);
  auto& q = idle_[idx];
  if (q.size() >= conn->target->max_idle) {
    conn->close();
    return;
  }
  conn->deadline.disarm();
  conn->parser.reset();
  conn->idle_since = Clock::now();
  q.push_back(std::move(conn));
}

asio::awaitable<std::unique_ptr<Conn>> HttpClient::connect(const Target& target,
                                                           Clock::time_point deadline,
                                                           Failure& failure,
                                                           std::string& detail,
                                                           common::Interrupt* stop) {
  const auto& ep = target.endpoint;
  tcp::resolver resolver(ioc_);
  auto [rec, results] =
      co_await resolver.async_resolve(ep.host, std::to_string(ep.port), use_nothrow);
  if (rec) {
    failure = Failure::kResolve;
    detail = "cannot resolve " + ep.host + ": " + rec.message();
    co_return nullptr;
  }
  if (stop && stop->fired()) {
    failure = Failure::kCancelled;
    detail = "cancelled";
    co_return nullptr;
  }
  auto conn = std::make_unique<Conn>(ioc_, target, deadlines_);
  const common::InterruptHook hook(stop, &Conn::on_interrupt, conn.get());
  const auto connect_deadline = earliest(Clock::now() + target.timeouts.connect, deadline);
  conn->expires_at(connect_deadline);
  auto [cec_raw, cep] = co_await asio::async_connect(conn->lowest(), results, use_nothrow);
  const auto cec = conn->finish(cec_raw);
  if (cec) {
    failure = cec == beast::error::timeout ? Failure::kConnectTimeout : Failure::kConnect;
    detail = "cannot connect to " + ep.host + ":" + std::to_string(ep.port) + ": " + cec.message();
    co_return nullptr;
  }
  conn->lowest().set_option(tcp::no_delay(true));
  if (auto* tls = std::get_if<Conn::Tls>(&conn->stream)) {
    if (!is_ip_literal(ep.host)) {
      SSL_set_tlsext_host_name(tls->native_handle(), ep.host.c_str());
    }
    tls->set_verify_callback(ssl::host_name_verification(ep.host));
    auto [hec_raw] = co_await tls->async_handshake(ssl::stream_base::client, use_nothrow);
    const auto hec = conn->finish(hec_raw);
    if (hec) {
      failure = hec == beast::error::timeout ? Failure::kConnectTimeout : Failure::kTls;
      detail = "TLS handshake with " + ep.host + " failed: " + hec.message();
      co_return nullptr;
    }
  }
  ++opened_;
  co_return conn;
}

asio::awaitable<SendResult> HttpClient::send(const Target& target, UpstreamRequest& request,
                                             Clock::time_point deadline,
                                             common::Interrupt* stop, BeforeWait* before_wait) {
  if (auto idle = take_idle(target)) {
    auto r = co_await send_on(std::move(idle), target, request, deadline, stop, before_wait);
    // The peer closed the kept-alive connection before answering: try a fresh one.
    if (r.failure != Failure::kConnectionLost || Clock::now() >= deadline) co_return r;
  }
  SendResult r;
  if (before_wait != nullptr) (*before_wait)();  // connect() checks `stop` after it
  auto conn = co_await connect(target, deadline, r.failure, r.detail, stop);
  if (!conn) co_return r;
  co_return co_await send_on(std::move(conn), target, request, deadline, stop, before_wait);
}

asio::awaitable<SendResult> HttpClient::send_on(std::unique_ptr<Conn> conn, const Target& target,
                                                UpstreamRequest& request,
                                                Clock::time_point deadline,
                                                common::Interrupt* stop,
                                                BeforeWait* before_wait) {
  SendResult result;
  auto cancelled = [&] {
    result.failure = Failure::kCancelled;
    result.detail = "cancelled";
    conn->close();
  };
  // Calls before_wait (once); false when `stop` has fired.
  auto may_wait = [&] {
    if (before_wait != nullptr) (*before_wait)();
    return !(stop && stop->fired());
  };
  if (stop && stop->fired()) {
    cancelled();
    co_return result;
  }
  const common::InterruptHook hook(stop, &Conn::on_interrupt, conn.get());
  // The request head in one flat string (what Beast's serializer wrote for a
  // request{method, target, 11} with these fields, set(host), keep_alive(true) and
  // prepare_payload()), sent with the body in one gather write.
  const auto method = bhttp::to_string(request.method);
  const bool sized = !request.body.empty() || request.method == bhttp::verb::post ||
                     request.method == bhttp::verb::put || request.method == bhttp::verb::options;
  std::string head;
  head.reserve(128 + request.target.size() + request.header_lines.size());
  head.append(method.data(), method.size());
  head += ' ';
  head += request.target;
  head += " HTTP/1.1\r\n"sv;
  head += request.header_lines;
  head += "Host: "sv;
  head += target.endpoint.host_header;
  head += "\r\n"sv;
  if (sized) {
    char digits[24];
    const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, request.body.size());
    head += "Content-Length: "sv;
    head.append(digits, end);
    head += "\r\n"sv;
  }
  head += "\r\n"sv;
  const std::array<asio::const_buffer, 2> wire{asio::buffer(head), asio::buffer(request.body)};

  const auto header_deadline = earliest(Clock::now() + target.timeouts.first_byte, deadline);
  conn->expires_at(header_deadline);
  beast::error_code wec;
  if (auto* plain = std::get_if<Conn::Plain>(&conn->stream)) {
    // Plain TCP: what the socket takes at once goes without a trip through the event loop
    // (common/write_now.h); the rest, if any, waits.
    const std::size_t sent = common::write_now(*plain, wire, wec);
    if (!wec && sent < asio::buffer_size(wire)) {
      if (!may_wait()) {
        cancelled();
        co_return result;
      }
      beast::buffers_suffix<std::array<asio::const_buffer, 2>> rest(wire);
      rest.consume(sent);
      auto [rest_ec, rn] = co_await asio::async_write(*plain, rest, use_nothrow);
      wec = conn->finish(rest_ec);
    }
  } else {
    if (!may_wait()) {
      cancelled();
      co_return result;
    }
    auto [wec_raw, wn] = co_await asio::async_write(std::get<Conn::Tls>(conn->stream), wire,
                                                    use_nothrow);
    wec = conn->finish(wec_raw);
  }
  if (wec) {
    result.failure = classify(wec, Failure::kFirstByteTimeout, Clock::now() >= deadline);
    result.detail = "sending the request failed: " + wec.message();
    conn->close();
    co_return result;
  }
  if (!may_wait()) {
    cancelled();
    co_return result;
  }
  conn->parser.emplace();
  conn->parser->header_limit(kMaxResponseHeader);
  conn->parser->body_limit(boost::none);
  beast::error_code hec = beast::error::timeout;  // the deadline passed during the write
  if (!conn->timed_out) {
    auto [hec_raw, hn] = co_await on_stream(*conn, [&](auto& s) {
      return bhttp::async_read_header(s, conn->buffer, *conn->parser, use_nothrow);
    });
    hec = conn->finish(hec_raw);
  }
  if (hec) {
    result.failure = classify(hec, Failure::kFirstByteTimeout, Clock::now() >= deadline);
    result.detail = "reading the response header failed: " + hec.message();
    conn->close();
    co_return result;
  }
  result.exchange = std::make_unique<Exchange>(std::move(conn), *this, deadline);
  co_return result;
}

Exchange::Exchange(std::unique_ptr<Conn> conn, HttpClient& client, Clock::time_point deadline)
    : conn_(std::move(conn)), client_(client), deadline_(deadline) {}

Exchange::~Exchange() {
  if (!conn_) return;
  if (failure_ == Failure::kNone && conn_->parser->is_done() && conn_->parser->get().keep_alive()) {
    client_.release(std::move(conn_));
  } else {
    conn_->close();
  }
}

int Exchange::status() const { return static_cast<int>(conn_->parser->get().result_int()); }

const bhttp::fields& Exchange::headers() const { return conn_->parser->get().base(); }

bool Exchange::done() const { return !conn_ || conn_->parser->is_done(); }

void Exchange::abort() {
  if (!conn_) return;
  conn_->close();
  conn_.reset();
  failure_ = Failure::kCancelled;
}

asio::awaitable<std::string_view> Exchange::next_chunk() {
  if (!conn_ || failure_ != Failure::kNone) co_return std::string_view{};
  auto& parser = *conn_->parser;
  auto& buffer = conn_->buffer;
  while (!parser.is_done()) {
    // What is buffered goes first, without I/O (a read often holds more than one chunk, and
    // a chunk's data and its header may come apart); the socket is read only when the parser
    // needs more bytes. The read is the stream's own read_some, parsed here: Beast's
    // http::async_read_some parses what is buffered first and, when that is enough, completes
    // through a post, one more trip through the event loop (and an epoll_wait) per event.
    if (auto chunk = buffered_chunk(); !chunk.empty()) co_return chunk;
    if (failure_ != Failure::kNone || parser.is_done()) break;
    const auto now = Clock::now();
    conn_->expires_at(earliest(now + conn_->target->timeouts.idle, deadline_));
    const std::size_t room =
        std::min(kBodyChunk, std::max<std::size_t>(512, buffer.capacity() - buffer.size()));
    auto [ec_raw, n] = co_await on_stream(
        *conn_, [&](auto& s) { return s.async_read_some(buffer.prepare(room), use_nothrow); });
    buffer.commit(n);
    auto ec = conn_->finish(ec_raw);
    if (ec == asio::error::eof) {
      // The connection's end: the end of a body delimited by it, otherwise a cut-short one
      // (partial_message), as Beast's read_some decides.
      ec = {};
      parser.put_eof(ec);
    }
    if (ec) {
      failure_ = classify(ec, Failure::kIdleTimeout, Clock::now() >= deadline_);
      co_return std::string_view{};
    }
  }
  co_return std::string_view{};
}

bool Exchange::has_buffered() const {
  return conn_ && failure_ == Failure::kNone && !conn_->parser->is_done() &&
         conn_->buffer.size() > 0;
}

std::string_view Exchange::buffered_chunk() {
  // Parses what the buffer holds (no I/O).
  while (has_buffered()) {
    auto& parser = *conn_->parser;
    parser.get().body().data = conn_->body_buf;
    parser.get().body().size = kBodyChunk;
    beast::error_code ec;
    const auto used = parser.put(conn_->buffer.data(), ec);
    conn_->buffer.consume(used);
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec == bhttp::error::need_more) return {};
    if (ec) {
      failure_ = classify(ec, Failure::kIdleTimeout, false);
      return {};
    }
    const std::size_t got = kBodyChunk - parser.get().body().size;
    if (got > 0) return std::string_view(conn_->body_buf, got);
    if (used == 0) return {};
  }
  return {};
}

asio::awaitable<bool> Exchange::read_all(std::string& out, std::size_t max_bytes,
                                        common::Interrupt* stop) {
  if (stop && stop->fired()) {
    abort();
    co_return false;
  }
  const common::InterruptHook hook(conn_ ? stop : nullptr, &Conn::on_interrupt, conn_.get());
  while (!done()) {
    auto chunk = co_await next_chunk();
    if (failure_ != Failure::kNone) co_return false;
    if (out.size() + chunk.size() > max_bytes) {
      abort();
      co_return false;
    }
    out.append(chunk);
  }
  co_return true;
}

}  // namespace redline::upstream
