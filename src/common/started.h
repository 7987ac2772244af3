// Two Redis round trips overlapped for the price of one co_spawn: start one awaitable as its
// own coroutine, await the other inline, then collect the first. Awaitable `a && b` spawns
// both and adds a parallel group with its cancellation slots (~25k instructions per use on
// the rate-limited cache path). Single-threaded: construct, done() and wait() run on the
// executor's thread, which is also where the started coroutine runs.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>
#include <memory>
#include <optional>

namespace redline::common {

template <class T>
class Started {
 public:
  // Starts `op` (it runs once the caller next suspends).
  Started(const boost::asio::any_io_executor& executor, boost::asio::awaitable<T> op)
      : state_(std::make_shared<State>(executor)) {
    boost::asio::co_spawn(executor, std::move(op), [s = state_](std::exception_ptr e, T v) {
      s->error = e;
      s->value = std::move(v);
      s->done = true;
      if (s->waiter) s->waiter->cancel();
    });
  }

  bool done() const { return state_->done; }
  // Completes once done(); no frame is needed when it already is (check done() first).
  boost::asio::awaitable<void> wait() {
    auto s = state_;
    if (s->done) co_return;
    s->waiter.emplace(s->executor, boost::asio::steady_timer::time_point::max());
    co_await s->waiter->async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
  }
  // The result, once done(); rethrows what the coroutine threw.
  T take() {
    if (state_->error) std::rethrow_exception(state_->error);
    return std::move(state_->value);
  }

 private:
  struct State {
    explicit State(boost::asio::any_io_executor e) : executor(std::move(e)) {}
    boost::asio::any_io_executor executor;
    T value{};
    std::exception_ptr error;
    bool done = false;
    std::optional<boost::asio::steady_timer> waiter;
  };
  std::shared_ptr<State> state_;
};

}  // namespace redline::common
