// libFuzzer target for the cache key: arbitrary bytes are the request body. It must never
// crash or hang, and a body that keys successfully must be a fixed point through its canonical
// form (same canonical text, same key). Seed corpus: fuzz/corpus/cache_key/.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cache/cache_key.h"

using redline::cache::compute_cache_key;
using redline::cache::KeyError;
using redline::cache::KeyRequest;
using redline::cache::KeyResult;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  KeyRequest req;
  req.tenant = "t";
  req.endpoint = "chat_completions";
  req.provider = "openai";
  req.model = "m";
  req.body = std::string_view(reinterpret_cast<const char*>(data), size);
  const KeyResult first = compute_cache_key(req, /*keep_canonical=*/true);
  if (first.error != KeyError::kNone) {
    if (first.detail.empty()) std::abort();
    return 0;
  }
  if (first.key.hex().size() != 32) std::abort();
  const std::string canonical = first.canonical_body;
  req.body = canonical;
  const KeyResult second = compute_cache_key(req, true);
  if (second.error != KeyError::kNone) std::abort();
  if (second.canonical_body != canonical) std::abort();
  if (!(second.key == first.key)) std::abort();
  return 0;
}
