// Device parsing and the choice of the product's implementation.
#include "fhe_worker/device.h"

#include <charconv>
#include <string>
#include <utility>

#include "fhe/cpu_evaluator.h"
#include "fhe_worker/error.h"

#ifdef FHE_WORKER_HAVE_CUDA
#include "fhe/cuda_evaluator.h"
#endif

namespace fhe_worker {

std::string Device::name() const {
  switch (kind) {
    case Kind::kAuto:
      return "auto";
    case Kind::kCpu:
      return "cpu";
    case Kind::kCuda:
      return "cuda:" + std::to_string(index);
  }
  return "unknown";
}

Device parse_device(std::string_view text) {
  if (text == "auto") return {Device::Kind::kAuto, 0};
  if (text == "cpu") return {Device::Kind::kCpu, 0};
  if (text == "cuda") return {Device::Kind::kCuda, 0};
  if (text.starts_with("cuda:")) {
    const std::string_view digits = text.substr(5);
    int index = -1;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (ec == std::errc() && end == digits.data() + digits.size() && !digits.empty() &&
        index >= 0) {
      return {Device::Kind::kCuda, index};
    }
  }
  throw WorkerError("--device must be auto, cpu, cuda or cuda:N, got '" + std::string(text) + "'");
}

bool cuda_available() {
#ifdef FHE_WORKER_HAVE_CUDA
  return fhe::cuda_device_count() > 0;
#else
  return false;
#endif
}

// ---- The device choice --------------------------------------------------------------------------
// The one place where --device picks the implementation of a worker's products. When the CUDA
// library is part of the build (FHE_WORKER_HAVE_CUDA), cuda[:N] gets a fhe::CudaEvaluator (the
// same product as fhe::CpuEvaluator, bit for bit); auto may then prefer it.
fhe::EvaluatorFactory evaluator_factory(const Device& device) {
  switch (device.kind) {
    case Device::Kind::kAuto:
    case Device::Kind::kCpu:
      return fhe::make_cpu_evaluator;
    case Device::Kind::kCuda:
#ifdef FHE_WORKER_HAVE_CUDA
      if (fhe::cuda_device_count() == 0) {
        throw WorkerError("--device " + device.name() +
                          ": CUDA is not available (this build has no CUDA backend or the machine "
                          "no usable GPU); use --device cpu");
      }
      if (device.index >= fhe::cuda_device_count()) {
        throw WorkerError("--device " + device.name() + ": no such CUDA device (" +
                          std::to_string(fhe::cuda_device_count()) + " usable)");
      }
      return fhe::cuda_evaluator_factory(device.index);
#else
      throw WorkerError("--device " + device.name() +
                        ": CUDA is not available in this build (no fhe_cuda library); use "
                        "--device cpu");
#endif
  }
  throw WorkerError("unknown device");
}

std::unique_ptr<fhe::ProductEvaluator> make_gemm(const Device& device,
                                                 std::shared_ptr<const fhe::Context> ctx,
                                                 const fhe::ProductSpec& spec) {
  return evaluator_factory(device)(std::move(ctx), spec);
}

}  // namespace fhe_worker
