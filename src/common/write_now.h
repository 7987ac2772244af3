// Writing to a TCP socket without a trip through the event loop. Asio's async_write tries
// the send at once too, but always delivers its completion through the io_context's queue:
// one more handler hop, and one more non-blocking epoll_wait, per write. A request to a
// provider nearly always fits in the socket's send buffer, so the upstream client tries
// write_now first and only waits (async_write of the rest) when it did not take everything.
// Stream writes to clients use it too; whole answers keep async_write on purpose (see
// Connection::write_buffers).
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <cerrno>
#include <cstddef>

namespace redline::common {

// Sends what the socket's buffer takes now (never waits): the bytes written, maybe 0 or a
// part (at most the first 16 buffers). `ec` is set only on a real error (a reset, a closed
// socket); "would block" is not one. One sendmsg with MSG_DONTWAIT: the socket's own mode is
// left alone, so no ioctl(FIONBIO) on the way (asio switches the mode itself when an async
// operation first needs it).
template <class ConstBuffers>
std::size_t write_now(boost::asio::ip::tcp::socket& socket, const ConstBuffers& buffers,
                      boost::system::error_code& ec) {
  ec.clear();
  std::array<iovec, 16> iov;
  std::size_t count = 0;
  for (auto it = boost::asio::buffer_sequence_begin(buffers);
       it != boost::asio::buffer_sequence_end(buffers) && count < iov.size(); ++it) {
    const boost::asio::const_buffer b(*it);
    if (b.size() == 0) continue;
    iov[count++] = iovec{const_cast<void*>(b.data()), b.size()};
  }
  if (count == 0) return 0;
  msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = count;
  ssize_t n;
  do {
    n = ::sendmsg(socket.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) return static_cast<std::size_t>(n);
  if (errno != EAGAIN && errno != EWOULDBLOCK) {
    ec.assign(errno, boost::system::system_category());
  }
  return 0;
}

}  // namespace redline::common
