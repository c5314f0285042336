// The trainable parameters of a LoRA adapter over a whole model (lora_config.h): one (A, B)
// pair per targeted projection of every decoder layer, stored like the base weights (row-major,
// PEFT's lora_A.weight [rank, d_in] and lora_B.weight [d_out, rank]).
//
// Gradients use the same type and shapes, except that the A of a frozen (FFA-LoRA) adapter has
// no gradient: its matrix stays empty (0 x 0).
//
//   std::mt19937_64 rng(seed);  // the training RNG; never the one that makes keys or DP noise
//   model::LoraParams lora = model::init_lora_params(llama.config(), lora_config, rng);
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "model/activations.h"
#include "model/llama_config.h"
#include "model/lora_config.h"
#include "model/projection.h"

namespace model {

template <typename Scalar>
struct LoraPairT {
  RowMatrixT<Scalar> a;  // rank x d_in
  RowMatrixT<Scalar> b;  // d_out x rank
};

template <typename Scalar>
class LoraParamsT {
 public:
  LoraParamsT() = default;
  // Zero A and B, shaped for every target of every layer of `model`; every A stays empty when
  // `with_a` is false (the gradients of a frozen-A adapter). Throws model::ModelError for an
  // invalid config (validate_lora_config).
  LoraParamsT(const LlamaConfig& model, const LoraConfig& config, bool with_a = true);

  const LoraConfig& config() const { return config_; }
  int64_t layers() const { return layers_; }
  // The projections that carry a pair, in forward order (layer 0's targets, layer 1's, ...).
  const std::vector<ProjectionId>& ids() const { return ids_; }
  // The pair of `id`, or null when `id` carries none.
  const LoraPairT<Scalar>* find(ProjectionId id) const;
  LoraPairT<Scalar>* find(ProjectionId id);
  // The same, throwing model::ModelError when `id` carries none.
  const LoraPairT<Scalar>& at(ProjectionId id) const;
  LoraPairT<Scalar>& at(ProjectionId id);

  // Elements of every non-empty matrix.
  int64_t parameter_count() const;
  // Sum of the squares of every element, in double (the L2 norm DP-SGD clips).
  double squared_norm() const;
  void set_zero();
  // Element-wise sum; throws model::ModelError unless `other` has the same targets and shapes.
  LoraParamsT& operator+=(const LoraParamsT& other);
  // Element-wise multiplication by s.
  LoraParamsT& operator*=(Scalar s);

  // Throws model::ModelError unless this adapter fits `model`: the same number of layers and every
  // A (when not empty) rank x d_in, every B d_out x rank.
  void check_fits(const LlamaConfig& model) const;

  // The same parameters in another scalar type.
  template <typename Other>
  LoraParamsT<Other> cast() const {
    LoraParamsT<Other> out;
    out.config_ = config_;
    out.layers_ = layers_;
    out.ids_ = ids_;
    out.slots_ = slots_;
    for (const LoraPairT<Scalar>& p : pairs_) {
      out.pairs_.push_back({p.a.template cast<Other>(), p.b.template cast<Other>()});
    }
    return out;
  }

 private:
  template <typename>
  friend class LoraParamsT;

  LoraConfig config_;
  int64_t layers_ = 0;
  std::vector<ProjectionId> ids_;
  std::vector<LoraPairT<Scalar>> pairs_;  // parallel to ids_
  std::vector<int64_t> slots_;            // layer * kProjectionsPerLayer + kind -> pair, or -1
};

using LoraPair = LoraPairT<float>;
using LoraParams = LoraParamsT<float>;

// PEFT's initialisation: B = 0, so the adapted model starts as the base model, and A as
// torch.nn.Linear's kaiming_uniform_(a = sqrt(5)): uniform in [-bound, bound] with
// bound = sqrt(6 / ((1 + a^2) * d_in)) = 1 / sqrt(d_in). A's elements are drawn from `rng` in
// forward order (targets in ids() order, each A row-major), each as float((2u - 1) * bound)
// with u = (rng() >> 11) * 2^-53, so a seed gives the same adapter on every platform. `rng` is
// a training RNG (not cryptographic); keep it apart from key and DP-noise randomness.
LoraParams init_lora_params(const LlamaConfig& model, const LoraConfig& config,
                            std::mt19937_64& rng);

}  // namespace model
