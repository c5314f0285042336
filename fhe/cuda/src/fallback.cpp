// fhe_cuda built without CUDA: the API links, reports no device and refuses to construct.
#include "fhe/cuda_plane_gemm.h"

namespace fhe {

namespace {

[[noreturn]] void no_cuda() {
  throw FheError("built without CUDA");
}

}  // namespace

int cuda_device_count() noexcept {
  return 0;
}

struct CudaPlaneGemm::Impl {};

CudaPlaneGemm::CudaPlaneGemm(std::shared_ptr<const Context> ctx, const int8_t*, size_t, size_t,
                             bool, int device)
    : ctx_(std::move(ctx)), device_(device) {
  no_cuda();
}

CudaPlaneGemm::~CudaPlaneGemm() = default;

int CudaPlaneGemm::planes() const {
  return 6;
}

const char* CudaPlaneGemm::device_name() const {
  return "none";
}

CiphertextMatrix CudaPlaneGemm::multiply(const CiphertextMatrix&) const {
  no_cuda();
}

void CudaPlaneGemm::multiply_into(const CiphertextMatrix&, CiphertextMatrix&) const {
  no_cuda();
}

uint32_t CudaPlaneGemm::switch_reply(CiphertextMatrix&) const {
  no_cuda();
}

CudaGemmTiming CudaPlaneGemm::last_timing() const {
  return {};
}

void cuda_expand_seed_rows(const Seed&, size_t, uint64_t, uint64_t, size_t, uint64_t*, int) {
  no_cuda();
}

struct CudaPlainGemm::Impl {};

CudaPlainGemm::CudaPlainGemm(Type, const int8_t*, size_t, size_t, size_t, int) {
  no_cuda();
}

CudaPlainGemm::~CudaPlainGemm() = default;

void CudaPlainGemm::upload(const int8_t*) {
  no_cuda();
}

void CudaPlainGemm::run(int) {
  no_cuda();
}

void CudaPlainGemm::download(int32_t*) const {
  no_cuda();
}

}  // namespace fhe
