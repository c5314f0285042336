// The frozen linear projections of a Llama model and how to name them.
//
// Every matrix product with a base weight goes through a LinearBackend (linear_backend.h),
// addressed by a ProjectionId: the seven projections of each decoder layer and the LM head.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/llama_config.h"
#include "model/llama_weights.h"

namespace model {

enum class ProjectionKind { kQ, kK, kV, kO, kGate, kUp, kDown, kLmHead };

// Projections per decoder layer (q, k, v, o, gate, up, down).
inline constexpr int64_t kProjectionsPerLayer = 7;

struct ProjectionId {
  ProjectionKind kind = ProjectionKind::kQ;
  int64_t layer = 0;  // 0 for the LM head

  static ProjectionId lm_head() { return {ProjectionKind::kLmHead, 0}; }
  bool operator==(const ProjectionId&) const = default;
};

// "layers.3.q_proj", "layers.0.down_proj", "lm_head".
std::string projection_name(ProjectionId id);

// The module name of a decoder-layer projection as Hugging Face and PEFT spell it: "q_proj",
// ..., "down_proj" ("lm_head" for the LM head).
std::string projection_module_name(ProjectionKind kind);

// The decoder-layer projection of a module name, "q_proj" or its short form "q" (likewise k, v,
// o, gate, up, down). Throws model::ModelError for anything else.
ProjectionKind parse_projection_module(std::string_view name);

// Every projection of the model in forward order: layer 0's q, k, v, o, gate, up, down, layer
// 1's, ..., then the LM head.
std::vector<ProjectionId> llama_projections(const LlamaConfig& config);

// The position of `id` in llama_projections(config). Throws model::ModelError for a layer out of
// range.
size_t projection_index(const LlamaConfig& config, ProjectionId id);

// The shape of a projection's weight: y (d_out) = W x (d_in).
struct ProjectionDims {
  int64_t d_out = 0;
  int64_t d_in = 0;
};
ProjectionDims projection_dims(const LlamaConfig& config, ProjectionKind kind);

// The matrix of a decoder-layer projection (q ... down) of `layer` (a layer's weights, or the
// same structure holding their gradients, weight_gradients.h). Throws model::ModelError for the
// LM head, which is not one.
const Matrix& layer_projection_weight(const LlamaLayerWeights& layer, ProjectionKind kind);
Matrix& layer_projection_weight(LlamaLayerWeights& layer, ProjectionKind kind);

// The [d_out, d_in] weight of `id` (the LM head is embed_tokens when the embeddings are tied).
// Throws model::ModelError for a layer out of range.
const Matrix& projection_weight(const LlamaWeights& weights, ProjectionId id);

}  // namespace model
