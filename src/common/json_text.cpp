// JSON text out (see json_text.h).
#include "common/json_text.h"

#include <charconv>
#include <cmath>

namespace redline {

namespace json = boost::json;

namespace {

template <class Int>
void write_integer(std::string& out, Int v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// The shortest text that reads back as `d`; an integral value keeps a ".0" so it stays a
// floating-point number for typed clients.
void write_double(std::string& out, double d) {
  if (!std::isfinite(d)) {  // not reachable from parsed JSON
    out += "null";
    return;
  }
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, d);
  const std::string_view text(buf, static_cast<std::size_t>(r.ptr - buf));
  out += text;
  if (text.find_first_of(".eE") == std::string_view::npos) out += ".0";
}

constexpr std::size_t kMaxJsonDepth = 256;

bool convert(simdjson::dom::element e, json::value& out) {
  using T = simdjson::dom::element_type;
  switch (e.type()) {
    case T::ARRAY: {
      simdjson::dom::array items;
      if (e.get_array().get(items) != simdjson::SUCCESS) return false;
      json::array& a = out.emplace_array();
      for (simdjson::dom::element item : items) {
        if (!convert(item, a.emplace_back(nullptr))) return false;
      }
      return true;
    }
    case T::OBJECT: {
      simdjson::dom::object fields;
      if (e.get_object().get(fields) != simdjson::SUCCESS) return false;
      json::object& o = out.emplace_object();
      for (simdjson::dom::key_value_pair kv : fields) {
        json::value& slot = o[kv.key];
        slot = nullptr;
        if (!convert(kv.value, slot)) return false;
      }
      return true;
    }
    case T::INT64:
      out = e.get_int64().value_unsafe();
      return true;
    case T::UINT64:
      out = e.get_uint64().value_unsafe();
      return true;
    case T::DOUBLE:
      out = e.get_double().value_unsafe();
      return true;
    case T::STRING:
      out = e.get_string().value_unsafe();
      return true;
    case T::BOOL:
      out = e.get_bool().value_unsafe();
      return true;
    case T::NULL_VALUE:
      out = nullptr;
      return true;
  }
  return false;
}

}  // namespace

JsonReader::JsonReader() {
  ready_ = parser_.allocate(4096, kMaxJsonDepth) == simdjson::SUCCESS;
}

std::optional<json::value> JsonReader::parse(std::string_view text) {
  simdjson::dom::element root;
  if (!ready_ || parser_.parse(text.data(), text.size()).get(root) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  json::value out;
  if (!convert(root, out)) return std::nullopt;
  return out;
}

std::optional<json::object> JsonReader::parse_object(std::string_view text) {
  std::optional<json::value> v = parse(text);
  if (!v || !v->is_object()) return std::nullopt;
  return std::move(v->get_object());
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += "\\u00";
          out.push_back(kHex[(c >> 4) & 0xf]);
          out.push_back(kHex[c & 0xf]);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

void append_json(std::string& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      out += "null";
      return;
    case json::kind::bool_:
      out += v.get_bool() ? "true" : "false";
      return;
    case json::kind::int64:
      write_integer(out, v.get_int64());
      return;
    case json::kind::uint64:
      write_integer(out, v.get_uint64());
      return;
    case json::kind::double_:
      write_double(out, v.get_double());
      return;
    case json::kind::string:
      append_json_string(out, v.get_string());
      return;
    case json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const json::value& item : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        append_json(out, item);
      }
      out.push_back(']');
      return;
    }
    case json::kind::object: {
      out.push_back('{');
      bool first = true;
      for (const json::key_value_pair& kv : v.get_object()) {
        if (!first) out.push_back(',');
        first = false;
        append_json_string(out, kv.key());
        out.push_back(':');
        append_json(out, kv.value());
      }
      out.push_back('}');
      return;
    }
  }
}

std::string json_text(const json::value& v) {
  std::string out;
  append_json(out, v);
  return out;
}

std::string sse_event(std::string_view name, const json::value& data) {
  std::string out;
  if (!name.empty()) {
    out += "event: ";
    out += name;
    out += '\n';
  }
  out += "data: ";
  append_json(out, data);
  return out;
}

}  // namespace redline
