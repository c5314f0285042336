#include "model/linear_backends.h"

#include <string>

#include "model/encrypted_backend.h"
#include "model/error.h"
#include "model/float_backend.h"
#include "model/int8_backend.h"

namespace model {

BackendKind parse_backend_kind(std::string_view name) {
  if (name == "float") return BackendKind::kFloat;
  if (name == "int8") return BackendKind::kInt8;
  if (name == "encrypted") return BackendKind::kEncrypted;
  throw ModelError("unknown backend '" + std::string(name) + "' (float, int8 or encrypted)");
}

std::unique_ptr<LinearBackend> make_linear_backend(BackendKind kind,
                                                   std::shared_ptr<const LlamaWeights> weights) {
  if (!weights) throw ModelError("make_linear_backend: no weights");
  switch (kind) {
    case BackendKind::kFloat:
      return std::make_unique<FloatBackend>(std::move(weights));
    case BackendKind::kInt8:
      return std::make_unique<Int8Backend>(*weights);
    case BackendKind::kEncrypted:
      return std::make_unique<EncryptedBackend>(*weights);
  }
  throw ModelError("make_linear_backend: unknown backend kind");
}

}  // namespace model
