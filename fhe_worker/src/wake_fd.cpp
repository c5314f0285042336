#include "wake_fd.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "fhe_worker/error.h"

namespace fhe_worker {

WakeFd::WakeFd() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) throw WorkerError(std::string("eventfd: ") + std::strerror(errno));
}

WakeFd::~WakeFd() {
  ::close(fd_);
}

void WakeFd::signal() {
  const uint64_t one = 1;
  // Fails only when the counter would overflow, in which case it is readable anyway.
  [[maybe_unused]] const ssize_t n = ::write(fd_, &one, sizeof one);
}

void WakeFd::drain() {
  uint64_t value = 0;
  [[maybe_unused]] const ssize_t n = ::read(fd_, &value, sizeof value);
}

}  // namespace fhe_worker
