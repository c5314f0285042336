// The fingerprint of a model as the int8 paths see it: what a worker publishes in its ModelInfo
// (model_hash) and what a participant recomputes from its own checkpoint before it trusts the
// workers with a round.
//
// SHA-256 over, for layer = 0 .. L-1 and, inside each layer, projection q, k, v, o, gate, up,
// down in that order, then the LM head (lm_head.weight, or embed_tokens when the model ties
// them): the int8 weights of model::quantize_weight_rows row-major (d_out * d_in bytes) followed
// by the d_out float32 scales, little-endian. Two models whose int8 projections differ anywhere
// (other weights of the same shapes included) have different hashes.
//
//   model::ModelHasher h;                         // incremental, for a loader that quantizes
//   anyway for (...) h.add(quantized);                   // in the order above model::ModelHash
//   hash = h.finish(); model::ModelHash same = model::quantized_model_hash(weights);   // quantizes
//   one at a time
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "model/llama_weights.h"
#include "model/quantize.h"
#include "model/tensor_store.h"

namespace model {

using ModelHash = std::array<uint8_t, 32>;

class ModelHasher {
 public:
  ModelHasher();  // throws model::ModelError when SHA-256 is not available
  ~ModelHasher();
  ModelHasher(const ModelHasher&) = delete;
  ModelHasher& operator=(const ModelHasher&) = delete;

  void add(const QuantizedWeight& w);
  // The digest; the hasher cannot be used afterwards.
  ModelHash finish();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// Quantizes every projection of `weights` in the hash order (one at a time, so the extra memory
// is one int8 projection) and returns the hash.
ModelHash quantized_model_hash(const LlamaWeights& weights);
// The same hash read straight from a checkpoint (quantized_checkpoint.h): one tensor and one
// slice of rows at a time, so a participant that offloads its projections never holds them.
ModelHash quantized_model_hash(const TensorStore& store, const LlamaConfig& config);

// 64 lowercase hex digits.
std::string model_hash_hex(const ModelHash& hash);

}  // namespace model
