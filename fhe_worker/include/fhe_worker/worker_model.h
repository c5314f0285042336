// The model a worker serves: int8 weights, their GEMMs and the ModelInfo participants ask for.
//
// Loading quantizes every decoder-layer projection (q, k, v, o, gate, up, down of every layer)
// and the LM head (lm_head.weight, or embed_tokens when the model ties them) per output channel
// with model::quantize_weight_rows, the one quantization every int8 path of the project shares:
// scale = max|row| / 127 (1 for an all-zero row), each weight round-half-away-from-zero(w /
// scale) clamped to [-127, 127]. The LM head is served as layer 0 of kind lmHead: its ModelInfo
// entry has a [1, vocab] scales blob and one LayerNorms entry.
//
// load() reads the checkpoint one tensor and one slice of rows at a time
// (model/quantized_checkpoint.h): the float32 weights are never in memory, so the worker's peak
// is its int8 weights plus one slice (with options.packed_weights, plus the packed copies). A
// layer-sharded worker (options.layers) keeps only the projections of its layers (and the LM head
// when options.lm_head): it still reads and quantizes every other tensor once, to compute the whole
// model's hash, and drops it. Requests for a layer it does not hold are refused with unknownLayer,
// naming the layers it holds.
//
// The model hash (ModelInfo.model_hash, model/model_hash.h) is SHA-256 over, for layer = 0 .. L-1
// and, inside each layer, projection q, k, v, o, gate, up, down in that order, then the LM head:
// the int8 weights row-major (d_out * d_in bytes) followed by the d_out float32 scales,
// little-endian. Anyone holding the checkpoint can recompute it (`fedctl export-int8` writes the
// same matrices).
//
// Forward GEMMs (W * C) are built at load time; transposed ones (W^T * C) on first use, safely
// from several threads. Everything else is immutable after construction.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
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

// The model library's name for a served projection kind (throws WorkerError for an unknown one).
model::ProjectionKind to_model_kind(protocol::ProjectionKind kind);

// Decoder layers [first, last], both included.
struct LayerRange {
  uint32_t first = 0, last = 0;
  bool operator==(const LayerRange&) const = default;
};

// "3" or "0-7" (0-based, both ends included). Throws WorkerError naming the text for anything else.
LayerRange parse_layer_range(const std::string& text);

struct WorkerModelOptions {
  std::string model_id;  // empty: the model directory's name (base::default_model_id)
  Device device;
  int threads = 0;  // threads per product; 0: all
  // The decoder layers served; all when unset. Must lie inside the model.
  std::optional<LayerRange> layers;
  // Whether the LM head is served; unset: when every layer is (no `layers`).
  std::optional<bool> lm_head;
  // false (default): each projection's int8 weight is held once, row-major, and both products
  // (W*C and W^T*C) read it in place: the worker's memory is its int8 weights. true: each
  // product keeps oneDNN's packed copy as well (faster CPU products, bench_fhe
  // borrowed_over_packed; up to three copies once the transposed products are built).
  bool packed_weights = false;
};

// The int8 weight of one projection, quantized by whoever holds the float weights.
using WeightSource = std::function<model::QuantizedWeight(model::ProjectionId)>;

class WorkerModel {
 public:
  // Loads config.json and the safetensors checkpoint of `dir`. Throws fhe_worker::WorkerError.
  static std::unique_ptr<WorkerModel> load(const std::filesystem::path& dir,
                                           WorkerModelOptions options);
  // From weights in memory (options.model_id must not be empty).
  WorkerModel(const model::LlamaWeights& weights, WorkerModelOptions options);
  // From `source`, asked once for every projection in the hash order (every layer's q .. down,
  // then the LM head); the ones this worker does not serve are hashed and dropped.
  WorkerModel(const model::LlamaConfig& config, const WeightSource& source,
              WorkerModelOptions options);
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
  // True when this worker holds `kind` of `layer` (its layer range, or the LM head).
  bool holds(uint32_t layer, protocol::ProjectionKind kind) const;
  // "layers 0-7 and the LM head", "every layer, not the LM head", ...: what this worker holds.
  std::string holdings() const;

  // The int8 weight and scales of a projection this worker holds (throws WorkerError otherwise).
  const model::QuantizedWeight& weight(uint32_t layer, protocol::ProjectionKind kind) const;
  // The row norms of W (transpose = false) or W^T as ModelInfo reports them (no GEMM is built):
  // what the noise budget of a product depends on.
  fhe::WeightBounds bounds(uint32_t layer, protocol::ProjectionKind kind, bool transpose) const;

  // The product by W (transpose = false) or W^T of a served projection; the transposed one is
  // built on first use. Throws fhe::FheError when the implementation refuses that shape.
  const fhe::ProductEvaluator& gemm(uint32_t layer, protocol::ProjectionKind kind,
                                    bool transpose) const;
  // The product of output rows [begin, end) of that matrix alone (a ranged request): rows of W,
  // or of W^T (columns of W, read in place with a row stride). Built on first use and kept
  // (at most kMaxRangedGemms, then the cache starts over; a product in use stays alive through
  // its shared_ptr); the whole range is gemm() itself. The weights are borrowed, never copied.
  // Throws fhe::FheError for an empty or out-of-range row range, and on a CUDA device (whose
  // products take whole matrices only: the participant then asks for whole products).
  std::shared_ptr<const fhe::ProductEvaluator> gemm_rows(uint32_t layer,
                                                         protocol::ProjectionKind kind,
                                                         bool transpose, size_t begin,
                                                         size_t end) const;
  static constexpr size_t kMaxRangedGemms = 4096;

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
  LayerRange layers_;    // held decoder layers
  bool lm_head_ = true;  // the LM head is held
  // Layer-major in kLayerProjections order, then the LM head; null where not held.
  std::vector<std::unique_ptr<Slot>> slots_;
  struct RangedGemms;
  std::unique_ptr<RangedGemms> ranged_;  // gemm_rows' cache
  protocol::Hash hash_{};
  protocol::ModelInfo info_;
};

}  // namespace fhe_worker
