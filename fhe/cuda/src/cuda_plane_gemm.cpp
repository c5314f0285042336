#include "fhe/cuda_plane_gemm.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "cuda_util.h"
#include "fhe/encryptor.h"
#include "fhe/modswitch.h"
#include "kernels.h"

namespace fhe {

namespace cd = cuda_detail;

namespace {

// Device memory for one group of ciphertext blocks is kept near this size; longer inputs are
// processed group after group (one GEMM per group).
constexpr size_t kGroupBudgetBytes = size_t{1} << 30;
constexpr size_t kWorkspaceBytes = size_t{32} << 20;

size_t round_up(size_t v, size_t m) {
  return (v + m - 1) / m * m;
}

void check_ring(size_t n) {
  if (n % 256 != 0 || n / 8 + cd::kSpareGroups > 1024) {
    throw Error("the CUDA kernels need a ring degree that is a multiple of 256 and at most 8160");
  }
}

cd::SeedKey seed_key(const Seed& seed) {
  cd::SeedKey k{};
  cd::make_seed_key(seed.data(), k);
  return k;
}

}  // namespace

int cuda_device_count() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

struct CudaPlaneGemm::Impl {
  std::mutex mutex;  // one multiply at a time: the buffers and the stream are shared
  std::string name;
  size_t kp = 0;  // inner dimension padded for the split tiles and cuBLASLt
  cd::Stream stream;
  cd::LtHandle lt;
  cd::DeviceBuffer weights, workspace;
  cd::DeviceBuffer c0, a_hat, digits, sums, y0, y1, fail_rows, fail_count;
  std::unique_ptr<cd::PinnedBuffer> host_fail_count;
  std::unique_ptr<cd::LtMatmul> matmul;
  cd::Event ev[7];
  CudaGemmTiming timing;
};

CudaPlaneGemm::CudaPlaneGemm(std::shared_ptr<const Context> ctx, const int8_t* w, size_t d_out,
                             size_t d_in, bool transpose, int device)
    : ctx_(std::move(ctx)), device_(device) {
  if (d_out == 0 || d_in == 0) throw Error("empty weight matrix");
  if (ctx_->params().q != Params::P48().q) {
    throw Error("the digit-plane GEMM reduces modulo the P48 prime only");
  }
  check_ring(ctx_->n());
  in_ = transpose ? d_out : d_in;
  out_ = transpose ? d_in : d_out;
  if (in_ > cd::kMaxInnerDim) {
    throw Error("inner dimension " + std::to_string(in_) +
                " overflows the int32 accumulation of the digit-plane GEMM; split it");
  }
  bounds_ = measure_bounds(w, d_out, d_in, transpose);
  cd::use_device(device_);
  impl_ = std::make_unique<Impl>();
  cudaDeviceProp prop{};
  cd::check(cudaGetDeviceProperties(&prop, device_), "cudaGetDeviceProperties");
  impl_->name = prop.name;
  impl_->kp = round_up(in_, cd::kSplitTile);
  // B operand: column i holds row i of M, kp bytes (zero past in_).
  std::vector<int8_t> m(impl_->kp * out_, 0);
  for (size_t i = 0; i < out_; ++i) {
    for (size_t j = 0; j < in_; ++j) {
      m[i * impl_->kp + j] = transpose ? w[j * d_in + i] : w[i * d_in + j];
    }
  }
  impl_->weights.reserve(m.size());
  cd::check(cudaMemcpy(impl_->weights.as<void>(), m.data(), m.size(), cudaMemcpyHostToDevice),
            "upload weights");
  impl_->workspace.reserve(kWorkspaceBytes);
  impl_->fail_count.reserve(sizeof(uint32_t));
  impl_->host_fail_count = std::make_unique<cd::PinnedBuffer>(sizeof(uint32_t));
}

CudaPlaneGemm::~CudaPlaneGemm() {
  if (impl_) cudaSetDevice(device_);  // free the buffers on their own device
}

int CudaPlaneGemm::planes() const {
  return cd::kPlanes;
}

const char* CudaPlaneGemm::device_name() const {
  return impl_->name.c_str();
}

CudaGemmTiming CudaPlaneGemm::last_timing() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->timing;
}

CiphertextMatrix CudaPlaneGemm::multiply(const CiphertextMatrix& ct) const {
  CiphertextMatrix out;
  multiply_into(ct, out);
  return out;
}

void CudaPlaneGemm::multiply_into(const CiphertextMatrix& ct, CiphertextMatrix& out) const {
  const Context& ctx = *ctx_;
  validate(ctx, ct);
  if (ct.kind != CtKind::kFresh) throw Error("only fresh ciphertexts can be multiplied");
  if (ct.rows != in_) {
    throw Error("ciphertext has " + std::to_string(ct.rows) + " rows but the matrix expects " +
                std::to_string(in_));
  }
  check_product(ctx.params(), ct.log2_delta, bounds_, out_ * ct.cols);
  const size_t n = ctx.n(), blocks = ct.blocks(n);
  const uint64_t q = ctx.q();
  out.params_id = ct.params_id;
  out.kind = CtKind::kProduct;
  out.rows = out_;
  out.cols = ct.cols;
  out.log2_delta = ct.log2_delta;
  out.log2_modulus = 0;
  out.seed = ct.seed;
  out.c0.resize(blocks * out_ * n);
  out.c1.resize(blocks * out_ * n);

  std::lock_guard<std::mutex> lock(impl_->mutex);
  Impl& im = *impl_;
  cd::use_device(device_);
  const cudaStream_t s = im.stream.get();
  const size_t kp = im.kp, P = cd::kPlanes;
  // Device bytes per ciphertext block.
  const size_t per_block =
      2 * in_ * n * 8 + 2 * P * n * kp + 2 * P * n * out_ * 4 + 2 * out_ * n * 8;
  const size_t group = std::clamp<size_t>(kGroupBudgetBytes / per_block, 1, blocks);
  im.c0.reserve(group * in_ * n * 8);
  im.a_hat.reserve(group * in_ * n * 8);
  im.digits.reserve(2 * group * P * n * kp);
  im.sums.reserve(2 * group * P * n * out_ * 4);
  im.y0.reserve(group * out_ * n * 8);
  im.y1.reserve(group * out_ * n * 8);
  im.fail_rows.reserve(group * in_ * 8);
  const cd::SeedKey key = seed_key(ct.seed);
  CudaGemmTiming timing;

  // Split, GEMM and recombination of g blocks already on the device; events 2..5.
  auto planes = [&](size_t g) {
    const size_t m = 2 * g * P * n;
    if (!im.matmul || !im.matmul->matches(m, out_, kp)) {
      im.matmul.reset();
      im.matmul = std::make_unique<cd::LtMatmul>(true, m, out_, kp, kWorkspaceBytes);
    }
    cd::check(cd::launch_split(im.c0.as<uint64_t>(), im.a_hat.as<uint64_t>(), g, in_, kp, n, q,
                               im.digits.as<int8_t>(), s),
              "digit split kernel");
    im.ev[3].record(s);
    im.matmul->run(im.lt.get(), im.digits.as<void>(), im.weights.as<void>(), im.sums.as<void>(),
                   im.workspace.as<void>(), s);
    im.ev[4].record(s);
    cd::check(cd::launch_recombine(im.sums.as<int32_t>(), m, g, out_, n, q, im.y0.as<uint64_t>(),
                                   im.y1.as<uint64_t>(), s),
              "recombination kernel");
    im.ev[5].record(s);
  };
  auto download = [&](size_t b0, size_t g) {
    const size_t bytes = g * out_ * n * 8;
    cd::check(cudaMemcpyAsync(out.c0.data() + b0 * out_ * n, im.y0.as<void>(), bytes,
                              cudaMemcpyDeviceToHost, s),
              "download Y0");
    cd::check(cudaMemcpyAsync(out.c1.data() + b0 * out_ * n, im.y1.as<void>(), bytes,
                              cudaMemcpyDeviceToHost, s),
              "download Y1");
    im.ev[6].record(s);
  };

  for (size_t b0 = 0; b0 < blocks; b0 += group) {
    const size_t g = std::min(group, blocks - b0);
    im.ev[0].record(s);
    cd::check(cudaMemcpyAsync(im.c0.as<void>(), ct.c0.data() + b0 * in_ * n, g * in_ * n * 8,
                              cudaMemcpyHostToDevice, s),
              "upload C0");
    im.ev[1].record(s);
    cd::check(cudaMemsetAsync(im.fail_count.as<void>(), 0, sizeof(uint32_t), s), "memset");
    cd::check(cd::launch_expand(key, n, q, b0 * in_, g * in_, im.a_hat.as<uint64_t>(),
                                im.fail_count.as<uint32_t>(), im.fail_rows.as<uint64_t>(), s),
              "seed expansion kernel");
    im.ev[2].record(s);
    planes(g);
    cd::check(cudaMemcpyAsync(im.host_fail_count->as<void>(), im.fail_count.as<void>(),
                              sizeof(uint32_t), cudaMemcpyDeviceToHost, s),
              "download fail count");
    download(b0, g);
    im.stream.sync();
    timing.upload_s += im.ev[1].since(im.ev[0]);
    timing.expand_s += im.ev[2].since(im.ev[1]);
    timing.split_s += im.ev[3].since(im.ev[2]);
    timing.gemm_s += im.ev[4].since(im.ev[3]);
    timing.recombine_s += im.ev[5].since(im.ev[4]);
    timing.download_s += im.ev[6].since(im.ev[5]);

    const uint32_t failed = *im.host_fail_count->as<uint32_t>();
    if (failed == 0) continue;
    // Rows whose spare words ran out (astronomically rare for the real q): expand them on the
    // host, upload them and redo this group.
    std::vector<uint64_t> rows(failed), row(n);
    cd::check(cudaMemcpy(rows.data(), im.fail_rows.as<void>(), failed * sizeof(uint64_t),
                         cudaMemcpyDeviceToHost),
              "download failed rows");
    SeedExpander ex(ct.seed, n, q);
    for (uint64_t r : rows) {
      ex.expand_row(r, row.data());
      cd::check(cudaMemcpy(im.a_hat.as<uint64_t>() + (r - b0 * in_) * n, row.data(), n * 8,
                           cudaMemcpyHostToDevice),
                "upload fallback row");
    }
    planes(g);
    download(b0, g);
    im.stream.sync();
  }
  im.timing = timing;
}

uint32_t CudaPlaneGemm::switch_reply(CiphertextMatrix& product) const {
  if (product.kind != CtKind::kProduct || product.rows != out_) {
    throw Error("switch_reply expects a product of this matrix");
  }
  const uint32_t bits =
      choose_switch_bits(ctx_->params(), product.log2_delta, bounds_, out_ * product.cols);
  if (bits == 0) return 0;
  switch_modulus(*ctx_, product, bits);
  return bits;
}

void cuda_expand_seed_rows(const Seed& seed, size_t n, uint64_t q, uint64_t row0, size_t rows,
                           uint64_t* out, int device) {
  if (n == 0 || n % 8 != 0 || n / 8 + cd::kSpareGroups > 1024) {
    throw Error("cuda_expand_seed_rows: n must be a positive multiple of 8, at most 8160");
  }
  if (q < 2 || q > (uint64_t{1} << 48))
    throw Error("cuda_expand_seed_rows: q must be in [2, 2^48]");
  if (rows == 0) return;
  cd::use_device(device);
  cd::Stream stream;
  cd::DeviceBuffer d_out, d_fail_rows, d_fail_count;
  d_out.reserve(rows * n * 8);
  d_fail_rows.reserve(rows * 8);
  d_fail_count.reserve(sizeof(uint32_t));
  const cudaStream_t s = stream.get();
  cd::check(cudaMemsetAsync(d_fail_count.as<void>(), 0, sizeof(uint32_t), s), "memset");
  cd::check(cd::launch_expand(seed_key(seed), n, q, row0, rows, d_out.as<uint64_t>(),
                              d_fail_count.as<uint32_t>(), d_fail_rows.as<uint64_t>(), s),
            "seed expansion kernel");
  uint32_t failed = 0;
  cd::check(
      cudaMemcpyAsync(&failed, d_fail_count.as<void>(), sizeof failed, cudaMemcpyDeviceToHost, s),
      "download fail count");
  cd::check(cudaMemcpyAsync(out, d_out.as<void>(), rows * n * 8, cudaMemcpyDeviceToHost, s),
            "download rows");
  stream.sync();
  if (failed == 0) return;
  std::vector<uint64_t> failed_rows(failed);
  cd::check(cudaMemcpy(failed_rows.data(), d_fail_rows.as<void>(), failed * sizeof(uint64_t),
                       cudaMemcpyDeviceToHost),
            "download failed rows");
  SeedExpander ex(seed, n, q);
  for (uint64_t r : failed_rows) ex.expand_row(r, out + (r - row0) * n);
}

}  // namespace fhe
