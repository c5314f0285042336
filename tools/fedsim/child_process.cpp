#include "child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <utility>

extern char** environ;

namespace fedsim {

namespace {

int decode_status(int raw) {
  if (WIFEXITED(raw)) return WEXITSTATUS(raw);
  if (WIFSIGNALED(raw)) return 128 + WTERMSIG(raw);
  return -1;
}

}  // namespace

ChildProcess ChildProcess::start(const std::filesystem::path& exe,
                                 const std::vector<std::string>& args,
                                 const std::filesystem::path& log) {
  // Everything the child needs is prepared here: after fork() it only makes system calls.
  std::vector<std::string> strings;
  strings.push_back(exe.string());
  strings.insert(strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  int log_fd = -1;
  if (!log.empty()) {
    log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      throw std::runtime_error("cannot open " + log.string() + ": " + std::strerror(errno));
    }
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // The child: die with the parent, unblock signals, redirect, exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (log_fd >= 0) {
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
    }
    ::execve(argv[0], argv.data(), environ);
    ::_exit(127);
  }
  const int fork_errno = errno;
  if (log_fd >= 0) ::close(log_fd);
  if (pid < 0) {
    throw std::runtime_error("cannot start " + exe.string() + ": " + std::strerror(fork_errno));
  }
  ChildProcess p;
  p.pid_ = pid;
  return p;
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), status_(std::exchange(other.status_, std::nullopt)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    stop();
    pid_ = std::exchange(other.pid_, -1);
    status_ = std::exchange(other.status_, std::nullopt);
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  stop();
}

bool ChildProcess::reap(bool block) {
  if (pid_ <= 0 || status_) return true;
  int raw = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid_, &raw, block ? 0 : WNOHANG);
    if (r == pid_) {
      status_ = decode_status(raw);
      return true;
    }
    if (r == 0) return false;
    if (errno == EINTR) continue;
    status_ = -1;  // not our child any more (ECHILD): nothing left to wait for
    return true;
  }
}

bool ChildProcess::running() {
  return pid_ > 0 && !reap(false);
}

void ChildProcess::signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

std::optional<int> ChildProcess::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!reap(false)) {
    if (std::chrono::steady_clock::now() >= end) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status_;
}

int ChildProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  if (running()) {
    ::kill(pid_, SIGTERM);
    if (!wait(grace)) {
      ::kill(pid_, SIGKILL);
      reap(true);
    }
  }
  return status_.value_or(-1);
}

}  // namespace fedsim
