#include "fhe/context.h"

namespace fhe {

Context::Context(const Params& params) : params_(params), ntt_(params.n, params.q) {}

std::shared_ptr<const Context> Context::create(const Params& params) {
  return std::make_shared<const Context>(params);
}

}  // namespace fhe
