#include "coordinator/files.h"

#include <fstream>

#include "base/atomic_file.h"
#include "base/error.h"

namespace coordinator {
namespace {

using base::make_error;

}  // namespace

base::Result<std::vector<uint8_t>> read_file(const std::filesystem::path& file,
                                             uint64_t max_bytes) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) return make_error(base::Code::kIo, "cannot read ", file.string(), ": ", ec.message());
  if (size > max_bytes) {
    return make_error(base::Code::kIo, file.string(), " has ", size, " bytes (at most ", max_bytes,
                      ")");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return make_error(base::Code::kIo, "cannot open ", file.string());
  std::vector<uint8_t> bytes(size);
  if (size > 0 &&
      !in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size))) {
    return make_error(base::Code::kIo, "cannot read ", file.string());
  }
  return bytes;
}

base::Status write_file_atomic(const std::filesystem::path& file, std::span<const uint8_t> bytes) {
  try {
    base::write_file_atomic(file, bytes);
  } catch (const base::IoError& e) {
    return make_error(base::Code::kIo, e.what());
  }
  return base::ok_status();
}

base::Status write_file_atomic(const std::filesystem::path& file, const std::string& text) {
  return write_file_atomic(file, {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

}  // namespace coordinator
