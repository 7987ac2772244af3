// Request-head rules of the edge (see request_guard.h).
#include "http/request_guard.h"

#include <algorithm>
#include <array>
#include <bit>
#include <boost/beast/core/string.hpp>
#include <charconv>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace redline::http {

namespace {

namespace bhttp = boost::beast::http;
using boost::beast::iequals;

// RFC 9110 token characters, as a table: the head scanner looks every name byte up.
constexpr std::array<bool, 256> kTchar = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

bool is_tchar(unsigned char c) { return kTchar[c]; }

// Bytes a value (or the request line) may hold without a closer look: visible ASCII, space
// and obs-text; tab, CR, LF and the other controls take the careful path.
bool plain_value_byte(unsigned char c) { return c >= 0x20 && c != 0x7f; }

// The end of the run of plain_value_byte bytes that starts at `pos` (the index of the first
// byte that is not one, or `size`). Values are most of a head's bytes: SSE2 (part of every
// x86-64) tests 16 bytes per step; the scalar loop does the rest and other targets.
std::size_t plain_value_run(const unsigned char* bytes, std::size_t pos, std::size_t size) {
#if defined(__SSE2__)
  const __m128i below_space = _mm_set1_epi8(0x1f);
  const __m128i del = _mm_set1_epi8(0x7f);
  for (; pos + 16 <= size; pos += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + pos));
    const __m128i control = _mm_cmpeq_epi8(_mm_min_epu8(v, below_space), v);  // v <= 0x1f
    const auto mask =
        static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(control, _mm_cmpeq_epi8(v, del))));
    if (mask != 0) return pos + static_cast<std::size_t>(std::countr_zero(mask));
  }
#endif
  while (pos < size && plain_value_byte(bytes[pos])) ++pos;
  return pos;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls f(element) for each comma-separated, trimmed, non-empty element.
template <class F>
void for_each_element(std::string_view list, F&& f) {
  while (true) {
    const auto comma = list.find(',');
    const auto item = trim(list.substr(0, comma));
    if (!item.empty()) f(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

bool starts_with_i(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// Names a client may list in `Connection:` that are still ours to read: dropping them
// would change how the gateway understands the request, and it never forwards them.
bool protected_from_connection(std::string_view name) {
  static constexpr std::array<std::string_view, 8> kKept = {
      "authorization",     "x-api-key", "host",       "content-length",
      "transfer-encoding", "connection", "content-type", "expect"};
  for (auto k : kKept) {
    if (iequals(name, k)) return true;
  }
  return starts_with_i(name, "x-redline-");
}

}  // namespace

HeadScanner::State HeadScanner::feed(std::string_view data) {
  if (state_ != State::kNeedMore) return state_;
  // The loop runs on locals, written back once: with members, every store through `this`
  // may alias the scanned chars, so each byte reloaded and stored all of them.
  std::size_t pos = pos_, line = line_, line_len = line_len_;
  bool in_value = in_value_, want_lf = want_lf_;
  const auto scan = [&]() -> State {
    const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
    const std::size_t size = data.size();
    for (; pos < size; ++pos) {
      // Runs of ordinary bytes first, a tight loop each; the byte that ends a run gets the
      // full treatment below. (A name run only starts past a line's first byte, so the
      // line-folding check still sees it.)
      if (!want_lf) {
        const std::size_t run_start = pos;
        if (line == 0 || in_value) {
          pos = plain_value_run(bytes, pos, size);
        } else if (line_len > 0) {
          while (pos < size && kTchar[bytes[pos]]) ++pos;
        }
        line_len += pos - run_start;
        if (pos == size) break;
      }
      const auto c = bytes[pos];
      if (want_lf) {
        if (c != '\n') return fail("bare CR in request head");
        want_lf = false;
        if (line_len == 0) {
          if (line == 0) return fail("empty request line");
          head_size_ = pos + 1;
          ++pos;
          state_ = State::kComplete;
          return state_;
        }
        if (line > 0 && !in_value) return fail("header line without a colon");
        ++line;
        line_len = 0;
        in_value = false;
        continue;
      }
      if (c == '\r') {
        want_lf = true;
        continue;
      }
      if (c == '\n') return fail("bare LF line ending in request head");
      if (line > 0 && line_len == 0 && (c == ' ' || c == '\t')) {
        return fail("obsolete line folding in request head");
      }
      if (line == 0 || in_value) {
        if ((c < 0x20 && c != '\t') || c == 0x7f) return fail("control character in request head");
        if (line == 0 && c == '\t') return fail("control character in request line");
      } else if (c == ':') {
        if (line_len == 0) return fail("empty header name");
        in_value = true;
      } else if (!is_tchar(c)) {
        return fail("invalid character in header name");
      }
      ++line_len;
    }
    return state_;
  };
  const State result = scan();
  pos_ = pos;
  line_ = line;
  line_len_ = line_len;
  in_value_ = in_value;
  want_lf_ = want_lf;
  return result;
}

bool parse_plain_head(std::string_view head, RequestHead& out, std::uint64_t& content_length) {
  // HeadScanner's guarantees: every line ends in CRLF (no other CR or LF anywhere), the
  // request line holds no control byte, each field line is a non-empty token, a colon and a
  // value without control bytes but tab, and no line starts with a space or tab.
  content_length = 0;
  auto next_line = [&head]() {
    const auto eol = head.find('\r');
    const auto line = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    return line;
  };
  const auto request_line = next_line();
  const auto sp1 = request_line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return false;
  const auto method = request_line.substr(0, sp1);
  const auto sp2 = request_line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return false;
  const auto target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  const auto version = request_line.substr(sp2 + 1);
  for (const char c : method) {
    if (!is_tchar(static_cast<unsigned char>(c))) return false;
  }
  for (const char c : target) {
    if (c <= ' ' || c >= 0x7f) return false;  // Beast takes obs-text too: its path decides
  }
  if (version == "HTTP/1.1") {
    out.version(11);
  } else if (version == "HTTP/1.0") {
    out.version(10);
  } else {
    return false;
  }
  out.method_string(method);
  out.target(target);
  bool has_length = false;
  while (!head.starts_with("\r\n")) {
    const auto line = next_line();
    const auto colon = line.find(':');
    const auto name = line.substr(0, colon);
    const auto value = trim(line.substr(colon + 1));
    const auto f = bhttp::string_to_field(name);
    switch (f) {
      case bhttp::field::content_length: {
        if (has_length || value.empty() || value.size() > 15) return false;
        std::uint64_t n = 0;
        for (const char c : value) {
          if (c < '0' || c > '9') return false;
          n = n * 10 + static_cast<std::uint64_t>(c - '0');
        }
        content_length = n;
        has_length = true;
        break;
      }
      case bhttp::field::transfer_encoding:
      case bhttp::field::upgrade:
        return false;
      case bhttp::field::connection:
      case bhttp::field::proxy_connection:
        if (value.empty()) return false;
        for (const char c : value) {
          if (!is_tchar(static_cast<unsigned char>(c))) return false;
        }
        break;
      default:
        break;
    }
    out.insert(f, name, value);
  }
  return true;
}

std::optional<std::string_view> check_head(const RequestHead& head) {
  std::size_t content_lengths = 0;
  std::size_t transfer_encodings = 0;
  std::size_t hosts = 0;
  for (const auto& f : head) {
    const auto name = f.name();
    if (name == bhttp::field::content_length) {
      ++content_lengths;
      if (f.value().find(',') != std::string_view::npos) return "Content-Length with a list value";
    } else if (name == bhttp::field::transfer_encoding) {
      ++transfer_encodings;
      if (!iequals(trim(f.value()), "chunked")) {
        return "unsupported Transfer-Encoding (only chunked is accepted)";
      }
    } else if (name == bhttp::field::host) {
      ++hosts;
    }
  }
  if (content_lengths > 1) return "more than one Content-Length";
  if (transfer_encodings > 1) return "more than one Transfer-Encoding";
  if (transfer_encodings > 0 && content_lengths > 0) {
    return "both Content-Length and Transfer-Encoding";
  }
  if (transfer_encodings > 0 && head.version() < 11) return "Transfer-Encoding in HTTP/1.0";
  if (hosts > 1) return "more than one Host";
  const auto target = head.target();
  if (target.empty()) return "empty request target";
  if (target.front() != '/') {
    if (!starts_with_i(target, "http://") && !starts_with_i(target, "https://")) {
      return "request target is neither /path nor http(s)://host/path";
    }
    const auto rest = target.substr(target.find("//") + 2);
    const auto authority = rest.substr(0, rest.find_first_of("/?"));
    if (authority.empty() || authority.find('@') != std::string_view::npos) {
      return "absolute-form target without a plain authority";
    }
  } else if (target.size() > 1 && target[1] == '/') {
    // "//host/path" is not origin-form: some routers read it as a scheme-relative URL.
    return "request target starting with //";
  }
  return std::nullopt;
}

void normalize_head(RequestHead& head) {
  const std::string_view target = head.target();
  if (!target.empty() && target.front() != '/') {
    const auto rest = target.substr(target.find("//") + 2);
    const auto cut = rest.find_first_of("/?");
    const std::string authority(rest.substr(0, cut));
    std::string path = cut == std::string_view::npos ? std::string("/") : std::string(rest.substr(cut));
    if (path.front() == '?') path.insert(path.begin(), '/');
    head.target(path);
    head.set(bhttp::field::host, authority);
  }
  // Names listed in Connection (all Connection fields).
  std::vector<std::string> listed;
  for (const auto& f : head) {
    if (f.name() != bhttp::field::connection) continue;
    for_each_element(f.value(), [&](std::string_view token) {
      if (!protected_from_connection(token)) listed.emplace_back(token);
    });
  }
  for (const auto& name : listed) head.erase(name);
  for (auto it = head.begin(); it != head.end();) {
    if (it->name_string().find('_') != std::string_view::npos) {
      it = head.erase(it);
    } else {
      ++it;
    }
  }
}

TrustedProxies::TrustedProxies(const std::vector<std::string>& cidrs) {
  for (const auto& text : cidrs) {
    boost::system::error_code ec;
    const auto slash = text.find('/');
    const auto addr = boost::asio::ip::make_address(text.substr(0, slash), ec);
    if (ec) continue;
    unsigned prefix = addr.is_v4() ? 32 : 128;
    if (slash != std::string::npos) {
      const char* b = text.data() + slash + 1;
      const char* e = text.data() + text.size();
      auto [p, perr] = std::from_chars(b, e, prefix);
      if (perr != std::errc() || p != e || b == e || prefix > (addr.is_v4() ? 32u : 128u)) continue;
    }
    nets_.push_back({addr, prefix});
  }
}

namespace {
bool prefix_match(const unsigned char* a, const unsigned char* b, unsigned prefix) {
  const unsigned full = prefix / 8;
  if (!std::equal(a, a + full, b)) return false;
  const unsigned rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

boost::asio::ip::address unmapped(const boost::asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6());
  }
  return a;
}
}  // namespace

bool TrustedProxies::contains(const boost::asio::ip::address& raw) const {
  const auto a = unmapped(raw);
  for (const auto& n : nets_) {
    if (n.base.is_v4() != a.is_v4()) continue;
    if (a.is_v4()) {
      const auto x = a.to_v4().to_bytes();
      const auto y = n.base.to_v4().to_bytes();
      if (prefix_match(x.data(), y.data(), n.prefix)) return true;
    } else {
      const auto x = a.to_v6().to_bytes();
      const auto y = n.base.to_v6().to_bytes();
      if (prefix_match(x.data(), y.data(), n.prefix)) return true;
    }
  }
  return false;
}

bool TrustedProxies::contains(std::string_view ip) const {
  if (nets_.empty()) return false;
  const auto a = parse_forwarded_address(ip);
  return a && contains(*a);
}

std::optional<boost::asio::ip::address> parse_forwarded_address(std::string_view text) {
  text = trim(text);
  if (text.empty() || text.size() > 64) return std::nullopt;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    const auto after = text.substr(close + 1);
    if (!after.empty() && after.front() != ':') return std::nullopt;
    text = text.substr(1, close - 1);
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    text = text.substr(0, text.find(':'));  // v4:port
  }
  boost::system::error_code ec;
  const std::string s(text);
  auto a = boost::asio::ip::make_address(s, ec);
  if (ec) return std::nullopt;
  // Scoped IPv6 ("fe80::1%eth0") is not a client address we want in logs or limits.
  if (a.is_v6() && a.to_v6().scope_id() != 0) return std::nullopt;
  return unmapped(a);
}

std::string resolve_client_ip(const std::string& peer_ip, const Fields& fields,
                              const TrustedProxies& trusted) {
  if (trusted.empty() || !trusted.contains(std::string_view(peer_ip))) return peer_ip;
  std::vector<std::string_view> hops;
  for (const auto& f : fields) {
    if (!iequals(f.name_string(), "x-forwarded-for")) continue;
    std::string_view v = f.value();
    while (true) {
      const auto comma = v.find(',');
      hops.push_back(trim(v.substr(0, comma)));
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  if (hops.empty()) {
    const auto real = fields.find("x-real-ip");
    if (real != fields.end()) {
      if (auto a = parse_forwarded_address(real->value())) return a->to_string();
    }
    return peer_ip;
  }
  std::string believed = peer_ip;
  for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
    const auto a = parse_forwarded_address(*it);
    if (!a) break;
    believed = a->to_string();
    if (!trusted.contains(*a)) break;
  }
  return believed;
}

}  // namespace redline::http
