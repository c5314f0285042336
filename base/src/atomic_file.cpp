#include "base/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "base/error.h"
#include "base/testing/atomic_file_hook.h"

namespace base {
namespace {

std::atomic<testing::BeforeRenameHook> before_rename_hook{nullptr};

[[noreturn]] void fail(const char* what, const std::filesystem::path& path, int err) {
  throw IoError(std::string(what) + " " + path.string() + ": " + std::strerror(err));
}

void fsync_directory_of(const std::filesystem::path& file) {
  const std::filesystem::path dir =
      file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) fail("cannot open directory", dir, errno);
  const int rc = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  if (rc != 0) fail("cannot fsync directory", dir, err);
}

}  // namespace

namespace testing {

BeforeRenameHook set_before_rename_hook(BeforeRenameHook hook) {
  return before_rename_hook.exchange(hook);
}

}  // namespace testing

AtomicFile::AtomicFile(std::filesystem::path file, mode_t mode)
    : file_(std::move(file)), tmp_(file_.string() + ".tmp") {
  // A stale temporary file (or a link planted there) goes first: O_EXCL | O_NOFOLLOW then
  // create a fresh file, so the data never follows a link and the mode is the one asked for.
  ::unlink(tmp_.c_str());
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd_ < 0) fail("cannot create", tmp_, errno);
  // The umask may have narrowed `mode`; the file gets exactly `mode`.
  if (::fchmod(fd_, mode) != 0) abandon("cannot set the mode of", tmp_);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFile::abandon(const char* what, const std::filesystem::path& path) {
  const int err = errno;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(tmp_.c_str());
  fail(what, path, err);
}

void AtomicFile::write_bytes(std::span<const uint8_t> bytes, int64_t offset) {
  if (fd_ < 0) fail("write after commit or failure of", tmp_, EBADF);
  size_t done = 0;
  while (done < bytes.size()) {
    const uint8_t* data = bytes.data() + done;
    const size_t size = bytes.size() - done;
    const ssize_t n = offset < 0 ? ::write(fd_, data, size)
                                 : ::pwrite(fd_, data, size, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      abandon("cannot write", tmp_);
    }
    done += static_cast<size_t>(n);
  }
}

void AtomicFile::append(std::span<const uint8_t> bytes) {
  write_bytes(bytes, -1);
}

void AtomicFile::append(std::string_view text) {
  append({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

void AtomicFile::write_at(uint64_t offset, std::span<const uint8_t> bytes) {
  if (offset > uint64_t{INT64_MAX} - bytes.size()) fail("offset too large in", tmp_, EOVERFLOW);
  write_bytes(bytes, static_cast<int64_t>(offset));
}

void AtomicFile::resize(uint64_t size) {
  if (fd_ < 0) fail("resize after commit or failure of", tmp_, EBADF);
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) abandon("cannot size", tmp_);
}

void AtomicFile::commit() {
  finish(Place::kReplace);
}

bool AtomicFile::commit_if_absent() {
  return finish(Place::kIfAbsent);
}

bool AtomicFile::finish(Place place) {
  if (fd_ < 0) fail("commit after commit or failure of", tmp_, EBADF);
  if (::fsync(fd_) != 0) abandon("cannot fsync", tmp_);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) abandon("cannot close", tmp_);
  if (const auto hook = before_rename_hook.load()) hook(file_);
  if (place == Place::kReplace) {
    if (::rename(tmp_.c_str(), file_.c_str()) != 0) abandon("cannot rename onto", file_);
  } else {
    // link(2) fails with EEXIST for any existing entry, a dangling link included.
    if (::link(tmp_.c_str(), file_.c_str()) != 0) {
      if (errno != EEXIST) abandon("cannot create", file_);
      ::unlink(tmp_.c_str());
      return false;
    }
    ::unlink(tmp_.c_str());  // the new file is in place under its name; this is its second one
  }
  fsync_directory_of(file_);
  return true;
}

void write_file_atomic(const std::filesystem::path& file, std::span<const uint8_t> bytes,
                       mode_t mode) {
  AtomicFile out(file, mode);
  out.append(bytes);
  out.commit();
}

void write_file_atomic(const std::filesystem::path& file, std::string_view text, mode_t mode) {
  write_file_atomic(file, {reinterpret_cast<const uint8_t*>(text.data()), text.size()}, mode);
}

}  // namespace base
