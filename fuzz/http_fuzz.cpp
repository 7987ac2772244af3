// libFuzzer target: the server's request read path (http::read_request, the code every
// client connection runs) on an in-memory Beast test stream, with small limits so the
// fuzzer reaches them. Bytes in; out must come a sequence of well-formed HTTP/1.1
// responses: one 200 per accepted request (a trivial handler), and a rejection (400, 408,
// 413, 431) only as the last response, with `Connection: close`. Never a read past a limit.
#include <boost/asio.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http/request_reader.h"
#include "http/server.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using redline::http::ReadOutcome;

[[noreturn]] void fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "http_fuzz invariant broken: %s %.*s\n", what,
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

redline::config::HttpLimits fuzz_limits() {
  redline::config::HttpLimits l;
  l.max_header_bytes = 2048;
  l.max_header_count = 16;
  l.max_body_bytes = 4096;
  return l;
}

// The server loop in miniature: read, answer, keep-alive or close.
asio::awaitable<void> serve(beast::test::stream& s, const redline::config::HttpLimits& limits,
                            int& accepted) {
  constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
  beast::flat_buffer buffer;
  redline::http::NoDeadline deadline;
  while (true) {
    bhttp::request_parser<bhttp::string_body> parser;
    auto outcome = co_await redline::http::read_request(s, buffer, limits, parser, deadline);
    if (buffer.size() > limits.max_header_bytes + limits.max_body_bytes + 64 * 1024) {
      fail("read far past the limits");
    }
    if (outcome.kind == ReadOutcome::Kind::kClose) break;
    if (outcome.kind == ReadOutcome::Kind::kReject) {
      auto res = redline::http::error_response(outcome.status, outcome.message, outcome.code);
      res.set(bhttp::field::connection, "close");
      res.prepare_payload();
      co_await bhttp::async_write(s, res, nothrow);
      break;
    }
    const auto& req = parser.get();
    if (req.body().size() > limits.max_body_bytes) fail("body over the limit accepted");
    if (req.target().empty() || req.target().front() != '/') fail("target not origin-form");
    for (const auto& f : req) {
      if (f.name_string().find('_') != std::string_view::npos) fail("underscore header kept");
    }
    ++accepted;
    redline::http::Response res{bhttp::status::ok, 11};
    res.body() = std::to_string(req.body().size());
    if (!req.keep_alive()) res.set(bhttp::field::connection, "close");
    res.prepare_payload();
    co_await bhttp::async_write(s, res, nothrow);
    if (!req.keep_alive()) break;
  }
  s.close();
}

void check_output(std::string_view out, int accepted) {
  int responses = 0;
  int ok = 0;
  bool closed = false;
  while (!out.empty()) {
    if (closed) fail("bytes after a closing response");
    bhttp::response_parser<bhttp::string_body> p;
    p.eager(true);
    beast::error_code ec;
    const auto used = p.put(asio::buffer(out.data(), out.size()), ec);
    if (ec || !p.is_done()) fail("malformed response", out.substr(0, 200));
    const auto& res = p.get();
    if (res.version() != 11) fail("response not HTTP/1.1");
    const int status = res.result_int();
    ++responses;
    if (status == 100) {  // Expect: 100-continue
      out.remove_prefix(used);
      continue;
    }
    if (status == 200) {
      ++ok;
      closed = !res.keep_alive();
    } else if (status == 400 || status == 408 || status == 413 || status == 431) {
      if (res.keep_alive()) fail("rejection without Connection: close");
      closed = true;
    } else {
      fail("unexpected status", out.substr(0, 40));
    }
    out.remove_prefix(used);
  }
  if (ok != accepted) fail("accepted requests and 200s differ");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto limits = fuzz_limits();
  asio::io_context ioc;
  beast::test::stream server(ioc);
  beast::test::stream client(ioc);
  server.connect(client);
  server.append(std::string_view(reinterpret_cast<const char*>(data), size));
  server.close_remote();  // after the input, the server reads end of stream
  int accepted = 0;
  asio::co_spawn(ioc, serve(server, limits, accepted), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  ioc.run();
  check_output(client.str(), accepted);
  return 0;
}
