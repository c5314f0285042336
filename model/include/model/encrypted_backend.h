// EncryptedBackend: each projection through RLWE encryption.
//
// The participant's half of every projection lives here: it quantizes the activations per token
// (exactly as Int8Backend), encrypts them (tokens along polynomial coefficients, scale chosen
// from the projection's real weight bounds), hands the ciphertext to an EncryptedProducts
// (encrypted_products.h) for the worker's half, W * C, decrypts the exact int64 accumulators and
// dequantizes with the same function as Int8Backend. Its outputs therefore equal Int8Backend's
// bit for bit, wherever the products are computed: in this process (LocalEncryptedProducts, the
// default) or on remote fhe_workers (participant::RemoteEncryptedBackend). Batches of more than
// 2048 tokens span several ciphertext blocks. The secret key never leaves this object.
//
// backward() does the same for dx = W^T G: the participant folds the weight scales into the
// gradients and quantizes them per token (quantize_gradients), encrypts G'q (d_out rows), the
// products multiply by the transposed int8 weight (whose bounds are W's column norms), and the
// decrypted accumulators dequantize with dequantize_transposed_product: bit for bit
// Int8Backend::backward.
//
// Groups (linear_backend.h): forward_group() quantizes and encrypts the shared input once (its
// scale chosen for the largest row norms of the group) and has EncryptedProducts::multiply_group
// form every product of that one ciphertext; the results equal separate forward() calls bit for
// bit. backward_group() quantizes the gradients as Int8Backend::backward_group does (stacked,
// one scale per token: quantize_stacked_gradients), encrypts the stack once and gets ONE product
// sum_j W_j^T C_j (multiply_stacked), decrypted once: bit for bit Int8Backend::backward_group.
// When the noise bound refuses the stacked inner dimension (gate + up of a wide model), the
// stack is split into runs of consecutive projections that fit (at worst one per projection),
// each encrypted and decrypted on its own, and their exact int64 accumulators are summed: the
// same result. Products that refuse to stack (StackedProductRefused) are split the same way, from
// then on.
//
// Not thread-safe: one caller at a time.
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <vector>

#include "fhe/secret_key.h"
#include "model/encrypted_products.h"
#include "model/linear_backend.h"
#include "model/llama_weights.h"

namespace fhe {
class Decryptor;
class Encryptor;
}  // namespace fhe

namespace model {

// Where the participant's time of its encrypted products goes, for benchmarks: wall-clock
// nanoseconds summed over every forward and backward since the sink was set. multiply_ns is
// the EncryptedProducts' call (in process: the evaluator's product; remote: the whole round
// trip).
// decrypt_ns includes the dequantization of a product decrypted straight into floats (every
// product but the stacked backward's exact sum); dequantize_ns counts the rest.
struct ProductTimings {
  uint64_t quantize_ns = 0, encrypt_ns = 0, multiply_ns = 0, decrypt_ns = 0, dequantize_ns = 0;
  uint64_t products = 0;
};

class EncryptedBackend : public LinearBackend {
 public:
  // In process: quantizes every projection of `weights` into LocalEncryptedProducts, whose
  // products `factory` builds (the CPU evaluator by default; fhe::cuda_evaluator_factory for a
  // GPU: the same results bit for bit). Encrypts under `key`, or under a fresh key of the default
  // parameter set (P48) when `key` is null.
  explicit EncryptedBackend(const LlamaWeights& weights,
                            std::unique_ptr<fhe::SecretKey> key = nullptr,
                            EvaluatorFactory factory = fhe::make_cpu_evaluator);
  // The products come from `products`, which must know every projection of `config` with
  // matching shapes (checked on use). Key as above.
  EncryptedBackend(const LlamaConfig& config, std::unique_ptr<EncryptedProducts> products,
                   std::unique_ptr<fhe::SecretKey> key = nullptr);
  ~EncryptedBackend() override;
  EncryptedBackend(const EncryptedBackend&) = delete;
  EncryptedBackend& operator=(const EncryptedBackend&) = delete;

  // Throw model::ModelError naming the projection when the fhe library or the products refuse.
  void forward(ProjectionId id, const Activations& x, Activations& y) override;
  void backward(ProjectionId id, const Activations& g, Activations& dx) override;
  void forward_group(std::span<const ProjectionId> ids, const Activations& x,
                     std::span<Activations* const> ys) override;
  void backward_group(std::span<const ProjectionId> ids, std::span<const Activations* const> gs,
                      Activations& dx) override;
  std::string_view name() const override { return "encrypted"; }

  // Seconds spent inside the worker's products (EncryptedProducts::multiply, forward and
  // backward; for remote products the whole round trip) since construction or the last reset:
  // the part of the work a remote FHE worker does, for benchmarks that separate it from the
  // participant's. Two clock reads per product.
  double server_seconds() const { return server_seconds_; }
  void reset_server_seconds() { server_seconds_ = 0; }

  // Adds each product's phases to *sink (null: none, the default). Results do not change.
  void set_timings(ProductTimings* sink) { timings_ = sink; }

  const LlamaConfig& config() const { return config_; }
  EncryptedProducts& products() { return *products_; }

 private:
  // Encrypts `rows` (row-major features x T) and has it multiplied.
  fhe::CiphertextMatrix product(ProjectionId id, bool transpose, const std::vector<int8_t>& rows,
                                int64_t features, int64_t out_features, int64_t tokens);
  // Decrypts a product (out x T, shape checked) straight into its dequantized floats, row by
  // row, without an int64 matrix: y(i, t) = dequantize_element(acc(i, t), w_scales[i],
  // x_scales[t]), or with w_scales empty dequantize_transposed_element(acc(i, t), x_scales[t]).
  void decrypt_dequantized(const fhe::CiphertextMatrix& y, int64_t out_features,
                           std::span<const float> w_scales, std::span<const float> x_scales,
                           Activations& out);
  // Decrypts a product after checking its shape (out_features x tokens).
  // Encrypts and records the time in timings_ (when set).
  fhe::CiphertextMatrix encrypt_timed(const int8_t* rows, size_t features, size_t tokens,
                                      const fhe::WeightBounds& bounds, uint64_t outputs);
  // Adds the time since `start` to server_seconds_ (and timings_->multiply_ns).
  void count_multiply(std::chrono::steady_clock::time_point start);
  std::vector<int64_t> decrypt(const fhe::CiphertextMatrix& y, int64_t out_features,
                               int64_t tokens);
  // The stacked transposed product of ids (rows: features x T, row-major, the parts' rows in
  // order) as exact accumulators (row-major d_in x T), split into runs that fit the noise bound.
  std::vector<int64_t> stacked_product(std::span<const ProjectionId> ids, const int8_t* rows,
                                       int64_t d_in, int64_t tokens);

  LlamaConfig config_;
  std::unique_ptr<fhe::SecretKey> key_;
  std::unique_ptr<fhe::Encryptor> encryptor_;
  std::unique_ptr<fhe::Decryptor> decryptor_;
  std::unique_ptr<EncryptedProducts> products_;
  double server_seconds_ = 0;
  bool stacked_refused_ = false;  // the products cannot stack: one projection per product
  ProductTimings* timings_ = nullptr;
};

}  // namespace model
