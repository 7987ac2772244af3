// Tests for the cache entry envelope (src/cache/entry.h): round trips of every field and both
// payload kinds, compression, and that every kind of damaged or hostile input is rejected with
// the right DecodeError instead of being served. It does not test the tiers that store entries.
#include "cache/entry.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <string>

namespace redline::cache {
namespace {

Entry sample_plain() {
  Entry e;
  e.status = 200;
  e.content_type = "application/json";
  e.headers = {{"openai-model", "gpt-4o-2024-08-06"}, {"openai-processing-ms", "321"}};
  e.created_unix_ms = 1795000000123;
  e.ttl_seconds = 3600;
  e.body = R"({"id":"chatcmpl-1","choices":[{"message":{"content":"hi"}}]})";
  e.hits = 7;
  return e;
}

Entry sample_streamed() {
  Entry e;
  e.content_type = "text/event-stream";
  e.headers = {{"anthropic-organization-id", "org"}};
  e.created_unix_ms = -5;
  e.ttl_seconds = 60;
  e.streamed = true;
  e.events = {"event: message_start\ndata: {}", "", "data: [DONE]"};
  return e;
}

// Recomputes the trailing checksum after a deliberate edit, so parsing errors are reachable.
void reseal(std::string& s) {
  ASSERT_GE(s.size(), 8u);
  const uint64_t h = XXH3_64bits(s.data(), s.size() - 8);
  for (int i = 0; i < 8; ++i) s[s.size() - 8 + i] = static_cast<char>((h >> (8 * i)) & 0xff);
}

Entry round_trip(const Entry& e, const EncodeOptions& o = {}) {
  Entry out;
  EXPECT_EQ(decode_entry(encode_entry(e, o), out), DecodeError::kNone);
  return out;
}

TEST(EntryCodec, RoundTripPlain) {
  const Entry e = sample_plain();
  EXPECT_EQ(round_trip(e), e);
  EXPECT_FALSE(entry_compressed(encode_entry(e)));
}

TEST(EntryCodec, RoundTripStreamed) {
  const Entry e = sample_streamed();
  EXPECT_EQ(round_trip(e), e);
}

TEST(EntryCodec, EmptyBodyAndEvents) {
  Entry a;
  EXPECT_EQ(round_trip(a), a);
  Entry b;
  b.streamed = true;
  EXPECT_EQ(round_trip(b), b);
}

TEST(EntryCodec, BinaryBytesAndExtremeFields) {
  Entry e;
  e.status = -1;
  e.created_unix_ms = INT64_MIN;
  e.ttl_seconds = UINT32_MAX;
  e.hits = UINT32_MAX;
  for (int i = 0; i < 256; ++i) e.body.push_back(static_cast<char>(i));
  e.body += std::string("\0\0RLC", 5);
  e.headers = {{std::string("\0", 1), std::string(300, '\xff')}};
  EXPECT_EQ(round_trip(e), e);
  e.streamed = true;
  e.events = {e.body, std::string(200, '\0')};
  e.body.clear();
  EXPECT_EQ(round_trip(e), e);
}

TEST(EntryCodec, OnlyTheMatchingPayloadKindIsStored) {
  Entry e = sample_plain();
  e.events = {"ignored"};
  Entry out = round_trip(e);
  EXPECT_TRUE(out.events.empty());
  EXPECT_EQ(out.body, e.body);
}

TEST(EntryCodec, LargeBodyIsCompressed) {
  Entry e = sample_plain();
  e.body.clear();
  while (e.body.size() < 100 * 1024) e.body += R"({"delta":{"content":"hello world"}},)";
  const std::string enc = encode_entry(e);
  EXPECT_LT(enc.size(), e.body.size());
  EXPECT_TRUE(entry_compressed(enc));
  Entry out;
  ASSERT_EQ(decode_entry(enc, out), DecodeError::kNone);
  EXPECT_EQ(out, e);
}

TEST(EntryCodec, LargeStreamIsCompressed) {
  Entry e = sample_streamed();
  for (int i = 0; i < 2000; ++i) e.events.push_back("data: {\"i\":" + std::to_string(i) + "}");
  const std::string enc = encode_entry(e);
  EXPECT_TRUE(entry_compressed(enc));
  EXPECT_EQ(round_trip(e), e);
}

TEST(EntryCodec, CompressionThresholdAndIncompressibleData) {
  Entry e = sample_plain();
  e.body = std::string(2000, 'a');
  EncodeOptions high;
  high.compress_min_bytes = 4096;
  EXPECT_FALSE(entry_compressed(encode_entry(e, high)));
  EXPECT_TRUE(entry_compressed(encode_entry(e)));
  // Random bytes do not shrink: stored raw even above the threshold.
  uint64_t x = 88172645463325252ull;
  e.body.clear();
  for (int i = 0; i < 4096; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    e.body.push_back(static_cast<char>(x));
  }
  const std::string enc = encode_entry(e);
  EXPECT_FALSE(entry_compressed(enc));
  EXPECT_EQ(round_trip(e), e);
}

TEST(EntryDecode, EveryTruncationFails) {
  for (const Entry& e : {sample_plain(), sample_streamed()}) {
    Entry big = e;
    big.body.assign(3000, 'x');
    for (const Entry& v : {e, big}) {
      const std::string enc = encode_entry(v);
      for (std::size_t n = 0; n < enc.size(); ++n) {
        Entry out;
        EXPECT_NE(decode_entry(std::string_view(enc).substr(0, n), out), DecodeError::kNone) << n;
      }
    }
  }
}

TEST(EntryDecode, EveryByteFlipFails) {
  Entry big = sample_plain();
  big.body.assign(3000, 'x');
  for (const Entry& e : {sample_plain(), sample_streamed(), big}) {
    const std::string enc = encode_entry(e);
    for (std::size_t i = 0; i < enc.size(); ++i) {
      std::string bad = enc;
      bad[i] = static_cast<char>(bad[i] ^ 0x01);
      Entry out;
      const DecodeError err = decode_entry(bad, out);
      EXPECT_NE(err, DecodeError::kNone) << i;
      if (i == 3) {
        EXPECT_EQ(err, DecodeError::kUnsupportedVersion) << i;
      } else if (i >= 4) {
        EXPECT_EQ(err, DecodeError::kChecksum) << i;
      }
    }
  }
}

TEST(EntryDecode, ErrorKinds) {
  const std::string enc = encode_entry(sample_plain());
  Entry out;
  EXPECT_EQ(decode_entry("", out), DecodeError::kTooShort);
  EXPECT_EQ(decode_entry("RLC\x01", out), DecodeError::kTooShort);
  EXPECT_EQ(decode_entry("XLC" + enc.substr(3), out), DecodeError::kBadMagic);
  EXPECT_EQ(decode_entry("{\"id\":1}", out), DecodeError::kBadMagic);
  std::string future = enc;
  future[3] = 2;
  reseal(future);
  EXPECT_EQ(decode_entry(future, out), DecodeError::kUnsupportedVersion);
  std::string flags = enc;
  flags[4] = static_cast<char>(0x80);
  reseal(flags);
  EXPECT_EQ(decode_entry(flags, out), DecodeError::kCorrupt);
  std::string extra = enc;
  extra.insert(extra.size() - 8, "z");
  reseal(extra);
  EXPECT_EQ(decode_entry(extra, out), DecodeError::kCorrupt);
  for (DecodeError d : {DecodeError::kNone, DecodeError::kTooShort, DecodeError::kBadMagic,
                        DecodeError::kUnsupportedVersion, DecodeError::kChecksum,
                        DecodeError::kCorrupt, DecodeError::kTooLarge}) {
    EXPECT_FALSE(decode_error_message(d).empty());
  }
}

// Builds a sealed envelope whose content-type length varint claims `len` bytes.
std::string with_content_type_length(uint64_t len) {
  std::string s = encode_entry(Entry{});
  const std::size_t at = 25;  // first byte after the fixed header
  std::string v;
  while (len >= 0x80) {
    v.push_back(static_cast<char>((len & 0x7f) | 0x80));
    len >>= 7;
  }
  v.push_back(static_cast<char>(len));
  s.replace(at, 1, v);
  reseal(s);
  return s;
}

TEST(EntryDecode, HugeLengthsAreRejectedWithoutAllocating) {
  Entry out;
  EXPECT_EQ(decode_entry(with_content_type_length(1ull << 30), out), DecodeError::kTooLarge);
  EXPECT_EQ(decode_entry(with_content_type_length(1ull << 30), out, std::size_t{1} << 31),
            DecodeError::kCorrupt);
  EXPECT_EQ(decode_entry(with_content_type_length(UINT64_MAX), out, SIZE_MAX),
            DecodeError::kCorrupt);
  // A raw payload size of 1 GB with a tiny stored payload.
  std::string s = encode_entry(Entry{});
  // Layout of an empty entry: 25 fixed, ctype 0, headers 0, raw 0, stored 0, checksum.
  ASSERT_EQ(s.size(), 25u + 4u + 8u);
  s.replace(27, 1, std::string("\x80\x80\x80\x80\x04", 5));  // raw_size = 1 << 30
  reseal(s);
  EXPECT_EQ(decode_entry(s, out), DecodeError::kTooLarge);
  EXPECT_EQ(decode_entry(s, out, SIZE_MAX), DecodeError::kCorrupt);
  // A header count far beyond the bytes present.
  std::string h = encode_entry(Entry{});
  h.replace(26, 1, std::string("\xff\xff\xff\xff\x0f", 5));
  reseal(h);
  EXPECT_EQ(decode_entry(h, out), DecodeError::kCorrupt);
}

TEST(EntryDecode, ZstdFrameMustDeclareRawSize) {
  Entry e = sample_plain();
  e.body.assign(5000, 'q');
  std::string enc = encode_entry(e);
  ASSERT_TRUE(entry_compressed(enc));
  // Find the raw_size varint (5000 = 0x88 0x27) just before the stored-size varint and lie.
  const std::size_t pos = enc.find(std::string("\x88\x27", 2), 25);
  ASSERT_NE(pos, std::string::npos);
  enc[pos] = static_cast<char>(0x89);
  reseal(enc);
  Entry out;
  EXPECT_EQ(decode_entry(enc, out), DecodeError::kCorrupt);
}

TEST(EntryDecode, MaxDecodedBytesRespected) {
  Entry e = sample_plain();
  e.body.assign(10000, 'b');
  const std::string enc = encode_entry(e);
  Entry out;
  EXPECT_EQ(decode_entry(enc, out, 9999), DecodeError::kTooLarge);
  EXPECT_EQ(decode_entry(enc, out, 20000), DecodeError::kNone);
  Entry s = sample_streamed();
  s.events.assign(100, std::string(100, 'e'));
  const std::string senc = encode_entry(s);
  EXPECT_EQ(decode_entry(senc, out, 5000), DecodeError::kTooLarge);
  EXPECT_EQ(decode_entry(senc, out), DecodeError::kNone);
  EXPECT_EQ(out, s);
}

}  // namespace
}  // namespace redline::cache
