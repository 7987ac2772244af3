// Unit tests for the RESP3 codec: every type, RESP2 nulls, attributes, pushes, limits and
// protocol errors, each fed whole, byte by byte and in random chunks. No server involved;
// resp3_server_test.cpp checks the same types as produced by a real redis-server.
#include "redis/resp3.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>

namespace redline::redis {
namespace {

struct Outcome {
  std::vector<Reply> replies;
  std::string error;
  size_t leftover = 0;
};

// Feeds `wire` in chunks of the given sizes (cycled), the way a connection does: append to a
// buffer, parse what is complete, drop what was consumed.
Outcome parse_chunks(std::string_view wire, const std::vector<size_t>& chunks,
                     ParserLimits limits = {}) {
  Outcome out;
  Parser p(limits);
  std::string buf;
  size_t off = 0, ci = 0;
  while (off < wire.size()) {
    size_t n = std::min(chunks[ci++ % chunks.size()], wire.size() - off);
    buf.append(wire.substr(off, n));
    off += n;
    for (;;) {
      auto step = p.feed(buf);
      buf.erase(0, step.consumed);
      if (step.status == Parser::Status::kReply) {
        out.replies.push_back(p.take());
        continue;
      }
      if (step.status == Parser::Status::kError) {
        out.error = p.error();
        return out;
      }
      break;
    }
  }
  out.leftover = buf.size();
  return out;
}

// Parses `wire` whole, byte by byte and in random splits; all three must agree.
std::vector<Reply> parse_all(std::string_view wire) {
  auto whole = parse_chunks(wire, {wire.size() + 1});
  EXPECT_EQ(whole.error, "");
  auto bytes = parse_chunks(wire, {1});
  EXPECT_EQ(bytes.error, "");
  EXPECT_EQ(bytes.replies, whole.replies);
  std::mt19937 rng(42);
  for (int i = 0; i < 5; ++i) {
    std::vector<size_t> sizes;
    for (int k = 0; k < 16; ++k) sizes.push_back(1 + rng() % 7);
    auto random = parse_chunks(wire, sizes);
    EXPECT_EQ(random.error, "");
    EXPECT_EQ(random.replies, whole.replies);
  }
  EXPECT_EQ(whole.leftover, 0u);
  return whole.replies;
}

Reply parse_one(std::string_view wire) {
  auto v = parse_all(wire);
  EXPECT_EQ(v.size(), 1u) << wire;
  return v.empty() ? Reply() : v[0];
}

std::string parse_error(std::string_view wire, ParserLimits limits = {}) {
  auto whole = parse_chunks(wire, {wire.size() + 1}, limits);
  auto bytes = parse_chunks(wire, {1}, limits);
  EXPECT_EQ(whole.error, bytes.error);
  return whole.error;
}

TEST(Resp3, SimpleStringErrorInteger) {
  auto r = parse_one("+OK\r\n");
  EXPECT_EQ(r.type(), Type::kSimpleString);
  EXPECT_EQ(r.str(), "OK");
  r = parse_one("-ERR unknown command 'x'\r\n");
  EXPECT_EQ(r.type(), Type::kError);
  EXPECT_TRUE(r.is_error());
  EXPECT_EQ(r.str(), "ERR unknown command 'x'");
  r = parse_one(":-9223372036854775808\r\n");
  EXPECT_EQ(r.type(), Type::kInteger);
  EXPECT_EQ(r.integer(), INT64_MIN);
  EXPECT_EQ(parse_one(":0\r\n").integer(), 0);
  EXPECT_EQ(parse_one("+\r\n").str(), "");
}

TEST(Resp3, BulkStrings) {
  auto r = parse_one("$5\r\nhe\r\no\r\n");
  EXPECT_EQ(r.type(), Type::kBulkString);
  EXPECT_EQ(r.str(), "he\r\no");
  EXPECT_EQ(parse_one("$0\r\n\r\n").str(), "");
  std::string binary("a\0b\xff", 4);
  EXPECT_EQ(parse_one("$4\r\n" + binary + "\r\n").str(), binary);
}

TEST(Resp3, NullsResp3AndResp2) {
  EXPECT_TRUE(parse_one("_\r\n").is_null());
  EXPECT_TRUE(parse_one("$-1\r\n").is_null());
  EXPECT_TRUE(parse_one("*-1\r\n").is_null());
}

TEST(Resp3, ArraysNestedAndEmpty) {
  auto r = parse_one("*3\r\n:1\r\n*2\r\n+a\r\n$1\r\nb\r\n*0\r\n");
  ASSERT_EQ(r.type(), Type::kArray);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].integer(), 1);
  EXPECT_EQ(r[1][0].str(), "a");
  EXPECT_EQ(r[1][1].str(), "b");
  EXPECT_EQ(r[2].type(), Type::kArray);
  EXPECT_EQ(r[2].size(), 0u);
  EXPECT_EQ(r.debug_string(), "[(integer) 1, [a, \"b\"], []]");
}

TEST(Resp3, MapSetPush) {
  auto m = parse_one("%2\r\n+server\r\n+redis\r\n+proto\r\n:3\r\n");
  ASSERT_EQ(m.type(), Type::kMap);
  EXPECT_EQ(m.size(), 2u);
  ASSERT_NE(m.find("proto"), nullptr);
  EXPECT_EQ(m.find("proto")->integer(), 3);
  EXPECT_EQ(m.find("nope"), nullptr);
  auto s = parse_one("~2\r\n+a\r\n+b\r\n");
  EXPECT_EQ(s.type(), Type::kSet);
  EXPECT_EQ(s.size(), 2u);
  auto p = parse_one(">2\r\n+invalidate\r\n*1\r\n$3\r\nkey\r\n");
  EXPECT_EQ(p.type(), Type::kPush);
  EXPECT_EQ(p[1][0].str(), "key");
  EXPECT_EQ(parse_one("%0\r\n").size(), 0u);
}

TEST(Resp3, DoubleBooleanBigNumber) {
  EXPECT_DOUBLE_EQ(parse_one(",3.25\r\n").as_double(), 3.25);
  EXPECT_DOUBLE_EQ(parse_one(",-1e10\r\n").as_double(), -1e10);
  EXPECT_DOUBLE_EQ(parse_one(",10\r\n").as_double(), 10);
  EXPECT_TRUE(std::isinf(parse_one(",inf\r\n").as_double()));
  EXPECT_LT(parse_one(",-inf\r\n").as_double(), 0);
  EXPECT_TRUE(std::isnan(parse_one(",nan\r\n").as_double()));
  auto t = parse_one("#t\r\n");
  EXPECT_EQ(t.type(), Type::kBoolean);
  EXPECT_TRUE(t.boolean());
  EXPECT_FALSE(parse_one("#f\r\n").boolean());
  auto b = parse_one("(3492890328409238509324850943850943825024385\r\n");
  EXPECT_EQ(b.type(), Type::kBigNumber);
  EXPECT_EQ(b.str(), "3492890328409238509324850943850943825024385");
  EXPECT_EQ(parse_one("(-12\r\n").str(), "-12");
}

TEST(Resp3, VerbatimAndBlobError) {
  auto v = parse_one("=15\r\ntxt:Some string\r\n");
  EXPECT_EQ(v.type(), Type::kVerbatim);
  EXPECT_EQ(v.format(), "txt");
  EXPECT_EQ(v.str(), "Some string");
  auto e = parse_one("!21\r\nSYNTAX invalid syntax\r\n");
  EXPECT_EQ(e.type(), Type::kBlobError);
  EXPECT_TRUE(e.is_error());
  EXPECT_EQ(e.str(), "SYNTAX invalid syntax");
}

TEST(Resp3, AttributesAttachToTheNextValue) {
  auto r = parse_one("|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2\r\n:3\r\n");
  ASSERT_EQ(r.type(), Type::kArray);
  ASSERT_EQ(r.attributes().size(), 2u);
  EXPECT_EQ(r.attributes()[0].str(), "key-popularity");
  EXPECT_EQ(r[1].integer(), 3);
  // Inside an aggregate, and an empty attribute: the stream continues unharmed.
  auto nested = parse_all("*2\r\n|1\r\n+ttl\r\n:5\r\n:7\r\n|0\r\n:8\r\n+after\r\n");
  ASSERT_EQ(nested.size(), 2u);
  EXPECT_EQ(nested[0].size(), 2u);
  EXPECT_EQ(nested[0][0].integer(), 7);
  EXPECT_EQ(nested[0][0].attributes().size(), 2u);
  EXPECT_EQ(nested[0][1].integer(), 8);
  EXPECT_EQ(nested[1].str(), "after");
}

TEST(Resp3, ManyRepliesInOneBuffer) {
  std::string wire;
  for (int i = 0; i < 100; ++i) {
    wire += ':';
    wire += std::to_string(i);
    wire += "\r\n$2\r\nab\r\n";
  }
  auto v = parse_all(wire);
  ASSERT_EQ(v.size(), 200u);
  EXPECT_EQ(v[198].integer(), 99);
}

TEST(Resp3, PartialDataNeedsMore) {
  Parser p;
  auto step = p.feed("$10\r\nhello");
  EXPECT_EQ(step.status, Parser::Status::kNeedMore);
  EXPECT_EQ(step.consumed, 0u);
  step = p.feed("*2\r\n:1\r\n:2");
  EXPECT_EQ(step.status, Parser::Status::kNeedMore);
  EXPECT_EQ(step.consumed, 8u);  // the header and the first element are kept in the parser
  step = p.feed(":2\r\n");
  EXPECT_EQ(step.status, Parser::Status::kReply);
  EXPECT_EQ(p.take().debug_string(), "[(integer) 1, (integer) 2]");
}

TEST(Resp3, ProtocolErrorsAreClear) {
  EXPECT_NE(parse_error("?what\r\n").find("unexpected type byte '?'"), std::string::npos);
  EXPECT_NE(parse_error(":12x\r\n").find("invalid integer ':12x'"), std::string::npos);
  EXPECT_NE(parse_error(":99999999999999999999\r\n").find("invalid integer"), std::string::npos);
  EXPECT_NE(parse_error("$3\r\nabcd\r\n").find("not followed by CRLF"), std::string::npos);
  EXPECT_NE(parse_error("$-2\r\n").find("negative length"), std::string::npos);
  EXPECT_NE(parse_error("*?\r\n").find("streamed aggregates"), std::string::npos);
  EXPECT_NE(parse_error("$?\r\n").find("streamed strings"), std::string::npos);
  EXPECT_NE(parse_error("#x\r\n").find("invalid boolean"), std::string::npos);
  EXPECT_NE(parse_error(",1.5.5\r\n").find("invalid double"), std::string::npos);
  EXPECT_NE(parse_error("(12a\r\n").find("invalid big number"), std::string::npos);
  EXPECT_NE(parse_error("=3\r\ntxt\r\n").find("verbatim"), std::string::npos);
  EXPECT_NE(parse_error("_x\r\n").find("invalid null"), std::string::npos);
  EXPECT_NE(parse_error("+a\rb\r\n").find("expected CRLF"), std::string::npos);
  EXPECT_NE(parse_error("%-1\r\n").find("negative aggregate"), std::string::npos);
  EXPECT_EQ(parse_error("+fine\r\n"), "");
  // After an error the parser refuses further input until reset.
  Parser p;
  EXPECT_EQ(p.feed("x\r\n").status, Parser::Status::kError);
  EXPECT_EQ(p.feed("+OK\r\n").status, Parser::Status::kError);
  p.reset();
  EXPECT_EQ(p.feed("+OK\r\n").status, Parser::Status::kReply);
}

TEST(Resp3, LimitsStopHostileLengths) {
  EXPECT_NE(parse_error("$536870913\r\n").find("longer than the limit"), std::string::npos);
  EXPECT_EQ(parse_chunks("$536870912\r\n", {1}).error, "");  // exactly 512 MiB is allowed
  EXPECT_NE(parse_error("*4000000000\r\n").find("larger than the limit"), std::string::npos);
  ParserLimits small;
  small.max_depth = 3;
  small.max_line = 16;
  EXPECT_EQ(parse_error("*1\r\n*1\r\n*1\r\n:1\r\n", small), "");
  EXPECT_NE(parse_error("*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", small).find("nested deeper"),
            std::string::npos);
  std::string long_line(41, 'a');
  long_line[0] = '+';
  EXPECT_NE(parse_error(long_line, small).find("line longer"), std::string::npos);
  // Deep nesting with the default limit must not recurse or blow the stack.
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "*1\r\n";
  EXPECT_NE(parse_error(deep).find("nested deeper than 64"), std::string::npos);
}

// Values are built in place (the top level in the parser, children in their parent); a reply
// taken while the next one is half parsed, attributes on values at every level, and copies.
TEST(Resp3, InPlaceBuildingKeepsRepliesApart) {
  Parser p;
  // One whole reply and the start of an aggregate in the same buffer.
  std::string wire = "*2\r\n:1\r\n$3\r\nabc\r\n*3\r\n+x\r\n*1\r\n:9";
  auto step = p.feed(wire);
  ASSERT_EQ(step.status, Parser::Status::kReply);
  Reply first = p.take();
  wire.erase(0, step.consumed);
  step = p.feed(wire);
  EXPECT_EQ(step.status, Parser::Status::kNeedMore);
  wire.erase(0, step.consumed);
  wire += "\r\n_\r\n";
  step = p.feed(wire);
  ASSERT_EQ(step.status, Parser::Status::kReply);
  EXPECT_EQ(step.consumed, wire.size());
  EXPECT_EQ(first.debug_string(), "[(integer) 1, \"abc\"]");
  EXPECT_EQ(p.take().debug_string(), "[x, [(integer) 9], (nil)]");
  // A top-level leaf after an aggregate starts clean (no children or attributes left over).
  ASSERT_EQ(p.feed("|1\r\n+a\r\n:1\r\n*1\r\n:2\r\n").status, Parser::Status::kReply);
  EXPECT_EQ(p.take().debug_string(), "|{a: (integer) 1} [(integer) 2]");
  ASSERT_EQ(p.feed(":3\r\n").status, Parser::Status::kReply);
  Reply three = p.take();
  EXPECT_EQ(three.debug_string(), "(integer) 3");
  EXPECT_TRUE(three.attributes().empty());
  EXPECT_TRUE(three.elements().empty());
  // An error mid-aggregate drops the partial value; after reset() the parser is fresh.
  EXPECT_EQ(p.feed("*3\r\n:1\r\n?\r\n").status, Parser::Status::kError);
  p.reset();
  ASSERT_EQ(p.feed("+OK\r\n").status, Parser::Status::kReply);
  EXPECT_EQ(p.take().debug_string(), "OK");
}

TEST(Resp3, AttributesEverywhereAndCopies) {
  // On an empty aggregate, on a map value, in an attribute's own value, and on a push.
  auto v = parse_all(
      "|1\r\n+k\r\n:1\r\n*0\r\n"
      "%1\r\n+f\r\n|1\r\n+t\r\n:5\r\n$1\r\nv\r\n"
      "|1\r\n+outer\r\n|1\r\n+inner\r\n:0\r\n:2\r\n:3\r\n"
      "|1\r\n+p\r\n#t\r\n>2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n");
  ASSERT_EQ(v.size(), 4u);
  EXPECT_EQ(v[0].debug_string(), "|{k: (integer) 1} []");
  EXPECT_EQ(v[1].debug_string(), "{f: |{t: (integer) 5} \"v\"}");
  ASSERT_NE(v[1].find("f"), nullptr);
  EXPECT_EQ(v[1].find("f")->str(), "v");
  EXPECT_EQ(v[2].debug_string(), "|{outer: |{inner: (integer) 0} (integer) 2} (integer) 3");
  EXPECT_EQ(v[3].type(), Type::kPush);
  EXPECT_EQ(v[3].attributes().size(), 2u);
  // Copies are deep and equal; the original stays intact after the copy is changed.
  Reply copy = v[1];
  EXPECT_EQ(copy, v[1]);
  copy.mutable_elements()[1].mutable_str() = "changed";
  EXPECT_NE(copy, v[1]);
  EXPECT_EQ(v[1].find("f")->str(), "v");
  Reply assigned;
  assigned = v[2];
  EXPECT_EQ(assigned, v[2]);
  EXPECT_EQ(assigned.attributes()[1].attributes()[0].str(), "inner");
  Reply moved = std::move(assigned);
  EXPECT_EQ(moved, v[2]);
  // Equality sees attributes.
  EXPECT_NE(parse_one(":3\r\n"), v[2]);
  EXPECT_EQ(parse_one(":3\r\n"), Reply::integer(3));
}

TEST(Command, EncodesIntegersAndLongArguments) {
  Command c;
  c.add(int64_t{0}).add(int64_t{-1}).add(INT64_MAX).add(INT64_MIN).add(1234567890);
  c.add(uint32_t{4000000000u});
  EXPECT_EQ(c.encoded(),
            "*6\r\n$1\r\n0\r\n$2\r\n-1\r\n$19\r\n9223372036854775807\r\n"
            "$20\r\n-9223372036854775808\r\n$10\r\n1234567890\r\n$10\r\n4000000000\r\n");
  // Arguments around the size where encoding switches from a stack buffer to direct appends,
  // an empty one, and a command that outgrows its first buffer.
  Command d("EVALSHA");
  std::vector<std::string> args;
  for (size_t n : {0, 1, 101, 102, 103, 104, 300, 5000}) args.emplace_back(n, 'a' + n % 26);
  for (const auto& a : args) d.add(a);
  std::string want = "*9\r\n$7\r\nEVALSHA\r\n";
  for (const auto& a : args) {
    want += '$';
    want += std::to_string(a.size());
    want += "\r\n";
    want += a;
    want += "\r\n";
  }
  EXPECT_EQ(d.encoded(), want);
  EXPECT_EQ(d.size(), 9u);
  for (size_t i = 0; i < args.size(); ++i) EXPECT_EQ(d.arg(i + 1), args[i]);
  auto r = parse_one(d.encoded());
  ASSERT_EQ(r.size(), 9u);
  EXPECT_EQ(r[8].str(), args.back());
}

TEST(Command, EncodesBulkStrings) {
  Command c("SET", "key", std::string("v a l"), 42, -7L);
  EXPECT_EQ(c.size(), 5u);
  EXPECT_EQ(c.encoded(), "*5\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nv a l\r\n$2\r\n42\r\n$2\r\n-7\r\n");
  EXPECT_EQ(c.arg(0), "SET");
  EXPECT_EQ(c.arg(2), "v a l");
  EXPECT_EQ(c.arg(4), "-7");
  EXPECT_EQ(c.arg(5), "");
  EXPECT_EQ(c.describe(), "SET key <3 more>");
  Command d;
  d.add("ZADD").add(1.5).add(std::string_view("m\r\n", 3));
  EXPECT_EQ(d.encoded(), "*3\r\n$4\r\nZADD\r\n$3\r\n1.5\r\n$3\r\nm\r\n\r\n");
  // An encoded command is itself valid RESP.
  auto r = parse_one(c.encoded());
  EXPECT_EQ(r.size(), 5u);
  EXPECT_EQ(r[2].str(), "v a l");
}

}  // namespace
}  // namespace redline::redis
