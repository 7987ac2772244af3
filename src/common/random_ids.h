// Random numbers for ids and markers on the request path: a per-thread xoshiro256**
// generator seeded once from std::random_device. Not for secrets (ids are echoed to clients
// and logged); its state is 32 bytes, where std::mt19937_64's is 2.5 KB, rewritten every 312
// draws, on every request's path.
#pragma once

#include <cstdint>
#include <string>

namespace redline::common {

// 64 random bits from this thread's generator.
uint64_t random_u64();

// A request id for a request that came without one: "req_" and 32 hex digits (128 bits).
std::string new_request_id();

}  // namespace redline::common
