#include "participant/remote_encrypted_backend.h"

namespace participant {

RemoteEncryptedBackend::RemoteEncryptedBackend(std::shared_ptr<WorkerPool> pool,
                                               const model::LlamaConfig& config,
                                               RemoteOptions options,
                                               std::unique_ptr<fhe::SecretKey> key,
                                               const model::LlamaWeights* local_weights)
    : model::EncryptedBackend(config,
                              std::make_unique<WorkerProducts>(std::move(pool), config,
                                                               std::move(options), local_weights),
                              std::move(key)) {}

}  // namespace participant
