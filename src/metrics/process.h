// Process metrics read at scrape time from /proc and getrusage: resident and virtual memory,
// open and maximum file descriptors, threads, CPU seconds, start time, uptime, and a
// build_info series carrying the version. Linux only; values that cannot be read are 0.
#pragma once

#include <vector>

#include "metrics/registry.h"

namespace redline::metrics {

// Keeps the process families of one registry fed while it lives.
class ProcessMetrics {
 public:
  explicit ProcessMetrics(Registry& registry);

 private:
  std::vector<Registration> registrations_;
};

// The same, once, for the process-wide registry (idempotent; never unregistered).
void export_process_metrics();

// Readings, also for tests.
struct ProcessReading {
  double resident_bytes = 0;
  double virtual_bytes = 0;
  double open_fds = 0;
  double max_fds = 0;
  double threads = 0;
  double cpu_seconds = 0;
};
ProcessReading read_process();

}  // namespace redline::metrics
