// common/json_text.h: numbers as people read them, exact integers, RFC 8259 escaping.
#include "common/json_text.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace redline {
namespace {

TEST(JsonText, NumbersStringsAndNesting) {
  boost::json::object o;
  o["price"] = 0.15;
  o["limit"] = 5.0;
  o["big"] = uint64_t{18446744073709551615u};
  o["neg"] = int64_t{-7};
  o["text"] = "a\"b\\c\n\x01";
  o["list"] = boost::json::array{1, nullptr, true};
  EXPECT_EQ(json_text(o),
            R"({"price":0.15,"limit":5.0,"big":18446744073709551615,"neg":-7,)"
            R"("text":"a\"b\\c\n\u0001","list":[1,null,true]})");
  // It reads back as the same value.
  EXPECT_EQ(boost::json::parse(json_text(o)), boost::json::value(o));
}

}  // namespace
}  // namespace redline
