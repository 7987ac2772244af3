// RESP3 codec: the Reply value type, an incremental parser that turns socket bytes into
// Replies (RESP2 replies are a subset and parse too), and Command, the RESP request encoder.
// It does no I/O and knows nothing about connections, clusters or which command a reply answers.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstring>
#include <cstdint>
#include <memory>
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
  // Moves are member-wise and cheap; copies are deep (attributes included).
  Reply(Reply&&) noexcept = default;
  Reply& operator=(Reply&&) noexcept = default;
  Reply(const Reply& o)
      : type_(o.type_),
        int_(o.int_),
        dbl_(o.dbl_),
        str_(o.str_),
        elems_(o.elems_),
        attrs_(o.attrs_ ? std::make_unique<std::vector<Reply>>(*o.attrs_) : nullptr) {
    std::memcpy(fmt_, o.fmt_, sizeof fmt_);
  }
  Reply& operator=(const Reply& o) {
    if (this != &o) {
      Reply copy(o);
      *this = std::move(copy);
    }
    return *this;
  }
  ~Reply() = default;
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
  const std::vector<Reply>& attributes() const { return attrs_ ? *attrs_ : kNoAttributes; }

  // Compact human-readable form for logs and test failures.
  std::string debug_string() const;

  bool operator==(const Reply& o) const;

 private:
  friend class Parser;
  Reply(Type t, std::string_view s) : type_(t), str_(s) {}
  Reply(Type t, int64_t v) : type_(t), int_(v) {}
  // Makes this a fresh value of type t (as Reply(t)), keeping the string's buffer.
  void reset_as(Type t) {
    type_ = t;
    std::memset(fmt_, 0, sizeof fmt_);
    int_ = 0;
    dbl_ = 0;
    str_.clear();
    elems_.clear();
    attrs_.reset();
  }

  static const std::vector<Reply> kNoAttributes;

  Type type_ = Type::kNull;
  char fmt_[3] = {0, 0, 0};
  int64_t int_ = 0;  // integer, boolean
  double dbl_ = 0;
  std::string str_;
  std::vector<Reply> elems_;
  // Rare (RESP3 attributes), so kept out of line: a Reply stays small and cheap to move.
  std::unique_ptr<std::vector<Reply>> attrs_;
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
  // Open frames point into the parser itself: it stays where it was made.
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  struct Step {
    Status status;
    size_t consumed;  // bytes of `data` consumed (valid for every status)
  };
  // Parses from data; on kReply the finished reply is available through take(). After kError
  // the stream is unusable (error() says why) until reset().
  Step feed(std::string_view data);

  Reply take() { return std::move(done_); }
  // The finished reply in place (valid after kReply until the next feed() or reset()); a
  // caller may move from it instead of take()'s extra move.
  Reply& reply() { return done_; }
  const std::string& error() const { return error_; }
  void reset();

 private:
  // An open aggregate. Values are built where they end up: the top-level value in done_,
  // children in their parent's elems_ (which does not grow while a child is open, so the
  // pointer stays valid), attributes in attr_store_ (they are not values of their own).
  struct Frame {
    Reply* reply;
    size_t remaining;  // children still expected
    bool is_attribute;
  };
  enum class Leaf { kValue, kOpened, kNeedMore, kError };
  // Parses one element header (and the body for leaves) at data[pos]. kValue: a leaf was
  // stored in its place; kOpened: a frame was pushed.
  Leaf parse_one(std::string_view data, size_t& pos);
  // Where the next value goes, with any pending attributes attached.
  Reply& place(Type t);
  Step fail(std::string msg, size_t consumed);
  // Counts a finished value in the enclosing frames; returns true when the top is complete.
  bool complete();

  ParserLimits limits_;
  std::vector<Frame> stack_;
  std::unique_ptr<std::vector<Reply>> pending_attrs_;
  std::vector<std::unique_ptr<Reply>> attr_store_;
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
  // Makes room for n more bytes of encoding.
  void make_room(size_t n);
  std::string body_;
  size_t argc_ = 0;
};

}  // namespace redline::redis
