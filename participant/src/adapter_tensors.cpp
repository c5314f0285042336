#include "participant/adapter_tensors.h"

#include <algorithm>
#include <map>
#include <string>

#include "model/error.h"
#include "model/peft_adapter.h"
#include "model/projection.h"

namespace participant {
namespace {

std::string tensor_name(model::ProjectionId id, char matrix) {
  return model::peft_lora_tensor_name(id.layer, model::projection_module_name(id.kind), matrix);
}

}  // namespace

protocol::coord::AdapterTable adapter_table(const model::LoraParams& params,
                                            std::vector<float>* values) {
  protocol::coord::AdapterTable table;
  table.blob = 0;
  uint64_t offset = 0;
  if (values) values->clear();
  for (const model::ProjectionId id : params.ids()) {
    const model::LoraPair& pair = params.at(id);
    if (pair.a.size() == 0) {
      throw model::ModelError("adapter of " + model::projection_name(id) +
                         " has no A matrix: a frozen-A gradient is not an adapter");
    }
    for (const char matrix : {'A', 'B'}) {
      const auto& m = matrix == 'A' ? pair.a : pair.b;
      protocol::coord::TensorEntry entry;
      entry.name = tensor_name(id, matrix);
      entry.shape = {static_cast<uint64_t>(m.rows()), static_cast<uint64_t>(m.cols())};
      entry.offset = offset;
      offset += static_cast<uint64_t>(m.size());
      table.tensors.push_back(std::move(entry));
      if (values) values->insert(values->end(), m.data(), m.data() + m.size());
    }
  }
  return table;
}

std::vector<float> values_for_table(const protocol::coord::AdapterTable& table,
                                    const model::LoraParams& params) {
  std::vector<float> values(table.total());
  // Writing through a copy of params and reading it back with the same checks as
  // read_adapter_table keeps the two directions consistent: place each tensor at its offset.
  std::map<std::string, const protocol::coord::TensorEntry*> by_name;
  for (const auto& entry : table.tensors) by_name[entry.name] = &entry;
  size_t used = 0;
  for (const model::ProjectionId id : params.ids()) {
    const model::LoraPair& pair = params.at(id);
    for (const char matrix : {'A', 'B'}) {
      const auto& m = matrix == 'A' ? pair.a : pair.b;
      const std::string name = tensor_name(id, matrix);
      const auto it = by_name.find(name);
      if (it == by_name.end()) throw model::ModelError("adapter: tensor " + name + " is missing");
      const protocol::coord::TensorEntry& entry = *it->second;
      if (entry.count() != static_cast<uint64_t>(m.size()) || entry.offset > values.size() ||
          values.size() - entry.offset < entry.count()) {
        throw model::ModelError("adapter: tensor " + name + " does not fit the table");
      }
      std::copy_n(m.data(), m.size(), values.data() + entry.offset);
      ++used;
    }
  }
  if (used != table.tensors.size()) {
    throw model::ModelError("adapter: the table holds " + std::to_string(table.tensors.size()) +
                       " tensors, this site's LoRA configuration has " + std::to_string(used));
  }
  return values;
}

void read_adapter_table(const protocol::coord::AdapterTable& table, std::span<const float> values,
                        model::LoraParams& params) {
  std::map<std::string, const protocol::coord::TensorEntry*> by_name;
  for (const auto& entry : table.tensors) by_name[entry.name] = &entry;
  size_t used = 0;
  for (const model::ProjectionId id : params.ids()) {
    model::LoraPair& pair = params.at(id);
    for (const char matrix : {'A', 'B'}) {
      auto& m = matrix == 'A' ? pair.a : pair.b;
      const std::string name = tensor_name(id, matrix);
      const auto it = by_name.find(name);
      if (it == by_name.end()) throw model::ModelError("adapter: tensor " + name + " is missing");
      const protocol::coord::TensorEntry& entry = *it->second;
      const std::vector<uint64_t> want = {static_cast<uint64_t>(m.rows()),
                                          static_cast<uint64_t>(m.cols())};
      if (entry.shape != want) {
        throw model::ModelError("adapter: tensor " + name + " has the wrong shape (want [" +
                           std::to_string(want[0]) + ", " + std::to_string(want[1]) + "])");
      }
      if (entry.offset > values.size() || values.size() - entry.offset < entry.count()) {
        throw model::ModelError("adapter: tensor " + name + " lies outside the values");
      }
      std::copy_n(values.data() + entry.offset, m.size(), m.data());
      ++used;
    }
  }
  if (used != table.tensors.size()) {
    throw model::ModelError("adapter: the table holds " + std::to_string(table.tensors.size()) +
                       " tensors, this site's LoRA configuration has " + std::to_string(used));
  }
}

}  // namespace participant
