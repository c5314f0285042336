#include "fhe/plane_gemm.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>

#include "fhe/encryptor.h"
#include "fhe/evaluator.h"
#include "fhe/modarith.h"
#include "fhe/modswitch.h"
#include "fhe/prng.h"
#include "ntt_simd.h"
#include "plane_kernels.h"

namespace fhe {

namespace detail {
namespace portable {
#include "plane_kernels.inc"
}  // namespace portable

namespace {
void split_portable(const uint64_t* c, size_t rows, size_t n, size_t t0, size_t ct, int bits,
                    int planes, uint8_t* a) {
  portable::split_digits_kernel(c, rows, n, t0, ct, bits, planes, a, 0);
}
void recombine_portable(const int32_t* d, size_t out, size_t ct, int bits, int planes, uint64_t* y,
                        size_t n, size_t t0, uint64_t q) {
  portable::recombine_kernel(d, out, ct, bits, planes, y, n, t0, q, 0);
}
}  // namespace

PlaneKernels plane_kernels_portable() {
  return {split_portable, recombine_portable};
}
}  // namespace detail

namespace {

using dnnl::memory;

}  // namespace

bool cpu_has_int8_dot_product() {
  const auto isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_vnni || isa == dnnl::cpu_isa::avx512_core_bf16 ||
         isa == dnnl::cpu_isa::avx512_core_amx || isa == dnnl::cpu_isa::avx2_vnni;
}

namespace {

// Reusable a_hat buffers: one per multiply() call in flight anywhere in the process.
struct ScratchBuffers {
  std::mutex mutex;
  std::vector<std::unique_ptr<std::vector<uint64_t>>> free;
};

ScratchBuffers& scratch_buffers() {
  static ScratchBuffers* buffers = new ScratchBuffers;  // never destroyed: used until exit
  return *buffers;
}

}  // namespace

struct PlaneGemm::Impl {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
  memory packed_w;
  detail::PlaneKernels kernels;
  std::string impl_name;
  // The expanded a_hat block of one multiply() call comes from scratch_buffers(), shared by
  // every PlaneGemm of the process: a worker holds hundreds of products (7 per layer and
  // direction), and a buffer kept per product (in_dim x n words, 32-128 MiB at Llama-3.2-1B
  // widths) would hold gigabytes that only the concurrent calls need.
  static std::unique_ptr<std::vector<uint64_t>> take(size_t size) {
    ScratchBuffers& s = scratch_buffers();
    std::unique_ptr<std::vector<uint64_t>> b;
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      if (!s.free.empty()) {
        b = std::move(s.free.back());
        s.free.pop_back();
      }
    }
    if (!b) b = std::make_unique<std::vector<uint64_t>>();
    b->resize(size);
    return b;
  }
  static void give(std::unique_ptr<std::vector<uint64_t>> b) {
    ScratchBuffers& s = scratch_buffers();
    std::lock_guard<std::mutex> lock(s.mutex);
    s.free.push_back(std::move(b));
  }
};

PlaneGemm::PlaneGemm(std::shared_ptr<const Context> ctx, const int8_t* w, size_t d_out, size_t d_in,
                     bool transpose, PlaneGemmOptions opts)
    : ctx_(std::move(ctx)) {
  if (d_out == 0 || d_in == 0) throw FheError("empty weight matrix");
  if (ctx_->params().q != Params::P48().q) {
    throw FheError("the digit-plane GEMM reduces modulo the P48 prime only");
  }
  in_ = transpose ? d_out : d_in;
  out_ = transpose ? d_in : d_out;
  bits_ = opts.digit_bits ? opts.digit_bits : (cpu_has_int8_dot_product() ? 8 : 7);
  if (bits_ != 7 && bits_ != 8) throw FheError("digit width must be 7 or 8 bits");
  planes_ = static_cast<int>((ctx_->params().log2_q + bits_ - 1) / bits_);
  // |sum| <= in * (2^bits - 1) * 128 must fit int32.
  if (static_cast<uint64_t>(in_) * ((uint64_t{1} << bits_) - 1) * 128 >= (uint64_t{1} << 31)) {
    throw FheError("inner dimension " + std::to_string(in_) +
                   " overflows the int32 accumulation of the digit-plane GEMM; split it");
  }
  const size_t n = ctx_->n();
  if (opts.chunk_tokens) {
    chunk_ = opts.chunk_tokens;
  } else {
    // Keep one call's int32 output near 1.5 MiB, inside a core's L2 with the digit matrix.
    size_t c = (size_t{3} << 19) / (static_cast<size_t>(planes_) * 4 * out_);
    chunk_ = 8;
    while (chunk_ * 2 <= c && chunk_ < 256) chunk_ *= 2;
  }
  if (chunk_ == 0 || chunk_ > 256 || n % chunk_ != 0) {
    throw FheError("chunk size must divide the ring degree and be at most 256");
  }
  threads_ = opts.threads > 0 ? opts.threads : omp_get_max_threads();
  const size_t stride = opts.weight_stride ? opts.weight_stride : d_in;
  if (stride < d_in) throw FheError("weight row stride below the row length");
  // A dense copy of a strided block: for the bounds, and to pack (it is freed after).
  std::vector<int8_t> dense;
  if (stride != d_in) {
    dense.resize(d_out * d_in);
    for (size_t i = 0; i < d_out; ++i) std::copy_n(w + i * stride, d_in, dense.data() + i * d_in);
  }
  const int8_t* const dense_w = stride != d_in ? dense.data() : w;
  bounds_ = measure_bounds(dense_w, d_out, d_in, transpose);

  impl_ = std::make_unique<Impl>();
  impl_->kernels =
      ctx_->vectorised() ? detail::plane_kernels_avx512() : detail::plane_kernels_portable();
  const memory::dim m = static_cast<memory::dim>(planes_ * chunk_);
  const memory::dim k = static_cast<memory::dim>(in_), nn = static_cast<memory::dim>(out_);
  memory::desc src_md({m, k}, memory::data_type::u8, memory::format_tag::ab);
  memory::desc dst_md({m, nn}, memory::data_type::s32, memory::format_tag::ab);
  // weights(k, n) = M[n][k]: W^T for W*C ("ba" over W's buffer), W itself for W^T*C ("ab").
  memory::desc w_plain({k, nn}, memory::data_type::s8,
                       transpose ? memory::format_tag::ab : memory::format_tag::ba);
  if (stride != d_in) {
    // weights(k, n) at k * stride + n (W^T*C) or n * stride + k (W*C).
    const auto ld = static_cast<memory::dim>(stride);
    w_plain = memory::desc({k, nn}, memory::data_type::s8,
                           transpose ? memory::dims{ld, 1} : memory::dims{1, ld});
  }
  memory::desc w_any({k, nn}, memory::data_type::s8, memory::format_tag::any);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  impl_->pd = dnnl::matmul::primitive_desc(
      dnnl::matmul::desc(src_md, opts.borrow_weights ? w_plain : w_any, dst_md), attr, impl_->eng);
  impl_->prim = dnnl::matmul(impl_->pd);
  impl_->impl_name = impl_->pd.impl_info_str();
  if (opts.borrow_weights) {
    // oneDNN reads the caller's buffer in place (it never writes weights).
    impl_->packed_w = memory(w_plain, impl_->eng, const_cast<int8_t*>(w));
    return;
  }
  std::vector<int8_t> copy(dense_w, dense_w + d_out * d_in);
  memory w_mem(memory::desc({k, nn}, memory::data_type::s8,
                            transpose ? memory::format_tag::ab : memory::format_tag::ba),
               impl_->eng, copy.data());
  impl_->packed_w = memory(impl_->pd.weights_desc(), impl_->eng);
  dnnl::stream s(impl_->eng);
  dnnl::reorder(w_mem, impl_->packed_w).execute(s, w_mem, impl_->packed_w);
  s.wait();
}

PlaneGemm::~PlaneGemm() = default;

const char* PlaneGemm::implementation() const {
  return impl_->impl_name.c_str();
}

namespace {

thread_local GemmPhases* tls_phases = nullptr;

uint64_t nanos_since(std::chrono::steady_clock::time_point start) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count());
}

}  // namespace

ScopedGemmPhases::ScopedGemmPhases(GemmPhases* sink) : previous_(tls_phases) {
  tls_phases = sink;
}

ScopedGemmPhases::~ScopedGemmPhases() {
  tls_phases = previous_;
}

GemmPhases* current_gemm_phases() {
  return tls_phases;
}

void PlaneGemm::multiply_blocks(const uint64_t* c, uint64_t* y, size_t count) const {
  GemmPhases* const phases = tls_phases;  // the OpenMP threads below do not see it
  const auto started = std::chrono::steady_clock::now();
  const size_t n = ctx_->n();
  const size_t chunks_per_block = n / chunk_;
  const int64_t tasks = static_cast<int64_t>(count * chunks_per_block);
  const size_t m = static_cast<size_t>(planes_) * chunk_;
  const size_t scratch = impl_->pd.scratchpad_desc().get_size();
#pragma omp parallel num_threads(threads_)
  {
    dnnl::stream s(impl_->eng);
    std::vector<uint8_t> a(m * in_);
    std::vector<int32_t> dst(m * out_);
    std::vector<uint8_t> pad(scratch + 64);
    memory a_mem(impl_->pd.src_desc(), impl_->eng, a.data());
    memory d_mem(impl_->pd.dst_desc(), impl_->eng, dst.data());
    memory s_mem(impl_->pd.scratchpad_desc(), impl_->eng, pad.data());
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const size_t blk = static_cast<size_t>(task) / chunks_per_block;
      const size_t t0 = (static_cast<size_t>(task) % chunks_per_block) * chunk_;
      impl_->kernels.split(c + blk * in_ * n, in_, n, t0, chunk_, bits_, planes_, a.data());
      impl_->prim.execute(s, {{DNNL_ARG_SRC, a_mem},
                              {DNNL_ARG_WEIGHTS, impl_->packed_w},
                              {DNNL_ARG_DST, d_mem},
                              {DNNL_ARG_SCRATCHPAD, s_mem}});
      s.wait();
      const auto recombine_start =
          phases ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
      impl_->kernels.recombine(dst.data(), out_, chunk_, bits_, planes_, y + blk * out_ * n, n, t0,
                               ctx_->q());
      if (phases) phases->recombine_cpu_ns += nanos_since(recombine_start);
    }
    if (phases && omp_get_thread_num() == 0) phases->threads = omp_get_num_threads();
  }
  if (phases) phases->gemm_ns += nanos_since(started);
}

CiphertextMatrix PlaneGemm::multiply(const CiphertextMatrix& ct) const {
  CiphertextMatrix out;
  multiply_into(ct, out);
  return out;
}

void PlaneGemm::multiply_into(const CiphertextMatrix& ct, CiphertextMatrix& out) const {
  check_fresh_input(*ctx_, ct, in_, out_, bounds_);
  multiply_checked(ct, 0, out);
}

void PlaneGemm::multiply_rows_into(const CiphertextMatrix& ct, size_t row_begin,
                                   CiphertextMatrix& out) const {
  check_fresh_input(*ctx_, ct, in_, out_, bounds_, {.row_begin = row_begin});
  multiply_checked(ct, row_begin, out);
}

void PlaneGemm::multiply_checked(const CiphertextMatrix& ct, size_t row_begin,
                                 CiphertextMatrix& out) const {
  const Context& ctx = *ctx_;
  const size_t n = ctx.n(), blocks = ct.blocks(n), rows = ct.rows;
  start_product(ct, out_, n, out);
  if (rows == in_) {
    multiply_blocks(ct.c0.data(), out.c0.data(), blocks);
  } else {
    for (size_t b = 0; b < blocks; ++b) {
      multiply_blocks(ct.c0.data() + (b * rows + row_begin) * n, out.c0.data() + b * out_ * n, 1);
    }
  }
  // c1: expand a_hat block by block (rows of all blocks are independent streams), each row at its
  // place in the whole matrix.
  auto buffer = impl_->take(in_ * n);
  std::vector<uint64_t>& a_hat = *buffer;
  for (size_t b = 0; b < blocks; ++b) {
    expand_mask_rows(ctx, ct.seed, b * rows + row_begin, in_, a_hat.data(), threads_);
    multiply_blocks(a_hat.data(), out.c1.data() + b * out_ * n, 1);
  }
  impl_->give(std::move(buffer));
}

uint32_t PlaneGemm::switch_reply(CiphertextMatrix& product) const {
  if (product.kind != CtKind::kProduct || product.rows != out_) {
    throw FheError("switch_reply expects a product of this matrix");
  }
  return fhe::switch_reply(*ctx_, product, bounds_, out_ * product.cols);
}

CiphertextMatrix reference_multiply(const Context& ctx, const int8_t* w, size_t d_out, size_t d_in,
                                    bool transpose, const CiphertextMatrix& ct) {
  validate(ctx, ct);
  const size_t in = transpose ? d_out : d_in, out = transpose ? d_in : d_out;
  if (ct.kind != CtKind::kFresh || ct.rows != in) throw FheError("reference_multiply: bad input");
  const size_t n = ctx.n(), blocks = ct.blocks(n);
  const uint64_t q = ctx.q();
  auto m_at = [&](size_t i, size_t j) -> int64_t {
    return transpose ? w[j * d_in + i] : w[i * d_in + j];
  };
  CiphertextMatrix r;
  r.params_id = ct.params_id;
  r.kind = CtKind::kProduct;
  r.rows = out;
  r.cols = ct.cols;
  r.log2_delta = ct.log2_delta;
  r.seed = ct.seed;
  r.c0.resize(blocks * out * n);
  r.c1.resize(blocks * out * n);
  SeedExpander ex(ct.seed, n, q);
  std::vector<uint64_t> a(in * n);
  std::vector<i128> acc0(n), acc1(n);
  for (size_t b = 0; b < blocks; ++b) {
    for (size_t j = 0; j < in; ++j) ex.expand_row(b * in + j, a.data() + j * n);
    for (size_t i = 0; i < out; ++i) {
      std::fill(acc0.begin(), acc0.end(), 0);
      std::fill(acc1.begin(), acc1.end(), 0);
      for (size_t j = 0; j < in; ++j) {
        const int64_t wij = m_at(i, j);
        const uint64_t* c0 = ct.c0.data() + (b * in + j) * n;
        const uint64_t* c1 = a.data() + j * n;
        for (size_t t = 0; t < n; ++t) {
          acc0[t] += static_cast<i128>(wij) * static_cast<i128>(c0[t]);
          acc1[t] += static_cast<i128>(wij) * static_cast<i128>(c1[t]);
        }
      }
      for (size_t t = 0; t < n; ++t) {
        i128 v0 = acc0[t] % static_cast<i128>(q), v1 = acc1[t] % static_cast<i128>(q);
        if (v0 < 0) v0 += q;
        if (v1 < 0) v1 += q;
        r.c0[(b * out + i) * n + t] = static_cast<uint64_t>(v0);
        r.c1[(b * out + i) * n + t] = static_cast<uint64_t>(v1);
      }
    }
  }
  return r;
}

}  // namespace fhe
