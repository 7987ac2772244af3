// OpenAI-shaped error bodies (see error_body.h).
#include "common/error_body.h"

#include <boost/json.hpp>

namespace redline {

std::string openai_error_body(std::string_view message, std::string_view type,
                              std::string_view code) {
  boost::json::object err;
  err["message"] = message;
  err["type"] = type;
  if (code.empty()) {
    err["code"] = nullptr;
  } else {
    err["code"] = code;
  }
  err["param"] = nullptr;
  boost::json::object root;
  root["error"] = std::move(err);
  return boost::json::serialize(root);
}

std::string_view error_type_for_status(int status) {
  switch (status) {
    case 400:
    case 405:
    case 411:
    case 413:
    case 415:
    case 422:
    case 431:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 408:
    case 504:
      return "timeout_error";
    case 429:
      return "rate_limit_error";
    default:
      return status < 500 ? "invalid_request_error" : "api_error";
  }
}

}  // namespace redline
