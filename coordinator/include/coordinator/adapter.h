// An adapter as the coordinator sees it: named float32 tensors in one flat array.
//
// The coordinator runs no model (docs/design.md §8: coordinator -> protocol, privacy only), so
// a LoRA adapter is just this: a tensor table (name, shape, offset; protocol's TensorEntry,
// which is also how it travels) and the values. Tensors are kept sorted by name and tile
// `values` in that order, so two adapters with the same tensors have the same layout.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "protocol/coordinator_messages.h"
#include "protocol/result.h"

namespace coordinator {

struct Adapter {
  std::vector<protocol::coord::TensorEntry> tensors;  // sorted by name, offsets tile `values`
  std::vector<float> values;

  // The wire table of this adapter (blob index 0).
  protocol::coord::AdapterTable table() const { return {tensors, 0}; }
  // True when `table` lists exactly these tensors (names, shapes, offsets) in this order.
  bool same_layout(const protocol::coord::AdapterTable& table) const;

  bool operator==(const Adapter&) const = default;
};

// An adapter from (name, shape) pairs and their values in that order: sorts by name and
// computes offsets. Refuses duplicate or empty names, zero dimensions, a value count that does
// not match.
struct NamedTensor {
  std::string name;
  std::vector<uint64_t> shape;
  std::vector<float> values;
};
base::Result<Adapter> make_adapter(std::vector<NamedTensor> tensors);

}  // namespace coordinator
