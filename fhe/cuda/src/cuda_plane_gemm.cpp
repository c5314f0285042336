#include "fhe/cuda_plane_gemm.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "cuda_util.h"
#include "fhe/encryptor.h"
#include "fhe/evaluator.h"
#include "fhe/modswitch.h"
#include "kernels.h"
#include "pack48.h"

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
    throw FheError(
        "the CUDA kernels need a ring degree that is a multiple of 256 and at most 8160");
  }
}

// Coefficients per pipelined copy (3 MiB packed).
constexpr size_t kChunkCoeffs = size_t{1} << 19;
// Arrays shorter than this are packed or unpacked by one thread.
constexpr size_t kParallelMin = size_t{1} << 15;

// cd::pack48 / cd::unpack48 over the host's threads (disjoint ranges of whole coefficients).
bool pack_parallel(const uint64_t* src, size_t count, uint64_t bound, uint8_t* dst) {
  const int64_t parts =
      std::min<int64_t>(omp_get_max_threads(), static_cast<int64_t>(count / kParallelMin));
  if (parts <= 1) return cd::pack48(src, count, bound, dst);
  int bad = 0;
#pragma omp parallel for num_threads(parts) schedule(static) reduction(| : bad)
  for (int64_t p = 0; p < parts; ++p) {
    const size_t a = count * p / parts, b = count * (p + 1) / parts;
    bad |= cd::pack48(src + a, b - a, bound, dst + a * cd::kPackedBytes) ? 0 : 1;
  }
  return bad == 0;
}

void unpack_parallel(const uint8_t* src, size_t count, uint64_t* dst) {
  const int64_t parts =
      std::min<int64_t>(omp_get_max_threads(), static_cast<int64_t>(count / kParallelMin));
  if (parts <= 1) return cd::unpack48(src, count, dst);
#pragma omp parallel for num_threads(parts) schedule(static)
  for (int64_t p = 0; p < parts; ++p) {
    const size_t a = count * p / parts, b = count * (p + 1) / parts;
    cd::unpack48(src + a * cd::kPackedBytes, b - a, dst + a);
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

// Groups of blocks alternate between two staging slots, so that the host packs or unpacks one
// group while the device works on the other. A slot holds the pinned host buffers of its group
// (packed C0; packed Y0 then Y1) and the events of its phases.
struct Slot {
  cd::PinnedBuffer in, out;
  cd::Event start, uploaded, expanded, split, gemm, recombined;
  std::vector<std::unique_ptr<cd::Event>> chunks;  // one per download chunk
};

struct CudaPlaneGemm::Impl {
  std::mutex mutex;  // one multiply at a time: the buffers and the stream are shared
  std::string name;
  size_t kp = 0;  // inner dimension padded for the split tiles and cuBLASLt
  cd::Stream stream;
  cd::LtHandle lt;
  cd::DeviceBuffer weights, workspace;
  cd::DeviceBuffer c0_packed, c0, a_hat, digits, sums, y_packed, fail_rows, fail_count;
  cd::PinnedBuffer host_fail;  // fail count of each group
  std::unique_ptr<cd::LtMatmul> matmul;
  Slot slots[2];
  CudaGemmTiming timing;
};

CudaPlaneGemm::CudaPlaneGemm(std::shared_ptr<const Context> ctx, const int8_t* w, size_t d_out,
                             size_t d_in, bool transpose, int device)
    : ctx_(std::move(ctx)), device_(device) {
  if (d_out == 0 || d_in == 0) throw FheError("empty weight matrix");
  if (ctx_->params().q != Params::P48().q) {
    throw FheError("the digit-plane GEMM reduces modulo the P48 prime only");
  }
  check_ring(ctx_->n());
  in_ = transpose ? d_out : d_in;
  out_ = transpose ? d_in : d_out;
  if (in_ > cd::kMaxInnerDim) {
    throw FheError("inner dimension " + std::to_string(in_) +
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
  // The range of C0 is checked while packing it.
  check_fresh_input(ctx, ct, in_, out_, bounds_, {.check_range = false});
  const size_t n = ctx.n(), blocks = ct.blocks(n);
  const uint64_t q = ctx.q();
  start_product(ct, out_, n, out);

  std::lock_guard<std::mutex> lock(impl_->mutex);
  Impl& im = *impl_;
  cd::use_device(device_);
  const cudaStream_t s = im.stream.get();
  const size_t kp = im.kp, P = cd::kPlanes, B = cd::kPackedBytes;
  const size_t in_block = in_ * n, out_block = out_ * n;  // coefficients per block
  // Device bytes per ciphertext block.
  const size_t per_block =
      in_block * (B + 16) + 2 * P * n * kp + 2 * P * n * out_ * 4 + 2 * out_block * B;
  const size_t group = std::clamp<size_t>(kGroupBudgetBytes / per_block, 1, blocks);
  const size_t groups = (blocks + group - 1) / group;
  im.c0_packed.reserve(group * in_block * B);
  im.c0.reserve(group * in_block * 8);
  im.a_hat.reserve(group * in_block * 8);
  im.digits.reserve(2 * group * P * n * kp);
  im.sums.reserve(2 * group * P * n * out_ * 4);
  im.y_packed.reserve(2 * group * out_block * B);
  im.fail_rows.reserve(group * in_ * 8);
  im.fail_count.reserve(groups * sizeof(uint32_t));
  im.host_fail.reserve(groups * sizeof(uint32_t));
  for (size_t k = 0; k < std::min<size_t>(groups, 2); ++k) {
    im.slots[k].in.reserve(group * in_block * B);
    im.slots[k].out.reserve(2 * group * out_block * B);
  }
  const cd::SeedKey key = seed_key(ct.seed);
  uint32_t* host_fail = im.host_fail.as<uint32_t>();
  CudaGemmTiming timing;

  // C0 of group gi: packed to 6 bytes per coefficient into pinned memory chunk by chunk, each
  // chunk's copy running while the next is packed, then unpacked on the device.
  auto upload = [&](size_t gi) {
    Slot& sl = im.slots[gi % 2];
    const size_t b0 = gi * group, count = std::min(group, blocks - b0) * in_block;
    const uint64_t* src = ct.c0.data() + b0 * in_block;
    sl.start.record(s);
    for (size_t k0 = 0; k0 < count; k0 += kChunkCoeffs) {
      const size_t c = std::min(kChunkCoeffs, count - k0);
      uint8_t* staged = sl.in.as<uint8_t>() + k0 * B;
      if (!pack_parallel(src + k0, c, q, staged)) {
        throw FheError("ciphertext coefficient out of range (>= its modulus)");
      }
      cd::check(cudaMemcpyAsync(im.c0_packed.as<uint8_t>() + k0 * B, staged, c * B,
                                cudaMemcpyHostToDevice, s),
                "upload C0");
    }
    cd::check(cd::launch_unpack48(im.c0_packed.as<uint8_t>(), count, im.c0.as<uint64_t>(), s),
              "unpack kernel");
    cd::check(cudaMemsetAsync(im.fail_count.as<uint32_t>() + gi, 0, sizeof(uint32_t), s), "memset");
    sl.uploaded.record(s);
  };
  // Seed expansion, digit split, GEMM and recombination of group gi (its C0 on the device).
  // careful: wait for the expansion and repair the rows whose spare words ran out on the host.
  auto compute = [&](size_t gi, bool careful) {
    Slot& sl = im.slots[gi % 2];
    const size_t b0 = gi * group, g = std::min(group, blocks - b0);
    cd::check(cd::launch_expand(key, n, q, b0 * in_, g * in_, im.a_hat.as<uint64_t>(),
                                im.fail_count.as<uint32_t>() + gi, im.fail_rows.as<uint64_t>(), s),
              "seed expansion kernel");
    sl.expanded.record(s);
    cd::check(cudaMemcpyAsync(host_fail + gi, im.fail_count.as<uint32_t>() + gi, sizeof(uint32_t),
                              cudaMemcpyDeviceToHost, s),
              "download fail count");
    if (careful) {
      im.stream.sync();
      if (host_fail[gi] > 0) {
        std::vector<uint64_t> rows(host_fail[gi]), row(n);
        cd::check(cudaMemcpy(rows.data(), im.fail_rows.as<void>(), rows.size() * sizeof(uint64_t),
                             cudaMemcpyDeviceToHost),
                  "download failed rows");
        SeedExpander ex(ct.seed, n, q);
        for (uint64_t r : rows) {
          ex.expand_row(r, row.data());
          cd::check(cudaMemcpy(im.a_hat.as<uint64_t>() + (r - b0 * in_) * n, row.data(), n * 8,
                               cudaMemcpyHostToDevice),
                    "upload fallback row");
        }
      }
    }
    const size_t m = 2 * g * P * n;
    if (!im.matmul || !im.matmul->matches(m, out_, kp)) {
      im.matmul.reset();
      im.matmul = std::make_unique<cd::LtMatmul>(true, m, out_, kp, kWorkspaceBytes);
    }
    cd::check(cd::launch_split(im.c0.as<uint64_t>(), im.a_hat.as<uint64_t>(), g, in_, kp, n, q,
                               im.digits.as<int8_t>(), s),
              "digit split kernel");
    sl.split.record(s);
    im.matmul->run(im.lt.get(), im.digits.as<void>(), im.weights.as<void>(), im.sums.as<void>(),
                   im.workspace.as<void>(), s);
    sl.gemm.record(s);
    uint8_t* y = im.y_packed.as<uint8_t>();
    cd::check(
        cd::launch_recombine(im.sums.as<int32_t>(), m, g, out_, n, q, y, y + g * out_block * B, s),
        "recombination kernel");
    sl.recombined.record(s);
  };
  // The packed Y0 and Y1 of group gi into its pinned buffer, chunk by chunk.
  auto download = [&](size_t gi) {
    Slot& sl = im.slots[gi % 2];
    const size_t count = 2 * std::min(group, blocks - gi * group) * out_block;
    const size_t chunks = (count + kChunkCoeffs - 1) / kChunkCoeffs;
    while (sl.chunks.size() < chunks) sl.chunks.push_back(std::make_unique<cd::Event>());
    for (size_t i = 0; i < chunks; ++i) {
      const size_t k0 = i * kChunkCoeffs, c = std::min(kChunkCoeffs, count - k0);
      cd::check(cudaMemcpyAsync(sl.out.as<uint8_t>() + k0 * B, im.y_packed.as<uint8_t>() + k0 * B,
                                c * B, cudaMemcpyDeviceToHost, s),
                "download Y");
      sl.chunks[i]->record(s);
    }
  };
  // Unpacks group gi's chunks into out as they arrive; adds its phase times. Returns whether a
  // row of its expansion ran out of spare words (the product is then wrong).
  auto finish = [&](size_t gi) {
    Slot& sl = im.slots[gi % 2];
    const size_t b0 = gi * group, half = std::min(group, blocks - b0) * out_block;
    const size_t chunks = (2 * half + kChunkCoeffs - 1) / kChunkCoeffs;
    sl.recombined.sync();
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < chunks; ++i) {
      const size_t k0 = i * kChunkCoeffs, k1 = std::min(k0 + kChunkCoeffs, 2 * half);
      sl.chunks[i]->sync();
      const uint8_t* staged = sl.out.as<uint8_t>();
      if (k0 < half) {
        unpack_parallel(staged + k0 * B, std::min(k1, half) - k0,
                        out.c0.data() + b0 * out_block + k0);
      }
      if (k1 > half) {
        const size_t a = std::max(k0, half);
        unpack_parallel(staged + a * B, k1 - a, out.c1.data() + b0 * out_block + (a - half));
      }
    }
    const auto t1 = std::chrono::steady_clock::now();
    timing.upload_s += sl.uploaded.since(sl.start);
    timing.expand_s += sl.expanded.since(sl.uploaded);
    timing.split_s += sl.split.since(sl.expanded);
    timing.gemm_s += sl.gemm.since(sl.split);
    timing.recombine_s += sl.recombined.since(sl.gemm);
    timing.download_s += std::chrono::duration<double>(t1 - t0).count();
    return host_fail[gi] != 0;
  };

  try {
    bool failed = false;
    for (size_t gi = 0; gi < groups; ++gi) {
      upload(gi);
      compute(gi, false);
      if (gi > 0) failed |= finish(gi - 1);
      download(gi);
    }
    failed |= finish(groups - 1);
    if (failed) {
      // A row whose spare words ran out (astronomically rare for the real q): redo the product
      // group by group, expanding such rows on the host.
      timing = {};
      for (size_t gi = 0; gi < groups; ++gi) {
        upload(gi);
        compute(gi, true);
        download(gi);
        finish(gi);
      }
    }
  } catch (...) {
    cudaStreamSynchronize(s);  // no copy may still use the staging buffers
    throw;
  }
  im.timing = timing;
}

uint32_t CudaPlaneGemm::switch_reply(CiphertextMatrix& product) const {
  if (product.kind != CtKind::kProduct || product.rows != out_) {
    throw FheError("switch_reply expects a product of this matrix");
  }
  return fhe::switch_reply(*ctx_, product, bounds_, out_ * product.cols);
}

void cuda_expand_seed_rows(const Seed& seed, size_t n, uint64_t q, uint64_t row0, size_t rows,
                           uint64_t* out, int device) {
  if (n == 0 || n % 8 != 0 || n / 8 + cd::kSpareGroups > 1024) {
    throw FheError("cuda_expand_seed_rows: n must be a positive multiple of 8, at most 8160");
  }
  if (q < 2 || q > (uint64_t{1} << 48))
    throw FheError("cuda_expand_seed_rows: q must be in [2, 2^48]");
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
