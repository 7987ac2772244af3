// OpenAI-shaped error bodies: {"error":{"message","type","code"}}. Every error the
// gateway itself produces (not a provider's, which pass through) is built here.
#pragma once

#include <string>
#include <string_view>

namespace redline {

// `type` follows OpenAI's vocabulary: invalid_request_error, authentication_error,
// permission_error, not_found_error, rate_limit_error, api_error, timeout_error, ...
// `code` is a short machine-readable reason (may be empty -> null).
std::string openai_error_body(std::string_view message, std::string_view type,
                              std::string_view code = {});

// The OpenAI error type that matches an HTTP status the gateway answers with.
std::string_view error_type_for_status(int status);

}  // namespace redline
