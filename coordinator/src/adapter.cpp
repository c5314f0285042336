#include "coordinator/adapter.h"

#include <algorithm>
#include <set>

namespace coordinator {

using base::make_error;

bool Adapter::same_layout(const protocol::coord::AdapterTable& table) const {
  return table.tensors == tensors;
}

base::Result<Adapter> make_adapter(std::vector<NamedTensor> tensors) {
  if (tensors.empty()) return make_error(base::Code::kInvalidArgument, "an adapter needs tensors");
  std::sort(tensors.begin(), tensors.end(),
            [](const NamedTensor& a, const NamedTensor& b) { return a.name < b.name; });
  Adapter out;
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto& t = tensors[i];
    if (t.name.empty() || t.name.size() > protocol::kMaxIdBytes) {
      return make_error(base::Code::kInvalidArgument, "tensor name of ", t.name.size(), " bytes");
    }
    if (i > 0 && tensors[i - 1].name == t.name) {
      return make_error(base::Code::kInvalidArgument, "tensor '", t.name, "' appears twice");
    }
    if (t.shape.size() > protocol::coord::kMaxTensorRank) {
      return make_error(base::Code::kInvalidArgument, "tensor '", t.name, "' has ", t.shape.size(),
                        " dimensions");
    }
    protocol::coord::TensorEntry e{t.name, t.shape, out.values.size()};
    uint64_t count = 1;
    for (const uint64_t d : t.shape) {
      if (d == 0 || !protocol::checked_mul(count, d, &count)) {
        return make_error(base::Code::kInvalidArgument, "tensor '", t.name, "' has a bad shape");
      }
    }
    if (count != t.values.size()) {
      return make_error(base::Code::kInvalidArgument, "tensor '", t.name, "' has ", t.values.size(),
                        " values for ", count, " elements");
    }
    out.values.insert(out.values.end(), t.values.begin(), t.values.end());
    out.tensors.push_back(std::move(e));
  }
  return out;
}

}  // namespace coordinator
