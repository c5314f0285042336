// Where a worker's products run, and the one place that picks their implementation.
//
// --device auto|cpu|cuda[:N]. Today auto and cpu use fhe::CpuEvaluator (fhe::PlaneGemm, oneDNN).
// cuda asks for fhe::CudaEvaluator (the fhe_cuda library); without a CUDA build or a usable GPU
// make_gemm refuses it with a clear "not available" error. make_gemm (src/device.cpp) is the
// single place where the device decides the implementation; the product itself is the
// fhe::ProductEvaluator interface (fhe/evaluator.h).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "fhe/context.h"
#include "fhe/evaluator.h"

namespace fhe_worker {

struct Device {
  enum class Kind { kAuto, kCpu, kCuda };
  Kind kind = Kind::kAuto;
  int index = 0;  // cuda:N

  // "auto", "cpu", "cuda:0".
  std::string name() const;
};

// Parses "auto", "cpu", "cuda" or "cuda:N". Throws fhe_worker::WorkerError otherwise.
Device parse_device(std::string_view text);

// True when this build has the CUDA backend and the machine a usable GPU.
bool cuda_available();

// The evaluator factory of `device` (fhe::make_cpu_evaluator, or fhe::cuda_evaluator_factory of
// its index). Throws fhe_worker::WorkerError for a device this build or machine cannot use.
fhe::EvaluatorFactory evaluator_factory(const Device& device);

// Builds the product of `spec` on `device` (evaluator_factory). Throws fhe_worker::WorkerError
// for a device this build cannot use, fhe::FheError for a shape the implementation refuses.
std::unique_ptr<fhe::ProductEvaluator> make_gemm(const Device& device,
                                                 std::shared_ptr<const fhe::Context> ctx,
                                                 const fhe::ProductSpec& spec);

}  // namespace fhe_worker
