// Reads one request from a stream under config::HttpLimits: the per-connection read path
// of the server, templated on the stream so the fuzzer (fuzz/http_fuzz.cpp) drives exactly
// this code on an in-memory stream. The head is scanned byte-wise (request_guard.h) as it
// arrives and never read past max_header_bytes; Beast then parses it and the body.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <string>
#include <string_view>

#include "config/config.h"
#include "http/request_guard.h"

namespace redline::http {

struct ReadOutcome {
  enum class Kind {
    kRequest,  // parser holds a complete request
    kClose,    // the client went away, or the keep-alive wait ended: close quietly
    kReject,   // answer `status` with `message`/`code`, then close
  };
  Kind kind = Kind::kClose;
  int status = 0;
  std::string message;
  std::string_view code;
};

// A deadline the reader arms around its waits; when it fires, the stream's pending
// operation is cancelled and timed_out() turns true. A no-op one is fine for in-memory use.
struct NoDeadline {
  void arm(config::Millis) {}
  void disarm() {}
  bool timed_out() const { return false; }
};

inline ReadOutcome reject_outcome(int status, std::string message, std::string_view code) {
  return ReadOutcome{ReadOutcome::Kind::kReject, status, std::move(message), code};
}

// `buffer` may already hold bytes of this request (pipelining, the keep-alive wait);
// bytes past it stay in `buffer` for the next call.
template <class Stream, class Deadline>
boost::asio::awaitable<ReadOutcome> read_request(
    Stream& stream, boost::beast::flat_buffer& buffer, const config::HttpLimits& limits,
    boost::beast::http::request_parser<boost::beast::http::string_body>& parser,
    Deadline& deadline) {
  namespace asio = boost::asio;
  namespace beast = boost::beast;
  namespace bhttp = boost::beast::http;
  constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
  constexpr std::size_t kReadChunk = 16 * 1024;
  using Kind = ReadOutcome::Kind;

  auto view = [&buffer] {
    const auto d = buffer.cdata();
    return std::string_view(static_cast<const char*>(d.data()), d.size());
  };

  // 1. The head, scanned as it arrives; at most max_header_bytes are read for it.
  HeadScanner scanner;
  std::size_t blank_lines = 0;
  bool armed = false;
  while (true) {
    // RFC 9112 §2.2: empty lines before the request line are ignored (a few).
    while (scanner.state() == HeadScanner::State::kNeedMore && !scanner.started() &&
           view().substr(0, 2) == "\r\n" && blank_lines < 2) {
      buffer.consume(2);
      ++blank_lines;
    }
    const auto data = view();
    const auto state = data.empty() || data == "\r" ? HeadScanner::State::kNeedMore
                                                    : scanner.feed(data);
    if (state == HeadScanner::State::kBad) {
      if (armed) deadline.disarm();
      co_return reject_outcome(400, "malformed HTTP request: " + std::string(scanner.error()),
                               "bad_request");
    }
    if (state == HeadScanner::State::kComplete) break;
    if (data.size() >= limits.max_header_bytes) {
      if (armed) deadline.disarm();
      co_return reject_outcome(431, "request headers too large", "header_too_large");
    }
    if (!armed) {
      deadline.arm(limits.header_timeout);
      armed = true;
    }
    const std::size_t room = std::min(kReadChunk, limits.max_header_bytes - data.size());
    auto [ec, n] = co_await stream.async_read_some(buffer.prepare(room), nothrow);
    if (ec) {
      deadline.disarm();
      if (deadline.timed_out()) {
        co_return reject_outcome(408, "request headers not received in time", "request_timeout");
      }
      co_return ReadOutcome{};  // closed or reset mid-head (or drained): nothing to answer
    }
    buffer.commit(n);
  }
  if (armed) deadline.disarm();

  // 2. Beast parses the head (it is all buffered, so no I/O).
  parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
  parser.body_limit(limits.max_body_bytes);
  {
    beast::error_code ec;
    const auto used = parser.put(asio::buffer(buffer.cdata().data(), scanner.head_size()), ec);
    if (ec == bhttp::error::body_limit) {
      co_return reject_outcome(413, "request body too large", "body_too_large");
    }
    if (ec == bhttp::error::header_limit) {
      co_return reject_outcome(431, "request headers too large", "header_too_large");
    }
    if (ec || !parser.is_header_done()) {
      const auto why = ec ? ec.message() : std::string("incomplete head");
      co_return reject_outcome(400, "malformed HTTP request: " + why, "bad_request");
    }
    buffer.consume(used);
  }
  const auto& head = parser.get();
  if (static_cast<std::size_t>(std::distance(head.begin(), head.end())) >
      limits.max_header_count) {
    co_return reject_outcome(431, "too many request headers", "too_many_headers");
  }
  if (auto why = check_head(head.base())) {
    co_return reject_outcome(400, "malformed HTTP request: " + std::string(*why), "bad_request");
  }
  if (parser.content_length() && *parser.content_length() > limits.max_body_bytes) {
    co_return reject_outcome(413, "request body too large", "body_too_large");
  }

  // 3. The body.
  if (!parser.is_done()) {
    if (beast::iequals(head[bhttp::field::expect], "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      deadline.arm(limits.send_timeout);
      auto [wec, wn] = co_await asio::async_write(stream, asio::buffer(kContinue), nothrow);
      deadline.disarm();
      if (wec) co_return ReadOutcome{};
    }
    const bool body_buffered = !parser.chunked() && parser.content_length() &&
                               buffer.size() >= *parser.content_length();
    beast::error_code bec;
    if (body_buffered) {
      // All here (the usual case): parsed now, without Beast's async_read, whose
      // completion would take one more trip through the event loop.
      while (!bec && !parser.is_done()) {
        const auto used = parser.put(buffer.cdata(), bec);
        buffer.consume(used);
        if (used == 0 && !bec) bec = bhttp::error::partial_message;  // no endless loop
      }
    } else {
      deadline.arm(limits.body_timeout);
      auto [read_ec, bn] = co_await bhttp::async_read(stream, buffer, parser, nothrow);
      deadline.disarm();
      bec = read_ec;
    }
    if (bec) {
      if (deadline.timed_out()) {
        co_return reject_outcome(408, "request body not received in time", "request_timeout");
      }
      if (bec == bhttp::error::body_limit) {
        co_return reject_outcome(413, "request body too large", "body_too_large");
      }
      if (bec == bhttp::error::partial_message || bec == asio::error::eof ||
          bec == asio::error::connection_reset || bec == asio::error::operation_aborted) {
        co_return ReadOutcome{};
      }
      co_return reject_outcome(400, "malformed HTTP request body: " + bec.message(),
                               "bad_request");
    }
  }
  normalize_head(parser.get().base());
  co_return ReadOutcome{Kind::kRequest, 0, {}, {}};
}

}  // namespace redline::http
