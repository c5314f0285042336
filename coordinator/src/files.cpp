#include "coordinator/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace coordinator {
namespace {

using protocol::ErrorCode;
using protocol::make_error;

protocol::Error io_error(std::string_view what, const std::filesystem::path& file) {
  return make_error(ErrorCode::kIo, what, " ", file.string(), ": ", std::strerror(errno));
}

}  // namespace

protocol::Result<std::vector<uint8_t>> read_file(const std::filesystem::path& file,
                                                 uint64_t max_bytes) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) return make_error(ErrorCode::kIo, "cannot read ", file.string(), ": ", ec.message());
  if (size > max_bytes) {
    return make_error(ErrorCode::kIo, file.string(), " has ", size, " bytes (at most ", max_bytes,
                      ")");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return make_error(ErrorCode::kIo, "cannot open ", file.string());
  std::vector<uint8_t> bytes(size);
  if (size > 0 &&
      !in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size))) {
    return make_error(ErrorCode::kIo, "cannot read ", file.string());
  }
  return bytes;
}

protocol::Status write_file_atomic(const std::filesystem::path& file,
                                   std::span<const uint8_t> bytes) {
  const auto dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  const auto tmp = std::filesystem::path(file.string() + ".tmp");
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("cannot create", tmp);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      auto e = io_error("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return e;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    auto e = io_error("cannot fsync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return e;
  }
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return io_error("cannot close", tmp);
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    auto e = io_error("cannot rename onto", file);
    ::unlink(tmp.c_str());
    return e;
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return io_error("cannot open directory", dir);
  const int rc = ::fsync(dfd);
  ::close(dfd);
  if (rc != 0) return io_error("cannot fsync directory", dir);
  return protocol::ok_status();
}

protocol::Status write_file_atomic(const std::filesystem::path& file, const std::string& text) {
  return write_file_atomic(file, {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

}  // namespace coordinator
