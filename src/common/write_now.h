// Writing to a TCP socket without a trip through the event loop. Asio's async_write tries
// the send at once too, but always delivers its completion through the io_context's queue:
// one more handler hop, and one more non-blocking epoll_wait, per write. A request to a
// provider nearly always fits in the socket's send buffer, so the upstream client tries
// write_now first and only waits (async_write of the rest) when it did not take everything.
// Stream writes to clients use it too; whole answers keep async_write on purpose (see
// Connection::write_buffers).
#pragma once

#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>

namespace redline::common {

// Sends what the socket's buffer takes now (never waits): the bytes written, maybe 0 or a
// part. `ec` is set only on a real error (a reset, a closed socket); "would block" is not
// one. Puts the socket in non-blocking mode the first time, which asio's own operations
// would do anyway.
template <class ConstBuffers>
std::size_t write_now(boost::asio::ip::tcp::socket& socket, const ConstBuffers& buffers,
                      boost::system::error_code& ec) {
  ec.clear();
  if (!socket.non_blocking()) {
    socket.non_blocking(true, ec);
    if (ec) return 0;
  }
  const std::size_t n = socket.write_some(buffers, ec);
  if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) ec.clear();
  return n;
}

}  // namespace redline::common
