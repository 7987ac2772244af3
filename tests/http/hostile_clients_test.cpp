// Hostile clients against the real http::Server on loopback (two threads, a trivial
// handler that echoes what it saw): request smuggling, header and body floods, slow
// clients, 1,000 slowloris connections next to normal clients, the per-IP connection cap
// (a second address from 127.0.0.0/8), and the client address behind trusted proxies.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "http/server.h"
#include "support/http_client.h"

namespace redline {
namespace {

using namespace std::chrono_literals;
using test::RawConn;

// Answers 200 with {"client_ip","target","body_bytes","headers":[names]}.
class EchoHandler : public http::Handler {
 public:
  boost::asio::awaitable<void> handle(http::Exchange& ex) override {
    boost::json::array names;
    for (const auto& f : ex.request()) names.emplace_back(f.name_string());
    boost::json::object o;
    o["client_ip"] = ex.client_ip();
    o["target"] = ex.request().target();
    o["body_bytes"] = ex.request().body().size();
    o["headers"] = std::move(names);
    http::Response res{boost::beast::http::status::ok, 11};
    res.set(boost::beast::http::field::content_type, "application/json");
    res.body() = boost::json::serialize(o);
    co_await ex.respond(res);
  }
};

struct TestServer {
  explicit TestServer(config::HttpLimits limits) {
    server = std::make_unique<http::Server>("test", config::HostPort{"127.0.0.1", 0}, limits,
                                            handler, std::vector{&ioc[0], &ioc[1]});
    server->start();
    for (int i = 0; i < 2; ++i) {
      threads.emplace_back([this, i] {
        auto guard = boost::asio::make_work_guard(ioc[i]);
        ioc[i].run();
      });
    }
  }
  ~TestServer() {
    for (auto& c : ioc) c.stop();
    for (auto& t : threads) t.join();
    server->close_io();
  }
  int port() const { return server->port(); }

  EchoHandler handler;
  std::unique_ptr<http::Server> server;  // outlives the io_contexts (declared before them)
  boost::asio::io_context ioc[2];
  std::vector<std::thread> threads;
};

// Sends `bytes`, reads to the end; expects exactly one response with `status`, then close.
void expect_refused(int port, const std::string& bytes, int status, const std::string& what) {
  RawConn c(port);
  c.send(bytes);
  const auto out = c.read_all(3s);
  EXPECT_EQ(test::raw_status(out), status) << what << "\n" << out;
  EXPECT_EQ(out.find("HTTP/1.1", 1), std::string::npos) << what << ": a second response\n" << out;
  EXPECT_NE(out.find("\"error\""), std::string::npos) << what;
  EXPECT_TRUE(c.closed_by_peer(2s)) << what;
}

class SmugglingTest : public ::testing::Test {
 protected:
  TestServer srv_{config::HttpLimits{}};
};

constexpr char kNulHead[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n";

TEST_F(SmugglingTest, EveryVectorIs400AndCloses) {
  const std::pair<const char*, std::string> vectors[] = {
      {"CL then TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: "
                     "chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"TE then CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: "
                     "6\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"equal CLs", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"},
      {"differing CLs",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc"},
      {"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc"},
      {"TE chunked, identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, "
                               "identity\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nGET /smuggled "
                  "HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"TE twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
                   "chunked\r\n\r\n0\r\n\r\n"},
      {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n"},
      {"obs-fold TE", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"},
      {"bare LF", "GET / HTTP/1.1\nHost: a\n\n"},
      {"bare LF in one line", "GET / HTTP/1.1\r\nHost: a\nX-B: b\r\n\r\n"},
      {"bare CR", "GET / HTTP/1.1\r\nHost: a\rX-B: b\r\n\r\n"},
      {"NUL in value", std::string(kNulHead, sizeof kNulHead - 1)},
      {"CTL in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x0b b\r\n\r\n"},
      {"chunk size not hex",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"},
      {"chunk size negative",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"},
      {"chunk size overflow", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                              "chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n"},
      {"chunk lines with bare LF",  // Beast: "bad chunk extension" once it sees more bytes
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n"
       "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
      {"asterisk form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"authority form", "CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\n\r\n"},
      {"scheme-relative", "GET //evil/v1 HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"absolute with userinfo", "GET http://u@evil/v1 HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"other scheme", "GET ftp://evil/v1 HTTP/1.1\r\nHost: a\r\n\r\n"},
  };
  for (const auto& [what, bytes] : vectors) expect_refused(srv_.port(), bytes, 400, what);
}

TEST_F(SmugglingTest, AbsoluteFormIsServedAsOriginForm) {
  RawConn c(srv_.port());
  c.send("GET http://api.example.com/v1/models?x=1 HTTP/1.1\r\nHost: other\r\nConnection: "
         "close\r\n\r\n");
  const auto out = c.read_all(3s);
  ASSERT_EQ(test::raw_status(out), 200) << out;
  EXPECT_NE(out.find(R"("target":"/v1/models?x=1")"), std::string::npos) << out;
}

TEST_F(SmugglingTest, ValidPipelineStillServedInOrder) {
  RawConn c(srv_.port());
  c.send("\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
         "chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\nConnection: "
         "close\r\n\r\n");
  const auto out = c.read_all(3s);
  const auto a = out.find(R"("target":"/a")");
  const auto b = out.find(R"("target":"/b","body_bytes":3)");
  const auto d = out.find(R"("target":"/c")");
  ASSERT_NE(a, std::string::npos) << out;
  ASSERT_NE(b, std::string::npos) << out;
  ASSERT_NE(d, std::string::npos) << out;
  EXPECT_LT(a, b);
  EXPECT_LT(b, d);
}

TEST_F(SmugglingTest, UnderscoreAndConnectionListedHeadersNeverReachTheHandler) {
  RawConn c(srv_.port());
  c.send("GET / HTTP/1.1\r\nHost: a\r\nx_api_key: sk-smuggled\r\nConnection: close, "
         "x-hop\r\nx-hop: 1\r\nx-end: 2\r\n\r\n");
  const auto out = c.read_all(3s);
  ASSERT_EQ(test::raw_status(out), 200) << out;
  EXPECT_EQ(out.find("x_api_key"), std::string::npos) << out;
  EXPECT_EQ(out.find("\"x-hop\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"x-end\""), std::string::npos) << out;
}

// Small writes (stream events, answers split in head and body) must not wait for the
// client's ACK: every accepted socket has Nagle off. The server sets TCP_NODELAY once, on its
// listening sockets, and Linux copies it to the sockets accept() returns. Found here among
// this process's descriptors: the server end of our connection.
TEST(AcceptedSocketTest, HasNagleOff) {
  TestServer srv(config::HttpLimits{});
  const int c = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(c, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(srv.port()));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  const std::string req = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
  ASSERT_EQ(::send(c, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  char buf[512];
  ASSERT_GT(::recv(c, buf, sizeof buf, 0), 0);  // answered: accepted and served
  sockaddr_in mine{};
  socklen_t len = sizeof mine;
  ASSERT_EQ(::getsockname(c, reinterpret_cast<sockaddr*>(&mine), &len), 0);

  int found = 0, nodelay = -1;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::atoi(e.path().filename().c_str());
    if (fd == c) continue;
    sockaddr_in local{}, peer{};
    socklen_t l1 = sizeof local, l2 = sizeof peer;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &l1) != 0 ||
        local.sin_family != AF_INET ||
        ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &l2) != 0 ||
        ntohs(local.sin_port) != srv.port() || peer.sin_port != mine.sin_port) {
      continue;
    }
    ++found;
    socklen_t ol = sizeof nodelay;
    ASSERT_EQ(::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &ol), 0);
  }
  ::close(c);
  ASSERT_EQ(found, 1);
  EXPECT_EQ(nodelay, 1);
}

TEST(FloodTest, HeaderAndBodyFloodsHitTheirLimits) {
  config::HttpLimits l;
  l.max_header_bytes = 4096;
  l.max_header_count = 20;
  l.max_body_bytes = 1000;
  TestServer srv(l);
  // Header bytes: a head that never ends; refused once 4 KiB arrived, not when it ends.
  {
    RawConn c(srv.port());
    c.send(std::string("GET / HTTP/1.1\r\nHost: a\r\nX-Big: ").append(8000, 'a'));
    const auto out = c.read_all(3s);
    EXPECT_EQ(test::raw_status(out), 431) << out;
  }
  std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 30; ++i) many.append("X-H").append(std::to_string(i)).append(": v\r\n");
  expect_refused(srv.port(), many + "\r\n", 431, "header count");
  expect_refused(srv.port(),
                 std::string("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n").append(1001, 'b'),
                 413, "Content-Length body flood");
  std::string chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string chunk = std::string("100\r\n").append(256, 'c').append("\r\n");
  for (int i = 0; i < 5; ++i) chunked += chunk;
  expect_refused(srv.port(), chunked + "0\r\n\r\n", 413, "chunked body flood");
}

TEST(FloodTest, SlowHeadersAndBodyAre408) {
  config::HttpLimits l;
  l.header_timeout = 300ms;
  l.body_timeout = 300ms;
  TestServer srv(l);
  const auto t0 = std::chrono::steady_clock::now();
  {
    RawConn c(srv.port());
    c.send("GET / HTTP/1.1\r\nHost: a\r\n");
    std::this_thread::sleep_for(150ms);
    c.send("X-A: 1\r\n");  // still trickling: the deadline covers the whole head
    const auto out = c.read_all(5s);
    EXPECT_EQ(test::raw_status(out), 408) << out;
  }
  {
    RawConn c(srv.port());
    c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    const auto out = c.read_all(5s);
    EXPECT_EQ(test::raw_status(out), 408) << out;
  }
  // Both answered by their deadlines, far below the 5 s read timeouts.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
}

// A TCP connection from a chosen local address of 127.0.0.0/8.
int connect_from(const char* local_ip, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, local_ip, &local.sin_addr);
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends a request on fd and reads until the peer closes (or 3 s); returns the bytes.
std::string exchange(int fd, const std::string& request) {
  if (!request.empty()) (void)!::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  timeval tv{3, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  char buf[4096];
  while (true) {
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

TEST(PerIpCapTest, BeyondTheCapIs503AndOtherAddressesAreUnaffected) {
  config::HttpLimits l;
  l.max_connections_per_ip = 3;
  TestServer srv(l);
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(connect_from("127.0.0.1", srv.port()));
    ASSERT_GE(held.back(), 0);
  }
  // The server counts a connection once it accepted it: wait (bounded) for all three.
  for (int i = 0; i < 200 && srv.server->connections_from("127.0.0.1") < 3; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(srv.server->connections_from("127.0.0.1"), 3u);
  {
    const int fd = connect_from("127.0.0.1", srv.port());
    ASSERT_GE(fd, 0);
    const auto out = exchange(fd, "");
    ::close(fd);
    EXPECT_EQ(test::raw_status(out), 503) << out;
    EXPECT_NE(out.find(R"("code":"connection_limit_per_ip")"), std::string::npos) << out;
    EXPECT_NE(out.find(R"("error":{)"), std::string::npos) << out;
  }
  {
    const int fd = connect_from("127.0.0.2", srv.port());
    ASSERT_GE(fd, 0) << "cannot bind 127.0.0.2";
    const auto out = exchange(fd, "GET /other HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    ::close(fd);
    EXPECT_EQ(test::raw_status(out), 200) << out;
    EXPECT_NE(out.find(R"("client_ip":"127.0.0.2")"), std::string::npos) << out;
  }
  // Closing one frees its slot.
  ::close(held.back());
  held.pop_back();
  for (int i = 0; i < 200 && srv.server->connections_from("127.0.0.1") > 2; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  const int fd = connect_from("127.0.0.1", srv.port());
  const auto out = exchange(fd, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  ::close(fd);
  EXPECT_EQ(test::raw_status(out), 200) << out;
  for (int h : held) ::close(h);
}

// The peer address as text (written by hand, not by a formatter): one-, two- and
// three-digit bytes and a zero byte come out as inet_ntop writes them.
TEST(PerIpCapTest, ThePeerAddressTextIsExact) {
  TestServer srv(config::HttpLimits{});
  for (const char* ip : {"127.250.0.19", "127.3.45.255"}) {
    const int fd = connect_from(ip, srv.port());
    ASSERT_GE(fd, 0) << "cannot bind " << ip;
    const auto out = exchange(fd, "GET /other HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    ::close(fd);
    EXPECT_EQ(test::raw_status(out), 200) << out;
    EXPECT_NE(out.find(std::string(R"("client_ip":")") + ip + "\""), std::string::npos) << out;
  }
}

TEST(PerIpCapTest, TrustedProxiesAreExemptAndTheirXffIsBelieved) {
  config::HttpLimits l;
  l.max_connections_per_ip = 1;
  l.trusted_proxies = {"127.0.0.1/32"};
  TestServer srv(l);
  const int held = connect_from("127.0.0.1", srv.port());
  const int fd = connect_from("127.0.0.1", srv.port());
  const auto out = exchange(fd, "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6, "
                                "198.51.100.7\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(test::raw_status(out), 200) << out;
  EXPECT_NE(out.find(R"("client_ip":"198.51.100.7")"), std::string::npos) << out;
  // From an untrusted peer the same header is ignored.
  const int other = connect_from("127.0.0.2", srv.port());
  const auto spoofed = exchange(
      other, "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 198.51.100.7\r\nConnection: close\r\n\r\n");
  EXPECT_NE(spoofed.find(R"("client_ip":"127.0.0.2")"), std::string::npos) << spoofed;
  ::close(fd);
  ::close(other);
  ::close(held);
}

// p99 of `n` one-shot requests, in microseconds.
double p99_us(int port, int n) {
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = test::http_request(port, "GET", "/v1/cheap");
    const auto t1 = std::chrono::steady_clock::now();
    EXPECT_EQ(r.status, 200);
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(us.begin(), us.end());
  return us[static_cast<std::size_t>(0.99 * (us.size() - 1))];
}

TEST(SlowlorisTest, ThousandDribblingConnectionsDoNotSlowNormalClients) {
  constexpr int kSlow = 1000;
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = std::max<rlim_t>(rl.rlim_cur, std::min<rlim_t>(rl.rlim_max, 8192));
  ::setrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 2 * kSlow + 200) GTEST_SKIP() << "RLIMIT_NOFILE too low: " << rl.rlim_cur;

  config::HttpLimits l;
  l.max_connections_per_ip = 0;  // all of them come from 127.0.0.1: the cap would end this
  l.header_timeout = 30s;        // they stay for the whole test
  TestServer srv(l);
  const double before = p99_us(srv.port(), 500);

  std::vector<int> slow;
  for (int i = 0; i < kSlow; ++i) {
    const int fd = connect_from("127.0.0.1", srv.port());
    ASSERT_GE(fd, 0) << "connection " << i;
    slow.push_back(fd);
  }
  const std::string head = "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ";
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  std::thread dribbler([&] {
    for (std::size_t k = 0; !stop; ++k) {
      for (int fd : slow) {
        if (::send(fd, &head[k % head.size()], 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) ++sent;
      }
      for (int i = 0; i < 10 && !stop; ++i) std::this_thread::sleep_for(100ms);
    }
  });
  std::this_thread::sleep_for(1100ms);  // two rounds of dribbling before measuring
  const double during = p99_us(srv.port(), 500);
  const auto open_during = srv.server->stats().connections.load();
  stop = true;
  dribbler.join();
  std::printf("slowloris: p99 before %.0f us, during %.0f us (%d slow connections, %lld open, "
              "%d bytes dribbled)\n",
              before, during, kSlow, static_cast<long long>(open_during), sent.load());
  EXPECT_GE(open_during, kSlow);  // they were all held open meanwhile
  EXPECT_LT(during, 10 * before + 50'000);
  for (int fd : slow) ::close(fd);
}

}  // namespace
}  // namespace redline
