#include "model/projection.h"

#include "model/error.h"

namespace model {
namespace {

constexpr const char* kLayerProjectionNames[kProjectionsPerLayer] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

void check_layer(const LlamaConfig& config, ProjectionId id) {
  if (id.kind == ProjectionKind::kLmHead) return;
  if (id.layer < 0 || id.layer >= config.num_hidden_layers) {
    throw ModelError("projection " + projection_name(id) + ": the model has " +
                     std::to_string(config.num_hidden_layers) + " layers");
  }
}

}  // namespace

std::string projection_name(ProjectionId id) {
  if (id.kind == ProjectionKind::kLmHead) return "lm_head";
  return "layers." + std::to_string(id.layer) + "." +
         kLayerProjectionNames[static_cast<int>(id.kind)];
}

std::string projection_module_name(ProjectionKind kind) {
  if (kind == ProjectionKind::kLmHead) return "lm_head";
  const int k = static_cast<int>(kind);
  if (k < 0 || k >= kProjectionsPerLayer) throw ModelError("unknown projection kind");
  return kLayerProjectionNames[k];
}

ProjectionKind parse_projection_module(std::string_view name) {
  for (int k = 0; k < kProjectionsPerLayer; ++k) {
    const std::string_view full = kLayerProjectionNames[k];
    if (name == full || (!name.empty() && name == full.substr(0, full.size() - 5))) {
      return static_cast<ProjectionKind>(k);
    }
  }
  throw ModelError("unknown projection '" + std::string(name) +
                   "' (expected q, k, v, o, gate, up or down, with or without _proj)");
}

std::vector<ProjectionId> llama_projections(const LlamaConfig& config) {
  std::vector<ProjectionId> out;
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    for (int k = 0; k < kProjectionsPerLayer; ++k) {
      out.push_back({static_cast<ProjectionKind>(k), layer});
    }
  }
  out.push_back(ProjectionId::lm_head());
  return out;
}

size_t projection_index(const LlamaConfig& config, ProjectionId id) {
  check_layer(config, id);
  if (id.kind == ProjectionKind::kLmHead) {
    return static_cast<size_t>(config.num_hidden_layers * kProjectionsPerLayer);
  }
  return static_cast<size_t>(id.layer * kProjectionsPerLayer + static_cast<int64_t>(id.kind));
}

ProjectionDims projection_dims(const LlamaConfig& config, ProjectionKind kind) {
  const int64_t h = config.hidden_size;
  switch (kind) {
    case ProjectionKind::kQ:
      return {config.q_dim(), h};
    case ProjectionKind::kK:
    case ProjectionKind::kV:
      return {config.kv_dim(), h};
    case ProjectionKind::kO:
      return {h, config.q_dim()};
    case ProjectionKind::kGate:
    case ProjectionKind::kUp:
      return {config.intermediate_size, h};
    case ProjectionKind::kDown:
      return {h, config.intermediate_size};
    case ProjectionKind::kLmHead:
      return {config.vocab_size, h};
  }
  throw ModelError("projection_dims: unknown projection kind");
}

const Matrix& layer_projection_weight(const LlamaLayerWeights& l, ProjectionKind kind) {
  switch (kind) {
    case ProjectionKind::kQ:
      return l.q_proj;
    case ProjectionKind::kK:
      return l.k_proj;
    case ProjectionKind::kV:
      return l.v_proj;
    case ProjectionKind::kO:
      return l.o_proj;
    case ProjectionKind::kGate:
      return l.gate_proj;
    case ProjectionKind::kUp:
      return l.up_proj;
    case ProjectionKind::kDown:
      return l.down_proj;
    case ProjectionKind::kLmHead:
      break;
  }
  throw ModelError("the LM head is not a decoder-layer projection");
}

Matrix& layer_projection_weight(LlamaLayerWeights& l, ProjectionKind kind) {
  return const_cast<Matrix&>(layer_projection_weight(std::as_const(l), kind));
}

const Matrix& projection_weight(const LlamaWeights& weights, ProjectionId id) {
  check_layer(weights.config, id);
  if (id.kind == ProjectionKind::kLmHead) {
    if (weights.lm_head().size() == 0) {
      throw ModelError(
          "the LM head is not in memory: the weights were loaded without their "
          "embedding tables (quantize it from the files: quantized_projection)");
    }
    return weights.lm_head();
  }
  const Matrix& w =
      layer_projection_weight(weights.layers.at(static_cast<size_t>(id.layer)), id.kind);
  if (w.size() == 0) {
    throw ModelError("projection " + projection_name(id) +
                     " is not in memory: the weights were loaded without their decoder projections "
                     "(they run on the FHE workers)");
  }
  return w;
}

}  // namespace model
