// Process metrics (see process.h).
#include "metrics/process.h"

#include "redis/connection.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <sstream>

namespace redline::metrics {

namespace {

double count_fds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return 0;
  double n = 0;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;  // the directory stream's own descriptor
}

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

ProcessReading read_process() {
  ProcessReading r;
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  if (std::ifstream statm("/proc/self/statm"); statm) {
    double size = 0, resident = 0;
    statm >> size >> resident;
    r.virtual_bytes = size * page;
    r.resident_bytes = resident * page;
  }
  if (std::ifstream stat("/proc/self/stat"); stat) {
    std::string line;
    std::getline(stat, line);
    // Fields after "(comm)": state is field 3; num_threads is field 20.
    if (auto p = line.rfind(')'); p != std::string::npos) {
      std::istringstream in(line.substr(p + 2));
      std::string field;
      for (int i = 3; i <= 20 && in >> field; ++i) {
        if (i == 20) r.threads = std::stod(field);
      }
    }
  }
  r.open_fds = count_fds();
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0) r.max_fds = static_cast<double>(lim.rlim_cur);
  rusage ru{};
  if (::getrusage(RUSAGE_SELF, &ru) == 0) {
    r.cpu_seconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                    static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  }
  return r;
}

ProcessMetrics::ProcessMetrics(Registry& reg) {
  auto g = [&](const char* name, const char* help, std::function<double()> fn) {
    registrations_.push_back(reg.gauge(name, help).labels().track(std::move(fn)));
  };
  g("redline_process_resident_memory_bytes", "Resident set size.",
    [] { return read_process().resident_bytes; });
  g("redline_process_virtual_memory_bytes", "Virtual memory size.",
    [] { return read_process().virtual_bytes; });
  g("redline_process_open_fds", "Open file descriptors.", [] { return count_fds(); });
  g("redline_process_max_fds", "File descriptor limit (RLIMIT_NOFILE).",
    [] { return read_process().max_fds; });
  g("redline_process_threads", "OS threads of the process.", [] { return read_process().threads; });
  const double start =
      wall_seconds() - std::chrono::duration<double>(reg.now() - reg.started()).count();
  g("redline_process_start_time_seconds", "Start time of the process (Unix seconds).",
    [start] { return start; });
  g("redline_process_uptime_seconds", "Seconds since the process started.",
    [&reg] { return std::chrono::duration<double>(reg.now() - reg.started()).count(); });
  registrations_.push_back(
      reg.counter("redline_process_cpu_seconds_total", "User and system CPU time.")
          .labels()
          .track([] { return read_process().cpu_seconds; }));
  // The Redis client's connections, summed over the process (redis::process_stats()).
  auto& rs = redis::process_stats();
  auto c = [&](const char* name, const char* help, const std::atomic<uint64_t>& v) {
    registrations_.push_back(reg.counter(name, help).labels().track(
        [&v] { return static_cast<double>(v.load(std::memory_order_relaxed)); }));
  };
  c("redline_redis_commands_total", "Commands the gateway sent to Redis (all nodes, all uses).",
    rs.commands_sent);
  c("redline_redis_writes_total",
    "Write syscalls carrying them; commands / writes is the average pipeline depth.", rs.writes);
  c("redline_redis_timeouts_total", "Redis commands that missed their deadline.", rs.timeouts);
  c("redline_redis_error_replies_total", "Error replies from Redis (including MOVED/ASK).",
    rs.server_errors);
  c("redline_redis_connects_total", "Successful Redis (re)connects.", rs.connects);
  c("redline_redis_connect_failures_total", "Failed Redis connection attempts.",
    rs.connect_failures);
  c("redline_redis_disconnects_total", "Redis connections lost while in use.", rs.disconnects);
  registrations_.push_back(
      reg.gauge("redline_redis_connections", "Redis connections open and ready.")
          .labels()
          .track([&rs] {
            return static_cast<double>(rs.connections.load(std::memory_order_relaxed));
          }));
  registrations_.push_back(
      reg.gauge("redline_build_info", "Always 1; the version is a label.", {"version"})
          .labels(REDLINE_VERSION)
          .track([] { return 1.0; }));
}

// Reachable from a global, so leak checkers do not report it; lives until exit.
ProcessMetrics* g_process_metrics = nullptr;

void export_process_metrics() {
  static std::once_flag once;
  std::call_once(once, [] { g_process_metrics = new ProcessMetrics(registry()); });
}

}  // namespace redline::metrics
