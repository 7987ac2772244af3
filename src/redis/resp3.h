// RESP3 codec: the Reply value type, an incremental parser that turns socket bytes into
// Replies (RESP2 replies are a subset and parse too), and Command, the RESP request encoder.
// It does no I/O and knows nothing about connections, clusters or which command a reply answers.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace redline::redis {

// One RESP value. Strings own their bytes; aggregates own one vector of children.
enum class Type : unsigned char {
  kSimpleString,  // +OK
  kError,         // -ERR ...
  kInteger,       // :42
  kBulkString,    // $3\r\nfoo
  kNull,          // _ , and RESP2 $-1 / *-1
  kArray,         // *
  kMap,           // %   elements are key, value, key, value ...
  kSet,           // ~
  kPush,          // >   out-of-band (invalidations, pub/sub)
  kDouble,        // ,1.5  ,inf  ,-inf  ,nan
  kBoolean,       // #t / #f
  kBigNumber,     // (123456789012345678901234567890   kept as its decimal text
  kVerbatim,      // =15\r\ntxt:Some string  str = "Some string", format() = "txt"
  kBlobError,     // !21\r\nSYNTAX invalid syntax
};

std::string_view type_name(Type t);

class Reply {
 public:
  Reply() = default;
  explicit Reply(Type t) : type_(t) {}
  static Reply simple(std::string_view s) { return Reply(Type::kSimpleString, s); }
  static Reply bulk(std::string_view s) { return Reply(Type::kBulkString, s); }
  static Reply error(std::string_view s) { return Reply(Type::kError, s); }
  static Reply integer(int64_t v) {
    Reply r(Type::kInteger);
    r.int_ = v;
    return r;
  }
  static Reply null() { return Reply(Type::kNull); }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_error() const { return type_ == Type::kError || type_ == Type::kBlobError; }
  bool is_string() const {
    return type_ == Type::kSimpleString || type_ == Type::kBulkString || type_ == Type::kVerbatim ||
           type_ == Type::kBigNumber;
  }
  bool is_aggregate() const {
    return type_ == Type::kArray || type_ == Type::kMap || type_ == Type::kSet ||
           type_ == Type::kPush;
  }

  // String payload of strings, errors, big numbers and verbatim strings (format stripped).
  const std::string& str() const { return str_; }
  std::string& mutable_str() { return str_; }
  int64_t integer() const { return int_; }
  double as_double() const { return dbl_; }
  bool boolean() const { return int_ != 0; }
  // Three-letter format of a verbatim string ("txt", "mkd").
  std::string_view format() const { return std::string_view(fmt_, 3); }

  // Children of aggregates. For maps: key0, value0, key1, value1, ...
  const std::vector<Reply>& elements() const { return elems_; }
  std::vector<Reply>& mutable_elements() { return elems_; }
  size_t size() const { return type_ == Type::kMap ? elems_.size() / 2 : elems_.size(); }
  const Reply& operator[](size_t i) const { return elems_[i]; }
  // Map lookup by string key (linear; maps in replies are small). nullptr if absent.
  const Reply* find(std::string_view key) const;

  // Attributes (|) that preceded this reply, flattened key/value like a map; usually empty.
  const std::vector<Reply>& attributes() const { return attrs_; }

  // Compact human-readable form for logs and test failures.
  std::string debug_string() const;

  bool operator==(const Reply& o) const;

 private:
  friend class Parser;
  Reply(Type t, std::string_view s) : type_(t), str_(s) {}

  Type type_ = Type::kNull;
  char fmt_[3] = {0, 0, 0};
  int64_t int_ = 0;  // integer, boolean
  double dbl_ = 0;
  std::string str_;
  std::vector<Reply> elems_;
  std::vector<Reply> attrs_;
};

// Bounds that keep a hostile or broken server from making us allocate without limit.
struct ParserLimits {
  size_t max_bulk = size_t{512} << 20;    // largest bulk/verbatim/blob error (Redis' own max)
  size_t max_elements = size_t{1} << 24;  // per aggregate
  size_t max_depth = 64;                  // nesting of aggregates (attributes count too)
  size_t max_line = size_t{1} << 20;      // simple strings, errors, numbers
};

// Incremental RESP3 parser. feed() consumes whole elements from the front of `data`; bytes
// it did not consume (a partial element) must be presented again, with more appended, on
// the next call. Partly built aggregates are kept inside the parser between calls, so a
// large reply arriving in many chunks is not re-parsed from its start.
class Parser {
 public:
  enum class Status { kNeedMore, kReply, kError };

  explicit Parser(ParserLimits limits = {}) : limits_(limits) {}

  struct Step {
    Status status;
    size_t consumed;  // bytes of `data` consumed (valid for every status)
  };
  // Parses from data; on kReply the finished reply is available through take(). After kError
  // the stream is unusable (error() says why) until reset().
  Step feed(std::string_view data);

  Reply take() { return std::move(done_); }
  const std::string& error() const { return error_; }
  void reset();

 private:
  struct Frame {
    Reply reply;
    size_t remaining = 0;  // children still expected
    bool is_attribute = false;
  };
  enum class Leaf { kDone, kNeedMore, kError };
  // Parses one element header (and the body for leaves) at data[pos]. On kDone it either
  // completed a leaf (stored into `leaf`, *opened = false) or pushed a frame (*opened = true).
  Leaf parse_one(std::string_view data, size_t& pos, Reply& leaf, bool& opened);
  Step fail(std::string msg, size_t consumed);
  // Hands a completed value to the enclosing frame; returns true when it completes the top.
  bool complete(Reply value);

  ParserLimits limits_;
  std::vector<Frame> stack_;
  std::vector<Reply> pending_attrs_;
  Reply done_;
  std::string error_;
  bool failed_ = false;
};

// A command encoded as a RESP array of bulk strings, built from string_views and integers:
//   Command cmd("SET", key, value, "PX", 1500);
// Arguments are encoded as they are added; the array header is written by append_to().
class Command {
 public:
  Command() = default;
  template <typename... Args>
  explicit Command(const Args&... args) {
    (add(args), ...);
  }

  Command& add(std::string_view s);
  Command& add(const char* s) { return add(std::string_view(s)); }
  Command& add(const std::string& s) { return add(std::string_view(s)); }
  template <std::integral I>
  requires(!std::same_as<I, bool> && !std::same_as<I, char>) Command& add(I v) {
    return add_int(static_cast<int64_t>(v));
  }
  Command& add(double v);

  size_t size() const { return argc_; }
  bool empty() const { return argc_ == 0; }
  // The i-th argument (0 = command name). Walks the encoding; meant for routing, not hot loops.
  std::string_view arg(size_t i) const;
  // Appends "*<argc>\r\n" + arguments to out (one buffer for a whole pipeline).
  void append_to(std::string& out) const;
  std::string encoded() const {
    std::string s;
    append_to(s);
    return s;
  }
  // "SET key <3 more>" style for error messages (never dumps values).
  std::string describe() const;

 private:
  Command& add_int(int64_t v);
  std::string body_;
  size_t argc_ = 0;
};

}  // namespace redline::redis
