// An exclusive lock on a directory, held for a process's lifetime: flock(DIR/.lock, LOCK_EX |
// LOCK_NB), so that two processes never write one run directory (the coordinator's RUN) or one
// state directory (a participant's) at once. The kernel drops the lock when the process ends,
// however it ends, so a crash never leaves a stale lock; the file keeps the holder's pid for
// the error message. Header-only, so any executable can use it without linking the coordinator.
//
//   auto lock = coordinator::DirLock::acquire(run_dir, "run directory");
//   if (!lock) { print(lock.error().message); exit(2); }   // "... is in use by pid 4242 ..."
//   // keep `lock` alive as long as the directory is used
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "protocol/result.h"

namespace coordinator {

class DirLock {
 public:
  // Locks DIR/.lock (created if needed; DIR must exist). kIo, naming the directory and the pid
  // its holder wrote, when another process holds it.
  static protocol::Result<DirLock> acquire(const std::filesystem::path& dir,
                                           std::string_view what = "directory") {
    const auto file = dir / ".lock";
    const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return protocol::make_error(protocol::ErrorCode::kIo, "cannot open ", file.string(), ": ",
                                  std::strerror(errno));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      char buf[32] = {};
      const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
      ::close(fd);
      std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
      if (err == EWOULDBLOCK) {
        return protocol::make_error(
            protocol::ErrorCode::kIo, what, " ", dir.string(), " is in use by another process",
            holder.empty() ? "" : " (pid " + holder + ")", ": ", file.string(), " is locked");
      }
      return protocol::make_error(protocol::ErrorCode::kIo, "cannot lock ", file.string(), ": ",
                                  std::strerror(err));
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) == 0) (void)!::pwrite(fd, pid.data(), pid.size(), 0);
    return DirLock(fd);
  }

  DirLock(DirLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  DirLock& operator=(DirLock&& o) noexcept {
    if (this != &o) {
      release();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock() { release(); }

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  void release() {
    if (fd_ >= 0) ::close(fd_);  // closing the descriptor drops the flock
    fd_ = -1;
  }
  int fd_ = -1;
};

}  // namespace coordinator
