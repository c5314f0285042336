// A Context bundles a parameter set with its precomputed NTT tables. Build one per process and
// share it (it is immutable and safe to use from several threads).
#pragma once

#include <memory>

#include "fhe/ntt.h"
#include "fhe/params.h"

namespace fhe {

class Context {
 public:
  // portable = true forces the portable scalar code paths (NTT, element-wise kernels, digit
  // split and recombination) even where the CPU has faster ones; they give identical results.
  explicit Context(const Params& params, bool portable = false);
  static std::shared_ptr<const Context> create(const Params& params = Params::P48(),
                                               bool portable = false);

  const Params& params() const { return params_; }
  const Ntt& ntt() const { return ntt_; }
  size_t n() const { return params_.n; }
  uint64_t q() const { return params_.q; }
  // True when the AVX-512 IFMA paths are in use.
  bool vectorised() const { return ntt_.path() == NttPath::kAvx512Ifma; }

 private:
  const Params& params_;
  Ntt ntt_;
};

}  // namespace fhe
