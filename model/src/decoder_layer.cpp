#include "model/decoder_layer.h"

#include <span>
#include <string>
#include <vector>

#include "model/error.h"
#include "model/lora_branch.h"
#include "model/swiglu.h"
#include "model/weight_gradients.h"

namespace model {
namespace {

// The projections that share an input: one group of the backend each (linear_backend.h).
constexpr ProjectionKind kQkv[] = {ProjectionKind::kQ, ProjectionKind::kK, ProjectionKind::kV};
constexpr ProjectionKind kGateUp[] = {ProjectionKind::kGate, ProjectionKind::kUp};

AttentionShape attention_shape(const LlamaConfig& config) {
  return {config.num_attention_heads, config.num_key_value_heads, config.head_dim};
}

template <typename Scalar>
const LoraPairT<Scalar>* adapter(const LoraParamsT<Scalar>* lora, ProjectionId id) {
  return lora ? lora->find(id) : nullptr;
}

}  // namespace

template <typename Scalar>
void decoder_layer_forward(int64_t layer, const LlamaLayerWeights& w, const LlamaConfig& config,
                           const RopeTable& rope, const TokenBatch& batch,
                           LinearBackendT<Scalar>& backend, ActivationsT<Scalar>& x,
                           std::type_identity_t<DecoderLayerCacheT<Scalar>>* cache,
                           const std::type_identity_t<LoraParamsT<Scalar>>* lora) {
  DecoderLayerCacheT<Scalar> local;
  DecoderLayerCacheT<Scalar>& c = cache ? *cache : local;
  const auto eps = static_cast<Scalar>(config.rms_norm_eps);
  const auto scaling = static_cast<Scalar>(lora ? lora->config().scaling() : 0.0);
  // The adapter's branch of `kind` on top of out = W in: out += s B A in.
  const auto adapt = [&](ProjectionKind kind, const ActivationsT<Scalar>& in,
                         ActivationsT<Scalar>& out) {
    ActivationsT<Scalar>& ax = c.lora_ax[static_cast<size_t>(kind)];
    if (const LoraPairT<Scalar>* pair = adapter(lora, ProjectionId{kind, layer})) {
      lora_forward(*pair, scaling, in, out, ax);
    } else {
      ax.resize(0, 0);
    }
  };
  // out = W in (+ s B A in).
  const auto project = [&](ProjectionKind kind, const ActivationsT<Scalar>& in,
                           ActivationsT<Scalar>& out) {
    backend.forward(ProjectionId{kind, layer}, in, out);
    adapt(kind, in, out);
  };
  // The same for projections that share their input, as one group of the backend.
  const auto project_group = [&](std::span<const ProjectionKind> kinds,
                                 const ActivationsT<Scalar>& in,
                                 std::span<ActivationsT<Scalar>* const> outs) {
    std::vector<ProjectionId> ids;
    for (const ProjectionKind kind : kinds) ids.push_back({kind, layer});
    backend.forward_group(ids, in, outs);
    for (size_t j = 0; j < kinds.size(); ++j) adapt(kinds[j], in, *outs[j]);
  };

  // Attention block.
  if (cache) c.input = x;
  rms_norm_forward(x, w.input_layernorm.cast<Scalar>(), eps, c.attn_norm, &c.attn_norm_stats);
  ActivationsT<Scalar>* const qkv[] = {&c.q, &c.k, &c.v};
  project_group(kQkv, c.attn_norm, qkv);
  rope_forward(rope, batch, config.head_dim, c.q);
  rope_forward(rope, batch, config.head_dim, c.k);
  attention_forward(c.q, c.k, c.v, batch, attention_shape(config), c.attn_out,
                    cache ? &c.attention : nullptr);
  ActivationsT<Scalar> projected;
  project(ProjectionKind::kO, c.attn_out, projected);
  x += projected;

  // MLP block.
  if (cache) c.mid = x;
  rms_norm_forward(x, w.post_attention_layernorm.cast<Scalar>(), eps, c.mlp_norm,
                   &c.mlp_norm_stats);
  ActivationsT<Scalar>* const gate_up[] = {&c.gate, &c.up};
  project_group(kGateUp, c.mlp_norm, gate_up);
  swiglu_forward(c.gate, c.up, c.act);
  project(ProjectionKind::kDown, c.act, projected);
  x += projected;
}

template <typename Scalar>
void decoder_layer_backward(int64_t layer, const LlamaLayerWeights& w, const LlamaConfig& config,
                            const RopeTable& rope, const TokenBatch& batch,
                            LinearBackendT<Scalar>& backend,
                            const std::type_identity_t<DecoderLayerCacheT<Scalar>>& c,
                            std::type_identity_t<ActivationsT<Scalar>>& dx,
                            const std::type_identity_t<LoraParamsT<Scalar>>* lora,
                            std::type_identity_t<LoraGradientsT<Scalar>>* grads,
                            LlamaLayerWeights* weight_grads) {
  const int64_t tokens = batch.total_tokens();
  if (dx.rows() != config.hidden_size || dx.cols() != tokens || c.input.cols() != tokens ||
      c.mid.cols() != tokens) {
    throw ModelError("decoder layer " + std::to_string(layer) + " backward: gradient " +
                     std::to_string(dx.rows()) + " x " + std::to_string(dx.cols()) +
                     " or cache does not fit the batch of " + std::to_string(tokens) + " tokens");
  }
  if (lora && !grads) {
    throw ModelError("decoder layer backward: an adapter needs somewhere to put its gradients");
  }
  if (grads && !grads->per_example.empty() &&
      static_cast<int64_t>(grads->per_example.size()) != batch.sequence_count()) {
    throw ModelError("decoder layer backward: " + std::to_string(grads->per_example.size()) +
                     " per-example gradients for " + std::to_string(batch.sequence_count()) +
                     " sequences");
  }
  const auto scaling = static_cast<Scalar>(lora ? lora->config().scaling() : 0.0);

  // The adapter's share of `kind` on top of out = W^T g: out += s A^T B^T g, and its weight
  // gradients.
  const auto adapt_back = [&](ProjectionKind kind, const ActivationsT<Scalar>& in,
                              const ActivationsT<Scalar>& g, ActivationsT<Scalar>& out) {
    const ProjectionId id{kind, layer};
    const LoraPairT<Scalar>* pair = adapter(lora, id);
    if (pair == nullptr) return;
    const ActivationsT<Scalar>& ax = c.lora_ax[static_cast<size_t>(kind)];
    if (ax.cols() != tokens) {
      throw ModelError("decoder layer backward: the forward pass ran without the adapter of " +
                       projection_name(id));
    }
    lora_input_backward(*pair, scaling, g, out);
    lora_weight_backward(*pair, scaling, in, ax, g, 0, tokens, grads->batch.at(id));
    for (size_t s = 0; s < grads->per_example.size(); ++s) {
      const SequenceSpan span = batch.spans()[s];
      lora_weight_backward(*pair, scaling, in, ax, g, span.begin, span.length,
                           grads->per_example[s].at(id));
    }
  };
  // out = W^T g (+ s A^T B^T g).
  const auto project_back = [&](ProjectionKind kind, const ActivationsT<Scalar>& in,
                                const ActivationsT<Scalar>& g, ActivationsT<Scalar>& out) {
    backend.backward(ProjectionId{kind, layer}, g, out);
    if (weight_grads) add_weight_gradient(g, in, layer_projection_weight(*weight_grads, kind));
    adapt_back(kind, in, g, out);
  };
  // out = sum_j W_j^T g_j (+ s A_j^T B_j^T g_j) for projections that share their input `in`, the
  // frozen part as one group of the backend.
  const auto project_back_group =
      [&](std::span<const ProjectionKind> kinds, const ActivationsT<Scalar>& in,
          std::span<const ActivationsT<Scalar>* const> gs, ActivationsT<Scalar>& out) {
        std::vector<ProjectionId> ids;
        for (const ProjectionKind kind : kinds) ids.push_back({kind, layer});
        backend.backward_group(ids, gs, out);
        for (size_t j = 0; j < kinds.size(); ++j) {
          if (weight_grads) {
            add_weight_gradient(*gs[j], in, layer_projection_weight(*weight_grads, kinds[j]));
          }
          adapt_back(kinds[j], in, *gs[j], out);
        }
      };

  // dL/dx of a norm and, for full-parameter training, dL/dweight added into `dweight`.
  const auto norm_back = [&](const ActivationsT<Scalar>& in, const Vector& weight,
                             const RmsNormCacheT<Scalar>& stats, const ActivationsT<Scalar>& dy,
                             ActivationsT<Scalar>& out, Vector* dweight) {
    if (!dweight) {
      rms_norm_backward(in, weight.cast<Scalar>(), stats, dy, out);
      return;
    }
    VectorT<Scalar> dw = VectorT<Scalar>::Zero(weight.size());
    rms_norm_backward(in, weight.cast<Scalar>(), stats, dy, out, &dw);
    *dweight += dw.template cast<float>();
  };

  // MLP block: y = h + down(act), act = silu(gate(m)) * up(m), m = norm(h).
  ActivationsT<Scalar> d_act, d_gate, d_up, d_norm, d_res;
  project_back(ProjectionKind::kDown, c.act, dx, d_act);
  swiglu_backward(c.gate, c.up, d_act, d_gate, d_up);
  const ActivationsT<Scalar>* const d_gate_up[] = {&d_gate, &d_up};
  project_back_group(kGateUp, c.mlp_norm, d_gate_up, d_norm);
  norm_back(c.mid, w.post_attention_layernorm, c.mlp_norm_stats, d_norm, d_res,
            weight_grads ? &weight_grads->post_attention_layernorm : nullptr);
  dx += d_res;  // dL/dh

  // Attention block: h = x + o(attention(rope(q(n)), rope(k(n)), v(n))), n = norm(x).
  ActivationsT<Scalar> d_attn, dq, dk, dv;
  project_back(ProjectionKind::kO, c.attn_out, dx, d_attn);
  attention_backward(c.q, c.k, c.v, batch, attention_shape(config), c.attention, d_attn, dq, dk,
                     dv);
  rope_backward(rope, batch, config.head_dim, dq);
  rope_backward(rope, batch, config.head_dim, dk);
  const ActivationsT<Scalar>* const d_qkv[] = {&dq, &dk, &dv};
  project_back_group(kQkv, c.attn_norm, d_qkv, d_norm);
  norm_back(c.input, w.input_layernorm, c.attn_norm_stats, d_norm, d_res,
            weight_grads ? &weight_grads->input_layernorm : nullptr);
  dx += d_res;  // dL/dx
}

template void decoder_layer_forward<float>(int64_t, const LlamaLayerWeights&, const LlamaConfig&,
                                           const RopeTable&, const TokenBatch&,
                                           LinearBackendT<float>&, ActivationsT<float>&,
                                           DecoderLayerCacheT<float>*, const LoraParamsT<float>*);
template void decoder_layer_forward<double>(int64_t, const LlamaLayerWeights&, const LlamaConfig&,
                                            const RopeTable&, const TokenBatch&,
                                            LinearBackendT<double>&, ActivationsT<double>&,
                                            DecoderLayerCacheT<double>*,
                                            const LoraParamsT<double>*);
template void decoder_layer_backward<float>(int64_t, const LlamaLayerWeights&, const LlamaConfig&,
                                            const RopeTable&, const TokenBatch&,
                                            LinearBackendT<float>&,
                                            const DecoderLayerCacheT<float>&, ActivationsT<float>&,
                                            const LoraParamsT<float>*, LoraGradientsT<float>*,
                                            LlamaLayerWeights*);
template void decoder_layer_backward<double>(int64_t, const LlamaLayerWeights&, const LlamaConfig&,
                                             const RopeTable&, const TokenBatch&,
                                             LinearBackendT<double>&,
                                             const DecoderLayerCacheT<double>&,
                                             ActivationsT<double>&, const LoraParamsT<double>*,
                                             LoraGradientsT<double>*, LlamaLayerWeights*);

}  // namespace model
