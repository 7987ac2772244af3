// ttfe: time to first event of a streamed chat completion. Sends N sequential requests
// (a fresh connection each, "connection: close"), and per request measures, from just before
// the request is written, the time until the first "data:" bytes of the SSE body arrive
// (TTFE) and until the server closes (total). Prints one line of percentiles in microseconds:
//   TTFE n=<ok> errors=<e> p50=... p90=... p99=... max=... total_p50=...
// Usage: ttfe HOST PORT[,PORT...] PATH BODY N [WARMUP [HEADER...]]
// Each HEADER ("name: value") is added to the request as given (e.g. a gateway's routing headers).
// With several ports (the targets of one comparison: the provider alone, nginx, Redline), the
// requests go in rounds, one to each port per round in a shuffled order (a fixed seed), so
// the machine's drift (other processes, frequency) hits every target alike and no target
// always follows the same one (a target right after another on the same core finds that
// core awake); one line per port, in the order given, each prefixed "port=<PORT> ".
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// One request; false on any failure. ttfe/total in microseconds.
bool one(const sockaddr_in& addr, const std::string& request, double& ttfe, double& total) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  int one_flag = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one_flag, sizeof one_flag);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return false;
  }
  const auto t0 = Clock::now();
  std::size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      close(fd);
      return false;
    }
    sent += static_cast<std::size_t>(n);
  }
  std::string got;
  char buf[16384];
  bool first = false;
  bool ok = false;
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
    if (!first) {
      std::size_t head_end = got.find("\r\n\r\n");
      if (head_end != std::string::npos && got.find("data:", head_end) != std::string::npos) {
        ttfe = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
        first = true;
        ok = got.compare(0, 12, "HTTP/1.1 200") == 0;
      }
    }
  }
  total = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  close(fd);
  return first && ok && got.find("[DONE]") != std::string::npos;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: ttfe HOST PORT[,PORT...] PATH BODY N [WARMUP [HEADER...]]\n");
    return 2;
  }
  sockaddr_in base{};
  base.sin_family = AF_INET;
  if (inet_pton(AF_INET, argv[1], &base.sin_addr) != 1) return 2;
  std::vector<sockaddr_in> targets;
  std::vector<std::string> names;
  for (const char* p = argv[2]; *p != '\0';) {
    const char* comma = std::strchr(p, ',');
    const std::string port = comma ? std::string(p, comma) : std::string(p);
    const int n = std::atoi(port.c_str());
    if (n <= 0 || n > 65535) return 2;
    sockaddr_in addr = base;
    addr.sin_port = htons(static_cast<uint16_t>(n));
    targets.push_back(addr);
    names.push_back(port);
    p = comma ? comma + 1 : p + port.size();
  }
  if (targets.empty()) return 2;
  const std::string path = argv[3], body = argv[4];
  const int n = std::atoi(argv[5]);
  const int warmup = argc > 6 ? std::atoi(argv[6]) : 5;
  std::string extra_headers;
  for (int i = 7; i < argc; ++i) {
    extra_headers += "\r\n";
    extra_headers += argv[i];
  }
  const std::string request = "POST " + path + " HTTP/1.1\r\nhost: " + argv[1] +
                              "\r\ncontent-type: application/json\r\naccept: text/event-stream"
                              "\r\nconnection: close" +
                              extra_headers + "\r\ncontent-length: " + std::to_string(body.size()) +
                              "\r\n\r\n" + body;
  const std::size_t k = targets.size();
  std::vector<std::vector<double>> ttfes(k), totals(k);
  std::vector<int> errors(k, 0);
  std::vector<std::size_t> order(k);
  for (std::size_t t = 0; t < k; ++t) order[t] = t;
  std::mt19937 shuffle_rng(20261128);  // fixed: the same orders every run
  for (int i = 0; i < warmup + n; ++i) {
    std::shuffle(order.begin(), order.end(), shuffle_rng);
    for (const std::size_t t : order) {
      double ttfe = 0, total = 0;
      if (!one(targets[t], request, ttfe, total)) {
        ++errors[t];
        continue;
      }
      if (i >= warmup) {
        ttfes[t].push_back(ttfe);
        totals[t].push_back(total);
      }
    }
  }
  bool ok = true;
  for (std::size_t t = 0; t < k; ++t) {
    std::printf("%s%sTTFE n=%zu errors=%d p50=%.1f p90=%.1f p99=%.1f max=%.1f total_p50=%.1f\n",
                k > 1 ? "port=" : "", k > 1 ? (names[t] + " ").c_str() : "", ttfes[t].size(),
                errors[t], pct(ttfes[t], 50), pct(ttfes[t], 90), pct(ttfes[t], 99),
                pct(ttfes[t], 100), pct(totals[t], 50));
    ok = ok && errors[t] == 0;
  }
  return ok ? 0 : 1;
}
