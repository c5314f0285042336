#include "model/decoder_layer.h"

#include "model/swiglu.h"

namespace model {

void decoder_layer_forward(int64_t layer, const LlamaLayerWeights& w, const LlamaConfig& config,
                           const RopeTable& rope, const TokenBatch& batch, LinearBackend& backend,
                           Activations& x, DecoderLayerCache* cache) {
  DecoderLayerCache local;
  DecoderLayerCache& c = cache ? *cache : local;
  const auto eps = static_cast<float>(config.rms_norm_eps);
  const auto project = [&](ProjectionKind kind, const Activations& in, Activations& out) {
    backend.forward({kind, layer}, in, out);
  };

  // Attention block.
  if (cache) c.input = x;
  rms_norm_forward(x, w.input_layernorm, eps, c.attn_norm, &c.attn_norm_stats);
  project(ProjectionKind::kQ, c.attn_norm, c.q);
  project(ProjectionKind::kK, c.attn_norm, c.k);
  project(ProjectionKind::kV, c.attn_norm, c.v);
  rope_forward(rope, batch, config.head_dim, c.q);
  rope_forward(rope, batch, config.head_dim, c.k);
  attention_forward(c.q, c.k, c.v, batch,
                    {config.num_attention_heads, config.num_key_value_heads, config.head_dim},
                    c.attn_out, cache ? &c.attention : nullptr);
  Activations projected;
  project(ProjectionKind::kO, c.attn_out, projected);
  x += projected;

  // MLP block.
  if (cache) c.mid = x;
  rms_norm_forward(x, w.post_attention_layernorm, eps, c.mlp_norm, &c.mlp_norm_stats);
  project(ProjectionKind::kGate, c.mlp_norm, c.gate);
  project(ProjectionKind::kUp, c.mlp_norm, c.up);
  swiglu_forward(c.gate, c.up, c.act);
  project(ProjectionKind::kDown, c.act, projected);
  x += projected;
}

}  // namespace model
