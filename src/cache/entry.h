// The cache entry envelope: a compact, versioned, checksummed binary encoding of one cached
// answer (status, content type, replayed headers, timing, and the body or the SSE events),
// with the payload zstd-compressed above a size threshold. It does not decide what is cached
// and does not talk to Redis or L1; it only turns an Entry into bytes and back, safely.
//
// Format (version 1), all fixed-width integers little-endian, "varint" = unsigned LEB128
// (at most 10 bytes, canonical form not required):
//   magic      3 bytes  "RLC"
//   version    1 byte   = 1
//   flags      1 byte   bit0 = payload compressed (zstd), bit1 = streamed; other bits 0
//   status     int32
//   created    int64    created_unix_ms
//   ttl        uint32   ttl_seconds
//   hits       uint32
//   ctype      varint length + bytes
//   headers    varint count, then per header: varint length + name, varint length + value
//   raw_size   varint   size of the uncompressed payload
//   stored     varint   size of the payload bytes that follow (== raw_size when uncompressed)
//   payload    stored bytes; uncompressed it is the body (non-streamed), or for a streamed
//              entry: varint event count, then per event varint length + bytes
//   checksum   uint64   XXH3-64 (seed 0) of every byte before it
// Decoding checks the checksum before parsing, and every length against the remaining bytes
// and max_decoded_bytes before allocating; a zstd frame must declare exactly raw_size.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redline::cache {

inline constexpr char kEntryMagic[3] = {'R', 'L', 'C'};
inline constexpr uint8_t kEntryVersion = 1;
inline constexpr uint8_t kEntryFlagCompressed = 0x01;
inline constexpr uint8_t kEntryFlagStreamed = 0x02;

// Wall-clock milliseconds since the epoch: the time base of Entry::created_unix_ms.
inline int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Entry {
  int status = 200;
  std::string content_type;
  // The few provider headers worth replaying (openai-model, anthropic-..., ...), in order.
  std::vector<std::pair<std::string, std::string>> headers;
  int64_t created_unix_ms = 0;
  uint32_t ttl_seconds = 0;
  bool streamed = false;
  std::string body;                 // non-streamed: the JSON body
  std::vector<std::string> events;  // streamed: each complete SSE event, without the blank line
  uint32_t hits = 0;

  friend bool operator==(const Entry&, const Entry&) = default;
};

struct EncodeOptions {
  std::size_t compress_min_bytes = 1024;  // payloads at least this large are zstd-compressed
  int zstd_level = 1;
};

enum class DecodeError {
  kNone,
  kTooShort,            // fewer bytes than the smallest possible envelope
  kBadMagic,            // not an entry envelope
  kUnsupportedVersion,  // written by a newer (or unknown) format version
  kChecksum,            // corrupted or truncated bytes
  kCorrupt,             // checksum fine but the fields are inconsistent
  kTooLarge,            // would decode to more than max_decoded_bytes
};

std::string_view decode_error_message(DecodeError e);

// Encodes `e`. Only the payload of the matching kind is stored: body when !streamed, events
// when streamed. The payload is compressed when its raw size >= compress_min_bytes and
// compression actually makes it smaller.
std::string encode_entry(const Entry& e, const EncodeOptions& opts = {});

// Decodes `bytes` into `out` (overwritten). On any error `out` is left in an unspecified but
// valid state and must not be served. Never allocates more than about max_decoded_bytes.
DecodeError decode_entry(std::string_view bytes, Entry& out,
                         std::size_t max_decoded_bytes = std::size_t{64} << 20);

// The size of the payload before compression (what compress_min_bytes is compared with).
std::size_t payload_raw_size(const Entry& e);

// Upper bound of the uncompressed encoded size, for reserving buffers.
std::size_t encoded_size_hint(const Entry& e);

// True when `encoded` looks like an envelope whose payload is compressed (does not verify).
bool entry_compressed(std::string_view encoded);

}  // namespace redline::cache
