// Tests for common::write_now on a real loopback TCP connection: everything the socket takes
// goes out at once, a full send buffer gives a part (then 0) without an error and without
// changing the socket's blocking mode, a sequence of more than 16 buffers is sent in order up
// to the first 16, and a connection the peer reset is an error.
#include "common/write_now.h"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <string>
#include <vector>

namespace redline::common {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct Pair {
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc, tcp::endpoint(asio::ip::address_v4::loopback(), 0)};
  tcp::socket client{ioc};
  tcp::socket server{ioc};
  Pair() {
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
  }
};

TEST(WriteNow, WhatFitsGoesOutAtOnce) {
  Pair p;
  boost::system::error_code ec;
  const std::string head = "HTTP/1.1 200 OK\r\n\r\n", body = "data: {}\n\n";
  const std::vector<asio::const_buffer> bufs = {asio::buffer(head), asio::buffer(body)};
  EXPECT_EQ(write_now(p.server, bufs, ec), head.size() + body.size());
  EXPECT_FALSE(ec);
  EXPECT_FALSE(p.server.non_blocking());  // the mode is left alone
  std::string got(head.size() + body.size(), '\0');
  asio::read(p.client, asio::buffer(got));
  EXPECT_EQ(got, head + body);
}

TEST(WriteNow, AFullSendBufferGivesAPartThenNothingWithoutAnError) {
  Pair p;
  p.server.set_option(asio::socket_base::send_buffer_size(4096));
  p.client.set_option(asio::socket_base::receive_buffer_size(4096));
  const std::string big(8 << 20, 'x');
  boost::system::error_code ec;
  const std::size_t first = write_now(p.server, asio::buffer(big), ec);
  EXPECT_FALSE(ec);
  EXPECT_GT(first, 0u);
  EXPECT_LT(first, big.size());  // the reader has not read: it cannot all fit
  std::size_t more = write_now(p.server, asio::buffer(big), ec);
  for (int i = 0; i < 100 && more > 0; ++i) more = write_now(p.server, asio::buffer(big), ec);
  EXPECT_EQ(more, 0u);  // would block: 0, not an error, and no wait
  EXPECT_FALSE(ec);
  EXPECT_FALSE(p.server.non_blocking());
}

TEST(WriteNow, MoreThanSixteenBuffersSendsTheFirstSixteenInOrder) {
  Pair p;
  std::vector<std::string> parts;
  for (int i = 0; i < 20; ++i) parts.push_back(std::string(1, static_cast<char>('a' + i)));
  std::vector<asio::const_buffer> bufs;
  for (const auto& s : parts) bufs.push_back(asio::buffer(s));
  bufs.insert(bufs.begin() + 3, asio::const_buffer());  // empty ones are skipped, not counted
  boost::system::error_code ec;
  EXPECT_EQ(write_now(p.server, bufs, ec), 16u);
  EXPECT_FALSE(ec);
  std::string got(16, '\0');
  asio::read(p.client, asio::buffer(got));
  EXPECT_EQ(got, "abcdefghijklmnop");
}

TEST(WriteNow, AResetConnectionIsAnError) {
  Pair p;
  p.client.set_option(asio::socket_base::linger(true, 0));  // close sends RST
  p.client.close();
  const std::string data(1024, 'y');
  boost::system::error_code ec;
  // The first send may still be taken before the RST is seen; a later one fails.
  for (int i = 0; i < 10 && !ec; ++i) write_now(p.server, asio::buffer(data), ec);
  EXPECT_TRUE(ec);
  EXPECT_TRUE(ec == asio::error::connection_reset || ec == asio::error::broken_pipe)
      << ec.message();
}

}  // namespace
}  // namespace redline::common
