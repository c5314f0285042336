// A Context bundles a parameter set with its precomputed NTT tables. Build one per process and
// share it (it is immutable and safe to use from several threads).
#pragma once

#include <memory>

#include "fhe/ntt.h"
#include "fhe/params.h"

namespace fhe {

class Context {
 public:
  explicit Context(const Params& params);
  static std::shared_ptr<const Context> create(const Params& params = Params::P48());

  const Params& params() const { return params_; }
  const Ntt& ntt() const { return ntt_; }
  size_t n() const { return params_.n; }
  uint64_t q() const { return params_.q; }

 private:
  const Params& params_;
  Ntt ntt_;
};

}  // namespace fhe
