// libFuzzer target: the server's request read path (http::read_request, the code every
// client connection runs) on an in-memory Beast test stream, with small limits so the
// fuzzer reaches them. Bytes in; out must come a sequence of well-formed HTTP/1.1
// responses: one 200 per accepted request (a trivial handler), and a rejection (400, 408,
// 413, 431) only as the last response, with `Connection: close`. Never a read past a limit.
// Every input is served twice, plain heads parsed by parse_plain_head and then every head
// through Beast's parser: the requests read (method, target, version, fields, body), the
// outcomes and the bytes written back must be the same.
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
// `log` gets each outcome and request read, for the comparison of the two parsing ways.
asio::awaitable<void> serve(beast::test::stream& s, const redline::config::HttpLimits& limits,
                            int& accepted, bool plain, std::string& log) {
  constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
  beast::flat_buffer buffer;
  redline::http::NoDeadline deadline;
  while (true) {
    bhttp::request<bhttp::string_body> req;
    auto outcome = co_await redline::http::read_request(s, buffer, limits, req, deadline, plain);
    log += std::to_string(static_cast<int>(outcome.kind)) + " " + std::to_string(outcome.status) +
           " " + outcome.message + "\n";
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
    log += std::string(req.method_string()) + " " + std::string(req.target()) + " " +
           std::to_string(req.version()) + "\n";
    for (const auto& f : req) {
      log += std::string(f.name_string()) + ": " + std::string(f.value()) + "\n";
    }
    log += std::to_string(req.body().size()) + ":" + req.body() + "\n";
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
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string logs[2], outputs[2];
  for (int way = 0; way < 2; ++way) {
    asio::io_context ioc;
    beast::test::stream server(ioc);
    beast::test::stream client(ioc);
    server.connect(client);
    server.append(input);
    server.close_remote();  // after the input, the server reads end of stream
    int accepted = 0;
    asio::co_spawn(ioc, serve(server, limits, accepted, way == 0, logs[way]),
                   [](std::exception_ptr e) {
                     if (e) std::rethrow_exception(e);
                   });
    ioc.run();
    outputs[way] = std::string(client.str());
    check_output(outputs[way], accepted);
  }
  if (logs[0] != logs[1]) fail("plain and Beast parsing differ", logs[0] + "|vs|" + logs[1]);
  if (outputs[0] != outputs[1]) fail("plain and Beast answers differ");
  return 0;
}
