#include <cmath>
#include <vector>

#include "cuda_util.h"
#include "fhe/cuda_plane_gemm.h"

namespace fhe {

namespace cd = cuda_detail;

namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

size_t round_up(size_t v, size_t m) {
  return (v + m - 1) / m * m;
}

}  // namespace

// Y^T is computed as the column-major tp x d_out matrix D = A^T B: A = X (kp x tp, column t is
// token t's kp features), B = W^T (kp x d_out, column i is row i of W). Both padded with zeros
// to multiples of 16 (K) and 4 (tokens), as cuBLASLt's int8 kernels require.
struct CudaPlainGemm::Impl {
  Type type;
  int device;
  size_t d_out, d_in, t, kp, tp, elem;
  cd::Stream stream;
  cd::LtHandle lt;
  cd::DeviceBuffer a, b, d, workspace;
  std::unique_ptr<cd::LtMatmul> matmul;

  // Uploads a rows x cols int8 matrix into a rows x ld device matrix of this GEMM's input type.
  void upload(cd::DeviceBuffer& dst, const int8_t* src, size_t rows, size_t cols, size_t ld) {
    if (type == Type::kInt8) {
      std::vector<int8_t> tmp(rows * ld, 0);
      for (size_t r = 0; r < rows; ++r)
        for (size_t c = 0; c < cols; ++c) tmp[r * ld + c] = src[r * cols + c];
      cd::check(cudaMemcpy(dst.as<void>(), tmp.data(), tmp.size(), cudaMemcpyHostToDevice),
                "upload");
    } else {
      std::vector<float> tmp(rows * ld, 0.0f);
      for (size_t r = 0; r < rows; ++r)
        for (size_t c = 0; c < cols; ++c) tmp[r * ld + c] = src[r * cols + c];
      cd::check(cudaMemcpy(dst.as<void>(), tmp.data(), tmp.size() * 4, cudaMemcpyHostToDevice),
                "upload");
    }
  }
};

CudaPlainGemm::CudaPlainGemm(Type type, const int8_t* w, size_t d_out, size_t d_in, size_t t,
                             int device) {
  if (d_out == 0 || d_in == 0 || t == 0) throw FheError("empty GEMM shape");
  cd::use_device(device);
  impl_ = std::make_unique<Impl>();
  Impl& im = *impl_;
  im.type = type;
  im.device = device;
  im.d_out = d_out;
  im.d_in = d_in;
  im.t = t;
  im.kp = round_up(d_in, 16);
  im.tp = round_up(t, 4);
  im.elem = type == Type::kInt8 ? 1 : 4;
  im.a.reserve(im.kp * im.tp * im.elem);
  im.b.reserve(im.kp * d_out * im.elem);
  im.d.reserve(im.tp * d_out * 4);
  im.workspace.reserve(kWorkspaceBytes);
  cd::check(cudaMemset(im.a.as<void>(), 0, im.kp * im.tp * im.elem), "memset");
  im.upload(im.b, w, d_out, d_in, im.kp);
  im.matmul =
      std::make_unique<cd::LtMatmul>(type == Type::kInt8, im.tp, d_out, im.kp, kWorkspaceBytes);
  im.matmul->plan(im.lt.get());
}

CudaPlainGemm::~CudaPlainGemm() = default;

void CudaPlainGemm::upload(const int8_t* xt) {
  Impl& im = *impl_;
  cd::use_device(im.device);
  im.upload(im.a, xt, im.t, im.d_in, im.kp);
}

void CudaPlainGemm::run(int iterations) {
  Impl& im = *impl_;
  cd::use_device(im.device);
  for (int k = 0; k < iterations; ++k) {
    im.matmul->run(im.lt.get(), im.a.as<void>(), im.b.as<void>(), im.d.as<void>(),
                   im.workspace.as<void>(), im.stream.get());
  }
  im.stream.sync();
}

void CudaPlainGemm::download(int32_t* y) const {
  const Impl& im = *impl_;
  cd::use_device(im.device);
  if (im.type == Type::kInt8) {
    cd::check(cudaMemcpy2D(y, im.t * 4, im.d.as<void>(), im.tp * 4, im.t * 4, im.d_out,
                           cudaMemcpyDeviceToHost),
              "download");
    return;
  }
  std::vector<float> tmp(im.t * im.d_out);
  cd::check(cudaMemcpy2D(tmp.data(), im.t * 4, im.d.as<void>(), im.tp * 4, im.t * 4, im.d_out,
                         cudaMemcpyDeviceToHost),
            "download");
  for (size_t k = 0; k < tmp.size(); ++k) y[k] = static_cast<int32_t>(std::lrint(tmp[k]));
}

}  // namespace fhe
