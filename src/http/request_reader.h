// Reads one request from a stream under config::HttpLimits: the per-connection read path
// of the server, templated on the stream so the fuzzer (fuzz/http_fuzz.cpp) drives exactly
// this code on an in-memory stream. The head is scanned byte-wise (request_guard.h) as it
// arrives and never read past max_header_bytes; a plain head (parse_plain_head) is then
// parsed here and its Content-Length body read straight into the message, anything else
// (chunked bodies, unusual heads) goes through Beast's parser as a whole.
#pragma once

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <optional>
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

// The checks on a parsed head both parsing paths share: the field count, then
// check_head's framing and target rules. The rejection, or nullopt.
inline std::optional<ReadOutcome> check_parsed_head(const RequestHead& head,
                                                    const config::HttpLimits& limits) {
  if (static_cast<std::size_t>(std::distance(head.begin(), head.end())) > limits.max_header_count) {
    return reject_outcome(431, "too many request headers", "too_many_headers");
  }
  if (auto why = check_head(head)) {
    return reject_outcome(400, "malformed HTTP request: " + std::string(*why), "bad_request");
  }
  return std::nullopt;
}

// Answers `Expect: 100-continue` before a body is read; false when the client is gone.
template <class Stream, class Deadline>
boost::asio::awaitable<bool> send_continue(Stream& stream, const config::HttpLimits& limits,
                                           Deadline& deadline) {
  static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
  deadline.arm(limits.send_timeout);
  auto [ec, n] = co_await boost::asio::async_write(
      stream, boost::asio::buffer(kContinue), boost::asio::as_tuple(boost::asio::use_awaitable));
  deadline.disarm();
  co_return !ec;
}

// The head (its `head_size` bytes buffered) and the body of a request that is not plain,
// through Beast's parser. A coroutine of its own: the parser is large, and a frame over 1 KiB
// is never recycled by asio's per-thread frame cache (so read_request's stays small).
template <class Stream, class Deadline>
boost::asio::awaitable<ReadOutcome> read_with_beast(
    Stream& stream, boost::beast::flat_buffer& buffer, const config::HttpLimits& limits,
    boost::beast::http::request<boost::beast::http::string_body>& out, std::size_t head_size,
    Deadline& deadline) {
  namespace asio = boost::asio;
  namespace beast = boost::beast;
  namespace bhttp = boost::beast::http;
  constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
  using Kind = ReadOutcome::Kind;
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
  parser.body_limit(limits.max_body_bytes);
  {
    beast::error_code ec;
    const auto used = parser.put(asio::buffer(buffer.cdata().data(), head_size), ec);
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
  if (auto rejected = check_parsed_head(head.base(), limits)) co_return std::move(*rejected);
  if (parser.content_length() && *parser.content_length() > limits.max_body_bytes) {
    co_return reject_outcome(413, "request body too large", "body_too_large");
  }

  // The body.
  if (!parser.is_done()) {
    if (beast::iequals(head[bhttp::field::expect], "100-continue")) {
      if (!co_await send_continue(stream, limits, deadline)) co_return ReadOutcome{};
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
  out = parser.release();
  normalize_head(out.base());
  co_return ReadOutcome{Kind::kRequest, 0, {}, {}};
}

// `buffer` may already hold bytes of this request (pipelining, the keep-alive wait);
// bytes past it stay in `buffer` for the next call. With kRequest, `out` (a fresh message)
// holds the request. `plain_heads` false sends every head through Beast's parser (the tests
// and the fuzzer compare both ways).
template <class Stream, class Deadline>
boost::asio::awaitable<ReadOutcome> read_request(
    Stream& stream, boost::beast::flat_buffer& buffer, const config::HttpLimits& limits,
    boost::beast::http::request<boost::beast::http::string_body>& out, Deadline& deadline,
    bool plain_heads = true) {
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
    const auto state =
        data.empty() || data == "\r" ? HeadScanner::State::kNeedMore : scanner.feed(data);
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
  // The first read may have brought a whole head larger than the limit (the scan stops
  // reading at the limit, not short of it).
  if (scanner.head_size() > limits.max_header_bytes) {
    co_return reject_outcome(431, "request headers too large", "header_too_large");
  }

  // 2. The head: a plain one is parsed here, any other by Beast (it is all buffered, so no
  // I/O either way).
  std::uint64_t plain_length = 0;
  const bool plain =
      plain_heads &&
      parse_plain_head(
          std::string_view(static_cast<const char*>(buffer.cdata().data()), scanner.head_size()),
          out.base(), plain_length);
  if (plain) {
    // The order of Beast's path: its parser refuses a Content-Length over the body limit
    // while it parses the head, before the head's checks.
    if (plain_length > limits.max_body_bytes) {
      co_return reject_outcome(413, "request body too large", "body_too_large");
    }
    buffer.consume(scanner.head_size());
    if (auto rejected = check_parsed_head(out.base(), limits)) co_return std::move(*rejected);
    if (plain_length > 0) {
      if (beast::iequals(out[bhttp::field::expect], "100-continue")) {
        if (!co_await send_continue(stream, limits, deadline)) co_return ReadOutcome{};
      }
      // The body goes into the message as it arrives: what the buffer holds, then reads of
      // at most what is still missing (bytes past the body stay in the stream for the next
      // request). Reserved, not resized: a client that declares a large body and sends
      // little commits no more memory than it sent (as with Beast's string_body reader).
      const auto length = static_cast<std::size_t>(plain_length);
      auto& body = out.body();
      body.reserve(length);
      const std::size_t have = std::min(buffer.size(), length);
      body.append(static_cast<const char*>(buffer.cdata().data()), have);
      buffer.consume(have);
      if (body.size() < length) {
        deadline.arm(limits.body_timeout);
        while (body.size() < length) {
          const std::size_t want = std::min(kReadChunk, length - body.size());
          auto [ec, n] = co_await stream.async_read_some(buffer.prepare(want), nothrow);
          if (ec) {
            deadline.disarm();
            if (deadline.timed_out()) {
              co_return reject_outcome(408, "request body not received in time", "request_timeout");
            }
            co_return ReadOutcome{};  // closed or reset mid-body (or drained): nothing to answer
          }
          buffer.commit(n);
          body.append(static_cast<const char*>(buffer.cdata().data()), n);
          buffer.consume(n);
        }
        deadline.disarm();
      }
    }
    normalize_head(out.base());
    co_return ReadOutcome{Kind::kRequest, 0, {}, {}};
  }
  out = {};  // what a head that turned out not plain left in it
  co_return co_await read_with_beast(stream, buffer, limits, out, scanner.head_size(), deadline);
}

}  // namespace redline::http
