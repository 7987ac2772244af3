// Unit tests of the edge's request-head rules (http/request_guard.h): the byte scanner,
// the framing/target checks, header normalization, trusted proxies and client-IP resolution.
#include "http/request_guard.h"

#include <gtest/gtest.h>

#include <string>

namespace redline::http {
namespace {

using State = HeadScanner::State;

State scan(std::string_view head) {
  HeadScanner s;
  return s.feed(head);
}

TEST(HeadScannerTest, CompleteHeadAndItsSize) {
  HeadScanner s;
  const std::string head = "GET / HTTP/1.1\r\nHost: a\r\nX-Tab: a\tb\r\n\r\n";
  ASSERT_EQ(s.feed(head + "NEXT"), State::kComplete);
  EXPECT_EQ(s.head_size(), head.size());
}

TEST(HeadScannerTest, ResumesByteByByte) {
  const std::string head = "POST /v1 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
  HeadScanner s;
  for (std::size_t i = 1; i < head.size(); ++i) {
    ASSERT_EQ(s.feed(head.substr(0, i)), State::kNeedMore) << i;
  }
  ASSERT_EQ(s.feed(head), State::kComplete);
  EXPECT_EQ(s.head_size(), head.size());
}

TEST(HeadScannerTest, RefusesSmugglingShapes) {
  const char* bad[] = {
      "GET / HTTP/1.1\nHost: a\n\n",                       // bare LF
      "GET / HTTP/1.1\r\nHost: a\n\r\n",                   // one bare LF
      "GET / HTTP/1.1\rHost: a\r\n\r\n",                   // bare CR
      "GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",       // obs-fold (SP)
      "GET / HTTP/1.1\r\nX-A: 1\r\n\tfolded\r\n\r\n",      // obs-fold (HTAB)
      "GET / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",  // space before colon
      "GET / HTTP/1.1\r\nX-A: a\x01z\r\n\r\n",             // CTL
      "GET / HTTP/1.1\r\nX-A: a\x7fz\r\n\r\n",             // DEL
      "GET / HTTP/1.1\r\nNoColon\r\n\r\n",                 // not a field
      "GET / HTTP/1.1\r\n: empty\r\n\r\n",                 // empty name
      "GET /\x01 HTTP/1.1\r\n\r\n",                        // CTL in the request line
      "\r\n",                                              // empty request line
  };
  for (const char* b : bad) EXPECT_EQ(scan(b), State::kBad) << b;
  static constexpr char kNul[] = "GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n";
  EXPECT_EQ(scan(std::string_view(kNul, sizeof kNul - 1)), State::kBad);
}

TEST(HeadScannerTest, BareLfRefusedBeforeTheHeadEnds) {
  // A client sending LF-only lines is refused at once, not left waiting for CRLFCRLF.
  EXPECT_EQ(scan("GET / HTTP/1.1\nHost"), State::kBad);
}

TEST(HeadScannerTest, ObsTextAndTokensAllowed) {
  EXPECT_EQ(scan("GET / HTTP/1.1\r\nX-U: caf\xc3\xa9\r\nX!#$%&'*+-.^_`|~: v\r\n\r\n"),
            State::kComplete);
}

// Every byte value at every position of a long value and of a long request target (the scan
// takes 16 bytes per step there): refused exactly when it is a control character (tab is
// allowed in values only) or DEL, whether the head arrives at once or in two parts.
TEST(HeadScannerTest, EveryByteAtEveryPositionOfLongValuesAndTargets) {
  const std::string filler(45, 'v');
  for (int b = 0; b < 256; ++b) {
    const auto c = static_cast<char>(b);
    const bool ctl = b < 0x20 || b == 0x7f;
    for (std::size_t at = 0; at < filler.size(); ++at) {
      std::string value = filler;
      value[at] = c;
      std::string target = "/" + filler;
      target[at + 1] = c;
      const std::string in_value = "POST /v1 HTTP/1.1\r\nHost: a\r\nX-Long: " + value + "\r\n\r\n";
      const std::string in_target = "GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n";
      const State want_value = ctl && b != '\t' ? State::kBad : State::kComplete;
      const State want_target = ctl ? State::kBad : State::kComplete;
      ASSERT_EQ(scan(in_value), want_value) << "byte " << b << " at " << at << " of a value";
      ASSERT_EQ(scan(in_target), want_target) << "byte " << b << " at " << at << " of a target";
      for (const auto& [head, want] :
           {std::pair{&in_value, want_value}, {&in_target, want_target}}) {
        HeadScanner s;
        const State first = s.feed(std::string_view(*head).substr(0, head->size() / 2 + at % 7));
        if (first == State::kBad) {  // refused in the first part already
          ASSERT_EQ(want, State::kBad) << "byte " << b << " at " << at << ", first part";
          continue;
        }
        ASSERT_EQ(first, State::kNeedMore) << "byte " << b << " at " << at;
        ASSERT_EQ(s.feed(*head), want) << "byte " << b << " at " << at << ", resumed";
      }
    }
  }
}

RequestHead head_of(std::string_view method, std::string_view target,
                    std::initializer_list<std::pair<std::string, std::string>> fields,
                    unsigned version = 11) {
  RequestHead h;
  h.method_string(method);
  h.target(target);
  h.version(version);
  for (const auto& [k, v] : fields) h.insert(k, v);
  return h;
}

TEST(CheckHeadTest, AcceptsOrdinaryRequests) {
  EXPECT_FALSE(check_head(head_of("GET", "/v1/models", {{"Host", "a"}})));
  EXPECT_FALSE(check_head(head_of("POST", "/v1/chat/completions",
                                  {{"Host", "a"}, {"Content-Length", "12"}})));
  EXPECT_FALSE(check_head(head_of("POST", "/v1", {{"Transfer-Encoding", " Chunked "}})));
  EXPECT_FALSE(check_head(head_of("GET", "http://api.example.com/v1/models", {})));
  EXPECT_FALSE(check_head(head_of("GET", "HTTPS://api.example.com", {})));
}

TEST(CheckHeadTest, RefusesFramingConflicts) {
  EXPECT_TRUE(check_head(head_of("POST", "/", {{"Content-Length", "3"}, {"Content-Length", "3"}})));
  EXPECT_TRUE(check_head(head_of("POST", "/", {{"Content-Length", "3, 3"}})));
  EXPECT_TRUE(check_head(head_of("POST", "/", {{"Transfer-Encoding", "chunked, identity"}})));
  EXPECT_TRUE(check_head(head_of("POST", "/", {{"Transfer-Encoding", "identity, chunked"}})));
  EXPECT_TRUE(check_head(head_of("POST", "/", {{"Transfer-Encoding", "gzip"}})));
  EXPECT_TRUE(check_head(head_of("POST", "/", {{"Transfer-Encoding", "chunked"},
                                              {"Transfer-Encoding", "chunked"}})));
  EXPECT_TRUE(check_head(
      head_of("POST", "/", {{"Transfer-Encoding", "chunked"}, {"Content-Length", "5"}})));
  EXPECT_TRUE(check_head(head_of("POST", "/", {{"Transfer-Encoding", "chunked"}}, 10)));
  EXPECT_TRUE(check_head(head_of("GET", "/", {{"Host", "a"}, {"Host", "b"}})));
}

TEST(CheckHeadTest, RefusesOddTargets) {
  EXPECT_TRUE(check_head(head_of("OPTIONS", "*", {})));
  EXPECT_TRUE(check_head(head_of("CONNECT", "evil:443", {})));
  EXPECT_TRUE(check_head(head_of("GET", "//evil/v1", {})));
  EXPECT_TRUE(check_head(head_of("GET", "http://user@evil/v1", {})));
  EXPECT_TRUE(check_head(head_of("GET", "http:///v1", {})));
  EXPECT_TRUE(check_head(head_of("GET", "ftp://x/v1", {})));
  EXPECT_TRUE(check_head(head_of("GET", "v1/models", {})));
}

TEST(NormalizeHeadTest, AbsoluteFormBecomesOriginForm) {
  auto h = head_of("GET", "http://api.example.com:8080/v1/models?x=1", {{"Host", "other"}});
  normalize_head(h);
  EXPECT_EQ(h.target(), "/v1/models?x=1");
  EXPECT_EQ(h[boost::beast::http::field::host], "api.example.com:8080");
  auto bare = head_of("GET", "https://api.example.com", {});
  normalize_head(bare);
  EXPECT_EQ(bare.target(), "/");
  auto query = head_of("GET", "http://h?q=1", {});
  normalize_head(query);
  EXPECT_EQ(query.target(), "/?q=1");
}

TEST(NormalizeHeadTest, DropsUnderscoreAndConnectionListedFields) {
  auto h = head_of("POST", "/v1",
                   {{"x_api_key", "sk-smuggled"},
                    {"X_Forwarded_For", "1.2.3.4"},
                    {"x-api-key", "sk-real"},
                    {"Connection", "keep-alive, x-secret, authorization"},
                    {"Connection", "X-Other"},
                    {"x-secret", "s"},
                    {"x-other", "o"},
                    {"keep-alive", "timeout=5"},
                    {"authorization", "Bearer k"},
                    {"x-kept", "k"}});
  normalize_head(h);
  EXPECT_EQ(h.count("x_api_key"), 0u);
  EXPECT_EQ(h.count("X_Forwarded_For"), 0u);
  EXPECT_EQ(h.count("x-secret"), 0u);
  EXPECT_EQ(h.count("x-other"), 0u);
  EXPECT_EQ(h.count("keep-alive"), 0u);
  EXPECT_EQ(h["x-api-key"], "sk-real");
  EXPECT_EQ(h["authorization"], "Bearer k");  // ours to read, never forwarded anyway
  EXPECT_EQ(h["x-kept"], "k");
  EXPECT_EQ(h.count("connection"), 2u);  // kept: the server reads keep-alive from it
}

TEST(TrustedProxiesTest, CidrsAddressesAndGarbage) {
  TrustedProxies t({"10.0.0.0/8", "192.168.1.7", "fd00::/8", "172.16.0.0/12", "bogus",
                    "10.0.0.0/33", "1.2.3.4/"});
  EXPECT_TRUE(t.contains("10.200.3.4"));
  EXPECT_TRUE(t.contains("192.168.1.7"));
  EXPECT_FALSE(t.contains("192.168.1.8"));
  EXPECT_TRUE(t.contains("172.31.255.255"));
  EXPECT_FALSE(t.contains("172.32.0.0"));
  EXPECT_TRUE(t.contains("fd12::1"));
  EXPECT_FALSE(t.contains("fe80::1"));
  EXPECT_TRUE(t.contains("::ffff:10.1.1.1"));  // v4-mapped
  EXPECT_FALSE(t.contains("1.2.3.4"));
  EXPECT_FALSE(t.contains("not an ip"));
  EXPECT_TRUE(TrustedProxies({"0.0.0.0/0"}).contains("8.8.8.8"));
  EXPECT_FALSE(TrustedProxies().contains("127.0.0.1"));
}

TEST(ForwardedAddressTest, Forms) {
  EXPECT_EQ(parse_forwarded_address(" 1.2.3.4 ")->to_string(), "1.2.3.4");
  EXPECT_EQ(parse_forwarded_address("1.2.3.4:5678")->to_string(), "1.2.3.4");
  EXPECT_EQ(parse_forwarded_address("2001:db8::1")->to_string(), "2001:db8::1");
  EXPECT_EQ(parse_forwarded_address("[2001:db8::1]:443")->to_string(), "2001:db8::1");
  EXPECT_EQ(parse_forwarded_address("::ffff:1.2.3.4")->to_string(), "1.2.3.4");
  EXPECT_FALSE(parse_forwarded_address("unknown"));
  EXPECT_FALSE(parse_forwarded_address(""));
  EXPECT_FALSE(parse_forwarded_address("1.2.3"));
  EXPECT_FALSE(parse_forwarded_address("1.2.3.4.5"));
  EXPECT_FALSE(parse_forwarded_address("[::1"));
  EXPECT_FALSE(parse_forwarded_address("[::1]x"));
  EXPECT_FALSE(parse_forwarded_address("fe80::1%eth0"));
  EXPECT_FALSE(parse_forwarded_address("_hidden"));
  EXPECT_FALSE(parse_forwarded_address(std::string(200, '1')));
}

Fields fields(std::initializer_list<std::pair<std::string, std::string>> kv) {
  Fields f;
  for (const auto& [k, v] : kv) f.insert(k, v);
  return f;
}

TEST(ClientIpTest, SpoofedHeadersFromAnUntrustedPeerAreIgnored) {
  const TrustedProxies t({"10.0.0.0/8"});
  EXPECT_EQ(resolve_client_ip("203.0.113.9", fields({{"X-Forwarded-For", "1.1.1.1"}}), t),
            "203.0.113.9");
  EXPECT_EQ(resolve_client_ip("203.0.113.9", fields({{"X-Real-IP", "1.1.1.1"}}), t),
            "203.0.113.9");
  // Nothing trusted by default: the peer, whatever the headers say.
  EXPECT_EQ(resolve_client_ip("10.0.0.1", fields({{"X-Forwarded-For", "1.1.1.1"}}), {}),
            "10.0.0.1");
}

TEST(ClientIpTest, RightMostUntrustedThroughSeveralProxies) {
  const TrustedProxies t({"10.0.0.0/8", "192.168.0.0/16"});
  // client spoofs 6.6.6.6; the real client 198.51.100.7 reached proxy 192.168.0.5,
  // which reached proxy 10.0.0.2, which reached us.
  const auto f = fields({{"X-Forwarded-For", "6.6.6.6, 198.51.100.7, 192.168.0.5"}});
  EXPECT_EQ(resolve_client_ip("10.0.0.2", f, t), "198.51.100.7");
  // Several fields form one list, in order.
  const auto split = fields({{"X-Forwarded-For", "6.6.6.6, 198.51.100.7"},
                             {"X-Forwarded-For", "192.168.0.5"}});
  EXPECT_EQ(resolve_client_ip("10.0.0.2", split, t), "198.51.100.7");
  // Every hop trusted: the left-most one.
  EXPECT_EQ(resolve_client_ip("10.0.0.2", fields({{"X-Forwarded-For", "10.9.9.9, 10.0.0.3"}}), t),
            "10.9.9.9");
  // X-Real-IP only when there is no X-Forwarded-For.
  EXPECT_EQ(resolve_client_ip("10.0.0.2", fields({{"X-Real-IP", "198.51.100.8"}}), t),
            "198.51.100.8");
  EXPECT_EQ(resolve_client_ip(
                "10.0.0.2",
                fields({{"X-Real-IP", "198.51.100.8"}, {"X-Forwarded-For", "198.51.100.9"}}), t),
            "198.51.100.9");
  EXPECT_EQ(resolve_client_ip("10.0.0.2", fields({{"X-Forwarded-For", "[2001:db8::5]:1234"}}), t),
            "2001:db8::5");
}

TEST(ClientIpTest, GarbageStopsTheWalk) {
  const TrustedProxies t({"10.0.0.0/8"});
  // Garbage right after the trusted peer: we cannot believe anything further left.
  EXPECT_EQ(resolve_client_ip("10.0.0.2", fields({{"X-Forwarded-For", "1.1.1.1, garbage"}}), t),
            "10.0.0.2");
  // Garbage behind a trusted hop: the last address believed is that hop.
  EXPECT_EQ(
      resolve_client_ip("10.0.0.2", fields({{"X-Forwarded-For", "1.1.1.1, junk, 10.0.0.9"}}), t),
      "10.0.0.9");
  EXPECT_EQ(resolve_client_ip("10.0.0.2", fields({{"X-Forwarded-For", ""}}), t), "10.0.0.2");
  EXPECT_EQ(resolve_client_ip("10.0.0.2", fields({{"X-Forwarded-For", ",,,"}}), t), "10.0.0.2");
  EXPECT_EQ(resolve_client_ip("10.0.0.2", fields({{"X-Real-IP", "nope"}}), t), "10.0.0.2");
}

}  // namespace
}  // namespace redline::http
