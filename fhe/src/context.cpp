#include "fhe/context.h"

namespace fhe {

Context::Context(const Params& params, bool portable) : params_(params), ntt_(params.n, params.q) {
  if (portable) ntt_.set_path(NttPath::kScalar);
}

std::shared_ptr<const Context> Context::create(const Params& params, bool portable) {
  return std::make_shared<const Context>(params, portable);
}

}  // namespace fhe
