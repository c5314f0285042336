#include "base/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "base/error.h"

namespace base {
namespace {

[[noreturn]] void fail(const char* what, const std::filesystem::path& path, int err) {
  throw IoError(std::string(what) + " " + path.string() + ": " + std::strerror(err));
}

}  // namespace

void write_file_atomic(const std::filesystem::path& file, std::span<const uint8_t> bytes,
                       mode_t mode) {
  const std::filesystem::path dir =
      file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  const std::filesystem::path tmp(file.string() + ".tmp");
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) fail("cannot create", tmp, errno);
  const auto abandon = [&](const char* what) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    fail(what, tmp, err);
  };
  // O_CREAT applies `mode` only to a new file: a stale FILE.tmp keeps its mode otherwise.
  if (::fchmod(fd, mode) != 0) abandon("cannot set the mode of");
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      abandon("cannot write");
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) abandon("cannot fsync");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail("cannot close", tmp, err);
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail("cannot rename onto", file, err);
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) fail("cannot open directory", dir, errno);
  const int rc = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  if (rc != 0) fail("cannot fsync directory", dir, err);
}

void write_file_atomic(const std::filesystem::path& file, std::string_view text, mode_t mode) {
  write_file_atomic(file, {reinterpret_cast<const uint8_t*>(text.data()), text.size()}, mode);
}

}  // namespace base
