// JSON view of a stored session (see session_json.h).
#include "session/session_json.h"

#include <boost/json.hpp>

namespace redline::session {

boost::json::object to_json(const session::History& h, std::string_view id) {
  boost::json::object out;
  out["id"] = id;
  out["object"] = "session";
  out["api"] = h.api == session::Api::kMessages ? "messages" : "chat.completions";
  boost::json::array messages;
  for (const auto& m : h.messages) {
    boost::system::error_code ec;
    auto v = boost::json::parse(m, ec);
    if (!ec) messages.push_back(std::move(v));
  }
  if (!h.system.empty()) {
    boost::system::error_code ec;
    auto v = boost::json::parse(h.system, ec);
    if (!ec) out["system"] = std::move(v);
  }
  out["message_count"] = messages.size();
  out["messages"] = std::move(messages);
  out["bytes"] = h.bytes;
  out["expires_in"] = h.ttl_ms >= 0 ? (h.ttl_ms + 999) / 1000 : -1;
  return out;
}

}  // namespace redline::session
