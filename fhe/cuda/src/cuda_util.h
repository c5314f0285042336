// RAII wrappers and error checks for the CUDA runtime and cuBLASLt, host side of fhe_cuda.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

#include "fhe/params.h"

namespace fhe::cuda_detail {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    throw FheError(std::string("CUDA: ") + what + ": " + cudaGetErrorString(e));
  }
}

inline void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    throw FheError(std::string("cuBLASLt: ") + what + ": " + cublasLtGetStatusString(s));
  }
}

// Makes `device` current; throws a readable error when it does not exist.
inline void use_device(int device) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();  // clear the sticky error of a missing driver
    throw FheError("no CUDA device is available");
  }
  if (device < 0 || device >= count) {
    throw FheError("CUDA device " + std::to_string(device) + " does not exist (" +
                std::to_string(count) + " found)");
  }
  check(cudaSetDevice(device), "cudaSetDevice");
}

// A device allocation that only grows (reuse across calls).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { cudaFree(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void reserve(size_t bytes) {
    if (bytes <= bytes_) return;
    cudaFree(p_);
    p_ = nullptr;
    bytes_ = 0;
    check(cudaMalloc(&p_, bytes), "cudaMalloc");
    bytes_ = bytes;
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(p_);
  }
  size_t size() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// Page-locked host memory (staging of asynchronous copies), an allocation that only grows.
// Growing discards the contents; callers make sure no copy still uses it.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t bytes) { reserve(bytes); }
  ~PinnedBuffer() { cudaFreeHost(p_); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void reserve(size_t bytes) {
    if (bytes <= bytes_) return;
    cudaFreeHost(p_);
    p_ = nullptr;
    bytes_ = 0;
    check(cudaMallocHost(&p_, bytes), "cudaMallocHost");
    bytes_ = bytes;
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(p_);
  }
  size_t size() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

class Stream {
 public:
  Stream() { check(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), "cudaStreamCreate"); }
  ~Stream() { cudaStreamDestroy(s_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  void sync() const { check(cudaStreamSynchronize(s_), "cudaStreamSynchronize"); }

 private:
  cudaStream_t s_ = nullptr;
};

class Event {
 public:
  Event() { check(cudaEventCreate(&e_), "cudaEventCreate"); }
  ~Event() { cudaEventDestroy(e_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(cudaStream_t s) { check(cudaEventRecord(e_, s), "cudaEventRecord"); }
  void sync() const { check(cudaEventSynchronize(e_), "cudaEventSynchronize"); }
  // Seconds from `start` to this event (both completed).
  double since(const Event& start) const {
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start.e_, e_), "cudaEventElapsedTime");
    return ms * 1e-3;
  }

 private:
  cudaEvent_t e_ = nullptr;
};

class LtHandle {
 public:
  LtHandle() { check(cublasLtCreate(&h_), "cublasLtCreate"); }
  ~LtHandle() { cublasLtDestroy(h_); }
  LtHandle(const LtHandle&) = delete;
  LtHandle& operator=(const LtHandle&) = delete;
  cublasLtHandle_t get() const { return h_; }

 private:
  cublasLtHandle_t h_ = nullptr;
};

// D (m x n, column-major, ld m) = A^T B with A stored k x m and B stored k x n (column-major,
// leading dimension k): cuBLASLt's "TN" form, the one its int8 tensor-core kernels require.
// The descriptors and the heuristic's algorithm are built once per shape.
class LtMatmul {
 public:
  // int8 x int8 -> int32 (compute 32I) or fp32 x fp32 -> fp32 (compute 32F).
  LtMatmul(bool int8, size_t m, size_t n, size_t k, size_t workspace_bytes) : int8_(int8) {
    try {
      create(m, n, k, workspace_bytes);
    } catch (...) {
      destroy();
      throw;
    }
  }
  ~LtMatmul() { destroy(); }
  LtMatmul(const LtMatmul&) = delete;
  LtMatmul& operator=(const LtMatmul&) = delete;

  bool matches(size_t m, size_t n, size_t k) const { return m == m_ && n == n_ && k == k_; }

  // Picks the heuristic's best algorithm (once).
  void plan(cublasLtHandle_t h) {
    if (planned_) return;
    int found = 0;
    check(cublasLtMatmulAlgoGetHeuristic(h, op_, a_, b_, d_, d_, pref_, 1, &algo_, &found),
          "cublasLtMatmulAlgoGetHeuristic");
    if (found < 1) throw FheError("cuBLASLt found no algorithm for this GEMM shape");
    planned_ = true;
  }

  void run(cublasLtHandle_t h, const void* a, const void* b, void* d, void* workspace,
           cudaStream_t s) {
    plan(h);
    const int32_t ia = 1, ib = 0;
    const float fa = 1, fb = 0;
    const void* alpha = int8_ ? static_cast<const void*>(&ia) : &fa;
    const void* beta = int8_ ? static_cast<const void*>(&ib) : &fb;
    check(cublasLtMatmul(h, op_, alpha, a, a_, b, b_, beta, d, d_, d, d_, &algo_.algo, workspace,
                         workspace_, s),
          "cublasLtMatmul");
  }

 private:
  void create(size_t m, size_t n, size_t k, size_t workspace_bytes) {
    const bool int8 = int8_;
    const cudaDataType_t in_t = int8 ? CUDA_R_8I : CUDA_R_32F,
                         out_t = int8 ? CUDA_R_32I : CUDA_R_32F;
    check(cublasLtMatmulDescCreate(&op_, int8 ? CUBLAS_COMPUTE_32I : CUBLAS_COMPUTE_32F, out_t),
          "cublasLtMatmulDescCreate");
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    check(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta),
          "set TRANSA");
    check(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb),
          "set TRANSB");
    check(cublasLtMatrixLayoutCreate(&a_, in_t, k, m, static_cast<int64_t>(k)), "layout A");
    check(cublasLtMatrixLayoutCreate(&b_, in_t, k, n, static_cast<int64_t>(k)), "layout B");
    check(cublasLtMatrixLayoutCreate(&d_, out_t, m, n, static_cast<int64_t>(m)), "layout D");
    check(cublasLtMatmulPreferenceCreate(&pref_), "cublasLtMatmulPreferenceCreate");
    const uint64_t ws = workspace_bytes;
    check(cublasLtMatmulPreferenceSetAttribute(pref_, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                               sizeof ws),
          "set workspace");
    workspace_ = workspace_bytes;
    m_ = m;
    n_ = n;
    k_ = k;
  }
  void destroy() {
    if (pref_) cublasLtMatmulPreferenceDestroy(pref_);
    if (d_) cublasLtMatrixLayoutDestroy(d_);
    if (b_) cublasLtMatrixLayoutDestroy(b_);
    if (a_) cublasLtMatrixLayoutDestroy(a_);
    if (op_) cublasLtMatmulDescDestroy(op_);
    pref_ = nullptr;
    d_ = b_ = a_ = nullptr;
    op_ = nullptr;
  }

  bool int8_;
  size_t m_ = 0, n_ = 0, k_ = 0, workspace_ = 0;
  cublasLtMatmulDesc_t op_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, d_ = nullptr;
  cublasLtMatmulPreference_t pref_ = nullptr;
  cublasLtMatmulHeuristicResult_t algo_{};
  bool planned_ = false;
};

}  // namespace fhe::cuda_detail
