// Client options for a Redis deployment described in the config (`redis:` or `cache.redis:`),
// so every module that talks to Redis connects the same way.
#pragma once

#include <string_view>

#include "config/config.h"
#include "redis/client.h"

namespace redline::redis {

ClientOptions client_options(const config::RedisConfig& config, std::string_view client_name);

}  // namespace redline::redis
