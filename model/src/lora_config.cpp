#include "model/lora_config.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "model/error.h"

namespace model {

bool LoraConfig::targets_kind(ProjectionKind kind) const {
  return std::find(targets.begin(), targets.end(), kind) != targets.end();
}

void validate_lora_config(const LoraConfig& config) {
  if (config.rank < 1) {
    throw ModelError("LoRA: rank must be at least 1, not " + std::to_string(config.rank));
  }
  if (!std::isfinite(config.alpha)) throw ModelError("LoRA: alpha must be finite");
  if (config.targets.empty()) throw ModelError("LoRA: no target projection");
  for (size_t i = 0; i < config.targets.size(); ++i) {
    const ProjectionKind kind = config.targets[i];
    if (kind == ProjectionKind::kLmHead || static_cast<int>(kind) < 0 ||
        static_cast<int>(kind) >= kProjectionsPerLayer) {
      throw ModelError("LoRA: only the q, k, v, o, gate, up and down projections can be targeted");
    }
    if (std::find(config.targets.begin(), config.targets.begin() + static_cast<int64_t>(i), kind) !=
        config.targets.begin() + static_cast<int64_t>(i)) {
      throw ModelError("LoRA: target " + projection_name({kind, 0}).substr(9) + " is listed twice");
    }
  }
}

std::vector<ProjectionKind> parse_lora_targets(std::string_view list) {
  const std::string whole(list);
  std::vector<ProjectionKind> targets;
  while (true) {
    const size_t comma = list.find(',');
    const std::string_view item = list.substr(0, comma);
    if (item.empty()) throw ModelError("LoRA targets: empty name in '" + whole + "'");
    const ProjectionKind kind = parse_projection_module(item);
    if (std::find(targets.begin(), targets.end(), kind) != targets.end()) {
      throw ModelError("LoRA targets: " + projection_module_name(kind) + " is listed twice");
    }
    targets.push_back(kind);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return targets;
}

}  // namespace model
