// Property tests for the cache key: bodies that mean the same request give one key, every
// field or header that can change the answer gives another, and bad bodies are refused.
// They do not touch Redis or the proxy; the key is a pure function of KeyRequest.
#include "cache/cache_key.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace redline::cache {
namespace {

KeyRequest base_request(std::string_view body) {
  KeyRequest r;
  r.tenant = "acme";
  r.cache_namespace = "";
  r.generation = 0;
  r.endpoint = "chat_completions";
  r.provider = "openai";
  r.model = "gpt-4o-mini";
  r.body = body;
  return r;
}

KeyResult key_of(std::string_view body) {
  return compute_cache_key(base_request(body), true);
}

std::string hex_of(std::string_view body) {
  KeyResult r = key_of(body);
  EXPECT_EQ(r.error, KeyError::kNone) << body << ": " << r.detail;
  return r.key.hex();
}

std::string canon(std::string_view body) {
  KeyResult r = key_of(body);
  EXPECT_EQ(r.error, KeyError::kNone) << body << ": " << r.detail;
  return r.canonical_body;
}

void expect_same(std::string_view a, std::string_view b) {
  EXPECT_EQ(hex_of(a), hex_of(b)) << a << "\n vs \n" << b;
}

void expect_differ(std::string_view a, std::string_view b) {
  EXPECT_NE(hex_of(a), hex_of(b)) << a << "\n vs \n" << b;
}

constexpr std::string_view kChat =
    R"({"model":"gpt-4o-mini","messages":[{"role":"system","content":"Be brief."},)"
    R"({"role":"user","content":"Hello"}],"temperature":0.2,"max_tokens":64})";

TEST(CacheKeyTest, HexIsThirtyTwoLowercaseChars) {
  const std::string h = hex_of(kChat);
  ASSERT_EQ(h.size(), 32u);
  for (char c : h) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << h;
  EXPECT_EQ(h, hex_of(kChat));
}

// Pinned: if this changes, the key format changed -- bump kKeyVersion deliberately.
TEST(CacheKeyTest, GoldenKey) {
  EXPECT_EQ(kKeyVersion, 1);
  EXPECT_EQ(hex_of(kChat), "e0fb8bd871205c8b494563120cbe8d33");
  EXPECT_EQ(canon(kChat),
            R"({"max_tokens":64,"messages":[{"content":"Be brief.","role":"system"},)"
            R"({"content":"Hello","role":"user"}],"model":"gpt-4o-mini","temperature":0.2})");
}

// A long conversation (about 45 KB, escapes and UTF-8 in it), pinned like GoldenKey: large
// bodies take other paths than small ones (hashing in pieces, the 16-byte escape scan).
std::string long_chat() {
  std::string body = R"({"temperature":0.7,"model":"gpt-4o","messages":[)";
  for (int turn = 0; turn < 60; ++turn) {
    if (turn > 0) body += ',';
    body += turn % 2 == 0 ? R"({"role":"user","content":")" : R"({"content":")";
    for (int k = 0; k < 12; ++k) {
      body += "Turn " + std::to_string(turn) + R"(, line )" + std::to_string(k) +
              R"(: \"quoted\" text with a tab\t, caf\u00e9, and a backslash \\ here.\n)";
    }
    body += turn % 2 == 0 ? R"("})" : R"(","role":"assistant"})";
  }
  body += R"(],"max_tokens":512,"user":"u-1"})";
  return body;
}

TEST(CacheKeyTest, GoldenKeyOfALongConversation) {
  const std::string body = long_chat();
  ASSERT_GT(body.size(), 40000u);
  EXPECT_EQ(hex_of(body), "e1dc530a0dc07cc81f0e4462ecc040f9");  // also what a15ec09 gave
}

// A body larger than the per-thread scratch space keeps (it is given back after the key):
// the same key each time, equal to that of the same body reordered, and the small golden
// key is unchanged after it.
TEST(CacheKeyTest, BodiesLargerThanTheKeptScratchKeyTheSame) {
  const std::string text(600 * 1024, 'x');
  const std::string big =
      R"({"model":"m","messages":[{"role":"user","content":")" + text + R"("}],"temperature":0})";
  const std::string reordered =
      R"({"temperature":0,"messages":[{"content":")" + text + R"(","role":"user"}],"model":"m"})";
  const std::string first = hex_of(big);
  EXPECT_EQ(first.size(), 32u);
  EXPECT_EQ(hex_of(big), first);
  EXPECT_EQ(hex_of(reordered), first);
  EXPECT_EQ(canon(big).size(), big.size());
  EXPECT_EQ(hex_of(kChat), "e0fb8bd871205c8b494563120cbe8d33");
}

TEST(CacheKeyTest, ReorderedKeysAndWhitespaceGiveSameKey) {
  expect_same(kChat,
              R"( { "max_tokens" : 64 , "temperature":0.2,
                   "messages" : [ { "content":"Be brief.", "role":"system" },
                                  {"content":"Hello","role":"user"} ],
                   "model":"gpt-4o-mini" }  )");
  expect_same(R"({"a":1,"b":2,"c":3})", R"({"c":3,"a":1,"b":2})");
  expect_same(R"({"a":{"x":1,"y":{"p":1,"q":2}}})", R"({"a":{"y":{"q":2,"p":1},"x":1}})");
  expect_same("{\"a\":[1,\t2,\n3]}", R"({"a":[1,2,3]})");
}

TEST(CacheKeyTest, NestedToolsAndMessagesReorderedGiveSameKey) {
  expect_same(
      R"({"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object",)"
      R"("properties":{"a":{"type":"string"},"b":{"type":"integer"}},"required":["a"]}}}],)"
      R"("messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]})",
      R"({"messages":[{"content":[{"text":"hi","type":"text"}],"role":"user"}],"tools":[)"
      R"({"function":{"parameters":{"required":["a"],"properties":{"b":{"type":"integer"},)"
      R"("a":{"type":"string"}},"type":"object"},"name":"f"},"type":"function"}]})");
}

TEST(CacheKeyTest, NumberFormsGiveSameKey) {
  const std::vector<std::string> sixty_four = {"64",     "64.0",   "6.4e1",  "640e-1",
                                               "6.4E+1", "0.64e2", "64.000", "6400e-2"};
  for (const std::string& n : sixty_four) {
    expect_same(R"({"max_tokens":64})", R"({"max_tokens":)" + n + "}");
    EXPECT_EQ(canon(R"({"n":)" + n + "}"), R"({"n":64})") << n;
  }
  expect_same(R"({"t":1.5})", R"({"t":1.50})");
  expect_same(R"({"t":1.5})", R"({"t":15e-1})");
  expect_same(R"({"t":0})", R"({"t":-0})");
  expect_same(R"({"t":0})", R"({"t":-0.0})");
  expect_same(R"({"t":0})", R"({"t":0e10})");
  expect_same(R"({"t":0.1})", R"({"t":1e-1})");
  expect_same(R"({"t":-2.5})", R"({"t":-25e-1})");
  EXPECT_EQ(canon(R"({"t":0.1})"), R"({"t":0.1})");
  EXPECT_EQ(canon(R"({"t":-0.0})"), R"({"t":0})");
  EXPECT_EQ(canon(R"({"t":1e2})"), R"({"t":100})");
  EXPECT_EQ(canon(R"({"t":1.25e-7})"), R"({"t":1.25e-07})");
}

TEST(CacheKeyTest, DistinctNumbersGiveDistinctKeys) {
  expect_differ(R"({"t":1.5})", R"({"t":1.25})");
  expect_differ(R"({"t":1})", R"({"t":-1})");
  expect_differ(R"({"t":1})", R"({"t":"1"})");
  expect_differ(R"({"t":0.1})", R"({"t":0.2})");
}

TEST(CacheKeyTest, SeedAboveTwoToTheFiftyThreeStaysExact) {
  expect_differ(R"({"seed":9007199254740993})", R"({"seed":9007199254740992})");
  EXPECT_EQ(canon(R"({"seed":9007199254740993})"), R"({"seed":9007199254740993})");
  expect_differ(R"({"seed":18446744073709551615})", R"({"seed":18446744073709551614})");
  expect_differ(R"({"seed":-9223372036854775808})", R"({"seed":-9223372036854775807})");
}

TEST(CacheKeyTest, IntegersBeyondSixtyFourBitsAreExactAndDeterministic) {
  const std::string big = "123456789012345678901234567890123456789";
  EXPECT_EQ(canon(R"({"x":)" + big + "}"), R"({"x":)" + big + "}");
  expect_differ(R"({"x":)" + big + "}", R"({"x":123456789012345678901234567890123456788})");
  expect_same(R"({"x":)" + big + "}", R"({"x":1.23456789012345678901234567890123456789e38})");
  expect_same(R"({"x":1e30})", R"({"x":1000000000000000000000000000000})");
  expect_same(R"({"x":-1e30})", R"({"x":-1000000000000000000000000000000.000})");
  expect_differ(R"({"x":1e30})", R"({"x":1000000000000000000000000000001})");
  // Past the limit of expanded digits the number is refused, never silently rounded.
  EXPECT_EQ(key_of(R"({"x":1e5000})").error, KeyError::kInvalidJson);
  EXPECT_EQ(key_of(R"({"x":1.5e400000000000})").error, KeyError::kInvalidJson);
  // A non-integer too small for a double underflows to zero.
  expect_same(R"({"x":1.5e-400})", R"({"x":0})");
}

TEST(CacheKeyTest, EscapesAreComparedAfterUnescaping) {
  expect_same(R"({"content":"caf\u00e9"})", "{\"content\":\"caf\xc3\xa9\"}");
  expect_same(R"({"content":"a\/b"})", R"({"content":"a/b"})");
  expect_same(R"({"content":"\u0041"})", R"({"content":"A"})");
  expect_same(R"({"content":"\ud83d\ude00"})", "{\"content\":\"\xf0\x9f\x98\x80\"}");
  expect_same(R"({"\u006dodel":"x"})", R"({"model":"x"})");
  expect_same(R"({"c":"tab\u0009end"})", R"({"c":"tab\tend"})");
  expect_same(R"({"c":"\u001f"})", R"({"c":"\u001F"})");
  EXPECT_EQ(canon(R"({"c":"q\"b\\s\/\u0001\n"})"), R"({"c":"q\"b\\s/\u0001\n"})");
  expect_differ(R"({"content":"caf\u00e9"})", R"({"content":"cafe"})");
}

// write_string finds the bytes to escape 16 at a time: every escaped byte, and the bytes just
// outside the escaped range (0x20, 0x7f, UTF-8), at every position around the block edges
// of strings of every length up to 3 blocks, keys included.
TEST(CacheKeyTest, EscapingIsExactAtEveryPositionAndLength) {
  // The byte as it appears in the request body (JSON-escaped where JSON requires it) and in
  // the canonical body.
  struct Byte {
    std::string in, out;
  };
  const std::vector<Byte> bytes = {{"\\\"", "\\\""},
                                   {"\\\\", "\\\\"},
                                   {"\\n", "\\n"},
                                   {"\\t", "\\t"},
                                   {"\\b", "\\b"},
                                   {"\\f", "\\f"},
                                   {"\\r", "\\r"},
                                   {"\\u0001", "\\u0001"},
                                   {"\\u001f", "\\u001f"},
                                   {"\\u0000", "\\u0000"},
                                   {" ", " "},
                                   {"\x7f", "\x7f"},
                                   {"\xc3\xa9", "\xc3\xa9"},
                                   {"!", "!"},
                                   {"\\/", "/"}};
  for (size_t len = 1; len <= 48; ++len) {
    for (size_t pos = 0; pos < len; ++pos) {
      for (const Byte& b : bytes) {
        std::string in(pos, 'a'), out(pos, 'a');
        in += b.in;
        out += b.out;
        in.append(len - pos - 1, 'z');
        out.append(len - pos - 1, 'z');
        const std::string body = "{\"" + in + "\":\"" + in + "\\\\" + in + "\"}";
        const std::string want = "{\"" + out + "\":\"" + out + "\\\\" + out + "\"}";
        ASSERT_EQ(canon(body), want) << "len " << len << " pos " << pos << " byte " << b.in;
      }
    }
  }
}

TEST(CacheKeyTest, IgnoredFieldsDoNotChangeTheKey) {
  const std::string plain = R"({"model":"m","messages":[{"role":"user","content":"hi"}]})";
  const std::string noisy =
      R"({"user":"u-42","stream":true,"stream_options":{"include_usage":true},"model":"m",)"
      R"("metadata":{"trace":"abc"},"store":true,"messages":[{"role":"user","content":"hi"}]})";
  expect_same(plain, noisy);
  EXPECT_EQ(canon(noisy), canon(plain));
  expect_same(R"({"stream":false,"a":1})", R"({"stream":true,"a":1})");
  // Only at the top level: a nested "user" is content.
  expect_differ(R"({"a":{"user":"x"}})", R"({"a":{"user":"y"}})");
  const auto ignored = ignored_body_fields();
  std::set<std::string_view> names(ignored.begin(), ignored.end());
  for (std::string_view f : {"user", "stream", "stream_options", "metadata", "store"}) {
    EXPECT_TRUE(names.count(f)) << f;
  }
  EXPECT_FALSE(names.count("service_tier"));  // the answer echoes the tier used
}

TEST(CacheKeyTest, EachAnswerChangingFieldChangesTheKey) {
  const std::string base =
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.5})";
  const std::vector<std::string> variants = {
      R"({"model":"m","messages":[{"role":"user","content":"hello"}],"temperature":0.5})",
      R"({"model":"m","messages":[{"role":"assistant","content":"hi"}],"temperature":0.5})",
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],)"
      R"("temperature":0.5})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.7})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}]})",
      R"({"model":"m2","messages":[{"role":"user","content":"hi"}],"temperature":0.5})",
  };
  std::set<std::string> keys = {hex_of(base)};
  for (const std::string& v : variants) keys.insert(hex_of(v));
  const std::vector<std::string> fields = {
      R"("tools":[{"type":"function","function":{"name":"f"}}])",
      R"("tool_choice":"auto")",
      R"("tool_choice":"none")",
      R"("response_format":{"type":"json_object"})",
      R"("top_p":0.9)",
      R"("max_tokens":10)",
      R"("max_tokens":11)",
      R"("max_completion_tokens":10)",
      R"("seed":1)",
      R"("seed":2)",
      R"("n":2)",
      R"("stop":["\n"])",
      R"("stop":"END")",
      R"("logit_bias":{"50256":-100})",
      R"("frequency_penalty":0.5)",
      R"("presence_penalty":0.5)",
      R"("system":"You are terse.")",
      R"("system":[{"type":"text","text":"You are terse."}])",
      R"("service_tier":"flex")",
      R"("some_future_field":true)",
      R"("some_future_field":false)",
      R"("some_future_field":null)",
  };
  for (const std::string& f : fields) {
    keys.insert(hex_of(base.substr(0, base.size() - 1) + "," + f + "}"));
  }
  EXPECT_EQ(keys.size(), 1 + variants.size() + fields.size());
}

TEST(CacheKeyTest, ArrayOrderMatters) {
  expect_differ(R"({"a":[1,2]})", R"({"a":[2,1]})");
  expect_differ(R"({"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]})",
                R"({"messages":[{"role":"user","content":"b"},{"role":"user","content":"a"}]})");
  expect_differ(R"({"a":[]})", R"({"a":{}})");
  expect_differ(R"({"a":[[]]})", R"({"a":[]})");
}

TEST(CacheKeyTest, EveryPartitionFieldAndHeaderChangesTheKey) {
  const KeyRequest base = base_request(kChat);
  std::vector<KeyRequest> variants(10, base);
  variants[0].tenant = "other";
  variants[1].cache_namespace = "ns";
  variants[2].generation = 1;
  variants[3].endpoint = "completions";
  variants[4].provider = "azure";
  variants[5].model = "gpt-4o";
  variants[6].anthropic_version = "2023-06-01";
  variants[7].anthropic_beta = "prompt-caching-2024-07-31";
  variants[8].openai_beta = "assistants=v2";
  variants[9].generation = uint64_t{1} << 40;
  std::set<std::string> keys = {compute_cache_key(base).key.hex()};
  for (const KeyRequest& v : variants) {
    KeyResult r = compute_cache_key(v);
    ASSERT_EQ(r.error, KeyError::kNone);
    keys.insert(r.key.hex());
  }
  EXPECT_EQ(keys.size(), 1 + variants.size());
}

TEST(CacheKeyTest, FramingKeepsFieldsApart) {
  KeyRequest a = base_request(kChat);
  KeyRequest b = a;
  a.tenant = "ab";
  a.cache_namespace = "c";
  b.tenant = "a";
  b.cache_namespace = "bc";
  EXPECT_NE(compute_cache_key(a).key, compute_cache_key(b).key);
  KeyRequest c = base_request(kChat);
  KeyRequest d = c;
  c.anthropic_beta = "x";
  d.openai_beta = "x";
  EXPECT_NE(compute_cache_key(c).key, compute_cache_key(d).key);
}

TEST(CacheKeyTest, DuplicateKeysAreRefused) {
  for (std::string_view body : {
           R"({"model":"a","model":"b"})",
           R"({"model":"a","model":"a"})",
           R"({"a":{"x":1,"x":1}})",
           R"({"messages":[{"role":"user","role":"assistant"}]})",
           R"({"m\u006fdel":"a","model":"b"})",
           R"({"user":"a","user":"b"})",
           R"({"a":[{"b":[{"c":{"d":1,"e":2,"d":3}}]}]})",
       }) {
    KeyResult r = key_of(body);
    EXPECT_EQ(r.error, KeyError::kDuplicateKey) << body;
    EXPECT_FALSE(r.detail.empty());
  }
  EXPECT_EQ(key_of(R"({"a":{"x":1},"b":{"x":1}})").error, KeyError::kNone);
}

TEST(CacheKeyTest, InvalidJsonIsRefused) {
  for (std::string_view body : {
           "",
           " ",
           "{",
           "}",
           R"({"a":})",
           R"({"a":1,})",
           R"({"a" 1})",
           R"({a:1})",
           R"({"a":tru})",
           R"({"a":nul})",
           R"({"a":01})",
           R"({"a":1.})",
           R"({"a":.5})",
           R"({"a":-})",
           R"({"a":1e})",
           R"({"a":+1})",
           R"({"a":"\x"})",
           R"({"a":"\ud800"})",
           R"({"a":[1,2})",
           R"({"a":1} {"b":2})",
           R"({"a":1}x)",
           R"({"a":NaN})",
           "{\"a\":\"\xff\"}",
           R"({"a":1 2})",
       }) {
    KeyResult r = key_of(body);
    EXPECT_NE(r.error, KeyError::kNone) << body;
    EXPECT_NE(r.error, KeyError::kDuplicateKey) << body;
  }
}

TEST(CacheKeyTest, NonObjectBodiesAreRefused) {
  for (std::string_view body : {"[]", "[1,2]", "1", "\"s\"", "true", "null"}) {
    EXPECT_EQ(key_of(body).error, KeyError::kNotAnObject) << body;
  }
  EXPECT_EQ(key_of("{}").error, KeyError::kNone);
}

TEST(CacheKeyTest, DeepNestingIsRefused) {
  auto nested = [](int depth) {
    std::string s = "{\"a\":";
    for (int i = 1; i < depth; ++i) s += (i % 2) ? "[" : "{\"b\":";
    s += "0";
    for (int i = depth - 1; i >= 1; --i) s += (i % 2) ? "]" : "}";
    return s + "}";
  };
  EXPECT_EQ(key_of(nested(kMaxKeyDepth)).error, KeyError::kNone);
  EXPECT_EQ(key_of(nested(kMaxKeyDepth + 1)).error, KeyError::kTooDeep);
  EXPECT_EQ(key_of(nested(5000)).error, KeyError::kTooDeep);
  EXPECT_EQ(key_of(std::string(100000, '[')).error, KeyError::kNotAnObject);
}

TEST(CacheKeyTest, ErrorsHaveMessages) {
  for (KeyError e : {KeyError::kNone, KeyError::kInvalidJson, KeyError::kDuplicateKey,
                     KeyError::kNotAnObject, KeyError::kTooDeep}) {
    EXPECT_FALSE(key_error_message(e).empty());
  }
}

TEST(CacheKeyTest, CanonicalBodyIsAFixedPoint) {
  for (std::string_view body : {
           kChat,
           std::string_view(R"({"z":[1.50,{"b":"\u00e9","a":-0}],"y":6.4e1,"x":1e-7,"user":1})"),
           std::string_view(R"({"x":0.99999999999999999999,"y":1.0000000000000000001e30})"),
           std::string_view(R"({"a":"\ud83d\ude00\u2028\u007f","b":[[],{},[{}]]})"),
       }) {
    KeyResult first = key_of(body);
    ASSERT_EQ(first.error, KeyError::kNone) << body << first.detail;
    KeyResult second = key_of(first.canonical_body);
    ASSERT_EQ(second.error, KeyError::kNone) << first.canonical_body;
    EXPECT_EQ(second.canonical_body, first.canonical_body);
    EXPECT_EQ(second.key, first.key);
  }
}

TEST(CacheKeyTest, CanonicalBodyOnlyWhenAsked) {
  EXPECT_TRUE(compute_cache_key(base_request(kChat)).canonical_body.empty());
  EXPECT_FALSE(compute_cache_key(base_request(kChat), true).canonical_body.empty());
}

// Many random permutations of the same members must give one key.
TEST(CacheKeyTest, RandomPermutationsGiveSameKey) {
  std::vector<std::string> members = {R"("model":"m")",
                                      R"("temperature":0.3)",
                                      R"("seed":12345678901234567890)",
                                      R"("messages":[{"role":"user","content":"x"}])",
                                      R"("n":1)",
                                      R"("stop":null)",
                                      R"("top_p":1.0)",
                                      R"("user":"u")"};
  std::string first;
  unsigned state = 12345;
  for (int round = 0; round < 200; ++round) {
    for (size_t i = members.size() - 1; i > 0; --i) {
      state = state * 1103515245u + 12345u;
      std::swap(members[i], members[(state >> 8) % (i + 1)]);
    }
    std::string body = "{";
    for (size_t i = 0; i < members.size(); ++i) body += (i ? " , " : "") + members[i];
    body += "}";
    const std::string h = hex_of(body);
    if (first.empty()) first = h;
    EXPECT_EQ(h, first) << body;
  }
}

}  // namespace
}  // namespace redline::cache
