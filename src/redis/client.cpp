// StandaloneClient (one server, one pipelined connection) and make_client(), which turns
// ClientOptions into a standalone or cluster client. Routing lives in cluster.cpp.
#include "redis/client.h"

#include "redis/cluster.h"

namespace redline::redis {

Result<ConnectionOptions> options_from_url(std::string_view url, const ConnectionOptions& base) {
  return parse_url(url, base);
}

StandaloneClient::StandaloneClient(Connection::Executor ex, ConnectionOptions options)
    : conn_(Connection::create(std::move(ex), std::move(options))) {}

StandaloneClient::~StandaloneClient() {
  conn_->stop();
}

Awaitable<Result<Reply>> StandaloneClient::execute(const Command& cmd) {
  return conn_->execute(cmd);
}

Awaitable<Result<Reply>> StandaloneClient::execute(const Command& cmd, Millis timeout) {
  return conn_->execute(cmd, timeout);
}

Awaitable<std::vector<Result<Reply>>> StandaloneClient::batch(std::span<const Command> cmds) {
  return conn_->batch(cmds);
}

Awaitable<Result<void>> StandaloneClient::connect() {
  return conn_->connect();
}

Result<std::unique_ptr<Client>> make_client(Connection::Executor ex, const ClientOptions& options) {
  if (options.urls.empty()) {
    return Error{ErrorKind::kInvalidArgument, "no redis URL configured"};
  }
  if (options.mode == ClientOptions::Mode::kCluster) {
    auto seeds = ClusterClient::seeds_from_urls(options);
    if (!seeds.ok()) {
      return seeds.error();
    }
    std::unique_ptr<Client> c = std::make_unique<ClusterClient>(std::move(ex), options);
    return c;
  }
  auto o = options_from_url(options.urls.front(), options.connection);
  if (!o.ok()) {
    return o.error();
  }
  std::unique_ptr<Client> c = std::make_unique<StandaloneClient>(std::move(ex), std::move(*o));
  return c;
}

}  // namespace redline::redis
