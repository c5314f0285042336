// Choosing a LinearBackend by name ("float", "int8", "encrypted"), as command-line tools do.
#pragma once

#include <memory>
#include <string_view>

#include "model/linear_backend.h"
#include "model/llama_weights.h"

namespace model {

enum class BackendKind { kFloat, kInt8, kEncrypted };

// Throws model::ModelError for a name other than float, int8 or encrypted.
BackendKind parse_backend_kind(std::string_view name);

// A backend over `weights` (the encrypted one under a fresh key).
std::unique_ptr<LinearBackend> make_linear_backend(BackendKind kind,
                                                   std::shared_ptr<const LlamaWeights> weights);

}  // namespace model
