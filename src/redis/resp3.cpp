// RESP3 parser and command encoder (see resp3.h). The parser is a loop over whole elements
// with an explicit stack for open aggregates; it never trusts a length before checking it
// against ParserLimits, and reports the first protocol violation with a readable message.
#include "redis/resp3.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

namespace redline::redis {
namespace {

// Printable excerpt of hostile bytes for error messages.
std::string excerpt(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) {
    if (c >= 0x20 && c < 0x7f) {
      out += c;
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[(static_cast<unsigned char>(c) >> 4) & 0xf];
      out += kHex[static_cast<unsigned char>(c) & 0xf];
    }
  }
  if (s.size() > 40) {
    out += "...";
  }
  return out;
}

bool parse_int(std::string_view s, int64_t& out) {
  if (s.empty()) {
    return false;
  }
  const char* b = s.data();
  const char* e = b + s.size();
  if (*b == '+') {
    ++b;  // tolerated, never sent by Redis
  }
  if (b == e) {
    return false;
  }
  // Up to 18 digits cannot overflow: the common short numbers skip from_chars.
  if (e - b <= 18 && *b != '-') {
    uint64_t v = 0;
    for (const char* c = b; c != e; ++c) {
      const unsigned d = static_cast<unsigned char>(*c) - unsigned{'0'};
      if (d > 9) {
        return false;
      }
      v = v * 10 + d;
    }
    out = static_cast<int64_t>(v);
    return true;
  }
  auto [p, ec] = std::from_chars(b, e, out);
  return ec == std::errc() && p == e;
}

bool parse_double(std::string_view s, double& out) {
  if (s.empty()) {
    return false;
  }
  if (s == "inf" || s == "+inf") {
    out = HUGE_VAL;
    return true;
  }
  if (s == "-inf") {
    out = -HUGE_VAL;
    return true;
  }
  if (s == "nan" || s == "-nan") {
    out = std::nan("");
    return true;
  }
  const char* b = s.data();
  const char* e = b + s.size();
  if (*b == '+') {
    ++b;
  }
  if (b == e) {
    return false;
  }
  auto [p, ec] = std::from_chars(b, e, out);
  return ec == std::errc() && p == e;
}

bool is_big_number(std::string_view s) {
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    s.remove_prefix(1);
  }
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, p);
}

}  // namespace

std::string_view type_name(Type t) {
  switch (t) {
    case Type::kSimpleString:
      return "simple-string";
    case Type::kError:
      return "error";
    case Type::kInteger:
      return "integer";
    case Type::kBulkString:
      return "bulk-string";
    case Type::kNull:
      return "null";
    case Type::kArray:
      return "array";
    case Type::kMap:
      return "map";
    case Type::kSet:
      return "set";
    case Type::kPush:
      return "push";
    case Type::kDouble:
      return "double";
    case Type::kBoolean:
      return "boolean";
    case Type::kBigNumber:
      return "big-number";
    case Type::kVerbatim:
      return "verbatim";
    case Type::kBlobError:
      return "blob-error";
  }
  return "unknown";
}

const Reply* Reply::find(std::string_view key) const {
  if (type_ != Type::kMap && type_ != Type::kArray) {
    return nullptr;
  }
  for (size_t i = 0; i + 1 < elems_.size(); i += 2) {
    if (elems_[i].is_string() && elems_[i].str_ == key) {
      return &elems_[i + 1];
    }
  }
  return nullptr;
}

std::string Reply::debug_string() const {
  std::string out;
  if (attrs_ && !attrs_->empty()) {
    out += "|{";
    for (size_t i = 0; i < attrs_->size(); ++i) {
      if (i) {
        out += i % 2 ? ": " : ", ";
      }
      out += (*attrs_)[i].debug_string();
    }
    out += "} ";
  }
  auto list = [&](const char* open, const char* close) {
    out += open;
    for (size_t i = 0; i < elems_.size(); ++i) {
      if (i) {
        out += (type_ == Type::kMap && i % 2) ? ": " : ", ";
      }
      out += elems_[i].debug_string();
    }
    out += close;
  };
  switch (type_) {
    case Type::kSimpleString:
      out += str_;
      break;
    case Type::kBulkString:
      out += '"' + excerpt(str_) + '"';
      break;
    case Type::kError:
    case Type::kBlobError:
      out += "(error) " + str_;
      break;
    case Type::kInteger:
      out += "(integer) " + std::to_string(int_);
      break;
    case Type::kNull:
      out += "(nil)";
      break;
    case Type::kArray:
      list("[", "]");
      break;
    case Type::kMap:
      list("{", "}");
      break;
    case Type::kSet:
      list("~{", "}");
      break;
    case Type::kPush:
      list(">[", "]");
      break;
    case Type::kDouble: {
      char buf[32];
      auto [p, ec] = std::to_chars(buf, buf + sizeof buf, dbl_);
      out += "(double) " + std::string(buf, p);
      break;
    }
    case Type::kBoolean:
      out += int_ ? "(true)" : "(false)";
      break;
    case Type::kBigNumber:
      out += "(bignum) " + str_;
      break;
    case Type::kVerbatim:
      out += "(verbatim " + std::string(format()) + ") " + excerpt(str_);
      break;
  }
  return out;
}

bool Reply::operator==(const Reply& o) const {
  if (type_ != o.type_ || str_ != o.str_ || int_ != o.int_ || std::memcmp(fmt_, o.fmt_, 3) != 0 ||
      elems_ != o.elems_ || attributes() != o.attributes()) {
    return false;
  }
  if (type_ == Type::kDouble) {
    return (std::isnan(dbl_) && std::isnan(o.dbl_)) || dbl_ == o.dbl_;
  }
  return true;
}

const std::vector<Reply> Reply::kNoAttributes;

void Parser::reset() {
  stack_.clear();
  pending_attrs_.reset();
  attr_store_.clear();
  done_ = Reply();
  error_.clear();
  failed_ = false;
}

Parser::Step Parser::fail(std::string msg, size_t consumed) {
  failed_ = true;
  error_ = "RESP protocol error: " + std::move(msg);
  stack_.clear();
  pending_attrs_.reset();
  attr_store_.clear();
  done_ = Reply();
  return {Status::kError, consumed};
}

Reply& Parser::place(Type t) {
  Reply* r;
  if (stack_.empty()) {
    r = &done_;
    r->reset_as(t);
  } else {
    r = &stack_.back().reply->elems_.emplace_back(t);
  }
  if (pending_attrs_) [[unlikely]] {
    if (!pending_attrs_->empty()) {
      r->attrs_ = std::move(pending_attrs_);
    }
    pending_attrs_.reset();
  }
  return *r;
}

bool Parser::complete() {
  for (;;) {
    if (stack_.empty()) {
      return true;
    }
    Frame& top = stack_.back();
    if (--top.remaining > 0) {
      return false;
    }
    const bool attribute = top.is_attribute;
    stack_.pop_back();
    if (attribute) [[unlikely]] {
      // Attributes describe the next value; they are not a value of their own.
      pending_attrs_ = std::make_unique<std::vector<Reply>>(std::move(attr_store_.back()->elems_));
      attr_store_.pop_back();
      return false;
    }
  }
}

Parser::Leaf Parser::parse_one(std::string_view data, size_t& pos) {
  const size_t start = pos;
  if (start >= data.size()) {
    return Leaf::kNeedMore;
  }
  const char t = data[start];
  const char* base = data.data();
  const void* cr = std::memchr(base + start + 1, '\r', data.size() - start - 1);
  if (cr == nullptr) {
    if (data.size() - start > limits_.max_line + 1) {
      error_ = "line longer than " + std::to_string(limits_.max_line) + " bytes after '" +
               excerpt(std::string_view(&t, 1)) + "'";
      return Leaf::kError;
    }
    return Leaf::kNeedMore;
  }
  const size_t cr_pos = static_cast<const char*>(cr) - base;
  if (cr_pos + 1 >= data.size()) {
    return Leaf::kNeedMore;
  }
  if (data[cr_pos + 1] != '\n') {
    error_ = "expected CRLF after '" + excerpt(data.substr(start, cr_pos - start)) + "'";
    return Leaf::kError;
  }
  if (cr_pos - start - 1 > limits_.max_line) {
    error_ = "line longer than " + std::to_string(limits_.max_line) + " bytes";
    return Leaf::kError;
  }
  const std::string_view line = data.substr(start + 1, cr_pos - start - 1);
  const size_t after = cr_pos + 2;

  auto bad = [&](const char* what) {
    error_ = std::string(what) + " '" + excerpt(data.substr(start, cr_pos - start)) + "'";
    return Leaf::kError;
  };

  switch (t) {
    case '+':
    case '-':
      place(t == '+' ? Type::kSimpleString : Type::kError).str_.assign(line);
      pos = after;
      return Leaf::kValue;
    case ':': {
      int64_t v = 0;
      if (!parse_int(line, v)) {
        return bad("invalid integer");
      }
      place(Type::kInteger).int_ = v;
      pos = after;
      return Leaf::kValue;
    }
    case '_':
      if (!line.empty()) {
        return bad("invalid null");
      }
      place(Type::kNull);
      pos = after;
      return Leaf::kValue;
    case '#':
      if (line != "t" && line != "f") {
        return bad("invalid boolean");
      }
      place(Type::kBoolean).int_ = line == "t" ? 1 : 0;
      pos = after;
      return Leaf::kValue;
    case ',': {
      double v = 0;
      if (!parse_double(line, v)) {
        return bad("invalid double");
      }
      place(Type::kDouble).dbl_ = v;
      pos = after;
      return Leaf::kValue;
    }
    case '(':
      if (!is_big_number(line)) {
        return bad("invalid big number");
      }
      place(Type::kBigNumber).str_.assign(line);
      pos = after;
      return Leaf::kValue;
    case '$':
    case '!':
    case '=': {
      if (line == "?") {
        return bad("streamed strings are not supported");
      }
      int64_t len = 0;
      if (!parse_int(line, len)) {
        return bad("invalid length");
      }
      if (len == -1 && t == '$') {  // RESP2 null bulk string
        place(Type::kNull);
        pos = after;
        return Leaf::kValue;
      }
      if (len < 0) {
        return bad("negative length");
      }
      if (static_cast<uint64_t>(len) > limits_.max_bulk) {
        return bad("string longer than the limit");
      }
      const size_t n = static_cast<size_t>(len);
      if (data.size() - after < n + 2) {
        return Leaf::kNeedMore;
      }
      if (data[after + n] != '\r' || data[after + n + 1] != '\n') {
        return bad("string not followed by CRLF");
      }
      std::string_view body = data.substr(after, n);
      if (t == '=') {
        if (n < 4 || body[3] != ':') {
          return bad("verbatim string without 'fmt:' prefix");
        }
        Reply& r = place(Type::kVerbatim);
        std::memcpy(r.fmt_, body.data(), 3);
        r.str_.assign(body.substr(4));
      } else {
        place(t == '$' ? Type::kBulkString : Type::kBlobError).str_.assign(body);
      }
      pos = after + n + 2;
      return Leaf::kValue;
    }
    case '*':
    case '%':
    case '~':
    case '>':
    case '|': {
      if (line == "?") {
        return bad("streamed aggregates are not supported");
      }
      int64_t count = 0;
      if (!parse_int(line, count)) {
        return bad("invalid aggregate length");
      }
      if (count == -1 && t == '*') {  // RESP2 null array
        place(Type::kNull);
        pos = after;
        return Leaf::kValue;
      }
      if (count < 0) {
        return bad("negative aggregate length");
      }
      if (static_cast<uint64_t>(count) > limits_.max_elements) {
        return bad("aggregate larger than the limit");
      }
      if (stack_.size() >= limits_.max_depth) {
        error_ = "aggregates nested deeper than " + std::to_string(limits_.max_depth);
        return Leaf::kError;
      }
      const bool pairs = t == '%' || t == '|';
      const size_t children = static_cast<size_t>(count) * (pairs ? 2 : 1);
      pos = after;
      if (t == '|') [[unlikely]] {
        // Attributes neither take pending attributes nor count as a value of the parent.
        if (children == 0) {
          return Leaf::kOpened;  // an empty attribute: nothing to attach
        }
        attr_store_.push_back(std::make_unique<Reply>(Type::kMap));
        Reply* a = attr_store_.back().get();
        a->elems_.reserve(std::min<size_t>(children, 64));
        stack_.push_back(Frame{a, children, true});
        return Leaf::kOpened;
      }
      const Type type = t == '*'   ? Type::kArray
                        : t == '%' ? Type::kMap
                        : t == '~' ? Type::kSet
                                   : Type::kPush;
      Reply& r = place(type);
      if (children == 0) {
        return Leaf::kValue;  // an empty aggregate is complete as soon as it is opened
      }
      // Never trust a hostile count for a big up-front allocation.
      r.elems_.reserve(std::min<size_t>(children, 64));
      stack_.push_back(Frame{&r, children, false});
      return Leaf::kOpened;
    }
    default:
      error_ = "unexpected type byte '" + excerpt(data.substr(start, 1)) + "' in '" +
               excerpt(data.substr(start, cr_pos - start)) + "'";
      return Leaf::kError;
  }
}

Parser::Step Parser::feed(std::string_view data) {
  if (failed_) {
    return {Status::kError, 0};
  }
  size_t pos = 0;
  for (;;) {
    const size_t start = pos;
    const Leaf r = parse_one(data, pos);
    if (r == Leaf::kValue) {
      if (complete()) {
        return {Status::kReply, pos};
      }
      continue;
    }
    if (r == Leaf::kOpened) {
      continue;
    }
    if (r == Leaf::kNeedMore) {
      return {Status::kNeedMore, start};
    }
    std::string msg = std::move(error_);
    return fail(std::move(msg), start);
  }
}

void Command::make_room(size_t n) {
  if (body_.capacity() - body_.size() < n) {
    // Commands are built argument by argument: start at a size most commands fit in rather
    // than growing 15 -> 30 -> 60 -> 120 -> 240 bytes.
    body_.reserve(std::max({body_.size() + n, body_.capacity() * 2, size_t{256}}));
  }
}

Command& Command::add(std::string_view s) {
  // "$<len>\r\n<bytes>\r\n": a short argument is assembled on the stack and appended once.
  char buf[128];
  buf[0] = '$';
  char* p = std::to_chars(buf + 1, buf + 24, s.size()).ptr;
  *p++ = '\r';
  *p++ = '\n';
  const size_t hlen = static_cast<size_t>(p - buf);
  make_room(hlen + s.size() + 2);
  if (s.size() <= sizeof buf - 24 - 2) {
    if (!s.empty()) {
      std::memcpy(p, s.data(), s.size());
      p += s.size();
    }
    *p++ = '\r';
    *p++ = '\n';
    body_.append(buf, static_cast<size_t>(p - buf));
  } else {
    body_.append(buf, hlen);
    body_.append(s);
    body_.append("\r\n", 2);
  }
  ++argc_;
  return *this;
}

Command& Command::add_int(int64_t v) {
  // At most 20 characters, so the length has one or two digits: "$<n>\r\n<v>\r\n".
  char num[24];
  const size_t n = static_cast<size_t>(std::to_chars(num, num + sizeof num, v).ptr - num);
  char buf[40];
  char* p = buf;
  *p++ = '$';
  if (n >= 10) {
    *p++ = static_cast<char>('0' + n / 10);
  }
  *p++ = static_cast<char>('0' + n % 10);
  *p++ = '\r';
  *p++ = '\n';
  std::memcpy(p, num, n);
  p += n;
  *p++ = '\r';
  *p++ = '\n';
  const size_t len = static_cast<size_t>(p - buf);
  make_room(len);
  body_.append(buf, len);
  ++argc_;
  return *this;
}

Command& Command::add(double v) {
  char buf[32];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return add(std::string_view(buf, static_cast<size_t>(p - buf)));
}

std::string_view Command::arg(size_t i) const {
  if (i >= argc_) {
    return {};
  }
  size_t pos = 0;
  for (size_t k = 0;; ++k) {
    // body_ is well formed by construction: $<len>\r\n<bytes>\r\n
    size_t cr = body_.find('\r', pos);
    size_t len = 0;
    std::from_chars(body_.data() + pos + 1, body_.data() + cr, len);
    if (k == i) {
      return std::string_view(body_).substr(cr + 2, len);
    }
    pos = cr + 2 + len + 2;
  }
}

void Command::append_to(std::string& out) const {
  out += '*';
  append_uint(out, argc_);
  out += "\r\n";
  out += body_;
}

std::string Command::describe() const {
  if (argc_ == 0) {
    return "(empty command)";
  }
  std::string s(arg(0));
  if (argc_ > 1) {
    s += ' ';
    s += excerpt(arg(1));
  }
  if (argc_ > 2) {
    s += " <" + std::to_string(argc_ - 2) + " more>";
  }
  return s;
}

}  // namespace redline::redis
