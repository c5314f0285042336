// One child process with RAII: started with its stdout and stderr appended to a log file, and
// never left behind. The destructor stops it (SIGTERM, then SIGKILL after a grace period) and
// reaps it; the child also gets SIGKILL from the kernel when the thread that started it ends
// (PR_SET_PDEATHSIG), so even a crashed or killed parent leaves no orphan. Start children from
// a thread that outlives them (fedsim and the tests use the main thread).
//
//   fedsim::ChildProcess p = fedsim::ChildProcess::start("build/bin/coordinator", {...}, "c.log");
//   p.signal(SIGKILL);
//   std::optional<int> status = p.wait(std::chrono::seconds(10));  // nullopt: still running
//
// Exit statuses follow the shell: the exit code, or 128 + the signal that ended the process.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace fedsim {

class ChildProcess {
 public:
  // Starts `exe` with `args`; output appended to `log` (created if missing), or inherited when
  // `log` is empty. Throws std::runtime_error with one line when it cannot start.
  static ChildProcess start(const std::filesystem::path& exe, const std::vector<std::string>& args,
                            const std::filesystem::path& log);

  ChildProcess() = default;
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();  // stop()

  pid_t pid() const { return pid_; }
  // True while the process has not ended (reaps it once it has).
  bool running();
  // Sends `sig` (nothing once the process has been reaped).
  void signal(int sig);
  // Waits up to `timeout` for the process to end: its exit status, or nullopt if still running.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  // The exit status once the process has ended and been reaped.
  std::optional<int> status() const { return status_; }
  // SIGTERM, up to `grace` to end, then SIGKILL; always reaps. Returns the exit status (or -1
  // for a process that was never started).
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

 private:
  bool reap(bool block);
  pid_t pid_ = -1;
  std::optional<int> status_;
};

}  // namespace fedsim
