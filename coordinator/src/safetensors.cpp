// Strict F32 safetensors; see safetensors.h for why the coordinator has its own.
#include "coordinator/safetensors.h"

#include <algorithm>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "coordinator/files.h"

namespace coordinator {
namespace {

using base::make_error;
using json = nlohmann::json;

constexpr base::Code kBad = base::Code::kInvalidArgument;

base::Result<uint64_t> as_u64(const json& v, std::string_view what) {
  if (!v.is_number_unsigned()) {
    if (v.is_number_integer() && v.get<int64_t>() >= 0) return v.get<uint64_t>();
    return make_error(kBad, "safetensors: ", what, " is not a non-negative integer");
  }
  return v.get<uint64_t>();
}

struct Entry {
  std::string name;
  std::vector<uint64_t> shape;
  uint64_t begin, end;
};

// The JSON header of `n` bytes after the length; refuses duplicate top-level names (the parser
// would merge them silently).
base::Result<json> parse_header(std::span<const uint8_t> bytes, uint64_t n) {
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), n);
  bool duplicate = false;
  std::set<std::string> seen;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key) {
      if (!seen.insert(parsed.get<std::string>()).second) duplicate = true;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text, cb);
  } catch (const std::exception& e) {
    return make_error(kBad, "safetensors: header is not JSON: ", e.what());
  }
  if (duplicate) return make_error(kBad, "safetensors: a tensor name appears twice");
  if (!header.is_object()) return make_error(kBad, "safetensors: header is not a JSON object");
  return header;
}

base::Status check_metadata(const json& v) {
  if (!v.is_object()) return make_error(kBad, "safetensors: __metadata__ is not an object");
  for (const auto& [k, m] : v.items()) {
    if (!m.is_string()) return make_error(kBad, "safetensors: metadata '", k, "' not a string");
  }
  return base::ok_status();
}

// One tensor's header entry, checked against the data section of `data_size` bytes.
base::Result<Entry> parse_entry(const std::string& name, const json& v, uint64_t data_size) {
  if (!v.is_object() || v.size() != 3 || !v.contains("dtype") || !v.contains("shape") ||
      !v.contains("data_offsets")) {
    return make_error(kBad, "safetensors: tensor '", name,
                      "' must have exactly dtype, shape and data_offsets");
  }
  if (v["dtype"] != "F32") {
    return make_error(kBad, "safetensors: tensor '", name, "' has dtype ", v["dtype"].dump(),
                      " (only F32 is accepted)");
  }
  const auto& shape = v["shape"];
  if (!shape.is_array() || shape.size() > protocol::coord::kMaxTensorRank) {
    return make_error(kBad, "safetensors: tensor '", name, "' has a bad shape");
  }
  Entry e{name, {}, 0, 0};
  uint64_t count = 1;
  for (const auto& d : shape) {
    auto dim = as_u64(d, "a dimension");
    if (!dim) return dim.error();
    if (dim.value() == 0 || !protocol::checked_mul(count, dim.value(), &count)) {
      return make_error(kBad, "safetensors: tensor '", name, "' has a bad dimension");
    }
    e.shape.push_back(dim.value());
  }
  const auto& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2) {
    return make_error(kBad, "safetensors: tensor '", name, "' needs data_offsets [begin, end]");
  }
  auto b = as_u64(off[0], "an offset"), en = as_u64(off[1], "an offset");
  if (!b) return b.error();
  if (!en) return en.error();
  e.begin = b.value();
  e.end = en.value();
  uint64_t bytes_needed;
  if (e.begin > e.end || e.end > data_size || !protocol::checked_mul(count, 4, &bytes_needed) ||
      e.end - e.begin != bytes_needed) {
    return make_error(kBad, "safetensors: tensor '", name, "' has offsets [", e.begin, ", ", e.end,
                      "] that disagree with its shape or the data size ", data_size);
  }
  return e;
}

// The regions must tile the data section exactly: no overlap, no hole, nothing after.
base::Status check_tiling(const std::vector<Entry>& entries, uint64_t data_size) {
  std::vector<const Entry*> by_offset;
  for (const auto& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const Entry* x, const Entry* y) { return x->begin < y->begin; });
  uint64_t pos = 0;
  for (const Entry* e : by_offset) {
    if (e->begin != pos) {
      return make_error(kBad, "safetensors: tensor '", e->name, "' starts at byte ", e->begin,
                        ", expected ", pos, " (overlap or hole)");
    }
    pos = e->end;
  }
  if (pos != data_size) {
    return make_error(kBad, "safetensors: ", data_size - pos, " bytes after the last tensor");
  }
  return base::ok_status();
}

}  // namespace

base::Result<Adapter> parse_safetensors(std::span<const uint8_t> bytes) {
  if (bytes.size() < 8) return make_error(kBad, "safetensors: file shorter than 8 bytes");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  if (n == 0 || n > kMaxSafetensorsHeaderBytes || n > bytes.size() - 8) {
    return make_error(kBad, "safetensors: header length ", n, " does not fit the file of ",
                      bytes.size(), " bytes");
  }
  auto header = parse_header(bytes, n);
  if (!header) return header.error();
  const uint64_t data_size = bytes.size() - 8 - n;
  const uint8_t* data = bytes.data() + 8 + n;
  std::vector<Entry> entries;
  for (const auto& [name, v] : header.value().items()) {
    if (name == "__metadata__") {
      if (auto st = check_metadata(v); !st) return st.error();
      continue;
    }
    auto e = parse_entry(name, v, data_size);
    if (!e) return e.error();
    entries.push_back(std::move(e).value());
  }
  if (entries.empty()) return make_error(kBad, "safetensors: no tensors");
  if (auto st = check_tiling(entries, data_size); !st) return st.error();
  std::vector<NamedTensor> tensors;
  for (auto& e : entries) {
    NamedTensor t{e.name, e.shape, std::vector<float>((e.end - e.begin) / 4)};
    if (!t.values.empty()) std::memcpy(t.values.data(), data + e.begin, e.end - e.begin);
    tensors.push_back(std::move(t));
  }
  return make_adapter(std::move(tensors));
}

base::Result<Adapter> read_safetensors(const std::filesystem::path& file) {
  auto bytes = read_file(file);
  if (!bytes) return bytes.error();
  auto a = parse_safetensors(bytes.value());
  if (!a) return make_error(a.error().code, file.string(), ": ", a.error().message);
  return a;
}

std::vector<uint8_t> serialize_safetensors(const Adapter& adapter) {
  json header = json::object();
  for (const auto& t : adapter.tensors) {
    header[t.name] = {{"dtype", "F32"},
                      {"shape", t.shape},
                      {"data_offsets", {t.offset * 4, (t.offset + t.count()) * 4}}};
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text += ' ';  // align the data section, as the spec allows
  std::vector<uint8_t> out(8 + text.size() + adapter.values.size() * 4);
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, text.data(), text.size());
  if (!adapter.values.empty()) {
    std::memcpy(out.data() + 8 + text.size(), adapter.values.data(), adapter.values.size() * 4);
  }
  return out;
}

base::Status write_safetensors(const std::filesystem::path& file, const Adapter& adapter) {
  return write_file_atomic(file, serialize_safetensors(adapter));
}

}  // namespace coordinator
