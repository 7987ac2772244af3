// Redis client benchmark: GET/SET of 2 KB values through redline::redis::Connection from N
// concurrent coroutines on one thread, next to `redis-benchmark -P 16` against the same
// redis-server in the same run; client and server pinned to fixed cores for both. Prints
// ops/s, p50/p99 latency, client CPU per op and the ratio. A benchmark, not a test.
//
//   redis_client_bench [--ops N] [--coroutines C] [--client-core A] [--server-core B]
#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "redis/connection.h"
#include "support/redis_server.h"

namespace {

namespace asio = boost::asio;
using redline::redis::Command;
using redline::redis::Connection;
using redline::redis::ConnectionOptions;
using Clock = std::chrono::steady_clock;

struct Args {
  long ops = 400000;
  int coroutines = 200;
  int client_core = 0;
  int server_core = 1;
  int value_size = 2048;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    long v = std::atol(argv[i + 1]);
    if (k == "--ops") a.ops = v;
    if (k == "--coroutines") a.coroutines = static_cast<int>(v);
    if (k == "--client-core") a.client_core = static_cast<int>(v);
    if (k == "--server-core") a.server_core = static_cast<int>(v);
    if (k == "--value-size") a.value_size = static_cast<int>(v);
  }
  return a;
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void pin_self(int core) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(core, &set);
  sched_setaffinity(0, sizeof set, &set);
}

struct Report {
  double ops_per_s = 0, p50_us = 0, p99_us = 0, cpu_us_per_op = 0;
};

Report run_client(const redline::test::RedisServer& server, const Args& a) {
  asio::io_context io(1);
  ConnectionOptions o;
  o.port = static_cast<uint16_t>(server.port());
  o.command_timeout = std::chrono::seconds(10);
  o.max_queue = 1 << 20;
  auto conn = Connection::create(io.get_executor(), o);
  const std::string value(static_cast<size_t>(a.value_size), 'v');
  std::vector<uint32_t> lat_us;
  lat_us.reserve(static_cast<size_t>(a.ops));
  long issued = 0;
  int live = a.coroutines;
  auto worker = [&](int id) -> asio::awaitable<void> {
    const std::string key = "bench:" + std::to_string(id % 1000);
    while (issued < a.ops) {
      const bool set = (issued++ & 1) == 0;
      Command cmd = set ? Command("SET", key, value) : Command("GET", key);
      auto t0 = Clock::now();
      auto r = co_await conn->execute(cmd);
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
      if (!r.ok()) std::fprintf(stderr, "error: %s\n", r.error().to_string().c_str());
      lat_us.push_back(static_cast<uint32_t>(us.count()));
    }
    --live;
  };
  // Warm up the connection first.
  {
    bool done = false;
    asio::co_spawn(io, conn->connect(), [&](std::exception_ptr, auto) { done = true; });
    while (!done) io.run_one();
  }
  const double cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  for (int i = 0; i < a.coroutines; ++i) asio::co_spawn(io, worker(i), asio::detached);
  while (live > 0) io.run_one();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = cpu_seconds() - cpu0;
  conn->stop();
  io.run_for(std::chrono::milliseconds(10));
  std::sort(lat_us.begin(), lat_us.end());
  Report r;
  r.ops_per_s = static_cast<double>(lat_us.size()) / secs;
  r.p50_us = lat_us[lat_us.size() / 2];
  r.p99_us = lat_us[lat_us.size() * 99 / 100];
  r.cpu_us_per_op = cpu * 1e6 / static_cast<double>(lat_us.size());
  const auto& s = conn->stats();
  std::printf(
      "redline client: %.0f ops/s  p50 %.0f us  p99 %.0f us  client CPU %.2f us/op  "
      "(%llu commands in %llu writes)\n",
      r.ops_per_s, r.p50_us, r.p99_us, r.cpu_us_per_op,
      static_cast<unsigned long long>(s.commands_sent), static_cast<unsigned long long>(s.writes));
  return r;
}

// redis-benchmark's CSV: "test","rps","avg_latency_ms","min","p50","p95","p99","max".
double run_redis_benchmark(const redline::test::RedisServer& server, const Args& a) {
  const std::vector<std::string> argv = {"taskset",
                                         "-c",
                                         std::to_string(a.client_core),
                                         "redis-benchmark",
                                         "-p",
                                         std::to_string(server.port()),
                                         "-P",
                                         "16",
                                         "-c",
                                         std::to_string(std::min(a.coroutines, 50)),
                                         "-n",
                                         std::to_string(a.ops / 2),
                                         "-d",
                                         std::to_string(a.value_size),
                                         "-t",
                                         "set,get",
                                         "--csv",
                                         "-r",
                                         "1000"};
  std::string out = redline::test::run_command(argv);
  std::istringstream in(out);
  std::string line;
  double total = 0;
  int n = 0;
  while (std::getline(in, line)) {
    if (line.rfind("\"SET\"", 0) == 0 || line.rfind("\"GET\"", 0) == 0) {
      auto c1 = line.find(",\"");
      total += std::atof(line.c_str() + c1 + 2);
      ++n;
      std::printf("redis-benchmark -P 16: %s\n", line.c_str());
    }
  }
  return n ? total / n : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parse(argc, argv);
  redline::test::RedisServer server;
  redline::test::run_command(
      {"taskset", "-p", "-c", std::to_string(a.server_core), std::to_string(server.pid())});
  pin_self(a.client_core);
  std::printf("server on core %d, client on core %d, %d coroutines, %ld ops, %d-byte values\n",
              a.server_core, a.client_core, a.coroutines, a.ops, a.value_size);
  Report ours = run_client(server, a);
  double theirs = run_redis_benchmark(server, a);
  if (theirs > 0) {
    std::printf("ratio (redline / redis-benchmark -P 16): %.2f\n", ours.ops_per_s / theirs);
  }
  return 0;
}
