// EncryptedBackend: each projection through RLWE encryption, in process.
//
// It plays both roles of the protocol in one object: the participant quantizes the activations
// per token (exactly as Int8Backend), encrypts them (tokens along polynomial coefficients, scale
// chosen from the projection's real weight bounds), the worker side multiplies by the int8
// weight (fhe::PlaneGemm, one per projection and direction), and the participant decrypts the
// exact int64 accumulators and dequantizes with the same function as Int8Backend. Its outputs
// therefore equal Int8Backend's bit for bit. Batches of more than 2048 tokens span several
// ciphertext blocks.
//
// backward() does the same for dx = W^T G: the participant folds the weight scales into the
// gradients and quantizes them per token (quantize_gradients), encrypts G'q (d_out rows), the
// worker multiplies by the transposed int8 weight (a PlaneGemm with transpose = true, whose
// bounds are W's column norms), and the decrypted accumulators dequantize with
// dequantize_transposed_product: bit for bit Int8Backend::backward. The transposed PlaneGemm of
// a projection is built on its first backward() call (an inference-only user never pays for it,
// and a shape that only the transposed product refuses, such as a very large vocabulary, does
// not stop the forward pass); the int8 weight is kept for that.
//
// Not thread-safe: one caller at a time.
#pragma once

#include <memory>
#include <vector>

#include "fhe/secret_key.h"
#include "model/linear_backend.h"
#include "model/llama_weights.h"

namespace fhe {
class Decryptor;
class Encryptor;
}  // namespace fhe

namespace model {

class EncryptedBackend : public LinearBackend {
 public:
  // Quantizes every projection of `weights` and builds its forward PlaneGemm. Encrypts under
  // `key`, or under a fresh key of the default parameter set (P48) when `key` is null.
  explicit EncryptedBackend(const LlamaWeights& weights,
                            std::unique_ptr<fhe::SecretKey> key = nullptr);
  ~EncryptedBackend() override;
  EncryptedBackend(const EncryptedBackend&) = delete;
  EncryptedBackend& operator=(const EncryptedBackend&) = delete;

  // Throw model::Error naming the projection when the fhe library refuses the product.
  void forward(ProjectionId id, const Activations& x, Activations& y) override;
  void backward(ProjectionId id, const Activations& g, Activations& dx) override;
  std::string_view name() const override { return "encrypted"; }

  // Seconds spent inside the worker's products (fhe::PlaneGemm::multiply, forward and backward)
  // since construction or the last reset: the part of the work a remote FHE worker does, for
  // benchmarks that separate it from the participant's. Two clock reads per product.
  double server_seconds() const { return server_seconds_; }
  void reset_server_seconds() { server_seconds_ = 0; }

 private:
  struct Projection;
  LlamaConfig config_;
  std::unique_ptr<fhe::SecretKey> key_;
  std::unique_ptr<fhe::Encryptor> encryptor_;
  std::unique_ptr<fhe::Decryptor> decryptor_;
  std::vector<Projection> projections_;  // indexed by projection_index
  double server_seconds_ = 0;
};

}  // namespace model
