// libFuzzer target for the cache entry envelope (src/cache/entry.h). Arbitrary bytes are
// decoded (must never crash, over-allocate or return an entry that does not re-encode the same);
// inputs starting with 0xEE instead build an Entry from the bytes and check encode -> decode
// is the identity. Seed corpus: fuzz/corpus/cache_entry/.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cache/entry.h"

using redline::cache::decode_entry;
using redline::cache::DecodeError;
using redline::cache::encode_entry;
using redline::cache::EncodeOptions;
using redline::cache::Entry;

namespace {

class Bytes {
 public:
  Bytes(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  uint64_t num(int width) {
    uint64_t v = 0;
    for (int i = 0; i < width && pos_ < n_; ++i) v |= uint64_t{d_[pos_++]} << (8 * i);
    return v;
  }
  std::string str() {
    size_t len = num(1);
    if (len == 255) len = num(2) * 4;  // occasionally long, so compression kicks in
    std::string s;
    for (size_t i = 0; i < len && pos_ < n_; ++i) s.push_back(static_cast<char>(d_[pos_++]));
    // Repeat short seeds to reach compressible sizes cheaply.
    const std::string seed = s;
    while (!seed.empty() && s.size() < len) s += seed;
    s.resize(std::min(s.size(), len));
    return s;
  }
  bool more() const { return pos_ < n_; }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t pos_ = 0;
};

void structured(const uint8_t* data, size_t size) {
  Bytes b(data, size);
  Entry e;
  e.status = static_cast<int>(static_cast<int32_t>(b.num(4)));
  e.created_unix_ms = static_cast<int64_t>(b.num(8));
  e.ttl_seconds = static_cast<uint32_t>(b.num(4));
  e.hits = static_cast<uint32_t>(b.num(4));
  const uint64_t shape = b.num(1);
  e.streamed = (shape & 1) != 0;
  e.content_type = b.str();
  for (uint64_t i = 0, n = (shape >> 1) & 3; i < n; ++i) e.headers.emplace_back(b.str(), b.str());
  if (e.streamed) {
    while (b.more() && e.events.size() < 64) e.events.push_back(b.str());
  } else {
    e.body = b.str();
  }
  EncodeOptions opts;
  opts.compress_min_bytes = (shape & 8) ? 0 : 1024;
  const std::string enc = encode_entry(e, opts);
  Entry out;
  if (decode_entry(enc, out) != DecodeError::kNone) std::abort();
  if (!(out == e)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 0 && data[0] == 0xEE) {
    structured(data + 1, size - 1);
    return 0;
  }
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  Entry out;
  const DecodeError err = decode_entry(in, out, 1 << 20);
  if (err == DecodeError::kNone) {
    // A decoded entry must survive a re-encode and decode unchanged.
    Entry again;
    if (decode_entry(encode_entry(out), again) != DecodeError::kNone || !(again == out)) {
      std::abort();
    }
  } else if (redline::cache::decode_error_message(err).empty()) {
    std::abort();
  }
  return 0;
}
