// The model a worker serves: int8 weights, their GEMMs and the ModelInfo participants ask for.
//
// Loading quantizes every decoder-layer projection (q, k, v, o, gate, up, down of every layer)
// and the LM head (lm_head.weight, or embed_tokens when the model ties them) per output channel
// with model::quantize_weight_rows, the one quantization every int8 path of the project shares:
// scale = max|row| / 127 (1 for an all-zero row), each weight round-half-away-from-zero(w /
// scale) clamped to [-127, 127]. The LM head is served as layer 0 of kind lmHead: its ModelInfo
// entry has a [1, vocab] scales blob and one LayerNorms entry.
//
// The model hash (ModelInfo.model_hash, model/model_hash.h) is SHA-256 over, for layer = 0 .. L-1 and, inside each
// layer, projection q, k, v, o, gate, up, down in that order, then the LM head: the int8 weights
// row-major (d_out * d_in bytes) followed by the d_out float32 scales, little-endian. Anyone
// holding the checkpoint can recompute it (`fedctl export-int8` writes the same matrices).
//
// Forward GEMMs (W * C) are built at load time; transposed ones (W^T * C) on first use, safely
// from several threads. Everything else is immutable after construction.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "fhe/context.h"
#include "fhe/noise.h"
#include "fhe_worker/device.h"
#include "model/llama_weights.h"
#include "model/projection.h"
#include "model/quantize.h"
#include "protocol/messages.h"

namespace fhe_worker {

// The projections of every decoder layer, in the order of the hash.
inline constexpr std::array<protocol::ProjectionKind, 7> kLayerProjections = {
    protocol::ProjectionKind::kQ,   protocol::ProjectionKind::kK,    protocol::ProjectionKind::kV,
    protocol::ProjectionKind::kO,   protocol::ProjectionKind::kGate, protocol::ProjectionKind::kUp,
    protocol::ProjectionKind::kDown};

// The projections a worker serves, in the order of ModelInfo: the layer ones, then the LM head.
inline constexpr std::array<protocol::ProjectionKind, 8> kServedProjections = {
    protocol::ProjectionKind::kQ,    protocol::ProjectionKind::kK,
    protocol::ProjectionKind::kV,    protocol::ProjectionKind::kO,
    protocol::ProjectionKind::kGate, protocol::ProjectionKind::kUp,
    protocol::ProjectionKind::kDown, protocol::ProjectionKind::kLmHead};

// The model library's name for a served projection kind (throws Error for an unknown one).
model::ProjectionKind to_model_kind(protocol::ProjectionKind kind);

struct WorkerModelOptions {
  std::string model_id;  // empty: the model directory's name
  Device device;
  int threads = 0;  // threads per product; 0: all
};

class WorkerModel {
 public:
  // Loads config.json and the safetensors checkpoint of `dir`. Throws fhe_worker::Error.
  static std::unique_ptr<WorkerModel> load(const std::filesystem::path& dir,
                                           WorkerModelOptions options);
  // From weights in memory (options.model_id must not be empty).
  WorkerModel(const model::LlamaWeights& weights, WorkerModelOptions options);
  ~WorkerModel();
  WorkerModel(const WorkerModel&) = delete;
  WorkerModel& operator=(const WorkerModel&) = delete;

  const std::string& model_id() const { return model_id_; }
  const protocol::Hash& hash() const { return hash_; }
  uint32_t layer_count() const { return layer_count_; }
  const fhe::Context& context() const { return *ctx_; }
  const std::shared_ptr<const fhe::Context>& context_ptr() const { return ctx_; }
  const Device& device() const { return options_.device; }

  // True for the seven decoder-layer projections and the LM head.
  static bool serves(protocol::ProjectionKind kind);
  // The layers a served projection kind has: layer_count(), or 1 for the LM head (layer 0).
  uint32_t layers_of(protocol::ProjectionKind kind) const;

  // The int8 weight and scales of a served projection; layer < layers_of(kind).
  const model::QuantizedWeight& weight(uint32_t layer, protocol::ProjectionKind kind) const;
  // The row norms of W (transpose = false) or W^T as ModelInfo reports them (no GEMM is built):
  // what the noise budget of a product depends on.
  fhe::WeightBounds bounds(uint32_t layer, protocol::ProjectionKind kind, bool transpose) const;

  // The product by W (transpose = false) or W^T of a served projection; the transposed one is
  // built on first use. Throws fhe::Error when the implementation refuses that shape.
  const Gemm& gemm(uint32_t layer, protocol::ProjectionKind kind, bool transpose) const;

  // The ModelInfo (without the scales, which travel as blobs).
  const protocol::ModelInfo& info() const { return info_; }
  // A ModelInfoReply message: info() and one float32 [layers_of(kind), rows] scales blob per
  // projection.
  protocol::Message info_message() const;

  // One line for the start-up log: layers, shapes, hash, device, implementation.
  std::string summary() const;

 private:
  struct Slot;
  const Slot& slot(uint32_t layer, protocol::ProjectionKind kind) const;

  WorkerModelOptions options_;
  std::string model_id_;
  std::shared_ptr<const fhe::Context> ctx_;
  uint32_t layer_count_ = 0;
  // Layer-major in kLayerProjections order, then the LM head.
  std::vector<std::unique_ptr<Slot>> slots_;
  protocol::Hash hash_{};
  protocol::ModelInfo info_;
};

}  // namespace fhe_worker
