// An exclusive lock on a directory for the lifetime of one process's use of it: two
// coordinators on one run directory, or two participants on one state directory, would
// overwrite each other's checkpoints, budgets and release records.
//
//   base::DirLock lock = base::DirLock::acquire(state_dir, "participant");
//   ...                                      // released when `lock` is destroyed or the process dies
//
// The lock is flock(LOCK_EX | LOCK_NB) on DIR/.lock (created if missing), which the kernel
// releases when the process exits, however it exits (kill -9 included), so a stale lock never
// blocks a restart. The file holds the holder's pid for the error message. Throws base::IoError
// when the directory is locked by another process ("DIR is in use by another participant
// (pid N)") or the lock file cannot be made.
#pragma once

#include <filesystem>
#include <string_view>

namespace base {

class DirLock {
 public:
  static DirLock acquire(const std::filesystem::path& dir, std::string_view holder);

  DirLock(DirLock&& other) noexcept;
  DirLock& operator=(DirLock&& other) noexcept;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock();

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace base
