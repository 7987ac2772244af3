// The mock's HTTP/1.1 connection loop (see session.h). Plain and TLS connections share
// one template over the stream type. Responses are written as raw bytes: a header block
// built per request plus the Plan's body, gathered into one write unless a delay spaces it.
#include "mock/session.h"

#include <fmt/compile.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <iterator>

namespace redline::mock {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kLastChunk = "0\r\n\r\n";
constexpr std::chrono::milliseconds kCloseLinger{500};

std::string_view reason(int status) {
  if (status == 529) return "Overloaded";
  std::string_view r = http::obsolete_reason(http::int_to_status(static_cast<unsigned>(status)));
  return r == "<unknown-status>" ? "Unknown" : r;
}

// The status line and header block for `plan`, ending with the blank line.
void append_head(const Plan& plan, std::string& out) {
  fmt::format_to(std::back_inserter(out),
                 FMT_COMPILE("HTTP/1.1 {} {}\r\ncontent-type: {}\r\nx-request-id: {}\r\n"),
                 plan.status, reason(plan.status), plan.content_type, plan.request_id);
  if (plan.kind == Plan::Kind::kStream) {
    out += "cache-control: no-cache\r\n";
    if (plan.http11) out += "transfer-encoding: chunked\r\n";
  } else {
    fmt::format_to(std::back_inserter(out), FMT_COMPILE("content-length: {}\r\n"),
                   plan.body.size());
  }
  if (plan.retry_after >= 0) {
    fmt::format_to(std::back_inserter(out), FMT_COMPILE("retry-after: {}\r\n"), plan.retry_after);
  }
  if (!plan.keep_alive) {
    out += "connection: close\r\n";
  } else if (!plan.http11) {
    out += "connection: keep-alive\r\n";
  }
  out += "\r\n";
}

// 0 when the peer is simply gone; otherwise the status that answers a bad request.
int read_error_status(const beast::error_code& ec) {
  if (ec == http::error::end_of_stream || ec == http::error::partial_message) return 0;
  if (ec == http::error::body_limit) return 413;
  if (ec == http::error::header_limit) return 431;
  if (ec.category() == beast::error_code(http::error::bad_method).category()) return 400;
  return 0;
}

bool expects_continue(const Request& request) {
  auto it = request.find(http::field::expect);
  return it != request.end() && beast::iequals(it->value(), "100-continue");
}

// Drops the connection with a TCP reset (SO_LINGER 0), as a crashed provider would.
void reset_connection(tcp::socket& socket) {
  beast::error_code ec;
  socket.set_option(asio::socket_base::linger(true, 0), ec);
  socket.close(ec);
}

template <class Stream, class Buffers>
asio::awaitable<bool> write_all(Stream& stream, const Buffers& buffers) {
  beast::error_code ec;
  auto token = asio::redirect_error(asio::use_awaitable, ec);
  co_await asio::async_write(stream, buffers, token);
  co_return !ec;
}

// A stalled stream: never another byte, but keep reading (and discarding) so the
// connection goes away when the peer gives up.
template <class Stream>
asio::awaitable<void> stall_until_closed(Stream& stream) {
  std::array<char, 512> sink;
  beast::error_code ec;
  auto token = asio::redirect_error(asio::use_awaitable, ec);
  auto buffer = asio::buffer(sink);
  while (!ec) co_await stream.async_read_some(buffer, token);
}

// Ends our side, then reads what the peer still sends (an unread request body, say) for
// a moment, so closing does not turn into a reset that destroys the answer in flight.
template <class Stream>
asio::awaitable<void> close_gracefully(Stream& stream, asio::steady_timer& timer) {
  using namespace asio::experimental::awaitable_operators;
  beast::error_code ec;
  beast::get_lowest_layer(stream).shutdown(tcp::socket::shutdown_send, ec);
  timer.expires_after(kCloseLinger);
  auto wait = timer.async_wait(asio::use_awaitable);
  auto drain = stall_until_closed(stream);
  auto first_done = std::move(drain) || std::move(wait);
  try {
    co_await std::move(first_done);
  } catch (const std::exception&) {
  }
}

// Sends the SSE events of `plan` after `head`. Returns whether the connection can
// carry another request.
template <class Stream>
asio::awaitable<bool> send_stream(Stream& stream, const Plan& plan, const std::string& head,
                                  asio::steady_timer& timer) {
  const std::string_view body = plan.body;
  const std::vector<std::size_t>& ends = plan.event_ends;
  const bool stalls =
      plan.stall_after >= 0 && static_cast<std::size_t>(plan.stall_after) < ends.size();
  const std::size_t count = stalls ? static_cast<std::size_t>(plan.stall_after) : ends.size();
  const std::string_view tail = stalls || !plan.http11 ? std::string_view() : kLastChunk;
  auto end_of_first = [&](std::size_t n) { return n == 0 ? std::size_t{0} : ends[n - 1]; };

  if (plan.stream_delay.count() == 0) {
    std::array<asio::const_buffer, 3> all = {
        asio::buffer(head), asio::buffer(body.substr(0, end_of_first(count))), asio::buffer(tail)};
    bool ok = co_await write_all(stream, all);
    if (!ok) co_return false;
  } else {
    std::array<asio::const_buffer, 2> first = {
        asio::buffer(head), asio::buffer(body.substr(0, end_of_first(count > 0 ? 1 : 0)))};
    bool ok = co_await write_all(stream, first);
    if (!ok) co_return false;
    beast::error_code ec;
    auto token = asio::redirect_error(asio::use_awaitable, ec);
    for (std::size_t i = 1; i < count; ++i) {
      timer.expires_after(plan.stream_delay);
      co_await timer.async_wait(token);
      auto event = asio::buffer(body.substr(ends[i - 1], ends[i] - ends[i - 1]));
      ok = co_await write_all(stream, event);
      if (!ok) co_return false;
    }
    if (!tail.empty()) {
      auto last = asio::buffer(tail);
      ok = co_await write_all(stream, last);
      if (!ok) co_return false;
    }
  }
  if (stalls) {
    co_await stall_until_closed(stream);
    co_return false;
  }
  co_return plan.http11;
}

// Carries out `plan`. Returns whether the connection can carry another request.
template <class Stream>
asio::awaitable<bool> send(Stream& stream, const Plan& plan, std::string& head,
                           asio::steady_timer& timer) {
  if (plan.latency.count() > 0) {
    beast::error_code ec;
    auto token = asio::redirect_error(asio::use_awaitable, ec);
    timer.expires_after(plan.latency);
    co_await timer.async_wait(token);
  }
  if (plan.kind == Plan::Kind::kReset) {
    reset_connection(beast::get_lowest_layer(stream));
    co_return false;
  }
  head.clear();
  append_head(plan, head);
  if (plan.kind == Plan::Kind::kStream) {
    bool open = co_await send_stream(stream, plan, head, timer);
    co_return open;
  }
  std::array<asio::const_buffer, 2> whole = {asio::buffer(head), asio::buffer(plan.body)};
  bool ok = co_await write_all(stream, whole);
  co_return ok;
}

template <class Stream>
asio::awaitable<void> serve_http(Stream& stream, Handler& handler) {
  const MockOptions& options = handler.options();
  beast::flat_buffer buffer;
  Plan plan;
  std::string head;
  asio::steady_timer timer(stream.get_executor());
  beast::error_code ec;
  auto token = asio::redirect_error(asio::use_awaitable, ec);
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(options.header_limit);
    parser.body_limit(options.body_limit);
    co_await http::async_read_header(stream, buffer, parser, token);
    if (!ec && !parser.is_done() && expects_continue(parser.get())) {
      auto go_on = asio::buffer(kContinue);
      co_await asio::async_write(stream, go_on, token);
    }
    if (!ec && !parser.is_done()) co_await http::async_read(stream, buffer, parser, token);
    if (ec) {
      const int status = read_error_status(ec);
      if (status == 0) co_return;
      handler.reject(status, ec.message(), plan);
    } else {
      handler.handle(parser.get(), plan);
    }
    bool open = co_await send(stream, plan, head, timer);
    if (!open) co_return;
    if (!plan.keep_alive) {
      co_await close_gracefully(stream, timer);
      co_return;
    }
  }
}

}  // namespace

asio::awaitable<void> serve_connection(tcp::socket socket, ssl::context* tls, Handler& handler) {
  beast::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  try {
    if (tls == nullptr) {
      co_await serve_http(socket, handler);
    } else {
      ssl::stream<tcp::socket> stream(std::move(socket), *tls);
      auto token = asio::redirect_error(asio::use_awaitable, ec);
      co_await stream.async_handshake(ssl::stream_base::server, token);
      if (!ec) co_await serve_http(stream, handler);
    }
  } catch (const std::exception& e) {
    spdlog::debug("redline-mock: connection dropped: {}", e.what());
  }
}

}  // namespace redline::mock
