#include "npy.h"

#include <cstring>
#include <fstream>
#include <regex>

namespace fedtools {

namespace {

size_t elem_size(NpyType t) {
  switch (t) {
    case NpyType::kInt8:
      return 1;
    case NpyType::kInt64:
      return 8;
    case NpyType::kFloat32:
      return 4;
  }
  return 0;
}

const char* descr(NpyType t) {
  switch (t) {
    case NpyType::kInt8:
      return "|i1";
    case NpyType::kInt64:
      return "<i8";
    case NpyType::kFloat32:
      return "<f4";
  }
  return "";
}

}  // namespace

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw NpyError("cannot open " + path);
  const auto size = static_cast<size_t>(in.tellg());
  in.seekg(0);
  auto fail = [&](const std::string& why) { return NpyError(path + ": " + why); };
  if (size < 10) throw fail("not a .npy file (too short)");
  uint8_t pre[12] = {};
  in.read(reinterpret_cast<char*>(pre), 10);
  if (std::memcmp(pre, "\x93NUMPY", 6) != 0) throw fail("not a .npy file (bad magic)");
  const int major = pre[6];
  size_t header_len = 0, prefix = 10;
  if (major == 1) {
    header_len = pre[8] | (size_t{pre[9]} << 8);
  } else if (major == 2 || major == 3) {
    in.read(reinterpret_cast<char*>(pre + 10), 2);
    header_len = pre[8] | (size_t{pre[9]} << 8) | (size_t{pre[10]} << 16) | (size_t{pre[11]} << 24);
    prefix = 12;
  } else {
    throw fail("unsupported .npy version " + std::to_string(major));
  }
  if (header_len > 65536 || prefix + header_len > size) throw fail("truncated .npy header");
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  if (!in) throw fail("truncated .npy header");

  std::smatch m;
  NpyArray a;
  if (!std::regex_search(header, m, std::regex(R"('descr'\s*:\s*'([^']*)')"))) {
    throw fail("malformed .npy header (no descr)");
  }
  const std::string d = m[1];
  if (d == "|i1" || d == "<i1" || d == "i1") {
    a.type = NpyType::kInt8;
  } else if (d == "<i8") {
    a.type = NpyType::kInt64;
  } else if (d == "<f4") {
    a.type = NpyType::kFloat32;
  } else {
    throw fail("unsupported dtype '" + d + "'");
  }
  if (!std::regex_search(header, m, std::regex(R"('fortran_order'\s*:\s*(True|False))"))) {
    throw fail("malformed .npy header (no fortran_order)");
  }
  if (m[1] == "True") throw fail("Fortran-order arrays are not supported; save with C order");
  if (!std::regex_search(header, m, std::regex(R"('shape'\s*:\s*\(([^)]*)\))"))) {
    throw fail("malformed .npy header (no shape)");
  }
  std::vector<uint64_t> dims;
  const std::string shape = m[1];
  size_t pos = 0;
  while (pos < shape.size()) {
    const size_t comma = shape.find(',', pos);
    std::string item =
        shape.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? shape.size() : comma + 1;
    const size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    if (b == std::string::npos) {
      if (comma == std::string::npos) break;  // trailing comma: "(5,)"
      throw fail("malformed shape");
    }
    item = item.substr(b, e - b + 1);
    if (item.size() > 12 || item.find_first_not_of("0123456789") != std::string::npos) {
      throw fail("malformed or too large shape dimension '" + item + "'");
    }
    dims.push_back(std::stoull(item));
  }
  if (dims.size() == 1) dims.push_back(1);
  if (dims.size() != 2)
    throw fail("expected a 2-D array, got " + std::to_string(dims.size()) + "-D");
  a.rows = dims[0];
  a.cols = dims[1];
  const size_t es = elem_size(a.type);
  const size_t remaining = size - prefix - header_len;
  if (a.rows != 0 && a.cols > (size_t{1} << 40) / a.rows) throw fail("shape too large");
  const size_t want = a.rows * a.cols * es;
  if (remaining != want) {
    throw fail("data length " + std::to_string(remaining) + " does not match shape (" +
               std::to_string(a.rows) + ", " + std::to_string(a.cols) + ")");
  }
  a.data.resize(want);
  in.read(reinterpret_cast<char*>(a.data.data()), static_cast<std::streamsize>(want));
  if (!in) throw fail("truncated data");
  return a;
}

std::vector<int8_t> read_npy_int8(const std::string& path, size_t* rows, size_t* cols) {
  NpyArray a = read_npy(path);
  if (a.type != NpyType::kInt8) throw NpyError(path + ": expected dtype int8");
  *rows = a.rows;
  *cols = a.cols;
  return std::vector<int8_t>(a.data.begin(), a.data.end());
}

void write_npy(const std::string& path, NpyType type, size_t rows, size_t cols, const void* data) {
  std::string header = std::string("{'descr': '") + descr(type) +
                       "', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw NpyError("cannot write " + path);
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char pre[10] = {'\x93',
                        'N',
                        'U',
                        'M',
                        'P',
                        'Y',
                        1,
                        0,
                        static_cast<char>(len & 0xff),
                        static_cast<char>(len >> 8)};
  out.write(pre, 10);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(static_cast<const char*>(data),
            static_cast<std::streamsize>(rows * cols * elem_size(type)));
  if (!out) throw NpyError("cannot write " + path);
}

}  // namespace fedtools
