// The request read path's two ways of parsing a head (http/request_reader.h): plain heads
// parsed by parse_plain_head and their bodies read straight into the message, any other head
// through Beast's parser. Each request below is read both ways, whole and in 7-byte reads,
// and must come out the same: the outcome, method, target, version, fields in order, body,
// the bytes left for the next request and what was written back (100 Continue).
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <string>
#include <utility>
#include <vector>

#include "http/request_guard.h"
#include "http/request_reader.h"

namespace redline::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

struct Read {
  ReadOutcome::Kind kind = ReadOutcome::Kind::kClose;
  int status = 0;
  std::string message;
  std::string method, target;
  unsigned version = 0;
  std::vector<std::pair<std::string, std::string>> fields;
  std::string body;
  std::string left;     // bytes of the input not taken by this request
  std::string written;  // what the reader wrote back

  bool operator==(const Read&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Read& r) {
  os << "kind " << static_cast<int>(r.kind) << " status " << r.status << " (" << r.message << ") "
     << r.method << " " << r.target << " " << r.version << " body[" << r.body << "] left[" << r.left
     << "] written[" << r.written << "] fields:";
  for (const auto& [n, v] : r.fields) os << " {" << n << ": " << v << "}";
  return os;
}

config::HttpLimits small_limits() {
  config::HttpLimits l;
  l.max_header_bytes = 1024;
  l.max_header_count = 8;
  l.max_body_bytes = 64;
  return l;
}

// Reads one request from `input` (then end of stream) with the plain path on or off.
Read read_one(std::string_view input, bool plain, std::size_t read_size) {
  asio::io_context ioc;
  beast::test::stream server(ioc);
  beast::test::stream client(ioc);
  server.connect(client);
  server.append(input);
  server.close_remote();
  if (read_size > 0) server.read_size(read_size);
  const auto limits = small_limits();
  Read r;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        beast::flat_buffer buffer;
        NoDeadline deadline;
        bhttp::request<bhttp::string_body> req;
        const auto outcome = co_await read_request(server, buffer, limits, req, deadline, plain);
        r.kind = outcome.kind;
        r.status = outcome.status;
        r.message = outcome.message;
        if (outcome.kind == ReadOutcome::Kind::kRequest) {
          r.method = std::string(req.method_string());
          r.target = std::string(req.target());
          r.version = req.version();
          for (const auto& f : req) r.fields.emplace_back(f.name_string(), f.value());
          r.body = req.body();
        }
        r.left = beast::buffers_to_string(buffer.cdata());
        // The rest of the input the reader did not take yet.
        char chunk[256];
        while (true) {
          auto [ec, n] = co_await server.async_read_some(asio::buffer(chunk),
                                                         asio::as_tuple(asio::use_awaitable));
          if (ec) break;
          r.left.append(chunk, n);
        }
      },
      asio::detached);
  ioc.run();
  r.written = std::string(client.str());
  return r;
}

// Both ways, whole and in small reads; the plain way's result (the same in all four).
Read both_ways(std::string_view input) {
  const Read plain = read_one(input, true, 0);
  EXPECT_EQ(plain, read_one(input, false, 0)) << input;
  EXPECT_EQ(plain, read_one(input, true, 7)) << input;
  EXPECT_EQ(plain, read_one(input, false, 7)) << input;
  return plain;
}

bool is_plain(std::string_view head) {
  RequestHead out;
  std::uint64_t length = 0;
  return parse_plain_head(head, out, length);
}

TEST(PlainHeadTest, AChatRequestIsPlainAndReadTheSameBothWays) {
  const std::string head =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
      "Authorization: Bearer sk-1\r\nContent-Length: 11\r\n\r\n";
  ASSERT_TRUE(is_plain(head));
  const Read r = both_ways(head + "{\"a\":\"b\"}xxGET / HTTP/1.1\r\n\r\n");
  ASSERT_EQ(r.kind, ReadOutcome::Kind::kRequest);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/v1/chat/completions");
  EXPECT_EQ(r.version, 11u);
  EXPECT_EQ(r.body, "{\"a\":\"b\"}xx");
  EXPECT_EQ(r.left, "GET / HTTP/1.1\r\n\r\n");  // the next request stays for the next read
  const std::vector<std::pair<std::string, std::string>> fields{
      {"Host", "gw"},
      {"Content-Type", "application/json"},
      {"Authorization", "Bearer sk-1"},
      {"Content-Length", "11"}};
  EXPECT_EQ(r.fields, fields);
}

TEST(PlainHeadTest, ValuesAreTrimmedAndKeepTheirInsides) {
  const std::string head =
      "GET /x?q=1 HTTP/1.1\r\nHost: a\r\nX-Pad: \t a \t b \t\r\nX-Empty:\r\nX-Spaces:   \r\n"
      "X-Obs: caf\xc3\xa9\r\nx-lower: v\r\nCONTENT-LENGTH: 0\r\n\r\n";
  ASSERT_TRUE(is_plain(head));
  const Read r = both_ways(head);
  ASSERT_EQ(r.kind, ReadOutcome::Kind::kRequest);
  const std::vector<std::pair<std::string, std::string>> fields{
      {"Host", "a"},          {"X-Pad", "a \t b"},      {"X-Empty", ""},
      {"X-Spaces", ""},       {"X-Obs", "caf\xc3\xa9"}, {"x-lower", "v"},
      {"CONTENT-LENGTH", "0"}};
  EXPECT_EQ(r.fields, fields);
  EXPECT_EQ(r.body, "");
}

TEST(PlainHeadTest, PlainShapesReadTheSameBothWays) {
  const char* plain[] = {
      "GET / HTTP/1.0\r\n\r\n",
      "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      "PURGE /cache HTTP/1.1\r\nHost: a\r\n\r\n",  // a method Beast has no verb for
      "M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n",    // a target check_head refuses
      "POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n1234567",
      "POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length:   3  \r\n\r\nabc",
      "POST /v1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 2\r\n\r\nab",
      "GET http://example.com/p?x HTTP/1.1\r\nHost: other\r\n\r\n",  // absolute-form
      "GET //evil/p HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX_Api_Key: k\r\nConnection: X-Drop\r\nX-Drop: 1\r\n\r\n",
      "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\nH: 8\r\nI: "
      "9\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65\r\n\r\n",      // over the body limit
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nshort",  // cut short
      "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
      "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n\r\nbo",
  };
  // A head over max_header_bytes (1024) that arrives in one read.
  const std::string big =
      "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(1100, 'b') + "\r\n\r\n";
  ASSERT_TRUE(is_plain(big));
  EXPECT_EQ(both_ways(big).status, 431);
  const std::string at_limit =
      "GET / HTTP/1.1\r\nX-Big: " + std::string(1024 - 16 - 7 - 4, 'b') + "\r\n\r\n";
  ASSERT_EQ(at_limit.size(), 1024u);
  EXPECT_EQ(both_ways(at_limit).kind, ReadOutcome::Kind::kRequest);
  const std::string past_limit = "GET / HTTP/1.1\r\nX-Big: b" + at_limit.substr(23);
  ASSERT_EQ(past_limit.size(), 1025u);
  EXPECT_EQ(both_ways(past_limit).status, 431);
  for (const char* input : plain) {
    const std::string_view in(input);
    ASSERT_TRUE(is_plain(in.substr(0, in.find("\r\n\r\n") + 4))) << input;
    both_ways(input);
  }
  // A few of the outcomes spelled out.
  EXPECT_EQ(both_ways(plain[4]).body, "1234567");
  EXPECT_EQ(both_ways(plain[7]).target, "/p?x");
  EXPECT_EQ(both_ways(plain[8]).status, 400);
  EXPECT_EQ(both_ways(plain[9]).status, 400);
  EXPECT_EQ(both_ways(plain[11]).status, 431);
  EXPECT_EQ(both_ways(plain[12]).status, 413);
  EXPECT_EQ(both_ways(plain[13]).kind, ReadOutcome::Kind::kClose);
  EXPECT_EQ(both_ways(plain[14]).written, "HTTP/1.1 100 Continue\r\n\r\n");
  const auto dropped = both_ways(plain[10]).fields;
  EXPECT_EQ(dropped, (std::vector<std::pair<std::string, std::string>>{{"Host", "a"},
                                                                       {"Connection", "X-Drop"}}));
}

TEST(PlainHeadTest, OtherShapesGoToBeastAndReadTheSame) {
  const char* other[] = {
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 2\r\n\r\nab",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +2\r\n\r\nab",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
      "GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
      "GET / HTTP/1.1\r\nConnection: a b\r\n\r\n",
      "GET / HTTP/1.1\r\nConnection:\r\n\r\n",
      "GET / HTTP/1.1\r\nProxy-Connection: close, x\r\n\r\n",
      "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",  // obs-text in the target
      "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.2\r\nHost: a\r\n\r\n",
      "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
      "GET / http/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
      "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET\r\nHost: a\r\n\r\n",
      "GET /\r\nHost: a\r\n\r\n",
  };
  for (const char* input : other) {
    const std::string_view in(input);
    EXPECT_FALSE(is_plain(in.substr(0, in.find("\r\n\r\n") + 4))) << input;
    both_ways(input);
  }
  EXPECT_EQ(both_ways(other[0]).body, "abc");
  EXPECT_EQ(both_ways(other[1]).status, 400);
  EXPECT_EQ(both_ways(other[3]).status, 400);
  EXPECT_EQ(both_ways(other[11]).status, 400);
  EXPECT_EQ(both_ways(other[12]).status, 400);
}

}  // namespace
}  // namespace redline::http
