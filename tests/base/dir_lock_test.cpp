// base::DirLock: one holder at a time, a clear error naming the other holder, and no stale lock
// after the holder exits or is killed.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include "base/dir_lock.h"
#include "base/error.h"

namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("fedlora_lock_" + name + "_" +
                                                   std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string acquire_error(const fs::path& dir) {
  try {
    base::DirLock second = base::DirLock::acquire(dir, "participant");
  } catch (const base::IoError& e) {
    return e.what();
  }
  return "";
}

TEST(DirLock, ASecondHolderIsRefusedWithThePid) {
  const fs::path dir = temp_dir("twice");
  {
    base::DirLock first = base::DirLock::acquire(dir, "participant");
    const std::string err = acquire_error(dir);
    EXPECT_NE(err.find("is in use by another participant"), std::string::npos) << err;
    EXPECT_NE(err.find("pid " + std::to_string(::getpid())), std::string::npos) << err;
  }
  EXPECT_EQ(acquire_error(dir), "");  // released with the first lock
  fs::remove_all(dir);
}

TEST(DirLock, MovedLocksStayHeld) {
  const fs::path dir = temp_dir("move");
  std::optional<base::DirLock> held;
  {
    base::DirLock lock = base::DirLock::acquire(dir, "coordinator");
    held.emplace(std::move(lock));
  }
  EXPECT_NE(acquire_error(dir), "");
  held.reset();
  EXPECT_EQ(acquire_error(dir), "");
  fs::remove_all(dir);
}

TEST(DirLock, AKilledHolderLeavesNoStaleLock) {
  const fs::path dir = temp_dir("kill");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    base::DirLock lock = base::DirLock::acquire(dir, "participant");
    (void)!::write(ready[1], "x", 1);
    for (;;) ::pause();
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  const std::string err = acquire_error(dir);
  EXPECT_NE(err.find("pid " + std::to_string(pid)), std::string::npos) << err;
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_EQ(acquire_error(dir), "");
  ::close(ready[0]);
  ::close(ready[1]);
  fs::remove_all(dir);
}

TEST(DirLock, AMissingDirectoryIsAClearError) {
  try {
    base::DirLock lock = base::DirLock::acquire("/nonexistent/fedlora/dir", "participant");
    FAIL() << "expected base::IoError";
  } catch (const base::IoError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/fedlora/dir/.lock"), std::string::npos);
  }
}

}  // namespace
