// Helpers for Redis client tests: run a coroutine to completion on a test's io_context while
// the client's background coroutines keep running, and wait for conditions with a deadline.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <exception>
#include <optional>

namespace redline::redis::testing {

// Runs `aw` on `io` until it finishes and returns its value (rethrows its exception).
template <typename T>
T run_until_done(boost::asio::io_context& io, boost::asio::awaitable<T> aw) {
  std::optional<T> value;
  std::exception_ptr error;
  bool done = false;
  boost::asio::co_spawn(io, std::move(aw), [&](std::exception_ptr e, T v) {
    error = e;
    if (!e) value.emplace(std::move(v));
    done = true;
  });
  while (!done) io.run_one();
  if (error) std::rethrow_exception(error);
  return std::move(*value);
}

inline void run_until_done(boost::asio::io_context& io, boost::asio::awaitable<void> aw) {
  std::exception_ptr error;
  bool done = false;
  boost::asio::co_spawn(io, std::move(aw), [&](std::exception_ptr e) {
    error = e;
    done = true;
  });
  while (!done) io.run_one();
  if (error) std::rethrow_exception(error);
}

// Lets the io_context process events for `d` (background reconnects, late replies).
inline void run_for(boost::asio::io_context& io, std::chrono::milliseconds d) {
  io.run_for(d);
  io.restart();
}

inline boost::asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  boost::asio::steady_timer t(co_await boost::asio::this_coro::executor);
  t.expires_after(d);
  co_await t.async_wait(boost::asio::use_awaitable);
}

}  // namespace redline::redis::testing
