// JSON text out with numbers as people and typed clients read them: integers exact at any
// 64-bit size, other numbers as the shortest text that reads back as the same double ("0.15",
// not Boost.JSON's "1.5E-1"; an integral double keeps ".0"), strings escaped per RFC 8259
// (control characters as \u00XX, everything else as is). Used for cached-answer replay and
// for the admin API's answers.
#pragma once

#include <boost/json/value.hpp>
#include <string>
#include <string_view>

namespace redline {

void append_json_string(std::string& out, std::string_view s);  // with the quotes
void append_json(std::string& out, const boost::json::value& v);
std::string json_text(const boost::json::value& v);

}  // namespace redline
