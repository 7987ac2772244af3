// idle_conns: opens N keep-alive connections to HOST:PORT, sends one POST on each and reads
// its whole answer (content-length or chunked), then keeps every connection open and idle.
// Prints "OPEN <n> errors=<e>" once all are done, then waits until stdin closes (or a
// signal), so a script can measure the server's memory while the connections sit idle.
// Usage: idle_conns HOST PORT PATH BODY N   (raise ulimit -n first)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

// Reads one HTTP/1.1 answer; true when it is complete and 200.
bool read_answer(int fd) {
  std::string got;
  char buf[8192];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    got.append(buf, static_cast<std::size_t>(n));
    std::size_t head_end = got.find("\r\n\r\n");
    if (head_end == std::string::npos) continue;
    std::string head = got.substr(0, head_end);
    for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const bool ok = head.compare(0, 12, "http/1.1 200") == 0;
    std::size_t cl = head.find("content-length:");
    if (cl != std::string::npos) {
      std::size_t len = std::strtoul(head.c_str() + cl + 15, nullptr, 10);
      if (got.size() >= head_end + 4 + len) return ok;
    } else if (got.size() >= 5 && got.compare(got.size() - 5, 5, "0\r\n\r\n") == 0) {
      return ok;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: idle_conns HOST PORT PATH BODY N\n");
    return 2;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[2])));
  if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) return 2;
  const std::string path = argv[3], body = argv[4];
  const int n = std::atoi(argv[5]);
  const std::string request =
      "POST " + path + " HTTP/1.1\r\nhost: " + argv[1] +
      "\r\ncontent-type: application/json\r\ncontent-length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  std::vector<int> fds;
  fds.reserve(static_cast<std::size_t>(n));
  int errors = 0;
  for (int i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
      ++errors;
      break;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(request.size()) ||
        !read_answer(fd)) {
      ++errors;
      close(fd);
      continue;
    }
    fds.push_back(fd);
  }
  std::printf("OPEN %zu errors=%d\n", fds.size(), errors);
  std::fflush(stdout);
  char c;
  while (read(0, &c, 1) > 0) {
  }
  for (int fd : fds) close(fd);
  return 0;
}
