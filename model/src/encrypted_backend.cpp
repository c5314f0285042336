#include "model/encrypted_backend.h"

#include <chrono>
#include <string>

#include "fhe/context.h"
#include "fhe/encryptor.h"
#include "fhe/params.h"
#include "fhe/secret_key.h"
#include "model/error.h"
#include "model/quantize.h"

namespace model {
namespace {

std::unique_ptr<fhe::SecretKey> key_or_fresh(std::unique_ptr<fhe::SecretKey> key) {
  if (key) return key;
  try {
    return std::make_unique<fhe::SecretKey>(fhe::SecretKey::generate(fhe::Context::create()));
  } catch (const fhe::Error& e) {
    throw Error(std::string("encrypted backend: ") + e.what());
  }
}

uint64_t nanos_between(std::chrono::steady_clock::time_point a,
                       std::chrono::steady_clock::time_point b) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

}  // namespace

EncryptedBackend::EncryptedBackend(const LlamaWeights& weights, std::unique_ptr<fhe::SecretKey> key)
    : config_(weights.config), key_(key_or_fresh(std::move(key))) {
  encryptor_ = std::make_unique<fhe::Encryptor>(*key_);
  decryptor_ = std::make_unique<fhe::Decryptor>(*key_);
  products_ = std::make_unique<LocalEncryptedProducts>(weights, key_->context_ptr());
}

EncryptedBackend::EncryptedBackend(const LlamaConfig& config,
                                   std::unique_ptr<EncryptedProducts> products,
                                   std::unique_ptr<fhe::SecretKey> key)
    : config_(config), key_(key_or_fresh(std::move(key))), products_(std::move(products)) {
  if (!products_) throw Error("encrypted backend: no products");
  encryptor_ = std::make_unique<fhe::Encryptor>(*key_);
  decryptor_ = std::make_unique<fhe::Decryptor>(*key_);
}

EncryptedBackend::~EncryptedBackend() = default;

std::vector<int64_t> EncryptedBackend::product(ProjectionId id, bool transpose,
                                               const std::vector<int8_t>& rows, int64_t features,
                                               int64_t out_features, int64_t tokens) {
  const auto t = static_cast<size_t>(tokens);
  const auto encrypt_start = std::chrono::steady_clock::now();
  const fhe::CiphertextMatrix ct = encryptor_->encrypt(rows.data(), static_cast<size_t>(features),
                                                       t, products_->bounds(id, transpose),
                                                       static_cast<uint64_t>(out_features) * t);
  const auto start = std::chrono::steady_clock::now();
  const fhe::CiphertextMatrix y = products_->multiply(id, transpose, ct);
  const auto done = std::chrono::steady_clock::now();
  server_seconds_ += std::chrono::duration<double>(done - start).count();
  if (y.rows != static_cast<uint64_t>(out_features) || y.cols != ct.cols) {
    throw Error("the product has shape " + std::to_string(y.rows) + " x " + std::to_string(y.cols) +
                ", expected " + std::to_string(out_features) + " x " + std::to_string(ct.cols));
  }
  std::vector<int64_t> acc = decryptor_->decrypt(y);
  if (timings_ != nullptr) {
    timings_->encrypt_ns += nanos_between(encrypt_start, start);
    timings_->multiply_ns += nanos_between(start, done);
    timings_->decrypt_ns += nanos_between(done, std::chrono::steady_clock::now());
    ++timings_->products;
  }
  return acc;
}

void EncryptedBackend::forward(ProjectionId id, const Activations& x, Activations& y) {
  const auto [d_out, d_in] = products_->dims(id);
  if (x.rows() != d_in) {
    throw Error("projection " + projection_name(id) + ": input has " + std::to_string(x.rows()) +
                " features, the weight takes " + std::to_string(d_in));
  }
  auto phase = std::chrono::steady_clock::now();
  const QuantizedTokens xq = quantize_tokens(x);
  const std::vector<int8_t> rows = feature_rows(xq);
  if (timings_ != nullptr)
    timings_->quantize_ns += nanos_between(phase, std::chrono::steady_clock::now());
  std::vector<int64_t> acc;
  try {
    acc = product(id, /*transpose=*/false, rows, d_in, d_out, x.cols());
  } catch (const std::runtime_error& e) {  // fhe::Error, model::Error
    throw Error("encrypted backend: projection " + projection_name(id) + ": " + e.what());
  }
  // acc is row-major d_out x T.
  phase = std::chrono::steady_clock::now();
  dequantize_product(acc.data(), x.cols(), 1, products_->scales(id), xq.scales, y);
  if (timings_ != nullptr) {
    timings_->dequantize_ns += nanos_between(phase, std::chrono::steady_clock::now());
  }
}

void EncryptedBackend::backward(ProjectionId id, const Activations& g, Activations& dx) {
  const auto [d_out, d_in] = products_->dims(id);
  if (g.rows() != d_out) {
    throw Error("projection " + projection_name(id) + ": output gradient has " +
                std::to_string(g.rows()) + " features, the weight gives " + std::to_string(d_out));
  }
  auto phase = std::chrono::steady_clock::now();
  const QuantizedTokens gq = quantize_gradients(g, products_->scales(id));
  const std::vector<int8_t> rows = feature_rows(gq);
  if (timings_ != nullptr)
    timings_->quantize_ns += nanos_between(phase, std::chrono::steady_clock::now());
  std::vector<int64_t> acc;
  try {
    acc = product(id, /*transpose=*/true, rows, d_out, d_in, g.cols());
  } catch (const std::runtime_error& e) {  // fhe::Error, model::Error
    throw Error("encrypted backend: backward of projection " + projection_name(id) + ": " +
                e.what());
  }
  // acc is row-major d_in x T.
  phase = std::chrono::steady_clock::now();
  dequantize_transposed_product(acc.data(), g.cols(), 1, d_in, gq.scales, dx);
  if (timings_ != nullptr) {
    timings_->dequantize_ns += nanos_between(phase, std::chrono::steady_clock::now());
  }
}

}  // namespace model
