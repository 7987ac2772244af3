// See random_ids.h.
#include "common/random_ids.h"

#include <array>
#include <cstdint>
#include <random>

namespace redline::common {
namespace {

// xoshiro256** (Blackman and Vigna, 2018).
class Xoshiro256 {
 public:
  Xoshiro256() {
    std::random_device rd;
    for (auto& word : s_) {
      // A zero state would stay zero; random_device gives 32 bits per call.
      do {
        word = (uint64_t{rd()} << 32) | rd();
      } while (word == 0);
    }
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<uint64_t, 4> s_{};
};

thread_local Xoshiro256 rng;

}  // namespace

uint64_t random_u64() {
  return rng.next();
}

std::string new_request_id() {
  static constexpr char kHex[] = "0123456789abcdef";
  char id[36] = {'r', 'e', 'q', '_'};
  char* out = id + 4;
  for (int half = 0; half < 2; ++half) {
    uint64_t v = rng.next();
    for (int i = 0; i < 16; ++i, v >>= 4) *out++ = kHex[v & 15];
  }
  return std::string(id, sizeof id);
}

}  // namespace redline::common
