#include "model/encrypted_backend.h"

#include <chrono>
#include <string>

#include "fhe/context.h"
#include "fhe/encryptor.h"
#include "fhe/params.h"
#include "fhe/plane_gemm.h"
#include "fhe/secret_key.h"
#include "model/error.h"
#include "model/quantize.h"

namespace model {
namespace {

// gemm.multiply(ct), adding its wall time to `seconds`.
fhe::CiphertextMatrix timed_multiply(const fhe::PlaneGemm& gemm, const fhe::CiphertextMatrix& ct,
                                     double& seconds) {
  const auto start = std::chrono::steady_clock::now();
  fhe::CiphertextMatrix product = gemm.multiply(ct);
  seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return product;
}

}  // namespace

// The worker's side of one projection (the int8 weight inside a PlaneGemm per direction) and
// the weight scales the participant needs to dequantize.
struct EncryptedBackend::Projection {
  std::unique_ptr<fhe::PlaneGemm> gemm;             // W * C
  std::unique_ptr<fhe::PlaneGemm> transposed_gemm;  // W^T * C, built on first use
  std::vector<int8_t> values;                       // row-major d_out x d_in, for the latter
  std::vector<float> scales;
};

EncryptedBackend::EncryptedBackend(const LlamaWeights& weights, std::unique_ptr<fhe::SecretKey> key)
    : config_(weights.config), key_(std::move(key)) {
  try {
    if (!key_) {
      key_ = std::make_unique<fhe::SecretKey>(fhe::SecretKey::generate(fhe::Context::create()));
    }
    encryptor_ = std::make_unique<fhe::Encryptor>(*key_);
    decryptor_ = std::make_unique<fhe::Decryptor>(*key_);
    for (const ProjectionId id : llama_projections(config_)) {
      QuantizedWeight q = quantize_weight_rows(projection_weight(weights, id));
      Projection p;
      p.gemm = std::make_unique<fhe::PlaneGemm>(key_->context_ptr(), q.values.data(),
                                                static_cast<size_t>(q.rows),
                                                static_cast<size_t>(q.cols), /*transpose=*/false);
      p.values = std::move(q.values);
      p.scales = std::move(q.scales);
      projections_.push_back(std::move(p));
    }
  } catch (const fhe::Error& e) {
    throw Error(std::string("encrypted backend: ") + e.what());
  }
}

EncryptedBackend::~EncryptedBackend() = default;

void EncryptedBackend::forward(ProjectionId id, const Activations& x, Activations& y) {
  const Projection& p = projections_[projection_index(config_, id)];
  const auto d_in = static_cast<int64_t>(p.gemm->in_dim());
  const auto d_out = static_cast<int64_t>(p.gemm->out_dim());
  if (x.rows() != d_in) {
    throw Error("projection " + projection_name(id) + ": input has " + std::to_string(x.rows()) +
                " features, the weight takes " + std::to_string(d_in));
  }
  const QuantizedTokens xq = quantize_tokens(x);
  const std::vector<int8_t> rows = feature_rows(xq);
  std::vector<int64_t> acc;
  try {
    const auto tokens = static_cast<size_t>(x.cols());
    const fhe::CiphertextMatrix ct =
        encryptor_->encrypt(rows.data(), static_cast<size_t>(d_in), tokens, p.gemm->bounds(),
                            static_cast<uint64_t>(d_out) * tokens);
    acc = decryptor_->decrypt(timed_multiply(*p.gemm, ct, server_seconds_));
  } catch (const fhe::Error& e) {
    throw Error("encrypted backend: projection " + projection_name(id) + ": " + e.what());
  }
  // acc is row-major d_out x T.
  dequantize_product(acc.data(), x.cols(), 1, p.scales, xq.scales, y);
}

void EncryptedBackend::backward(ProjectionId id, const Activations& g, Activations& dx) {
  Projection& p = projections_[projection_index(config_, id)];
  const auto d_in = static_cast<int64_t>(p.gemm->in_dim());
  const auto d_out = static_cast<int64_t>(p.gemm->out_dim());
  if (g.rows() != d_out) {
    throw Error("projection " + projection_name(id) + ": output gradient has " +
                std::to_string(g.rows()) + " features, the weight gives " + std::to_string(d_out));
  }
  const QuantizedTokens gq = quantize_gradients(g, p.scales);
  const std::vector<int8_t> rows = feature_rows(gq);  // d_out x T
  std::vector<int64_t> acc;
  try {
    if (!p.transposed_gemm) {
      p.transposed_gemm = std::make_unique<fhe::PlaneGemm>(
          key_->context_ptr(), p.values.data(), static_cast<size_t>(d_out),
          static_cast<size_t>(d_in), /*transpose=*/true);
    }
    const fhe::PlaneGemm& gemm = *p.transposed_gemm;
    const auto tokens = static_cast<size_t>(g.cols());
    const fhe::CiphertextMatrix ct =
        encryptor_->encrypt(rows.data(), static_cast<size_t>(d_out), tokens, gemm.bounds(),
                            static_cast<uint64_t>(d_in) * tokens);
    acc = decryptor_->decrypt(timed_multiply(gemm, ct, server_seconds_));
  } catch (const fhe::Error& e) {
    throw Error("encrypted backend: backward of projection " + projection_name(id) + ": " +
                e.what());
  }
  // acc is row-major d_in x T.
  dequantize_transposed_product(acc.data(), g.cols(), 1, d_in, gq.scales, dx);
}

}  // namespace model
