// The JSON view of a stored session, as GET /v1/sessions/{id} and the admin API return it:
// {"id","object":"session","api":"chat.completions"|"messages","system"?,"messages":[...],
//  "message_count","bytes","expires_in" (seconds)}.
#pragma once

#include <boost/json/object.hpp>
#include <string_view>

#include "session/session_store.h"

namespace redline::session {

boost::json::object to_json(const History& history, std::string_view id);

}  // namespace redline::session
