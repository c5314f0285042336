#include "npy.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <optional>
#include <string_view>

#include "base/atomic_file.h"
#include "base/error.h"

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

// The value of `'key': ...` in a .npy header dictionary: with open != 0, the text between `open`
// and the next `close` after the colon; with open == 0, the rest of the header after the colon
// and its spaces. No regular expressions: the header is untrusted and a backtracking matcher
// recurses once per character (a 64 KiB header overflowed the stack).
std::optional<std::string> header_value(std::string_view header, std::string_view key, char open,
                                        char close) {
  std::string quoted(1, '\'');  // built in place: GCC 12 warns (-Wrestrict) on "'" + string
  quoted.append(key);
  quoted += '\'';
  size_t pos = header.find(quoted);
  if (pos == std::string_view::npos) return std::nullopt;
  pos += quoted.size();
  auto skip_spaces = [&] {
    while (pos < header.size() && (header[pos] == ' ' || header[pos] == '\t')) ++pos;
  };
  skip_spaces();
  if (pos >= header.size() || header[pos] != ':') return std::nullopt;
  ++pos;
  skip_spaces();
  if (open == 0) return std::string(header.substr(pos));
  if (pos >= header.size() || header[pos] != open) return std::nullopt;
  const size_t end = header.find(close, pos + 1);
  if (end == std::string_view::npos) return std::nullopt;
  return std::string(header.substr(pos + 1, end - pos - 1));
}

// At most 32 characters of untrusted text, anything but printable ASCII as '?', for a message.
std::string printable(const std::string& s) {
  std::string out = s.substr(0, 32);
  for (char& c : out) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return s.size() > 32 ? out + "..." : out;
}

}  // namespace

NpyHeader parse_npy_header(std::string_view bytes, uint64_t file_size, const std::string& name) {
  auto fail = [&](const std::string& why) { return NpyError(name + ": " + why); };
  if (file_size < 10 || bytes.size() < 10) throw fail("not a .npy file (too short)");
  const auto byte = [&](size_t i) { return static_cast<size_t>(static_cast<uint8_t>(bytes[i])); };
  if (bytes.substr(0, 6) != std::string_view("\x93NUMPY", 6)) {
    throw fail("not a .npy file (bad magic)");
  }
  const size_t major = byte(6);
  size_t header_len = 0, prefix = 10;
  if (major == 1) {
    header_len = byte(8) | (byte(9) << 8);
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw fail("truncated .npy header");
    header_len = byte(8) | (byte(9) << 8) | (byte(10) << 16) | (byte(11) << 24);
    prefix = 12;
  } else {
    throw fail("unsupported .npy version " + std::to_string(major));
  }
  if (header_len > kMaxHeaderBytes) {
    throw fail(".npy header of " + std::to_string(header_len) + " bytes exceeds the " +
               std::to_string(kMaxHeaderBytes) + "-byte limit");
  }
  if (prefix + header_len > file_size || prefix + header_len > bytes.size()) {
    throw fail("truncated .npy header");
  }
  const std::string_view header = bytes.substr(prefix, header_len);

  NpyHeader a;
  const auto d = header_value(header, "descr", '\'', '\'');
  if (!d) throw fail("malformed .npy header (no descr)");
  if (*d == "|i1" || *d == "<i1" || *d == "i1") {
    a.type = NpyType::kInt8;
  } else if (*d == "<i8") {
    a.type = NpyType::kInt64;
  } else if (*d == "<f4") {
    a.type = NpyType::kFloat32;
  } else {
    throw fail("unsupported dtype '" + printable(*d) + "'");
  }
  const auto fortran = header_value(header, "fortran_order", 0, 0);
  if (!fortran) throw fail("malformed .npy header (no fortran_order)");
  if (fortran->starts_with("True")) {
    throw fail("Fortran-order arrays are not supported; save with C order");
  }
  if (!fortran->starts_with("False")) throw fail("malformed .npy header (no fortran_order)");
  const auto shape_value = header_value(header, "shape", '(', ')');
  if (!shape_value) throw fail("malformed .npy header (no shape)");
  std::vector<uint64_t> dims;
  const std::string& shape = *shape_value;
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
      throw fail("malformed or too large shape dimension '" + printable(item) + "'");
    }
    dims.push_back(std::stoull(item));
  }
  if (dims.size() == 1) dims.push_back(1);
  if (dims.size() != 2)
    throw fail("expected a 2-D array, got " + std::to_string(dims.size()) + "-D");
  a.rows = dims[0];
  a.cols = dims[1];
  a.data_offset = prefix + header_len;
  const size_t es = elem_size(a.type);
  const uint64_t remaining = file_size - a.data_offset;
  if (a.rows != 0 && a.cols > (size_t{1} << 40) / a.rows) throw fail("shape too large");
  const size_t want = a.rows * a.cols * es;
  if (remaining != want) {
    throw fail("data length " + std::to_string(remaining) + " does not match shape (" +
               std::to_string(a.rows) + ", " + std::to_string(a.cols) + ")");
  }
  return a;
}

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw NpyError("cannot open " + path);
  const auto size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  // The header lies within the first 12 + kMaxHeaderBytes bytes; nothing beyond them is read
  // before the header has been checked against the file's size.
  std::string head(static_cast<size_t>(std::min<uint64_t>(size, 12 + kMaxHeaderBytes)), '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  if (!in) throw NpyError(path + ": cannot read");
  const NpyHeader h = parse_npy_header(head, size, path);
  NpyArray a;
  a.type = h.type;
  a.rows = h.rows;
  a.cols = h.cols;
  a.data.resize(static_cast<size_t>(size - h.data_offset));
  in.seekg(static_cast<std::streamoff>(h.data_offset));
  in.read(reinterpret_cast<char*>(a.data.data()), static_cast<std::streamsize>(a.data.size()));
  if (!in) throw NpyError(path + ": truncated data");
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
  try {
    base::AtomicFile out(path);
    out.append(std::string_view(pre, 10));
    out.append(header);
    out.append({static_cast<const uint8_t*>(data), rows * cols * elem_size(type)});
    out.commit();
  } catch (const base::IoError& e) {
    throw NpyError(e.what());
  }
}

}  // namespace fedtools
