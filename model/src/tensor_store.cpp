#include "model/tensor_store.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/error.h"

namespace model {
namespace {

using nlohmann::json;

json read_json_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelError(path.string() + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw ModelError(path.string() + ": not valid JSON");
  return j;
}

// A shard name from the index must name a file inside the model directory.
void check_shard_name(const std::string& shard, const std::filesystem::path& index) {
  const std::filesystem::path p(shard);
  bool ok = !shard.empty() && p.is_relative();
  for (const auto& part : p) ok = ok && part != ".." && part != ".";
  if (!ok) throw ModelError(index.string() + ": shard name '" + shard + "' leaves the model directory");
}

}  // namespace

TensorStore TensorStore::open(const std::filesystem::path& dir) {
  const std::filesystem::path index = dir / kShardIndexFile;
  const std::filesystem::path single = dir / kSingleCheckpointFile;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw ModelError(dir.string() + ": not a model directory");
  }
  if (!std::filesystem::exists(index, ec)) {
    if (!std::filesystem::exists(single, ec)) {
      throw ModelError(dir.string() + ": no " + kSingleCheckpointFile + " or " + kShardIndexFile);
    }
    TensorStore store = open_file(single);
    store.dir_ = dir;
    return store;
  }

  const json j = read_json_file(index);
  const auto wm = j.is_object() ? j.find("weight_map") : j.end();
  if (wm == j.end() || !wm->is_object()) {
    throw ModelError(index.string() + ": missing \"weight_map\" object");
  }
  std::map<std::string, std::vector<std::string>> by_shard;  // shard -> tensor names
  for (const auto& [name, shard] : wm->items()) {
    if (!shard.is_string()) {
      throw ModelError(index.string() + ": weight_map entry '" + name + "' is not a string");
    }
    check_shard_name(shard.get<std::string>(), index);
    by_shard[shard.get<std::string>()].push_back(name);
  }

  TensorStore store;
  store.dir_ = dir;
  for (const auto& [shard, names] : by_shard) {
    store.files_.push_back(std::make_unique<SafetensorsReader>(dir / shard));
  }
  size_t f = 0;
  for (const auto& [shard, names] : by_shard) {
    const SafetensorsReader& reader = *store.files_[f++];
    for (const std::string& name : names) {
      const TensorInfo* info = reader.find(name);
      if (info == nullptr) {
        throw ModelError(reader.path().string() + ": tensor '" + name + "' listed in " +
                    kShardIndexFile + " is missing");
      }
      store.entries_.emplace(name, Entry{&reader, info});
    }
    for (const TensorInfo& t : reader.tensors()) {
      if (std::binary_search(names.begin(), names.end(), t.name)) continue;  // names are sorted
      const auto listed = wm->find(t.name);
      throw ModelError(reader.path().string() + ": tensor '" + t.name + "' is " +
                  (listed == wm->end() ? std::string("not listed in ") + kShardIndexFile
                                       : std::string("stored here but ") + kShardIndexFile +
                                             " maps it to " + listed->get<std::string>()));
    }
  }
  return store;
}

TensorStore TensorStore::open_file(const std::filesystem::path& file) {
  TensorStore store;
  store.dir_ = file.parent_path();
  auto reader = std::make_unique<SafetensorsReader>(file);
  for (const TensorInfo& t : reader->tensors()) {
    store.entries_.emplace(t.name, Entry{reader.get(), &t});
  }
  store.files_.push_back(std::move(reader));
  return store;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [name, e] : entries_) out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}

bool TensorStore::contains(std::string_view name) const {
  return entries_.find(std::string(name)) != entries_.end();
}

const TensorStore::Entry& TensorStore::entry(std::string_view name) const {
  const auto it = entries_.find(std::string(name));
  if (it == entries_.end()) {
    throw ModelError(dir_.string() + ": checkpoint has no tensor '" + std::string(name) + "'");
  }
  return it->second;
}

const TensorInfo& TensorStore::info(std::string_view name) const {
  return *entry(name).info;
}

const std::filesystem::path& TensorStore::file_of(std::string_view name) const {
  return entry(name).file->path();
}

void TensorStore::check(std::string_view name, const std::vector<int64_t>& expected_shape) const {
  const Entry& e = entry(name);
  const std::string where = e.file->path().string() + ": tensor '" + std::string(name) + "': ";
  if (e.info->shape != expected_shape) {
    throw ModelError(where + "shape " + shape_string(e.info->shape) + ", expected " +
                shape_string(expected_shape));
  }
  if (!is_float_dtype(e.info->dtype)) {
    throw ModelError(where + "dtype " + std::string(dtype_name(e.info->dtype)) +
                " is not a float dtype (F32, F16, BF16)");
  }
}

void TensorStore::read_f32(std::string_view name, const std::vector<int64_t>& expected_shape,
                           std::span<float> out) const {
  check(name, expected_shape);
  const Entry& e = entry(name);
  e.file->read_f32(*e.info, out);
}

void TensorStore::read_f32_rows(std::string_view name, const std::vector<int64_t>& expected_shape,
                                int64_t row_begin, int64_t row_count, std::span<float> out) const {
  check(name, expected_shape);
  const Entry& e = entry(name);
  const std::string where = e.file->path().string() + ": tensor '" + std::string(name) + "': ";
  if (expected_shape.size() != 2) throw ModelError(where + "a row read needs a 2-D tensor");
  const int64_t rows = expected_shape[0], cols = expected_shape[1];
  if (row_begin < 0 || row_count < 0 || row_begin > rows || row_count > rows - row_begin) {
    throw ModelError(where + "rows [" + std::to_string(row_begin) + ", " +
                std::to_string(row_begin + row_count) + ") are outside its " +
                std::to_string(rows));
  }
  if (static_cast<int64_t>(out.size()) != row_count * cols) {
    throw ModelError(where + "destination holds " + std::to_string(out.size()) + " values, " +
                std::to_string(row_count) + " rows hold " + std::to_string(row_count * cols));
  }
  e.file->read_f32(*e.info, row_begin * cols, out);
}

void TensorStore::release_rows(std::string_view name, int64_t row_begin, int64_t row_count) const {
  const Entry& e = entry(name);
  const int64_t cols = e.info->shape.size() == 2 ? e.info->shape[1] : 1;
  e.file->release(*e.info, row_begin * cols, row_count * cols);
}

void TensorStore::release(std::string_view name) const {
  const Entry& e = entry(name);
  e.file->release(*e.info);
}

std::vector<float> TensorStore::read_f32(std::string_view name) const {
  const Entry& e = entry(name);
  std::vector<float> out(static_cast<size_t>(e.info->numel()));
  e.file->read_f32(*e.info, out);
  return out;
}

}  // namespace model
