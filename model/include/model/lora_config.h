// The hyper-parameters of a LoRA adapter (Hu et al. 2021, as PEFT implements it for Llama).
//
// Each targeted frozen projection y = W x gains a low-rank branch computed in float on the
// participant, never through the LinearBackend:
//   y = W x + (alpha / rank) * B (A x),   A: rank x d_in,  B: d_out x rank
// with dropout off. FFA-LoRA (Sun et al. 2024) freezes A at its initialisation and trains B
// only, which also makes the update exactly linear in the trained parameters (useful with DP
// noise and federated averaging).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "model/projection.h"

namespace model {

struct LoraConfig {
  int64_t rank = 8;
  double alpha = 16;
  // Which projections of every decoder layer carry an adapter (any of q, k, v, o, gate, up,
  // down; the LM head cannot be targeted). PEFT's default for Llama is q_proj and v_proj.
  std::vector<ProjectionKind> targets = {ProjectionKind::kQ, ProjectionKind::kV};
  bool freeze_a = false;  // FFA-LoRA: A stays fixed and gets no gradient

  // The branch's multiplier alpha / rank.
  double scaling() const { return alpha / static_cast<double>(rank); }
  bool targets_kind(ProjectionKind kind) const;
};

// Throws model::ModelError unless rank >= 1, alpha is finite, and targets is a non-empty list of
// distinct decoder-layer projections.
void validate_lora_config(const LoraConfig& config);

// The targets of a comma-separated list of module names, long or short ("q,v",
// "q_proj,v_proj,down"), in the order given. Throws model::ModelError for an empty list or item, an
// unknown name (parse_projection_module) or a name given twice.
std::vector<ProjectionKind> parse_lora_targets(std::string_view list);

}  // namespace model
