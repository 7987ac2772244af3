// Where the upstream phase writes its answer. ExchangeSink writes straight to the client;
// Flight (flight.h) records the answer for the cache and hands it to every client waiting
// for the same request. The calls mirror http::Exchange: respond() once, or begin_stream()
// + write_chunk()* + end_stream(); each returns false once nobody is listening any more.
// begin_stream_with(header, first) is begin_stream + the first write_chunk in one call.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <string_view>

#include "http/server.h"

namespace redline::proxy {

class Sink {
 public:
  virtual ~Sink() = default;
  virtual boost::asio::awaitable<bool> respond(http::Response& response) = 0;
  virtual boost::asio::awaitable<bool> respond_error(int status, std::string_view message,
                                                     std::string_view code,
                                                     std::string_view retry_after = {}) = 0;
  virtual boost::asio::awaitable<bool> begin_stream(http::ResponseHeader& header) = 0;
  // begin_stream(header) + write_chunk(first), which a sink may send as one write.
  virtual boost::asio::awaitable<bool> begin_stream_with(http::ResponseHeader& header,
                                                         std::string_view first) {
    // (One co_return at the end: g++ 12 miscompiles an early co_return next to it here.)
    bool ok = co_await begin_stream(header);
    if (ok) ok = co_await write_chunk(first);
    co_return ok;
  }
  virtual boost::asio::awaitable<bool> write_chunk(std::string_view data) = 0;
  virtual boost::asio::awaitable<bool> end_stream() = 0;
  // True once nobody waits for the answer (the client left).
  virtual bool gone() const = 0;
  // Until the guard is destroyed, calls stop.fire() on the calling coroutine's thread
  // when gone() becomes true (at once if it already is).
  virtual common::WatchGuard watch_gone(common::Interrupt& stop) = 0;
};

class ExchangeSink final : public Sink {
 public:
  explicit ExchangeSink(http::Exchange& ex) : ex_(ex) {}
  boost::asio::awaitable<bool> respond(http::Response& response) override {
    return ex_.respond(response);
  }
  boost::asio::awaitable<bool> respond_error(int status, std::string_view message,
                                             std::string_view code,
                                             std::string_view retry_after = {}) override {
    return ex_.respond_error(status, message, code, retry_after);
  }
  boost::asio::awaitable<bool> begin_stream(http::ResponseHeader& header) override {
    return ex_.begin_stream(header);
  }
  boost::asio::awaitable<bool> begin_stream_with(http::ResponseHeader& header,
                                                 std::string_view first) override {
    return ex_.begin_stream(header, first);
  }
  boost::asio::awaitable<bool> write_chunk(std::string_view data) override {
    return ex_.write_chunk(data);
  }
  boost::asio::awaitable<bool> end_stream() override { return ex_.end_stream(); }
  bool gone() const override { return ex_.client_gone(); }
  common::WatchGuard watch_gone(common::Interrupt& stop) override {
    return ex_.watch_client(stop);
  }

 private:
  http::Exchange& ex_;
};

}  // namespace redline::proxy
