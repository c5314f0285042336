#include "model/checkpoint_writer.h"

#include <cctype>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "atomic_write.h"
#include "model/error.h"
#include "model/tensor_store.h"

namespace model {

uint64_t parse_shard_size(std::string_view text) {
  const std::string what = "shard size '" + std::string(text) + "'";
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 18) {
    throw ModelError(what + " is not a byte count or a number with KB, MB, GB, KiB, MiB or GiB");
  }
  const uint64_t number = std::stoull(std::string(text.substr(0, digits)));
  std::string unit(text.substr(digits));
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::map<std::string, uint64_t> kUnits = {
      {"", 1},
      {"B", 1},
      {"KB", 1'000},
      {"MB", 1'000'000},
      {"GB", 1'000'000'000},
      {"KIB", uint64_t{1} << 10},
      {"MIB", uint64_t{1} << 20},
      {"GIB", uint64_t{1} << 30},
  };
  const auto it = kUnits.find(unit);
  if (it == kUnits.end()) {
    throw ModelError(what + ": unknown unit (KB, MB, GB, KiB, MiB or GiB)");
  }
  uint64_t bytes;
  if (__builtin_mul_overflow(number, it->second, &bytes) || bytes > (uint64_t{1} << 62)) {
    throw ModelError(what + " is absurd");
  }
  if (bytes == 0) throw ModelError(what + " must be positive");
  return bytes;
}

std::string shard_file_name(size_t index, size_t count) {
  char name[64];
  std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return name;
}

std::vector<std::vector<size_t>> plan_shards(std::span<const TensorSpec> tensors,
                                             uint64_t max_shard_bytes) {
  std::vector<std::vector<size_t>> shards;
  std::vector<size_t> current;
  uint64_t current_size = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const uint64_t size = tensors[i].byte_size();
    if (size > max_shard_bytes) {
      shards.push_back({i});
      continue;
    }
    if (current_size + size > max_shard_bytes) {
      shards.push_back(std::move(current));
      current.clear();
      current_size = 0;
    }
    current.push_back(i);
    current_size += size;
  }
  if (!current.empty()) shards.push_back(std::move(current));
  return shards;
}

void write_checkpoint(const std::filesystem::path& dir, std::span<const TensorSpec> tensors,
                      const ChunkFiller& fill, uint64_t max_shard_bytes,
                      std::span<const size_t> shard_order,
                      const std::map<std::string, std::string>& metadata) {
  if (max_shard_bytes == 0) throw ModelError(dir.string() + ": max shard size must be positive");
  std::vector<size_t> order(shard_order.begin(), shard_order.end());
  if (order.empty()) {
    for (size_t i = 0; i < tensors.size(); ++i) order.push_back(i);
  }
  std::vector<bool> seen(tensors.size(), false);
  for (size_t i : order) {
    if (i >= tensors.size() || seen[i]) throw ModelError(dir.string() + ": bad shard order");
    seen[i] = true;
  }
  if (order.size() != tensors.size()) throw ModelError(dir.string() + ": bad shard order");
  std::vector<TensorSpec> ordered;
  for (size_t i : order) ordered.push_back(tensors[i]);
  auto shards = plan_shards(ordered, max_shard_bytes);
  for (auto& shard : shards) {
    for (size_t& t : shard) t = order[t];  // back to indices into `tensors`
  }
  const bool single = shards.size() <= 1;

  // Every shard's writer is open while the tensors are produced in order: a tensor over the
  // limit sits in a shard listed before the one it interrupts.
  std::vector<std::unique_ptr<SafetensorsStreamWriter>> writers;
  std::vector<size_t> writer_of(tensors.size()), index_in(tensors.size());
  nlohmann::json weight_map = nlohmann::json::object();
  uint64_t total_size = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string file = single ? kSingleCheckpointFile : shard_file_name(s, shards.size());
    std::vector<TensorSpec> specs;
    for (size_t k = 0; k < shards[s].size(); ++k) {
      const size_t t = shards[s][k];
      specs.push_back(tensors[t]);
      writer_of[t] = s;
      index_in[t] = k;
      weight_map[tensors[t].name] = file;
      total_size += tensors[t].byte_size();
    }
    writers.push_back(std::make_unique<SafetensorsStreamWriter>(dir / file, specs, metadata));
  }
  if (shards.empty()) {  // no tensor at all: still an (empty) model.safetensors
    writers.push_back(std::make_unique<SafetensorsStreamWriter>(
        dir / kSingleCheckpointFile, std::span<const TensorSpec>{}, metadata));
  }

  std::vector<float> chunk;
  for (size_t t = 0; t < tensors.size(); ++t) {
    const uint64_t n = tensors[t].numel();
    for (uint64_t first = 0; first < n; first += kWriteChunkValues) {
      chunk.resize(static_cast<size_t>(std::min<uint64_t>(kWriteChunkValues, n - first)));
      fill(t, chunk);
      writers[writer_of[t]]->write(index_in[t], first, chunk);
    }
  }
  for (auto& w : writers) w->finish();
  if (single) return;
  const nlohmann::json index = {{"metadata", {{"total_size", total_size}}},
                                {"weight_map", weight_map}};
  detail::write_text_file(dir / kShardIndexFile,
                          index.dump(2) + "\n");  // nlohmann sorts object keys
}

}  // namespace model
