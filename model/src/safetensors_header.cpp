#include "model/safetensors_header.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "model/error.h"

namespace model {
namespace {

using nlohmann::json;

// A legitimate header nests three levels deep (object, tensor entry, shape array).
constexpr int kMaxNesting = 16;

[[noreturn]] void fail(std::string_view source, const std::string& what) {
  throw ModelError(std::string(source) + ": " + what);
}

[[noreturn]] void fail_tensor(std::string_view source, const std::string& name,
                              const std::string& what) {
  fail(source, "tensor '" + name + "': " + what);
}

// Refuses absurdly nested JSON before handing it to the parser.
void check_nesting(std::string_view text, std::string_view source) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxNesting) fail(source, "header JSON is nested too deeply");
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
}

// A JSON value that must be a non-negative integer, as uint64_t.
uint64_t to_u64(const json& v, std::string_view source, const std::string& name,
                const char* field) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) fail_tensor(source, name, std::string(field) + " is negative");
  fail_tensor(source, name, std::string(field) + " holds a non-integer");
}

std::vector<int64_t> parse_shape(const json& entry, std::string_view source,
                                 const std::string& name) {
  const auto it = entry.find("shape");
  if (it == entry.end()) fail_tensor(source, name, "missing \"shape\"");
  if (!it->is_array()) fail_tensor(source, name, "\"shape\" is not an array");
  std::vector<int64_t> shape;
  for (const json& d : *it) {
    const uint64_t dim = to_u64(d, source, name, "shape");
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail_tensor(source, name, "shape dimension " + std::to_string(dim) + " overflows");
    }
    shape.push_back(static_cast<int64_t>(dim));
  }
  return shape;
}

TensorInfo parse_tensor(const std::string& name, const json& entry, uint64_t data_size,
                        std::string_view source) {
  if (!entry.is_object()) fail_tensor(source, name, "entry is not a JSON object");
  TensorInfo info;
  info.name = name;

  const auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end()) fail_tensor(source, name, "missing \"dtype\"");
  if (!dtype_it->is_string()) fail_tensor(source, name, "\"dtype\" is not a string");
  const auto dtype = parse_dtype(dtype_it->get_ref<const std::string&>());
  if (!dtype) {
    fail_tensor(source, name, "unknown dtype '" + dtype_it->get<std::string>() + "'");
  }
  info.dtype = *dtype;
  info.shape = parse_shape(entry, source, name);

  const auto off_it = entry.find("data_offsets");
  if (off_it == entry.end()) fail_tensor(source, name, "missing \"data_offsets\"");
  if (!off_it->is_array() || off_it->size() != 2) {
    fail_tensor(source, name, "\"data_offsets\" is not an array of two integers");
  }
  info.begin = to_u64((*off_it)[0], source, name, "data_offsets");
  info.end = to_u64((*off_it)[1], source, name, "data_offsets");

  uint64_t bytes = dtype_size(info.dtype);
  for (int64_t d : info.shape) {
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes)) {
      fail_tensor(source, name, "shape " + shape_string(info.shape) + " overflows");
    }
  }
  if (info.begin > info.end) {
    fail_tensor(source, name,
                "data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
                    "] are reversed");
  }
  if (info.end - info.begin != bytes) {
    fail_tensor(source, name,
                "data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
                    "] hold " + std::to_string(info.end - info.begin) + " bytes but " +
                    std::string(dtype_name(info.dtype)) + " " + shape_string(info.shape) +
                    " needs " + std::to_string(bytes));
  }
  if (info.end > data_size) {
    fail_tensor(source, name,
                "data_offsets end " + std::to_string(info.end) + " is past the end of the " +
                    std::to_string(data_size) + "-byte data area (truncated file?)");
  }
  return info;
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // cannot overflow: bounded by the validated byte size
  return n;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

SafetensorsHeader parse_safetensors_header(std::string_view text, uint64_t data_size,
                                           std::string_view source) {
  check_nesting(text, source);
  json root;
  try {
    root = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  } catch (const json::exception& e) {
    fail(source, std::string("header is not valid JSON: ") + e.what());
  }
  if (root.is_discarded()) fail(source, "header is not valid JSON");
  if (!root.is_object()) fail(source, "header is not a JSON object");

  SafetensorsHeader header;
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) fail(source, "\"__metadata__\" is not a JSON object");
      for (const auto& [mkey, mvalue] : value.items()) {
        if (!mvalue.is_string())
          fail(source, "\"__metadata__\" entry '" + mkey + "' is not a string");
        header.metadata[mkey] = mvalue.get<std::string>();
      }
      continue;
    }
    header.tensors.push_back(parse_tensor(key, value, data_size, source));
  }
  std::sort(header.tensors.begin(), header.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  return header;
}

}  // namespace model
