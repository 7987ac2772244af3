// Encoder and hardened decoder for the cache entry envelope described in entry.h.
// It does not know about keys, tiers or TTL policy; hostile bytes only ever yield a DecodeError.
#include "cache/entry.h"

#include <xxhash.h>
#include <zstd.h>

#include <cstring>
#include <limits>
#include <memory>

namespace redline::cache {
namespace {

constexpr std::size_t kFixedHeader = 3 + 1 + 1 + 4 + 8 + 4 + 4;
constexpr std::size_t kChecksumBytes = 8;
// Fixed header, four one-byte varints (ctype, header count, raw size, stored size), checksum.
constexpr std::size_t kMinEnvelope = kFixedHeader + 4 + kChecksumBytes;

void put_fixed(std::string& out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_bytes(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out.append(s);
}

std::size_t varint_size(uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// One zstd context of each kind per thread, reused: the one-shot ZSTD_compress and
// ZSTD_decompress create and free a context (and its tables) on every call, which cost
// ~10 us per 2 KiB entry. ZSTD_compressCCtx / ZSTD_decompressDCtx reset the context's
// parameters on each call, so a reused context gives the same bytes as the one-shot calls.
struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxFree {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};
ZSTD_CCtx* compression_context() {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxFree> ctx(ZSTD_createCCtx());
  return ctx.get();
}
ZSTD_DCtx* decompression_context() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxFree> ctx(ZSTD_createDCtx());
  return ctx.get();
}

// A bounds-checked cursor over a byte range.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  std::size_t remaining() const { return s_.size() - pos_; }
  bool fixed(uint64_t& v, int n) {
    if (remaining() < static_cast<std::size_t>(n)) return false;
    v = 0;
    for (int i = 0; i < n; ++i) {
      v |= static_cast<uint64_t>(static_cast<unsigned char>(s_[pos_ + i])) << (8 * i);
    }
    pos_ += n;
    return true;
  }
  bool varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (remaining() == 0) return false;
      const auto b = static_cast<unsigned char>(s_[pos_++]);
      if (shift == 63 && (b & 0x7e) != 0) return false;  // overflows 64 bits
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  std::string_view take(std::size_t n) {
    const std::string_view r = s_.substr(pos_, n);
    pos_ += n;
    return r;
  }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
};

// Reads a varint length and its bytes, charging them against `budget`.
DecodeError read_string(Reader& r, std::size_t& budget, std::string& out) {
  uint64_t len = 0;
  if (!r.varint(len)) return DecodeError::kCorrupt;
  if (len > budget) return DecodeError::kTooLarge;
  if (len > r.remaining()) return DecodeError::kCorrupt;
  budget -= static_cast<std::size_t>(len);
  out.assign(r.take(static_cast<std::size_t>(len)));
  return DecodeError::kNone;
}

DecodeError parse_events(std::string_view raw, std::vector<std::string>& events,
                         std::size_t& budget) {
  Reader r(raw);
  uint64_t count = 0;
  if (!r.varint(count)) return DecodeError::kCorrupt;
  if (count > r.remaining()) return DecodeError::kCorrupt;  // each event takes >= 1 byte
  events.clear();
  events.reserve(static_cast<std::size_t>(count));
  for (uint64_t i = 0; i < count; ++i) {
    events.emplace_back();
    if (auto err = read_string(r, budget, events.back()); err != DecodeError::kNone) return err;
  }
  return r.remaining() == 0 ? DecodeError::kNone : DecodeError::kCorrupt;
}

}  // namespace

std::string_view decode_error_message(DecodeError e) {
  switch (e) {
    case DecodeError::kNone:
      return "ok";
    case DecodeError::kTooShort:
      return "cache entry too short";
    case DecodeError::kBadMagic:
      return "not a cache entry (bad magic)";
    case DecodeError::kUnsupportedVersion:
      return "unsupported cache entry version";
    case DecodeError::kChecksum:
      return "cache entry checksum mismatch";
    case DecodeError::kCorrupt:
      return "cache entry corrupt";
    case DecodeError::kTooLarge:
      return "cache entry too large";
  }
  return "unknown cache entry error";
}

std::size_t payload_raw_size(const Entry& e) {
  if (!e.streamed) return e.body.size();
  std::size_t n = varint_size(e.events.size());
  for (const auto& ev : e.events) n += varint_size(ev.size()) + ev.size();
  return n;
}

std::size_t encoded_size_hint(const Entry& e) {
  std::size_t n = kMinEnvelope + 3 * 10 + e.content_type.size();
  for (const auto& [k, v] : e.headers) n += 20 + k.size() + v.size();
  return n + payload_raw_size(e);
}

std::string encode_entry(const Entry& e, const EncodeOptions& opts) {
  std::string raw_events;
  std::string_view raw = e.body;
  if (e.streamed) {
    raw_events.reserve(payload_raw_size(e));
    put_varint(raw_events, e.events.size());
    for (const auto& ev : e.events) put_bytes(raw_events, ev);
    raw = raw_events;
  }
  std::string compressed;
  bool use_compressed = false;
  if (raw.size() >= opts.compress_min_bytes) {
    compressed.resize(ZSTD_compressBound(raw.size()));
    auto* cctx = compression_context();
    const std::size_t n =
        cctx != nullptr ? ZSTD_compressCCtx(cctx, compressed.data(), compressed.size(),
                                            raw.data(), raw.size(), opts.zstd_level)
                        : ZSTD_compress(compressed.data(), compressed.size(), raw.data(),
                                        raw.size(), opts.zstd_level);
    if (!ZSTD_isError(n) && n < raw.size()) {
      compressed.resize(n);
      use_compressed = true;
    }
  }
  const std::string_view stored = use_compressed ? std::string_view(compressed) : raw;

  std::string out;
  out.reserve(encoded_size_hint(e) - raw.size() + stored.size());
  out.append(kEntryMagic, sizeof kEntryMagic);
  out.push_back(static_cast<char>(kEntryVersion));
  uint8_t flags = 0;
  if (use_compressed) flags |= kEntryFlagCompressed;
  if (e.streamed) flags |= kEntryFlagStreamed;
  out.push_back(static_cast<char>(flags));
  put_fixed(out, static_cast<uint32_t>(e.status), 4);
  put_fixed(out, static_cast<uint64_t>(e.created_unix_ms), 8);
  put_fixed(out, e.ttl_seconds, 4);
  put_fixed(out, e.hits, 4);
  put_bytes(out, e.content_type);
  put_varint(out, e.headers.size());
  for (const auto& [k, v] : e.headers) {
    put_bytes(out, k);
    put_bytes(out, v);
  }
  put_varint(out, raw.size());
  put_bytes(out, stored);
  put_fixed(out, XXH3_64bits(out.data(), out.size()), 8);
  return out;
}

bool entry_compressed(std::string_view encoded) {
  return encoded.size() >= 5 && encoded.substr(0, 3) == std::string_view(kEntryMagic, 3) &&
         (static_cast<unsigned char>(encoded[4]) & kEntryFlagCompressed) != 0;
}

DecodeError decode_entry(std::string_view bytes, Entry& out, std::size_t max_decoded_bytes) {
  const std::string_view magic(kEntryMagic, sizeof kEntryMagic);
  if (bytes.substr(0, magic.size()) != magic.substr(0, std::min(bytes.size(), magic.size()))) {
    return DecodeError::kBadMagic;
  }
  if (bytes.size() < kMinEnvelope) return DecodeError::kTooShort;
  if (static_cast<uint8_t>(bytes[3]) != kEntryVersion) return DecodeError::kUnsupportedVersion;
  const std::string_view body = bytes.substr(0, bytes.size() - kChecksumBytes);
  uint64_t want = 0;
  Reader tail(bytes.substr(body.size()));
  tail.fixed(want, 8);
  if (XXH3_64bits(body.data(), body.size()) != want) return DecodeError::kChecksum;

  Reader r(body);
  r.take(4);
  uint64_t flags = 0, status = 0, created = 0, ttl = 0, hits = 0;
  r.fixed(flags, 1);
  r.fixed(status, 4);
  r.fixed(created, 8);
  r.fixed(ttl, 4);
  r.fixed(hits, 4);
  if ((flags & ~uint64_t{kEntryFlagCompressed | kEntryFlagStreamed}) != 0) {
    return DecodeError::kCorrupt;
  }
  out = Entry{};
  out.status = static_cast<int>(static_cast<int32_t>(static_cast<uint32_t>(status)));
  out.created_unix_ms = static_cast<int64_t>(created);
  out.ttl_seconds = static_cast<uint32_t>(ttl);
  out.hits = static_cast<uint32_t>(hits);
  out.streamed = (flags & kEntryFlagStreamed) != 0;
  const bool compressed = (flags & kEntryFlagCompressed) != 0;

  std::size_t budget = max_decoded_bytes;
  if (auto err = read_string(r, budget, out.content_type); err != DecodeError::kNone) return err;
  uint64_t n_headers = 0;
  if (!r.varint(n_headers)) return DecodeError::kCorrupt;
  if (n_headers > r.remaining() / 2) return DecodeError::kCorrupt;  // >= 2 bytes per header
  out.headers.reserve(static_cast<std::size_t>(n_headers));
  for (uint64_t i = 0; i < n_headers; ++i) {
    auto& h = out.headers.emplace_back();
    if (auto err = read_string(r, budget, h.first); err != DecodeError::kNone) return err;
    if (auto err = read_string(r, budget, h.second); err != DecodeError::kNone) return err;
  }
  uint64_t raw_size = 0, stored_size = 0;
  if (!r.varint(raw_size) || !r.varint(stored_size)) return DecodeError::kCorrupt;
  if (raw_size > budget) return DecodeError::kTooLarge;
  if (stored_size != r.remaining()) return DecodeError::kCorrupt;  // nothing may trail
  const std::string_view stored = r.take(static_cast<std::size_t>(stored_size));
  if (!compressed && stored_size != raw_size) return DecodeError::kCorrupt;

  std::string raw_buf;
  std::string_view raw = stored;
  if (compressed) {
    const unsigned long long declared = ZSTD_getFrameContentSize(stored.data(), stored.size());
    if (declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN ||
        declared != raw_size) {
      return DecodeError::kCorrupt;
    }
    raw_buf.resize(static_cast<std::size_t>(raw_size));
    auto* dctx = decompression_context();
    const std::size_t n =
        dctx != nullptr ? ZSTD_decompressDCtx(dctx, raw_buf.data(), raw_buf.size(),
                                              stored.data(), stored.size())
                        : ZSTD_decompress(raw_buf.data(), raw_buf.size(), stored.data(),
                                          stored.size());
    if (ZSTD_isError(n) || n != raw_size) return DecodeError::kCorrupt;
    raw = raw_buf;
  }
  if (!out.streamed) {
    budget -= raw.size();
    if (compressed) {
      out.body = std::move(raw_buf);
    } else {
      out.body.assign(raw);
    }
    return DecodeError::kNone;
  }
  return parse_events(raw, out.events, budget);
}

}  // namespace redline::cache
