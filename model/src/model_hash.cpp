#include "model/model_hash.h"

#include <openssl/evp.h>

#include <bit>

#include "model/error.h"
#include "model/projection.h"
#include "model/quantized_checkpoint.h"

namespace model {

static_assert(std::endian::native == std::endian::little, "scales are hashed as little-endian");

struct ModelHasher::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

ModelHasher::ModelHasher() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  if (ctx_->md == nullptr || EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1) {
    throw ModelError("SHA-256 is not available");
  }
}

ModelHasher::~ModelHasher() = default;

void ModelHasher::add(const QuantizedWeight& w) {
  if (!ctx_) throw ModelError("model hash: add() after finish()");
  if (EVP_DigestUpdate(ctx_->md, w.values.data(), w.values.size()) != 1 ||
      EVP_DigestUpdate(ctx_->md, w.scales.data(), w.scales.size() * sizeof(float)) != 1) {
    throw ModelError("SHA-256 update failed");
  }
}

ModelHash ModelHasher::finish() {
  if (!ctx_) throw ModelError("model hash: finish() twice");
  ModelHash h{};
  unsigned len = 0;
  const bool ok = EVP_DigestFinal_ex(ctx_->md, h.data(), &len) == 1 && len == h.size();
  ctx_.reset();
  if (!ok) throw ModelError("SHA-256 failed");
  return h;
}

ModelHash quantized_model_hash(const LlamaWeights& weights) {
  ModelHasher h;
  // llama_projections lists every layer's q, k, v, o, gate, up, down, then the LM head.
  for (const ProjectionId id : llama_projections(weights.config)) {
    h.add(quantize_weight_rows(projection_weight(weights, id)));
  }
  return h.finish();
}

ModelHash quantized_model_hash(const TensorStore& store, const LlamaConfig& config) {
  ModelHasher h;
  for (const ProjectionId id : llama_projections(config)) {
    h.add(quantize_checkpoint_projection(store, config, id));
  }
  return h.finish();
}

std::string model_hash_hex(const ModelHash& hash) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(hash.size() * 2);
  for (const uint8_t b : hash) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

}  // namespace model
