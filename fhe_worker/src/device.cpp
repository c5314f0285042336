// Device parsing and the choice of the GEMM implementation.
#include "fhe_worker/device.h"

#include <omp.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <string>
#include <vector>

#include "fhe/encryptor.h"
#include "fhe/modswitch.h"
#include "fhe/params.h"
#include "fhe/plane_gemm.h"
#include "fhe/prng.h"
#include "fhe_worker/error.h"

#ifdef FHE_WORKER_HAVE_CUDA
#include "fhe/cuda_plane_gemm.h"
#endif

namespace fhe_worker {
namespace {

// The CPU product: fhe::PlaneGemm. A batch runs as one GEMM call over the concatenated row-blocks
// of every input: first all c0 blocks, then all seed-expanded c1 blocks.
class CpuGemm final : public Gemm {
 public:
  CpuGemm(std::shared_ptr<const fhe::Context> ctx, const GemmSpec& spec)
      : ctx_(ctx),
        gemm_(std::move(ctx), spec.w, spec.d_out, spec.d_in, spec.transpose,
              fhe::PlaneGemmOptions{.threads = spec.threads,
                                    .borrow_weights = spec.borrow,
                                    .weight_stride = spec.stride}),
        threads_(spec.threads) {}

  size_t in_dim() const override { return gemm_.in_dim(); }
  size_t out_dim() const override { return gemm_.out_dim(); }
  const fhe::WeightBounds& bounds() const override { return gemm_.bounds(); }
  std::string implementation() const override {
    return std::string("cpu plane GEMM (") + gemm_.implementation() + ", " +
           std::to_string(gemm_.planes()) + " planes of " + std::to_string(gemm_.digit_bits()) +
           " bits)";
  }

  void multiply_into(const fhe::CiphertextMatrix& ct, fhe::CiphertextMatrix& out) const override {
    gemm_.multiply_into(ct, out);
  }

  void multiply_rows_into(const fhe::CiphertextMatrix& ct, size_t row_begin,
                          fhe::CiphertextMatrix& out) const override {
    gemm_.multiply_rows_into(ct, row_begin, out);
  }

  void multiply_batch(std::span<const fhe::CiphertextMatrix* const> ins,
                      std::span<fhe::CiphertextMatrix* const> outs) const override {
    if (ins.size() != outs.size()) throw fhe::FheError("multiply_batch: inputs and outputs differ");
    if (ins.size() == 1) return multiply_into(*ins[0], *outs[0]);
    const fhe::Context& ctx = *ctx_;
    const size_t n = ctx.n(), in = in_dim(), out = out_dim();
    size_t blocks = 0;
    for (const fhe::CiphertextMatrix* ct : ins) {
      fhe::validate(ctx, *ct);
      if (ct->kind != fhe::CtKind::kFresh)
        throw fhe::FheError("only fresh ciphertexts can be multiplied");
      if (ct->rows != in) {
        throw fhe::FheError("ciphertext has " + std::to_string(ct->rows) +
                         " rows but the matrix expects " + std::to_string(in));
      }
      fhe::check_product(ctx.params(), ct->log2_delta, bounds(), out * ct->cols);
      blocks += ct->blocks(n);
    }
    // c: [c0 blocks of every input, then a_hat blocks of every input], each block in x n.
    fhe::CoeffVector c(2 * blocks * in * n), y(2 * blocks * out * n);
    size_t at = 0;
    for (const fhe::CiphertextMatrix* ct : ins) {
      std::copy(ct->c0.begin(), ct->c0.end(), c.begin() + static_cast<std::ptrdiff_t>(at));
      at += ct->c0.size();
    }
    const auto expand_start = std::chrono::steady_clock::now();
    for (const fhe::CiphertextMatrix* ct : ins) {
      const size_t b_count = ct->blocks(n);
      uint64_t* base = c.data() + at;
#pragma omp parallel num_threads(threads_ > 0 ? threads_ : omp_get_max_threads())
      {
        fhe::SeedExpander ex(ct->seed, n, ctx.q());
#pragma omp for schedule(static)
        for (int64_t r = 0; r < static_cast<int64_t>(b_count * in); ++r) {
          ex.expand_row(static_cast<uint64_t>(r), base + static_cast<size_t>(r) * n);
        }
      }
      at += b_count * in * n;
    }
    if (fhe::GemmPhases* phases = fhe::current_gemm_phases()) {
      phases->seed_expansion_ns +=
          static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::steady_clock::now() - expand_start)
                                    .count());
    }
    gemm_.multiply_blocks(c.data(), y.data(), 2 * blocks);
    size_t y0 = 0, y1 = blocks * out * n;
    for (size_t i = 0; i < ins.size(); ++i) {
      const fhe::CiphertextMatrix& ct = *ins[i];
      fhe::CiphertextMatrix& o = *outs[i];
      const size_t len = ct.blocks(n) * out * n;
      o.params_id = ct.params_id;
      o.kind = fhe::CtKind::kProduct;
      o.rows = out;
      o.cols = ct.cols;
      o.log2_delta = ct.log2_delta;
      o.log2_modulus = 0;
      o.seed = ct.seed;
      o.c0.assign(y.begin() + static_cast<std::ptrdiff_t>(y0),
                  y.begin() + static_cast<std::ptrdiff_t>(y0 + len));
      o.c1.assign(y.begin() + static_cast<std::ptrdiff_t>(y1),
                  y.begin() + static_cast<std::ptrdiff_t>(y1 + len));
      y0 += len;
      y1 += len;
    }
  }

 private:
  std::shared_ptr<const fhe::Context> ctx_;
  fhe::PlaneGemm gemm_;
  int threads_;
};

#ifdef FHE_WORKER_HAVE_CUDA
// The CUDA product: fhe::CudaPlaneGemm (bit-identical to PlaneGemm). Batches run one product
// after another (the default multiply_batch).
class CudaGemm final : public Gemm {
 public:
  CudaGemm(std::shared_ptr<const fhe::Context> ctx, const GemmSpec& spec, int device)
      : gemm_(std::move(ctx), spec.w, spec.d_out, spec.d_in, spec.transpose, device) {
    if (spec.stride != 0 && spec.stride != spec.d_in) {
      throw fhe::FheError("the CUDA product takes dense weights only");
    }
  }
  size_t in_dim() const override { return gemm_.in_dim(); }
  size_t out_dim() const override { return gemm_.out_dim(); }
  const fhe::WeightBounds& bounds() const override { return gemm_.bounds(); }
  std::string implementation() const override {
    return std::string("cuda plane GEMM on device ") + std::to_string(gemm_.device()) + " (" +
           gemm_.device_name() + ")";
  }
  void multiply_into(const fhe::CiphertextMatrix& ct, fhe::CiphertextMatrix& out) const override {
    gemm_.multiply_into(ct, out);
  }

 private:
  fhe::CudaPlaneGemm gemm_;
};
#endif

}  // namespace

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

void Gemm::multiply_rows_into(const fhe::CiphertextMatrix&, size_t, fhe::CiphertextMatrix&) const {
  throw fhe::FheError("stacked products are not implemented by " + implementation() +
                   "; send one request per projection");
}

void Gemm::multiply_batch(std::span<const fhe::CiphertextMatrix* const> ins,
                          std::span<fhe::CiphertextMatrix* const> outs) const {
  if (ins.size() != outs.size()) throw fhe::FheError("multiply_batch: inputs and outputs differ");
  for (size_t i = 0; i < ins.size(); ++i) multiply_into(*ins[i], *outs[i]);
}

uint32_t Gemm::switch_reply(const fhe::Context& ctx, fhe::CiphertextMatrix& product) const {
  if (product.kind != fhe::CtKind::kProduct || product.rows != out_dim()) {
    throw fhe::FheError("switch_reply expects a product of this matrix");
  }
  const uint32_t bits =
      fhe::choose_switch_bits(ctx.params(), product.log2_delta, bounds(), out_dim() * product.cols);
  if (bits == 0) return 0;
  fhe::switch_modulus(ctx, product, bits);
  return bits;
}

// ---- The device choice --------------------------------------------------------------------------
// The one place where --device picks the implementation of a worker's products. When the CUDA
// library is part of the build (FHE_WORKER_HAVE_CUDA), cuda[:N] gets a fhe::CudaPlaneGemm (same
// multiply_into contract as fhe::PlaneGemm) wrapped like CpuGemm; auto may then prefer it.
std::unique_ptr<Gemm> make_gemm(const Device& device, std::shared_ptr<const fhe::Context> ctx,
                                const GemmSpec& spec) {
  switch (device.kind) {
    case Device::Kind::kAuto:
    case Device::Kind::kCpu:
      return std::make_unique<CpuGemm>(std::move(ctx), spec);
    case Device::Kind::kCuda:
#ifdef FHE_WORKER_HAVE_CUDA
      if (fhe::cuda_device_count() == 0) {
        throw WorkerError("--device " + device.name() +
                    ": CUDA is not available (this build has no CUDA backend or the machine no "
                    "usable GPU); use --device cpu");
      }
      if (device.index >= fhe::cuda_device_count()) {
        throw WorkerError("--device " + device.name() + ": no such CUDA device (" +
                    std::to_string(fhe::cuda_device_count()) + " usable)");
      }
      return std::make_unique<CudaGemm>(std::move(ctx), spec, device.index);
#else
      throw WorkerError("--device " + device.name() +
                  ": CUDA is not available in this build (no fhe_cuda library); use --device cpu");
#endif
  }
  throw WorkerError("unknown device");
}

}  // namespace fhe_worker
