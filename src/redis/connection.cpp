// Connection internals (see connection.h): a supervisor coroutine (connect, handshake, wait for
// failure, back off), one writer coroutine that drains the outgoing buffer in as few writes as
// possible, and one reader coroutine that parses replies and completes waiters in FIFO order.
// Waiters sleep on a per-command timer: the reply cancels it, the deadline expires it.
#include "redis/connection.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <cstring>

namespace redline::redis {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr size_t kReadChunk = size_t{64} * 1024;

void log_exception(const std::exception_ptr& e) {
  if (!e) {
    return;
  }
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("redis: connection coroutine failed: {}", ex.what());
  }
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      unsigned v = 0;
      auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (ec == std::errc() && p == s.data() + i + 3) {
        out += static_cast<char>(v);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// Server errors during HELLO that mean "this server does not speak HELLO": use RESP2.
bool hello_unsupported(const std::string& msg) {
  return msg.rfind("NOPROTO", 0) == 0 || msg.find("unknown command") != std::string::npos;
}

bool auth_error(const std::string& msg) {
  return msg.rfind("WRONGPASS", 0) == 0 || msg.rfind("NOAUTH", 0) == 0 ||
         msg.find("invalid password") != std::string::npos ||
         msg.find("invalid username-password") != std::string::npos || msg.rfind("NOPERM", 0) == 0;
}

}  // namespace

Result<ConnectionOptions> parse_url(std::string_view url, ConnectionOptions base) {
  ConnectionOptions o = std::move(base);
  std::string_view rest = url;
  if (rest.substr(0, 8) == "redis://") {
    rest.remove_prefix(8);
    o.tls = false;
  } else if (rest.substr(0, 9) == "rediss://") {
    rest.remove_prefix(9);
    o.tls = true;
  } else {
    return Error{ErrorKind::kInvalidArgument,
                 "redis URL must start with redis:// or rediss://: " + std::string(url)};
  }
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    rest = rest.substr(0, q);
  }
  std::string_view path;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    path = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (auto colon = userinfo.find(':'); colon != std::string_view::npos) {
      o.user = percent_decode(userinfo.substr(0, colon));
      o.password = percent_decode(userinfo.substr(colon + 1));
    } else {
      o.password = percent_decode(userinfo);
    }
  }
  std::string_view port;
  if (!rest.empty() && rest[0] == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos) {
      return Error{ErrorKind::kInvalidArgument, "bad IPv6 host in redis URL: " + std::string(url)};
    }
    o.host = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 1);
    if (!rest.empty() && rest[0] == ':') {
      port = rest.substr(1);
    }
  } else if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    o.host = std::string(rest.substr(0, colon));
    port = rest.substr(colon + 1);
  } else {
    o.host = std::string(rest);
  }
  if (o.host.empty()) {
    return Error{ErrorKind::kInvalidArgument, "redis URL has no host: " + std::string(url)};
  }
  o.port = 6379;
  if (!port.empty()) {
    unsigned p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || ptr != port.data() + port.size() || p == 0 || p > 65535) {
      return Error{ErrorKind::kInvalidArgument, "bad port in redis URL: " + std::string(url)};
    }
    o.port = static_cast<uint16_t>(p);
  }
  if (!path.empty()) {
    int db = 0;
    auto [ptr, ec] = std::from_chars(path.data(), path.data() + path.size(), db);
    if (ec != std::errc() || ptr != path.data() + path.size() || db < 0) {
      return Error{ErrorKind::kInvalidArgument,
                   "bad database number in redis URL: " + std::string(url)};
    }
    o.db = db;
  }
  return o;
}

// The socket of one connection attempt; shared with the coroutines using it, so a TLS
// stream is never destroyed under a pending operation.
struct Connection::Transport {
  Transport(const Executor& ex, const std::shared_ptr<ssl::context>& ctx) : ctx(ctx) {
    if (ctx) {
      tls.emplace(ex, *ctx);
    } else {
      plain.emplace(ex);
    }
  }
  tcp::socket& lowest() { return tls ? tls->next_layer() : *plain; }
  void close() {
    error_code ec;
    lowest().shutdown(tcp::socket::shutdown_both, ec);
    lowest().close(ec);
  }
  template <typename Buffer>
  auto read_some(const Buffer& b) {
    return tls ? tls->async_read_some(b, use_tuple) : plain->async_read_some(b, use_tuple);
  }
  template <typename Buffer>
  auto write_some(const Buffer& b) {
    return tls ? tls->async_write_some(b, use_tuple) : plain->async_write_some(b, use_tuple);
  }

  std::shared_ptr<ssl::context> ctx;
  std::optional<tcp::socket> plain;
  std::optional<ssl::stream<tcp::socket>> tls;
};

// One waiter: a single command or a batch, completed when all its replies are in.
struct Connection::Pending {
  Pending(const Executor& ex, size_t n) : timer(ex), expected(n) { replies.reserve(n); }
  asio::steady_timer timer;
  std::chrono::steady_clock::time_point queued_at;
  std::vector<Result<Reply>> replies;
  size_t expected;
  size_t received = 0;
  bool done = false;
  bool abandoned = false;  // the waiter timed out; later replies are discarded
};

std::shared_ptr<Connection> Connection::create(Executor ex, ConnectionOptions options) {
  return std::shared_ptr<Connection>(new Connection(std::move(ex), std::move(options)));
}

Connection::Connection(Executor ex, ConnectionOptions options)
    : ex_(std::move(ex)),
      options_(std::move(options)),
      writer_wake_(ex_),
      state_changed_(ex_),
      down_(ex_),
      backoff_(ex_),
      parser_(options_.limits),
      rng_(std::random_device{}()) {
  state_changed_.expires_at(asio::steady_timer::time_point::max());
  rbuf_.resize(kReadChunk);
  if (options_.tls) {
    tls_ctx_ = std::make_shared<ssl::context>(ssl::context::tls_client);
    tls_ctx_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                          ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                          ssl::context::no_tlsv1_1);
    error_code ec;
    if (!options_.ca_file.empty()) {
      tls_ctx_->load_verify_file(options_.ca_file, ec);
    } else {
      tls_ctx_->set_default_verify_paths(ec);
    }
    if (ec) {
      tls_setup_error_ = Error{ErrorKind::kTlsError,
                               "cannot load CA file '" + options_.ca_file + "': " + ec.message()};
    }
  }
}

Connection::~Connection() = default;

std::string Connection::address() const {
  return options_.host + ":" + std::to_string(options_.port);
}

void Connection::notify_state(State s) {
  state_ = s;
  state_changed_.cancel();
}

void Connection::start() {
  if (state_ != State::kIdle) {
    return;
  }
  notify_state(State::kConnecting);
  asio::co_spawn(ex_, run(), log_exception);
}

ProcessRedisStats& process_stats() {
  static ProcessRedisStats stats;
  return stats;
}

void Connection::stop() {
  if (state_ == State::kStopped) {
    return;
  }
  if (state_ == State::kReady) {
    process_stats().connections.fetch_sub(1, std::memory_order_relaxed);
  }
  ++generation_;
  notify_state(State::kStopped);
  if (transport_) {
    transport_->close();
  }
  fail_queued(Error{ErrorKind::kStopped, "connection to " + address() + " stopped"});
  writer_wake_.cancel();
  down_.cancel();
  backoff_.cancel();
}

Awaitable<Result<void>> Connection::connect() {
  auto self = shared_from_this();
  if (state_ == State::kIdle) {
    start();
  }
  while (state_ == State::kConnecting) {
    co_await state_changed_.async_wait(use_tuple);
  }
  if (state_ == State::kReady) {
    co_return Result<void>();
  }
  if (state_ == State::kStopped) {
    co_return Error{ErrorKind::kStopped, "connection to " + address() + " stopped"};
  }
  co_return last_error_ ? *last_error_
                        : Error{ErrorKind::kNotConnected, "not connected to " + address()};
}

Millis Connection::next_backoff() {
  auto base = options_.reconnect_min.count() << std::min(attempt_, 16);
  base = std::min<int64_t>(base, options_.reconnect_max.count());
  ++attempt_;
  std::uniform_int_distribution<int64_t> jitter(base / 2, std::max<int64_t>(base, 1));
  return Millis(jitter(rng_));
}

Awaitable<void> Connection::run() {
  auto self = shared_from_this();
  while (state_ != State::kStopped) {
    notify_state(State::kConnecting);
    auto t = std::make_shared<Transport>(ex_, tls_ctx_);
    transport_ = t;
    Result<void> opened = co_await open(t);
    if (state_ == State::kStopped) {
      break;
    }
    if (opened.ok()) {
      const uint64_t gen = ++generation_;
      attempt_ = 0;
      last_error_.reset();
      ++stats_.connects;
      process_stats().connects.fetch_add(1, std::memory_order_relaxed);
      process_stats().connections.fetch_add(1, std::memory_order_relaxed);
      down_.expires_at(asio::steady_timer::time_point::max());
      notify_state(State::kReady);
      asio::co_spawn(ex_, reader(t, gen), log_exception);
      asio::co_spawn(ex_, writer(t, gen), log_exception);
      co_await down_.async_wait(use_tuple);
      if (state_ == State::kStopped) {
        break;
      }
    } else {
      ++stats_.connect_failures;
      process_stats().connect_failures.fetch_add(1, std::memory_order_relaxed);
      last_error_ = opened.error();
      t->close();
      if (!options_.tls || opened.kind() != ErrorKind::kTlsError) {
        spdlog::debug("redis: {}", opened.error().to_string());
      }
      Error e = opened.error();
      if (e.kind != ErrorKind::kAuthFailed && e.kind != ErrorKind::kTlsError) {
        e.kind = ErrorKind::kNotConnected;
      }
      fail_queued(e);
    }
    notify_state(State::kBackoff);
    backoff_.expires_after(next_backoff());
    co_await backoff_.async_wait(use_tuple);
  }
}

Awaitable<Result<void>> Connection::open(std::shared_ptr<Transport> t) {
  parser_.reset();
  rpos_ = rend_ = 0;
  if (tls_setup_error_) {
    co_return *tls_setup_error_;
  }
  // A watchdog closes the socket when the whole attempt takes too long.
  auto timed_out = std::make_shared<bool>(false);
  asio::steady_timer watchdog(ex_);
  watchdog.expires_after(options_.connect_timeout);
  watchdog.async_wait([t, timed_out](error_code ec) {
    if (!ec) {
      *timed_out = true;
      t->close();
    }
  });
  auto failed = [&](ErrorKind kind, const std::string& what) -> Error {
    if (*timed_out) {
      return Error{ErrorKind::kTimeout, "connect to " + address() + " timed out after " +
                                            std::to_string(options_.connect_timeout.count()) +
                                            " ms"};
    }
    return Error{kind, what + " (" + address() + ")"};
  };

  tcp::resolver resolver(ex_);
  const std::string port = std::to_string(options_.port);
  auto [rec, endpoints] = co_await resolver.async_resolve(options_.host, port, use_tuple);
  if (rec) {
    co_return failed(ErrorKind::kNotConnected, "resolve failed: " + rec.message());
  }
  auto [cec, ep] = co_await asio::async_connect(t->lowest(), endpoints, use_tuple);
  if (cec) {
    co_return failed(ErrorKind::kNotConnected, "connect failed: " + cec.message());
  }
  error_code ignored;
  t->lowest().set_option(tcp::no_delay(true), ignored);
  t->lowest().set_option(asio::socket_base::keep_alive(true), ignored);

  if (t->tls) {
    if (!is_ip_literal(options_.host)) {
      SSL_set_tlsext_host_name(t->tls->native_handle(), options_.host.c_str());
    }
    t->tls->set_verify_mode(options_.verify_peer ? ssl::verify_peer : ssl::verify_none);
    t->tls->set_verify_callback(ssl::host_name_verification(options_.host));
    auto [hec] = co_await t->tls->async_handshake(ssl::stream_base::client, use_tuple);
    if (hec) {
      co_return failed(ErrorKind::kTlsError, "TLS handshake failed: " + hec.message());
    }
  }

  // HELLO 3 (with AUTH and SETNAME inside); RESP2 fallback when the server refuses HELLO.
  protocol_ = 2;
  bool need_auth = !options_.password.empty();
  bool need_name = !options_.client_name.empty();
  if (options_.protocol >= 3) {
    Command hello("HELLO", "3");
    if (need_auth) {
      hello.add("AUTH").add(options_.user.empty() ? std::string_view("default") : options_.user);
      hello.add(options_.password);
    }
    if (need_name) {
      hello.add("SETNAME").add(options_.client_name);
    }
    auto r = co_await roundtrip(*t, hello);
    if (!r) {
      co_return failed(r.kind(), r.error().message);
    }
    if (!r->is_error()) {
      protocol_ = 3;
      need_auth = need_name = false;
    } else if (auth_error(r->str())) {
      co_return failed(ErrorKind::kAuthFailed, "authentication failed: " + r->str());
    } else if (!hello_unsupported(r->str())) {
      co_return failed(ErrorKind::kServerError, "HELLO failed: " + r->str());
    }
  }
  std::vector<Command> steps;
  if (need_auth) {
    steps.push_back(options_.user.empty() ? Command("AUTH", options_.password)
                                          : Command("AUTH", options_.user, options_.password));
  }
  if (need_name) {
    steps.push_back(Command("CLIENT", "SETNAME", options_.client_name));
  }
  if (options_.db != 0) {
    steps.push_back(Command("SELECT", options_.db));
  }
  if (options_.readonly) {
    steps.push_back(Command("READONLY"));
  }
  for (const auto& c : options_.init_commands) {
    steps.push_back(c);
  }
  for (const auto& step : steps) {
    auto r = co_await roundtrip(*t, step);
    if (!r) {
      co_return failed(r.kind(), r.error().message);
    }
    if (r->is_error()) {
      const bool auth = step.arg(0) == "AUTH" || auth_error(r->str());
      co_return failed(auth ? ErrorKind::kAuthFailed : ErrorKind::kServerError,
                       step.describe() + " failed: " + r->str());
    }
  }
  watchdog.cancel();
  if (*timed_out) {
    co_return failed(ErrorKind::kTimeout, "");
  }
  co_return Result<void>();
}

Awaitable<Result<Reply>> Connection::roundtrip(Transport& t, const Command& cmd) {
  std::string out = cmd.encoded();
  size_t off = 0;
  while (off < out.size()) {
    auto buf = asio::buffer(out.data() + off, out.size() - off);
    auto [ec, n] = co_await t.write_some(buf);
    if (ec) {
      co_return Error{ErrorKind::kNotConnected, "write failed: " + ec.message()};
    }
    ++stats_.writes;
    off += n;
  }
  for (;;) {
    auto step = parser_.feed(std::string_view(rbuf_.data() + rpos_, rend_ - rpos_));
    rpos_ += step.consumed;
    if (step.status == Parser::Status::kError) {
      co_return Error{ErrorKind::kProtocolError, parser_.error()};
    }
    if (step.status == Parser::Status::kReply) {
      Reply r = parser_.take();
      if (r.type() == Type::kPush) {
        continue;
      }
      co_return r;
    }
    if (rpos_ == rend_) {
      rpos_ = rend_ = 0;
    }
    if (rend_ == rbuf_.size()) {
      rbuf_.resize(rbuf_.size() * 2);
    }
    auto buf = asio::buffer(rbuf_.data() + rend_, rbuf_.size() - rend_);
    auto [ec, n] = co_await t.read_some(buf);
    if (ec) {
      co_return Error{ErrorKind::kNotConnected, "read failed: " + ec.message()};
    }
    rend_ += n;
  }
}

Awaitable<void> Connection::writer(std::shared_ptr<Transport> t, uint64_t gen) {
  auto self = shared_from_this();
  std::string out;
  while (gen == generation_) {
    if (wbuf_.empty()) {
      writer_idle_ = true;
      writer_wake_.expires_at(asio::steady_timer::time_point::max());
      co_await writer_wake_.async_wait(use_tuple);
      if (gen != generation_) {
        co_return;
      }
      writer_idle_ = false;
      continue;
    }
    // Everything queued since the last write leaves in this one (automatic pipelining).
    out.clear();
    out.swap(wbuf_);
    stats_.commands_sent += wbuf_commands_;
    process_stats().commands_sent.fetch_add(wbuf_commands_, std::memory_order_relaxed);
    wbuf_commands_ = 0;
    size_t off = 0;
    while (off < out.size()) {
      auto buf = asio::buffer(out.data() + off, out.size() - off);
      auto [ec, n] = co_await t->write_some(buf);
      if (gen != generation_) {
        co_return;
      }
      if (ec) {
        fail_connection(Error{ErrorKind::kConnectionLost,
                              "write to " + address() + " failed: " + ec.message()});
        co_return;
      }
      ++stats_.writes;
      process_stats().writes.fetch_add(1, std::memory_order_relaxed);
      off += n;
    }
    // Reuse the larger allocation for the next round.
    if (wbuf_.empty() && out.capacity() > wbuf_.capacity() && out.capacity() <= (1u << 20)) {
      out.clear();
      wbuf_.swap(out);
    }
  }
}

Awaitable<void> Connection::reader(std::shared_ptr<Transport> t, uint64_t gen) {
  auto self = shared_from_this();
  for (;;) {
    // Parse what is buffered (the handshake may have left bytes behind).
    for (;;) {
      auto step = parser_.feed(std::string_view(rbuf_.data() + rpos_, rend_ - rpos_));
      rpos_ += step.consumed;
      if (step.status == Parser::Status::kReply) {
        if (!dispatch(parser_.reply())) {
          fail_connection(Error{ErrorKind::kProtocolError,
                                "reply from " + address() + " with no command waiting for it"});
          co_return;
        }
        if (gen != generation_) {
          co_return;  // a push handler may have stopped us
        }
        continue;
      }
      if (step.status == Parser::Status::kError) {
        fail_connection(Error{ErrorKind::kProtocolError, parser_.error() + " from " + address()});
        co_return;
      }
      break;
    }
    if (rpos_ == rend_) {
      rpos_ = rend_ = 0;
      if (rbuf_.size() > 16 * kReadChunk) {
        rbuf_.resize(kReadChunk);
        rbuf_.shrink_to_fit();
      }
    } else if (rbuf_.size() - rend_ < kReadChunk / 4 && rpos_ > 0) {
      std::memmove(rbuf_.data(), rbuf_.data() + rpos_, rend_ - rpos_);
      rend_ -= rpos_;
      rpos_ = 0;
    }
    if (rbuf_.size() - rend_ < kReadChunk / 4) {
      rbuf_.resize(rbuf_.size() * 2);
    }
    auto buf = asio::buffer(rbuf_.data() + rend_, rbuf_.size() - rend_);
    auto [ec, n] = co_await t->read_some(buf);
    if (gen != generation_) {
      co_return;
    }
    if (ec) {
      std::string why = ec == asio::error::eof ? "closed by the server" : ec.message();
      fail_connection(Error{ErrorKind::kConnectionLost, "connection to " + address() + " " + why});
      co_return;
    }
    rend_ += n;
  }
}

bool Connection::dispatch(Reply& reply) {
  if (reply.type() == Type::kPush) {
    ++stats_.pushes;
    if (on_push_) {
      // Out of the parser first: the handler may stop the connection (which resets it).
      const Reply push = std::move(reply);
      on_push_(push);
    }
    return true;
  }
  if (inflight_.empty()) {
    return false;
  }
  Pending& p = *inflight_.front();
  ++stats_.replies;
  --queued_;
  if (p.abandoned) {
    ++stats_.discarded;
  } else if (reply.is_error()) {
    process_stats().server_errors.fetch_add(1, std::memory_order_relaxed);
    p.replies.emplace_back(Error{ErrorKind::kServerError, std::move(reply.mutable_str())});
  } else {
    p.replies.emplace_back(std::move(reply));
  }
  if (++p.received == p.expected) {
    p.done = true;
    p.timer.cancel();
    inflight_.pop_front();
  }
  return true;
}

void Connection::fail_queued(const Error& error) {
  for (auto& p : inflight_) {
    if (!p->abandoned) {
      while (p->replies.size() < p->expected) {
        p->replies.emplace_back(error);
      }
    }
    p->done = true;
    p->timer.cancel();
  }
  inflight_.clear();
  queued_ = 0;
  wbuf_.clear();
  wbuf_commands_ = 0;
}

void Connection::fail_connection(const Error& error) {
  if (state_ != State::kReady) {
    return;
  }
  ++generation_;
  ++stats_.disconnects;
  process_stats().disconnects.fetch_add(1, std::memory_order_relaxed);
  process_stats().connections.fetch_sub(1, std::memory_order_relaxed);
  last_error_ = error;
  spdlog::warn("redis: {}", error.to_string());
  notify_state(State::kBackoff);
  transport_->close();
  fail_queued(error);
  parser_.reset();
  rpos_ = rend_ = 0;
  writer_wake_.cancel();
  down_.cancel();
  if (on_disconnect_) {
    on_disconnect_(error);
  }
}

Awaitable<Result<Reply>> Connection::execute(const Command& cmd) {
  return execute(cmd, options_.command_timeout);
}

Awaitable<Result<Reply>> Connection::execute(const Command& cmd, Millis timeout) {
  const Command* one = &cmd;
  const std::span<const Command* const> cmds(&one, 1);
  auto results = co_await submit(cmds, timeout);
  co_return std::move(results.front());
}

Awaitable<std::vector<Result<Reply>>> Connection::batch(std::span<const Command> cmds) {
  return batch(cmds, options_.command_timeout);
}

Awaitable<std::vector<Result<Reply>>> Connection::batch(std::span<const Command> cmds,
                                                        Millis timeout) {
  std::vector<const Command*> ptrs;
  ptrs.reserve(cmds.size());
  for (const auto& c : cmds) {
    ptrs.push_back(&c);
  }
  const std::span<const Command* const> view(ptrs);
  co_return co_await submit(view, timeout);
}

Awaitable<std::vector<Result<Reply>>> Connection::batch(std::span<const Command* const> cmds,
                                                        Millis timeout) {
  return submit(cmds, timeout);
}

Awaitable<std::vector<Result<Reply>>> Connection::submit(std::span<const Command* const> cmds,
                                                         Millis timeout) {
  auto self = shared_from_this();
  std::vector<Result<Reply>> out;
  if (cmds.empty()) {
    co_return out;
  }
  auto fail_all = [&](ErrorKind kind, std::string msg) {
    out.assign(cmds.size(), Result<Reply>(Error{kind, std::move(msg)}));
  };
  if (state_ == State::kStopped) {
    fail_all(ErrorKind::kStopped, "connection to " + address() + " stopped");
    co_return out;
  }
  if (state_ == State::kBackoff) {
    fail_all(ErrorKind::kNotConnected,
             "not connected to " + address() +
                 (last_error_ ? " (last error: " + last_error_->message + ")" : std::string()));
    co_return out;
  }
  if (queued_ + cmds.size() > options_.max_queue) {
    fail_all(ErrorKind::kQueueFull, std::to_string(queued_) + " commands already queued on " +
                                        address() + " (max_queue " +
                                        std::to_string(options_.max_queue) + ")");
    co_return out;
  }
  for (const Command* c : cmds) {
    if (c->empty()) {
      fail_all(ErrorKind::kInvalidArgument, "empty command");
      co_return out;
    }
  }
  if (state_ == State::kIdle) {
    start();
  }

  auto p = std::make_shared<Pending>(ex_, cmds.size());
  for (const Command* c : cmds) {
    c->append_to(wbuf_);
  }
  wbuf_commands_ += cmds.size();
  queued_ += cmds.size();
  inflight_.push_back(p);
  if (writer_idle_) {
    writer_wake_.cancel();
  }

  p->queued_at = std::chrono::steady_clock::now();
  p->timer.expires_at(p->queued_at + timeout);
  co_await p->timer.async_wait(use_tuple);
  if (!p->done) {
    p->abandoned = true;
    stats_.timeouts += cmds.size();
    process_stats().timeouts.fetch_add(cmds.size(), std::memory_order_relaxed);
    // The oldest command waiting far too long: the peer is gone without telling us.
    if (options_.stall_reset.count() > 0 && state_ == State::kReady && !inflight_.empty() &&
        std::chrono::steady_clock::now() - inflight_.front()->queued_at > options_.stall_reset) {
      fail_connection(
          Error{ErrorKind::kConnectionLost, "no reply from " + address() + " for " +
                                                std::to_string(options_.stall_reset.count()) +
                                                " ms; connection reset"});
    }
    fail_all(ErrorKind::kTimeout, cmds[0]->describe() + " on " + address() + " timed out after " +
                                      std::to_string(timeout.count()) + " ms");
    co_return out;
  }
  co_return std::move(p->replies);
}

}  // namespace redline::redis
