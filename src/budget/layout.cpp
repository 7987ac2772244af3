// Hash and field names of the spend hashes (layout.h). Pure string building; no I/O.
#include "budget/layout.h"

namespace redline::budget::layout {

std::string escape_id(std::string_view id) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(id.size());
  for (const char c : id) {
    const auto b = static_cast<unsigned char>(c);
    const bool plain = b > 0x20 && b < 0x7f && c != ':' && c != '%' && c != '{' && c != '}';
    if (plain) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0xf]);
    }
  }
  return out;
}

std::string hash_key(Scope scope, std::string_view id, std::string_view period_id) {
  std::string key(kPrefix);
  key += scope == Scope::kKey ? "k:" : "t:";
  key += escape_id(id);
  key += ':';
  key += period_id;
  return key;
}

std::string model_field(std::string_view base, std::string_view model) {
  std::string f(base);
  f += kModelSeparator;
  f += model;
  return f;
}

}  // namespace redline::budget::layout
