// Script: SHA1 of the source (OpenSSL EVP), EVALSHA/EVAL command building, and the NOSCRIPT
// fallback. It does not pre-load scripts with SCRIPT LOAD: EVAL on a miss caches the script on
// exactly the node that needed it, which also covers fresh replicas promoted by a failover.
#include "redis/script.h"

#include <openssl/evp.h>

#include <boost/asio/use_awaitable.hpp>

namespace redline::redis {

Script::Script(std::string_view source) : source_(source) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(source_.data(), source_.size(), digest, &len, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  sha_.reserve(static_cast<size_t>(len) * 2);
  for (unsigned int i = 0; i < len; ++i) {
    sha_ += kHex[digest[i] >> 4];
    sha_ += kHex[digest[i] & 0xf];
  }
}

Command Script::call(std::span<const std::string_view> keys,
                     std::span<const std::string_view> args) const {
  Command c("EVALSHA", sha_, keys.size());
  for (auto k : keys) {
    c.add(k);
  }
  for (auto a : args) {
    c.add(a);
  }
  return c;
}

Command Script::as_eval(const Command& evalsha) const {
  Command c("EVAL", source_);
  for (size_t i = 2; i < evalsha.size(); ++i) {
    c.add(evalsha.arg(i));
  }
  return c;
}

Awaitable<Result<Reply>> Script::run(Client& client, const Command& evalsha) const {
  auto r = co_await client.execute(evalsha);
  if (r.ok() || !is_noscript(r.error())) {
    co_return r;
  }
  Command eval = as_eval(evalsha);
  co_return co_await client.execute(eval);
}

Awaitable<std::vector<Result<Reply>>> Script::run_batch(Client& client,
                                                        std::span<const Command> calls) const {
  auto results = co_await client.batch(calls);
  std::vector<size_t> missing;
  std::vector<Command> evals;
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i].ok() && is_noscript(results[i].error())) {
      missing.push_back(i);
      evals.push_back(as_eval(calls[i]));
    }
  }
  if (evals.empty()) {
    co_return results;
  }
  auto retried = co_await client.batch(evals);
  for (size_t k = 0; k < missing.size(); ++k) {
    results[missing[k]] = std::move(retried[k]);
  }
  co_return results;
}

}  // namespace redline::redis
