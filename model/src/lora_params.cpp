#include "model/lora_params.h"

#include <cmath>
#include <string>
#include <utility>

#include "model/error.h"

namespace model {

template <typename Scalar>
LoraParamsT<Scalar>::LoraParamsT(const LlamaConfig& model, const LoraConfig& config, bool with_a)
    : config_(config), layers_(model.num_hidden_layers) {
  validate_lora_config(config);
  slots_.assign(static_cast<size_t>(layers_ * kProjectionsPerLayer), -1);
  for (int64_t layer = 0; layer < layers_; ++layer) {
    for (int k = 0; k < kProjectionsPerLayer; ++k) {
      const auto kind = static_cast<ProjectionKind>(k);
      if (!config.targets_kind(kind)) continue;
      const ProjectionDims dims = projection_dims(model, kind);
      slots_[layer * kProjectionsPerLayer + k] = static_cast<int64_t>(pairs_.size());
      ids_.push_back({kind, layer});
      LoraPairT<Scalar> pair;
      if (with_a) pair.a.setZero(config.rank, dims.d_in);
      pair.b.setZero(dims.d_out, config.rank);
      pairs_.push_back(std::move(pair));
    }
  }
}

template <typename Scalar>
const LoraPairT<Scalar>* LoraParamsT<Scalar>::find(ProjectionId id) const {
  if (id.kind == ProjectionKind::kLmHead || id.layer < 0 || id.layer >= layers_) return nullptr;
  const int64_t slot = slots_[id.layer * kProjectionsPerLayer + static_cast<int64_t>(id.kind)];
  return slot < 0 ? nullptr : &pairs_[slot];
}

template <typename Scalar>
LoraPairT<Scalar>* LoraParamsT<Scalar>::find(ProjectionId id) {
  return const_cast<LoraPairT<Scalar>*>(std::as_const(*this).find(id));
}

template <typename Scalar>
const LoraPairT<Scalar>& LoraParamsT<Scalar>::at(ProjectionId id) const {
  const LoraPairT<Scalar>* p = find(id);
  if (!p) throw ModelError("LoRA: projection " + projection_name(id) + " carries no adapter");
  return *p;
}

template <typename Scalar>
LoraPairT<Scalar>& LoraParamsT<Scalar>::at(ProjectionId id) {
  return const_cast<LoraPairT<Scalar>&>(std::as_const(*this).at(id));
}

template <typename Scalar>
int64_t LoraParamsT<Scalar>::parameter_count() const {
  int64_t n = 0;
  for (const LoraPairT<Scalar>& p : pairs_) n += p.a.size() + p.b.size();
  return n;
}

template <typename Scalar>
double LoraParamsT<Scalar>::squared_norm() const {
  double sum = 0;
  for (const LoraPairT<Scalar>& p : pairs_) {
    sum += p.a.template cast<double>().squaredNorm() + p.b.template cast<double>().squaredNorm();
  }
  return sum;
}

template <typename Scalar>
void LoraParamsT<Scalar>::set_zero() {
  for (LoraPairT<Scalar>& p : pairs_) {
    p.a.setZero();
    p.b.setZero();
  }
}

template <typename Scalar>
LoraParamsT<Scalar>& LoraParamsT<Scalar>::operator+=(const LoraParamsT& other) {
  bool same = ids_ == other.ids_;
  for (size_t i = 0; same && i < pairs_.size(); ++i) {
    const LoraPairT<Scalar>& a = pairs_[i];
    const LoraPairT<Scalar>& b = other.pairs_[i];
    same = a.a.rows() == b.a.rows() && a.a.cols() == b.a.cols() && a.b.rows() == b.b.rows() &&
           a.b.cols() == b.b.cols();
  }
  if (!same) throw ModelError("LoRA: adding parameters of different targets or shapes");
  for (size_t i = 0; i < pairs_.size(); ++i) {
    pairs_[i].a += other.pairs_[i].a;
    pairs_[i].b += other.pairs_[i].b;
  }
  return *this;
}

template <typename Scalar>
LoraParamsT<Scalar>& LoraParamsT<Scalar>::operator*=(Scalar s) {
  for (LoraPairT<Scalar>& p : pairs_) {
    p.a *= s;
    p.b *= s;
  }
  return *this;
}

template <typename Scalar>
void LoraParamsT<Scalar>::check_fits(const LlamaConfig& model) const {
  if (layers_ != model.num_hidden_layers) {
    throw ModelError("LoRA: the adapter has " + std::to_string(layers_) + " layers, the model " +
                std::to_string(model.num_hidden_layers));
  }
  const int64_t r = config_.rank;
  for (size_t i = 0; i < ids_.size(); ++i) {
    const ProjectionDims dims = projection_dims(model, ids_[i].kind);
    const LoraPairT<Scalar>& p = pairs_[i];
    const bool a_fits = p.a.size() == 0 || (p.a.rows() == r && p.a.cols() == dims.d_in);
    if (!a_fits || p.b.rows() != dims.d_out || p.b.cols() != r) {
      throw ModelError("LoRA: the adapter of " + projection_name(ids_[i]) + " (A " +
                  std::to_string(p.a.rows()) + " x " + std::to_string(p.a.cols()) + ", B " +
                  std::to_string(p.b.rows()) + " x " + std::to_string(p.b.cols()) +
                  ") does not fit a " + std::to_string(dims.d_out) + " x " +
                  std::to_string(dims.d_in) + " projection at rank " + std::to_string(r));
    }
  }
}

LoraParams init_lora_params(const LlamaConfig& model, const LoraConfig& config,
                            std::mt19937_64& rng) {
  LoraParams params(model, config);
  for (const ProjectionId id : params.ids()) {
    LoraPair& p = params.at(id);
    const double bound = 1.0 / std::sqrt(static_cast<double>(p.a.cols()));
    float* a = p.a.data();
    for (int64_t i = 0; i < p.a.size(); ++i) {
      const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // [0, 1)
      a[i] = static_cast<float>((2 * u - 1) * bound);
    }
  }
  return params;
}

template class LoraParamsT<float>;
template class LoraParamsT<double>;

}  // namespace model
