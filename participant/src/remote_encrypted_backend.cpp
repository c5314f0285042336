#include "participant/remote_encrypted_backend.h"

#include "model/error.h"
#include "model/int8_backend.h"
#include "model/projection.h"
#include "model/quantized_checkpoint.h"

namespace participant {
namespace {

bool head_in_process(const RemoteOptions& options, const model::LlamaConfig& config,
                     const model::LlamaWeights* local_weights) {
  switch (options.lm_head) {
    case LmHeadPlacement::kRemote:
      return false;
    case LmHeadPlacement::kLocal:
      if (local_weights == nullptr) {
        throw model::ModelError("remote encrypted backend: a local LM head needs the model's weights");
      }
      return true;
    case LmHeadPlacement::kAuto:
      break;
  }
  return local_weights != nullptr && config.vocab_size >= kLocalLmHeadVocab;
}

}  // namespace

RemoteEncryptedBackend::RemoteEncryptedBackend(std::shared_ptr<WorkerPool> pool,
                                               const model::LlamaConfig& config,
                                               RemoteOptions options,
                                               std::unique_ptr<fhe::SecretKey> key,
                                               const model::LlamaWeights* local_weights)
    : model::EncryptedBackend(
          config, std::make_unique<WorkerProducts>(std::move(pool), config, options, local_weights),
          std::move(key)) {
  if (head_in_process(options, config, local_weights)) {
    // From memory, or from the files when the participant did not load the embeddings.
    local_head_ = model::quantized_projection(*local_weights, model::ProjectionId::lm_head());
  }
}

void RemoteEncryptedBackend::forward(model::ProjectionId id, const model::Activations& x,
                                     model::Activations& y) {
  if (local_head_ && id == model::ProjectionId::lm_head()) {
    return model::int8_forward(id, *local_head_, x, y);
  }
  model::EncryptedBackend::forward(id, x, y);
}

void RemoteEncryptedBackend::backward(model::ProjectionId id, const model::Activations& g,
                                      model::Activations& dx) {
  if (local_head_ && id == model::ProjectionId::lm_head()) {
    return model::int8_backward(id, *local_head_, g, dx);
  }
  model::EncryptedBackend::backward(id, g, dx);
}

}  // namespace participant
