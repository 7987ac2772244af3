// Tenant-scoped hash tags (see scoped_key.h).
#include "common/scoped_key.h"

#include <xxhash.h>

namespace redline {

std::string scoped_tag(std::string_view tenant, std::string_view id) {
  std::string input;
  input.reserve(tenant.size() + 1 + id.size());
  input.append(tenant);
  input += '\0';
  input.append(id);
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits(input.data(), input.size()));
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(32);
  for (unsigned char b : canonical.digest) {
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
  return out;
}

}  // namespace redline
