// Config -> ClientOptions (see config_options.h).
#include "redis/config_options.h"

#include <algorithm>

namespace redline::redis {

ClientOptions client_options(const config::RedisConfig& config, std::string_view client_name) {
  ClientOptions o;
  o.mode = config.mode == config::RedisMode::kCluster ? ClientOptions::Mode::kCluster
                                                      : ClientOptions::Mode::kStandalone;
  o.urls = config.urls;
  o.read_from_replicas = config.read_from_replicas;
  o.connection.connect_timeout = config.connect_timeout;
  o.connection.command_timeout = config.command_timeout;
  o.connection.ca_file = config.ca_file;
  o.connection.client_name = std::string(client_name);
  // A command unanswered for this long means the peer is gone without a reset.
  o.connection.stall_reset = std::max(config.command_timeout * 4, Millis(1000));
  return o;
}

}  // namespace redline::redis
