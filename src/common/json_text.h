// JSON in and out with numbers kept exact. In: JsonReader parses with simdjson into Boost.JSON
// values (integers stay int64/uint64, other numbers are simdjson's correctly rounded doubles —
// Boost.JSON 1.81's own parser does not always read them exactly). Out: JSON text with numbers as people and typed clients read them: integers exact at any
// 64-bit size, other numbers as the shortest text that reads back as the same double ("0.15",
// not Boost.JSON's "1.5E-1"; an integral double keeps ".0"), strings escaped per RFC 8259
// (control characters as \u00XX, everything else as is). Used for cached-answer replay and
// for the admin API's answers.
#pragma once

#include <simdjson.h>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace redline {

// Reused for many documents (e.g. every event of a stream); not thread-safe. A repeated key
// keeps its last value (as JSON.parse does); nesting deeper than 256 levels is refused.
class JsonReader {
 public:
  JsonReader();
  std::optional<boost::json::value> parse(std::string_view text);
  // The document when it is a JSON object; nullopt for anything else.
  std::optional<boost::json::object> parse_object(std::string_view text);

 private:
  simdjson::dom::parser parser_;
  bool ready_ = false;
};

void append_json_string(std::string& out, std::string_view s);  // with the quotes
void append_json(std::string& out, const boost::json::value& v);
std::string json_text(const boost::json::value& v);
// One server-sent event carrying JSON, without the blank line that ends it:
// "event: NAME\ndata: {json}" (Messages, Responses), or "data: {json}" when `name` is empty
// (Chat Completions).
std::string sse_event(std::string_view name, const boost::json::value& data);

}  // namespace redline
