// Test support: child processes, free loopback ports and temporary directories.
// Children are started with posix_spawn and stopped by their own PID only.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace redline::test {

// A port that was free on 127.0.0.1 when asked (bound to port 0, then released).
int free_port();

// Blocks until something accepts TCP connections on 127.0.0.1:port, or the timeout passes.
bool wait_for_port(int port, std::chrono::milliseconds timeout = std::chrono::seconds(10));

// A directory under $TMPDIR removed (recursively) when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  // Writes `content` to path()/name and returns the full path.
  std::filesystem::path write(const std::string& name, const std::string& content) const;

 private:
  std::filesystem::path path_;
};

// A child process. stdout/stderr go to `log_path` when given (else inherited).
// The destructor sends SIGTERM, waits up to 5 s, then SIGKILL; only this PID is signalled.
class Process {
 public:
  Process(std::vector<std::string> argv, std::filesystem::path log_path = {},
          std::map<std::string, std::string> extra_env = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  Process(Process&& other) noexcept;

  int pid() const { return pid_; }
  bool running();
  void signal(int sig);
  // Sends sig and waits for exit; returns the exit status (waitpid-style decoded: exit code,
  // or 128+signal), or -1 if it did not exit within the timeout.
  int stop(int sig = 15, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Waits for exit without signalling; same return convention as stop().
  int wait(std::chrono::milliseconds timeout);
  std::string log() const;  // contents of log_path so far

 private:
  int pid_ = -1;
  int status_ = -1;
  std::filesystem::path log_path_;
};

// Path of a binary built next to the tests (e.g. "redline", "redline-mock").
std::string built_binary(const std::string& name);

}  // namespace redline::test
