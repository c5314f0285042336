// RemoteEncryptedBackend: the encrypted LinearBackend whose products run on fhe_workers.
//
// It is model::EncryptedBackend (quantize, encrypt, decrypt, dequantize in this process, under
// a secret key that never leaves it) over WorkerProducts (the W * C and W^T * C products as
// requests to a WorkerPool). Forward and backward results are bit for bit those of the
// in-process EncryptedBackend and of Int8Backend, as long as the workers serve the same model
// (the model info is checked against the local config: layer count and every shape).
//
// The LM head runs where options.lm_head says (worker_products.h): on the workers, or in this
// process as the plaintext int8 product of the participant's own weights (int8_forward /
// int8_backward), still bit for bit the int8 backend's.
//
// Throws model::ModelError when the workers cannot be reached or their model does not fit, and from
// forward()/backward() when no worker can serve a product (the message names every worker and
// why). Not thread-safe: one caller at a time.
#pragma once

#include <memory>
#include <optional>
#include <string_view>

#include "model/encrypted_backend.h"
#include "model/quantize.h"
#include "participant/worker_pool.h"
#include "participant/worker_products.h"

namespace participant {

class RemoteEncryptedBackend : public model::EncryptedBackend {
 public:
  // Fetches the model info through `pool` once. Encrypts under `key`, or a fresh P48 key.
  // `local_weights` (optional): the participant's copy of the model, for the projections the
  // workers do not serve (the LM head), computed in process (WorkerProducts).
  RemoteEncryptedBackend(std::shared_ptr<WorkerPool> pool, const model::LlamaConfig& config,
                         RemoteOptions options, std::unique_ptr<fhe::SecretKey> key = nullptr,
                         const model::LlamaWeights* local_weights = nullptr);

  std::string_view name() const override { return "remote-encrypted"; }

  void forward(model::ProjectionId id, const model::Activations& x,
               model::Activations& y) override;
  void backward(model::ProjectionId id, const model::Activations& g,
                model::Activations& dx) override;

  // Whether the LM head runs in this process.
  bool lm_head_local() const { return local_head_.has_value(); }

  WorkerProducts& worker_products() { return static_cast<WorkerProducts&>(products()); }
  WorkerPool& pool() { return worker_products().pool(); }

 private:
  std::optional<model::QuantizedWeight> local_head_;
};

}  // namespace participant
