#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "base/error.h"
#include "base/testing/atomic_file_hook.h"

namespace base::testing {
namespace {

void kill_self(const std::filesystem::path&) {
  ::raise(SIGKILL);
}

}  // namespace

int status_of_writer_killed_before_rename(const std::function<void()>& write) {
  const pid_t pid = ::fork();
  if (pid < 0) throw IoError("cannot fork a writer to kill");
  if (pid == 0) {
    set_before_rename_hook(&kill_self);
    int rc = 0;
    try {
      write();
    } catch (...) {
      rc = 1;
    }
    ::_exit(rc);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw IoError("cannot wait for the writer to kill");
  }
  return status;
}

}  // namespace base::testing
