// What the edge refuses before a request reaches a Handler, and who the client is.
// Beast's parser is lenient where a proxy must not be (obs-fold, `Transfer-Encoding:
// chunked, identity`, repeated Content-Length, absolute-form targets), so the server runs
// these checks next to it; docs/security.md lists every rule and its test.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace redline::http {

// Scans the raw bytes of a request head (request line + header fields + empty line) as
// they arrive, resuming where the previous call stopped, so a head dribbled byte by byte
// costs O(n). Refuses bare LF, bare CR, obs-fold (continuation lines), control characters
// (NUL, CTL, DEL; HTAB allowed in values) and field names that are not tokens (which also
// catches whitespace before the colon).
class HeadScanner {
 public:
  enum class State { kNeedMore, kComplete, kBad };
  // `data` is every byte of the head received so far (the same prefix each call, longer).
  State feed(std::string_view data);
  State state() const { return state_; }
  bool started() const { return pos_ > 0; }
  // kComplete: the head's size in bytes, the final CRLFCRLF included.
  std::size_t head_size() const { return head_size_; }
  // kBad: why, for the 400 message.
  std::string_view error() const { return error_; }

 private:
  State fail(std::string_view why) {
    error_ = why;
    state_ = State::kBad;
    return state_;
  }
  std::size_t pos_ = 0;
  std::size_t line_ = 0;      // 0 = request line
  std::size_t line_len_ = 0;  // bytes of the current line before its CR
  bool in_value_ = false;     // past the colon of a field line
  bool want_lf_ = false;      // saw CR
  std::size_t head_size_ = 0;
  std::string_view error_;
  State state_ = State::kNeedMore;
};

using Fields = boost::beast::http::fields;
using RequestHead = boost::beast::http::request_header<Fields>;

// Parses a head HeadScanner accepted (`head`: its bytes, the final CRLFCRLF included) into
// `out` when it is a plain one, the kind nearly every client sends: request line
// `TOKEN SP target SP HTTP/1.1` (or 1.0) with a target of visible ASCII, no
// Transfer-Encoding or Upgrade field, at most one Content-Length of 1-15 digits, and
// Connection/Proxy-Connection values of a single token. `content_length` is that field's
// value, 0 without one. Any other head returns false, `out` partly filled, and goes to
// Beast's parser instead: on the plain ones both produce the same method, target,
// version and fields in order, values trimmed of spaces and tabs (tests/http and
// fuzz/http_fuzz.cpp compare them), in one pass instead of two.
bool parse_plain_head(std::string_view head, RequestHead& out, std::uint64_t& content_length);

// Framing and target rules on a parsed head (what Beast accepts but a proxy must not):
// more than one Content-Length (even equal), a list value, Transfer-Encoding other than
// exactly one `chunked` (unknown codings, `chunked, identity`, repeated fields),
// Transfer-Encoding in HTTP/1.0, more than one Host, a target that is neither
// origin-form (`/path`) nor absolute-form (`http(s)://authority/path`). The reason, or
// nullopt when the head is acceptable.
std::optional<std::string_view> check_head(const RequestHead& head);

// Rewrites an absolute-form target to origin-form (Host becomes its authority, as
// RFC 9112 §3.2.2 says), drops header fields whose name holds an underscore (so
// `x_api_key` can never pass for `x-api-key` anywhere: nginx ignores them the same way)
// and the fields named in `Connection:` (hop-by-hop by declaration), except the ones the
// gateway itself reads and never forwards (authorization, x-api-key, x-redline-*, framing).
void normalize_head(RequestHead& head);

// The `trusted_proxies` networks.
class TrustedProxies {
 public:
  TrustedProxies() = default;
  // Entries that do not parse are skipped (config validation refuses them first).
  explicit TrustedProxies(const std::vector<std::string>& cidrs);
  bool empty() const { return nets_.empty(); }
  bool contains(const boost::asio::ip::address& a) const;
  bool contains(std::string_view ip) const;

 private:
  struct Net {
    boost::asio::ip::address base;
    unsigned prefix;
  };
  std::vector<Net> nets_;
};

// The client's address: the peer, unless the peer is a trusted proxy; then the right-most
// X-Forwarded-For entry that is not a trusted proxy (all fields, in order, as one list),
// or X-Real-IP when there is no X-Forwarded-For. A value that does not parse as an address
// (optionally "[v6]" or "v4:port") stops the walk: the last address believed is used.
std::string resolve_client_ip(const std::string& peer_ip, const Fields& fields,
                              const TrustedProxies& trusted);

// Parses one X-Forwarded-For element: "1.2.3.4", "1.2.3.4:5678", "::1", "[::1]:80".
std::optional<boost::asio::ip::address> parse_forwarded_address(std::string_view text);

}  // namespace redline::http
