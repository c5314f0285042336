// Loading, quantizing and describing the model a worker serves.
#include "fhe_worker/worker_model.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <tuple>

#include "base/model_id.h"
#include "fhe/params.h"
#include "fhe_worker/error.h"
#include "model/error.h"
#include "model/llama_layout.h"
#include "model/model_hash.h"
#include "model/projection.h"
#include "model/quantized_checkpoint.h"

namespace fhe_worker {

static_assert(std::endian::native == std::endian::little, "scales are sent as LE");

// One projection of one layer: its int8 weight and both products.
struct WorkerModel::Slot {
  model::QuantizedWeight weight;
  protocol::LayerNorms norms;  // as ModelInfo lists them
  std::unique_ptr<fhe::ProductEvaluator> forward;
  mutable std::once_flag transposed_once;
  mutable std::unique_ptr<fhe::ProductEvaluator> transposed;
};

struct WorkerModel::RangedGemms {
  std::mutex mutex;
  // (the slot's address, transpose, begin, end)
  std::map<std::tuple<uintptr_t, bool, size_t, size_t>,
           std::shared_ptr<const fhe::ProductEvaluator>>
      gemms;
};

namespace {

size_t kind_index(protocol::ProjectionKind kind) {
  const auto it = std::find(kServedProjections.begin(), kServedProjections.end(), kind);
  if (it == kServedProjections.end()) {
    throw WorkerError("projection " + std::string(protocol::projection_name(kind)) +
                      " is not served");
  }
  return static_cast<size_t>(it - kServedProjections.begin());
}

constexpr size_t kLmHeadIndex = kLayerProjections.size();  // in kServedProjections
static_assert(kServedProjections[kLmHeadIndex] == protocol::ProjectionKind::kLmHead);

// Largest row (transpose = false) or column L1 norm and squared L2 norm of a row-major matrix.
void max_norms(const model::QuantizedWeight& w, bool transpose, uint64_t* l1, uint64_t* l2sq) {
  const auto rows = static_cast<size_t>(w.rows), cols = static_cast<size_t>(w.cols);
  const size_t outer = transpose ? cols : rows;
  std::vector<uint64_t> s1(outer, 0), s2(outer, 0);
  for (size_t i = 0; i < rows; ++i) {
    for (size_t j = 0; j < cols; ++j) {
      const int64_t v = w.values[i * cols + j];
      const size_t k = transpose ? j : i;
      s1[k] += static_cast<uint64_t>(std::abs(v));
      s2[k] += static_cast<uint64_t>(v * v);
    }
  }
  *l1 = *std::max_element(s1.begin(), s1.end());
  *l2sq = *std::max_element(s2.begin(), s2.end());
}

}  // namespace

model::ProjectionKind to_model_kind(protocol::ProjectionKind kind) {
  switch (kind) {
    case protocol::ProjectionKind::kQ:
      return model::ProjectionKind::kQ;
    case protocol::ProjectionKind::kK:
      return model::ProjectionKind::kK;
    case protocol::ProjectionKind::kV:
      return model::ProjectionKind::kV;
    case protocol::ProjectionKind::kO:
      return model::ProjectionKind::kO;
    case protocol::ProjectionKind::kGate:
      return model::ProjectionKind::kGate;
    case protocol::ProjectionKind::kUp:
      return model::ProjectionKind::kUp;
    case protocol::ProjectionKind::kDown:
      return model::ProjectionKind::kDown;
    case protocol::ProjectionKind::kLmHead:
      return model::ProjectionKind::kLmHead;
    default:
      break;
  }
  throw WorkerError("projection " + std::string(protocol::projection_name(kind)) +
                    " is not served");
}

LayerRange parse_layer_range(const std::string& text) {
  const auto number = [&](const std::string& part) -> uint32_t {
    if (part.empty() || part.size() > 6 ||
        part.find_first_not_of("0123456789") != std::string::npos) {
      throw WorkerError("--layers '" + text + "': expected a layer (3) or a range of layers (0-7)");
    }
    return static_cast<uint32_t>(std::stoul(part));
  };
  const size_t dash = text.find('-');
  LayerRange r;
  r.first = number(text.substr(0, dash));
  r.last = dash == std::string::npos ? r.first : number(text.substr(dash + 1));
  if (r.last < r.first) {
    throw WorkerError("--layers '" + text + "': the range ends before it starts");
  }
  return r;
}

std::unique_ptr<WorkerModel> WorkerModel::load(const std::filesystem::path& dir,
                                               WorkerModelOptions options) {
  if (options.model_id.empty()) options.model_id = base::default_model_id(dir);
  try {
    const model::LlamaConfig config = model::load_llama_config(dir);
    const model::TensorStore store = model::TensorStore::open(dir);
    model::check_llama_checkpoint(store, config);
    const WeightSource source = [&](model::ProjectionId id) {
      return model::quantize_checkpoint_projection(store, config, id);
    };
    return std::make_unique<WorkerModel>(config, source, std::move(options));
  } catch (const WorkerError&) {
    throw;
  } catch (const std::exception& e) {
    throw WorkerError("cannot load model " + dir.string() + ": " + e.what());
  }
}

WorkerModel::WorkerModel(const model::LlamaWeights& weights, WorkerModelOptions options)
    : WorkerModel(
          weights.config,
          [&](model::ProjectionId id) {
            return model::quantize_weight_rows(model::projection_weight(weights, id));
          },
          std::move(options)) {}

WorkerModel::WorkerModel(const model::LlamaConfig& config, const WeightSource& source,
                         WorkerModelOptions options)
    : options_(std::move(options)),
      model_id_(options_.model_id),
      ranged_(std::make_unique<RangedGemms>()) {
  if (model_id_.empty() || model_id_.size() > protocol::kMaxIdBytes) {
    throw WorkerError("model id must have 1.." + std::to_string(protocol::kMaxIdBytes) + " bytes");
  }
  const int64_t layers = config.num_hidden_layers;
  if (layers <= 0 || layers > static_cast<int64_t>(protocol::kMaxLayers)) {
    throw WorkerError("model has " + std::to_string(layers) + " layers (1.." +
                      std::to_string(protocol::kMaxLayers) + " served)");
  }
  layer_count_ = static_cast<uint32_t>(layers);
  layers_ = options_.layers.value_or(LayerRange{0, layer_count_ - 1});
  if (layers_.first > layers_.last || layers_.last >= layer_count_) {
    throw WorkerError("--layers " + std::to_string(layers_.first) + "-" +
                      std::to_string(layers_.last) + ": model '" + model_id_ + "' has layers 0-" +
                      std::to_string(layer_count_ - 1));
  }
  lm_head_ = options_.lm_head.value_or(!options_.layers.has_value());
  ctx_ = fhe::Context::create();
  info_.model_id = model_id_;
  info_.layer_count = layer_count_;
  std::vector<protocol::ProjectionInfo> infos(kServedProjections.size());
  for (size_t k = 0; k < kServedProjections.size(); ++k) infos[k].kind = kServedProjections[k];
  slots_.resize(static_cast<size_t>(layer_count_) * kLayerProjections.size() + 1);
  model::ModelHasher sha;  // the hash of model/model_hash.h, built as the projections load
  // Quantizes one projection, hashes it and, when held, keeps it in its slot and adds its norms
  // to its info entry.
  const auto prepare = [&](size_t k, uint32_t layer) {
    const protocol::ProjectionKind kind = kServedProjections[k];
    const model::ProjectionId id{to_model_kind(kind), kind == protocol::ProjectionKind::kLmHead
                                                          ? int64_t{0}
                                                          : static_cast<int64_t>(layer)};
    model::QuantizedWeight w = source(id);
    sha.add(w);
    protocol::ProjectionInfo& info = infos[k];
    info.rows = static_cast<uint64_t>(w.rows);
    info.cols = static_cast<uint64_t>(w.cols);
    if (!holds(layer, kind)) return;  // hashed, not kept
    auto slot = std::make_unique<Slot>();
    slot->weight = std::move(w);
    const model::QuantizedWeight& held = slot->weight;
    slot->forward = make_gemm(options_.device, ctx_,
                              fhe::ProductSpec{held.values.data(), static_cast<size_t>(held.rows),
                                               static_cast<size_t>(held.cols), false,
                                               options_.threads, !options_.packed_weights});
    protocol::LayerNorms norms;
    norms.layer = layer;
    max_norms(held, false, &norms.forward_l1, &norms.forward_l2_squared);
    max_norms(held, true, &norms.transpose_l1, &norms.transpose_l2_squared);
    info.norms.push_back(norms);
    slot->norms = norms;
    const size_t index =
        k == kLmHeadIndex ? slots_.size() - 1 : layer * kLayerProjections.size() + k;
    slots_[index] = std::move(slot);
  };
  try {
    for (uint32_t layer = 0; layer < layer_count_; ++layer) {
      for (size_t k = 0; k < kLayerProjections.size(); ++k) prepare(k, layer);
    }
    prepare(kLmHeadIndex, 0);
  } catch (const WorkerError&) {
    throw;
  } catch (const std::exception& e) {
    throw WorkerError(std::string("cannot prepare the model: ") + e.what());
  }
  // ModelInfo lists the kinds held, each with its scales blob (blob index = list position).
  for (auto& info : infos) {
    if (info.norms.empty()) continue;
    info.scales_blob = static_cast<uint32_t>(info_.projections.size());
    info_.projections.push_back(std::move(info));
  }
  hash_ = sha.finish();
  info_.model_hash = hash_;
}

WorkerModel::~WorkerModel() = default;

bool WorkerModel::serves(protocol::ProjectionKind kind) {
  return std::find(kServedProjections.begin(), kServedProjections.end(), kind) !=
         kServedProjections.end();
}

uint32_t WorkerModel::layers_of(protocol::ProjectionKind kind) const {
  return kind == protocol::ProjectionKind::kLmHead ? 1 : layer_count_;
}

bool WorkerModel::holds(uint32_t layer, protocol::ProjectionKind kind) const {
  if (kind == protocol::ProjectionKind::kLmHead) return lm_head_ && layer == 0;
  return serves(kind) && layer >= layers_.first && layer <= layers_.last;
}

std::string WorkerModel::holdings() const {
  std::string text = layers_.first == 0 && layers_.last + 1 == layer_count_
                         ? "every layer (0-" + std::to_string(layer_count_ - 1) + ")"
                     : layers_.first == layers_.last ? "layer " + std::to_string(layers_.first)
                                                     : "layers " + std::to_string(layers_.first) +
                                                           "-" + std::to_string(layers_.last);
  return text + (lm_head_ ? " and the LM head" : ", not the LM head");
}

const WorkerModel::Slot& WorkerModel::slot(uint32_t layer, protocol::ProjectionKind kind) const {
  const size_t k = kind_index(kind);
  if (layer >= layers_of(kind)) {
    throw WorkerError(std::string(protocol::projection_name(kind)) + " has no layer " +
                      std::to_string(layer));
  }
  if (!holds(layer, kind)) {
    throw WorkerError("this worker holds " + holdings() + " of model '" + model_id_ + "', not " +
                      std::string(protocol::projection_name(kind)) + " of layer " +
                      std::to_string(layer));
  }
  if (k == kLmHeadIndex) return *slots_.back();
  return *slots_[layer * kLayerProjections.size() + k];
}

const model::QuantizedWeight& WorkerModel::weight(uint32_t layer,
                                                  protocol::ProjectionKind kind) const {
  return slot(layer, kind).weight;
}

fhe::WeightBounds WorkerModel::bounds(uint32_t layer, protocol::ProjectionKind kind,
                                      bool transpose) const {
  const Slot& s = slot(layer, kind);  // checks kind and layer
  const model::QuantizedWeight& w = s.weight;
  const protocol::LayerNorms& n = s.norms;
  fhe::WeightBounds b;
  b.max_row_l1 = transpose ? n.transpose_l1 : n.forward_l1;
  b.max_row_l2 =
      std::sqrt(static_cast<double>(transpose ? n.transpose_l2_squared : n.forward_l2_squared));
  b.inner_dim = static_cast<uint64_t>(transpose ? w.rows : w.cols);
  return b;
}

const fhe::ProductEvaluator& WorkerModel::gemm(uint32_t layer, protocol::ProjectionKind kind,
                                               bool transpose) const {
  const Slot& s = slot(layer, kind);
  if (!transpose) return *s.forward;
  // A throwing call leaves the flag unset, so a later request tries again (and fails the same).
  std::call_once(s.transposed_once, [&] {
    const model::QuantizedWeight& w = s.weight;
    s.transposed = make_gemm(
        options_.device, ctx_,
        fhe::ProductSpec{w.values.data(), static_cast<size_t>(w.rows), static_cast<size_t>(w.cols),
                         true, options_.threads, !options_.packed_weights});
  });
  return *s.transposed;
}

std::shared_ptr<const fhe::ProductEvaluator> WorkerModel::gemm_rows(uint32_t layer,
                                                                    protocol::ProjectionKind kind,
                                                                    bool transpose, size_t begin,
                                                                    size_t end) const {
  const fhe::ProductEvaluator& whole = gemm(layer, kind, transpose);  // checks kind and layer
  if (begin >= end || end > whole.out_dim()) {
    throw fhe::FheError("output rows [" + std::to_string(begin) + ", " + std::to_string(end) +
                        ") are not inside the " + std::to_string(whole.out_dim()) + " rows of " +
                        std::string(protocol::projection_name(kind)) + (transpose ? "^T" : ""));
  }
  if (begin == 0 && end == whole.out_dim()) {
    return std::shared_ptr<const fhe::ProductEvaluator>(
        std::shared_ptr<const fhe::ProductEvaluator>(), &whole);  // not owned
  }
  if (options_.device.kind == Device::Kind::kCuda) {
    throw fhe::FheError("the " + options_.device.name() +
                        " device computes whole products only (no output row ranges); ask for "
                        "every row");
  }
  const Slot& s = slot(layer, kind);
  const auto key = std::tuple(reinterpret_cast<uintptr_t>(&s), transpose, begin, end);
  {
    std::lock_guard<std::mutex> lock(ranged_->mutex);
    if (auto it = ranged_->gemms.find(key); it != ranged_->gemms.end()) return it->second;
  }
  const model::QuantizedWeight& w = s.weight;
  const auto rows = static_cast<size_t>(w.rows), cols = static_cast<size_t>(w.cols);
  fhe::ProductSpec spec;
  spec.threads = options_.threads;
  spec.borrow = true;
  spec.transpose = transpose;
  if (!transpose) {  // rows [begin, end) of W: a dense block
    spec.w = w.values.data() + begin * cols;
    spec.d_out = end - begin;
    spec.d_in = cols;
  } else {  // columns [begin, end) of W
    spec.w = w.values.data() + begin;
    spec.d_out = rows;
    spec.d_in = end - begin;
    spec.stride = cols;
  }
  std::shared_ptr<const fhe::ProductEvaluator> built = make_gemm(options_.device, ctx_, spec);
  std::lock_guard<std::mutex> lock(ranged_->mutex);
  if (ranged_->gemms.size() >= kMaxRangedGemms) ranged_->gemms.clear();
  return ranged_->gemms.emplace(key, std::move(built)).first->second;
}

protocol::Message WorkerModel::info_message() const {
  protocol::Message m;
  for (const protocol::ProjectionInfo& p : info_.projections) {  // in scales-blob order
    std::vector<uint8_t> bytes;
    bytes.reserve(p.norms.size() * p.rows * sizeof(float));
    for (const protocol::LayerNorms& n : p.norms) {
      const auto& scales = slot(n.layer, p.kind).weight.scales;
      const auto* b = reinterpret_cast<const uint8_t*>(scales.data());
      bytes.insert(bytes.end(), b, b + scales.size() * sizeof(float));
    }
    auto desc = protocol::BlobDesc::make(protocol::DType::kFloat32, 32,
                                         {static_cast<uint64_t>(p.norms.size()), p.rows});
    if (!desc) throw WorkerError("scales blob: " + desc.error().message);
    auto blob = protocol::Blob::adopt(std::move(desc).value(), std::move(bytes));
    if (!blob) throw WorkerError("scales blob: " + blob.error().message);
    m.blobs.push_back(std::move(blob).value());
  }
  m.body = protocol::ModelInfoReply{info_};
  return m;
}

std::string WorkerModel::summary() const {
  std::ostringstream out;
  out << "model '" << model_id_ << "': " << layer_count_ << " layers, serving " << holdings();
  for (const auto& p : info_.projections) {
    out << ", " << protocol::projection_name(p.kind) << " " << p.rows << "x" << p.cols;
  }
  const fhe::ProductEvaluator* any = nullptr;
  for (const auto& slot : slots_) {
    if (slot && !any) any = slot->forward.get();
  }
  out << "; sha256 " << model::model_hash_hex(hash_) << "; device " << options_.device.name()
      << " (" << (any ? any->implementation() : "none") << ")";
  return out.str();
}

}  // namespace fhe_worker
