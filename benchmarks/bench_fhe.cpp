// bench_fhe: the encrypted linear layer against plaintext GEMMs of the same shape, in one run.
//
// For each shape (d_out, d_in, T) and thread count it times, alternating, median of --reps runs:
//   enc_gemm_s   the worker's homomorphic product W * Enc(X) (PlaneGemm::multiply: input checks,
//                seed expansion of c1, digit split, oneDNN u8 x s8 GEMMs, recombination)
//   int8_gemm_s  oneDNN s8 x s8 -> s32 matmul of the plaintext, weights pre-packed
//   fp32_gemm_s  oneDNN f32 matmul of the plaintext, weights pre-packed
//   borrowed_gemm_s, borrowed_t_gemm_s, packed_t_gemm_s  W * Enc(X) with the weights read in
//                place (PlaneGemmOptions::borrow_weights, as fhe_worker holds them: one int8 copy
//                for both directions) and W^T * Enc(G) borrowed and packed; their products
//                must equal the packed ones word for word (borrowed_identical)
// and the participant's encryption and decryption. It prints one JSON object per line; ratios are
// ratios of medians, and each *_spread is [min, max] over the runs.
//
// --device cuda times the GPU backend instead (CudaPlaneGemm::multiply_into, host memory to host
// memory: upload of C0, seed expansion, digit split, one cuBLASLt int8 GEMM, recombination,
// download) against cuBLASLt's plain s8 x s8 -> s32 and f32 GEMMs of the same shape with
// operands resident on the device (each rep: the mean of a burst of 20 back-to-back GEMMs);
// enc_device_s is the encrypted product's on-device part alone (CUDA events, no transfers) and
// ratio_vs_int8_device its ratio to the int8 GEMM.
// bit_exact: the decrypted GPU product equals cuBLASLt's int8 result; ct_sample_identical: a
// sample of product rows equals fhe::reference_multiply word for word.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <string>
#include <vector>

#include "fhe/cuda_plane_gemm.h"
#include "fhe/encryptor.h"
#include "fhe/plane_gemm.h"
#include "fhe/serialize.h"

namespace {

using dnnl::memory;

struct Stats {
  double median, min, max;
};

Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}

double time_once(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A plaintext matmul dst (T x d_out) = src (T x d_in) * W^T with pre-packed weights.
class PlainGemm {
 public:
  PlainGemm(memory::data_type src_t, memory::data_type w_t, memory::data_type dst_t, size_t d_out,
            size_t d_in, size_t t, const void* w, const void* src)
      : eng_(dnnl::engine::kind::cpu, 0), s_(eng_) {
    const memory::dim m = static_cast<memory::dim>(t), k = static_cast<memory::dim>(d_in),
                      n = static_cast<memory::dim>(d_out);
    memory::desc src_md({m, k}, src_t, memory::format_tag::ab);
    memory::desc w_any({k, n}, w_t, memory::format_tag::any);
    memory::desc dst_md({m, n}, dst_t, memory::format_tag::ab);
    pd_ = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, w_any, dst_md), eng_);
    prim_ = dnnl::matmul(pd_);
    memory w_plain(memory::desc({k, n}, w_t, memory::format_tag::ba), eng_, const_cast<void*>(w));
    w_ = memory(pd_.weights_desc(), eng_);
    dnnl::reorder(w_plain, w_).execute(s_, w_plain, w_);
    src_ = memory(src_md, eng_, const_cast<void*>(src));
    dst_ = memory(dst_md, eng_);
    s_.wait();
  }
  void run() {
    prim_.execute(s_, {{DNNL_ARG_SRC, src_}, {DNNL_ARG_WEIGHTS, w_}, {DNNL_ARG_DST, dst_}});
    s_.wait();
  }
  const void* dst() const { return dst_.get_data_handle(); }
  std::string impl() const { return pd_.impl_info_str(); }

 private:
  dnnl::engine eng_;
  dnnl::stream s_;
  dnnl::matmul::primitive_desc pd_;
  dnnl::matmul prim_;
  memory w_, src_, dst_;
};

void run_shape(size_t d_out, size_t d_in, size_t t, int threads, int reps) {
  omp_set_num_threads(threads);
  auto ctx = fhe::Context::create();
  // Benchmark data only: a seeded generator.
  std::mt19937_64 g(d_out * 31 + d_in * 7 + t);
  std::vector<int8_t> w(d_out * d_in), x(d_in * t), xt(t * d_in);
  for (auto& v : w) v = static_cast<int8_t>(static_cast<int>(g() % 256) - 128);
  for (auto& v : x) v = static_cast<int8_t>(static_cast<int>(g() % 256) - 128);
  for (size_t j = 0; j < d_in; ++j)
    for (size_t c = 0; c < t; ++c) xt[c * d_in + j] = x[j * t + c];
  std::vector<float> wf(w.begin(), w.end()), xtf(xt.begin(), xt.end());

  const auto key = fhe::SecretKey::generate(ctx);
  fhe::Encryptor enc(key);
  fhe::Decryptor dec(key);
  fhe::PlaneGemm gemm(ctx, w.data(), d_out, d_in, false);
  fhe::PlaneGemm borrowed(ctx, w.data(), d_out, d_in, false, {.borrow_weights = true});
  fhe::PlaneGemm packed_t(ctx, w.data(), d_out, d_in, true);
  fhe::PlaneGemm borrowed_t(ctx, w.data(), d_out, d_in, true, {.borrow_weights = true});
  PlainGemm i8(memory::data_type::s8, memory::data_type::s8, memory::data_type::s32, d_out, d_in, t,
               w.data(), xt.data());
  PlainGemm f32(memory::data_type::f32, memory::data_type::f32, memory::data_type::f32, d_out, d_in,
                t, wf.data(), xtf.data());
  // The participant knows each projection's row norms (the worker's model-info reply).
  const auto bounds = gemm.bounds();

  fhe::CiphertextMatrix ct = enc.encrypt(x.data(), d_in, t, bounds, d_out * t);
  fhe::CiphertextMatrix prod = gemm.multiply(ct);  // warm-up
  fhe::CiphertextMatrix prod_b = borrowed.multiply(ct);
  std::vector<int8_t> g_t(d_out * t);
  for (auto& v : g_t) v = static_cast<int8_t>(static_cast<int>(g() % 256) - 128);
  const auto bounds_t = packed_t.bounds();
  fhe::CiphertextMatrix ct_t = enc.encrypt(g_t.data(), d_out, t, bounds_t, d_in * t);
  fhe::CiphertextMatrix prod_t = packed_t.multiply(ct_t), prod_bt = borrowed_t.multiply(ct_t);
  bool borrowed_identical = prod_b.c0 == prod.c0 && prod_b.c1 == prod.c1 &&
                            prod_bt.c0 == prod_t.c0 && prod_bt.c1 == prod_t.c1;
  std::vector<double> tb, tbt, tpt;
  i8.run();
  f32.run();
  std::vector<double> te, ti, tf, tenc, tdec, ratio_i8, ratio_f32;
  const uint32_t log2_delta = fhe::choose_log2_delta(ctx->params(), bounds, d_out * t);
  std::vector<int64_t> y(d_out * t);
  for (int r = 0; r < reps; ++r) {
    // A participant encrypts layer after layer into the same buffers.
    tenc.push_back(time_once([&] { enc.encrypt_into(x.data(), d_in, t, log2_delta, ct); }));
    te.push_back(time_once([&] { gemm.multiply_into(ct, prod); }));
    tb.push_back(time_once([&] { borrowed.multiply_into(ct, prod_b); }));
    tpt.push_back(time_once([&] { packed_t.multiply_into(ct_t, prod_t); }));
    tbt.push_back(time_once([&] { borrowed_t.multiply_into(ct_t, prod_bt); }));
    borrowed_identical = borrowed_identical && prod_b.c0 == prod.c0 && prod_bt.c1 == prod_t.c1;
    ti.push_back(time_once([&] { i8.run(); }));
    tf.push_back(time_once([&] { f32.run(); }));
    tdec.push_back(time_once([&] { dec.decrypt_into(prod, y.data()); }));
    ratio_i8.push_back(te.back() / ti.back());
    ratio_f32.push_back(te.back() / tf.back());
  }
  // Bit-exactness against the plaintext int8 GEMM (dst is T x d_out).
  const auto* ref = static_cast<const int32_t*>(i8.dst());
  bool exact = true;
  for (size_t i = 0; i < d_out && exact; ++i)
    for (size_t c = 0; c < t; ++c)
      if (y[i * t + c] != ref[c * d_out + i]) {
        exact = false;
        break;
      }
  const double up = static_cast<double>(fhe::serialize(*ctx, ct).size()) / (d_in * t);
  const double down = static_cast<double>(fhe::serialize(*ctx, prod).size()) / (d_out * t);
  // The modulus-switched reply (an option per request): smaller, one more NTT per row each side.
  std::vector<double> tsw, tdsw;
  uint32_t switch_bits = 0;
  fhe::CiphertextMatrix sw;
  for (int r = 0; r < std::max(3, reps / 2); ++r) {
    sw = prod;
    tsw.push_back(time_once([&] { switch_bits = gemm.switch_reply(sw); }));
    tdsw.push_back(time_once([&] { dec.decrypt_into(sw, y.data()); }));
  }
  bool switched_exact = switch_bits > 0;
  for (size_t i = 0; i < d_out && switched_exact; ++i)
    for (size_t c = 0; c < t; ++c)
      if (y[i * t + c] != ref[c * d_out + i]) {
        switched_exact = false;
        break;
      }
  const double down_sw =
      switch_bits ? static_cast<double>(fhe::serialize(*ctx, sw).size()) / (d_out * t) : down;
  const double dec_sw_ns = stats(tdsw).median * threads * 1e9 / (d_out * t);
  const Stats se = stats(te), si = stats(ti), sf = stats(tf), sen = stats(tenc), sde = stats(tdec);
  const Stats ri = stats(ratio_i8), rf = stats(ratio_f32);
  // Per value per thread: wall time * threads / values.
  const double enc_ns = sen.median * threads * 1e9 / (d_in * t);
  const double dec_ns = sde.median * threads * 1e9 / (d_out * t);
  std::printf(
      "{\"shape\": [%zu, %zu, %zu], \"threads\": %d, \"reps\": %d, \"enc_gemm_s\": %.5f, "
      "\"enc_gemm_spread\": [%.5f, %.5f], \"int8_gemm_s\": %.5f, \"int8_gemm_spread\": [%.5f, "
      "%.5f], "
      "\"fp32_gemm_s\": %.5f, \"fp32_gemm_spread\": [%.5f, %.5f], \"ratio_vs_int8\": %.2f, "
      "\"ratio_vs_int8_spread\": [%.2f, %.2f], \"ratio_vs_fp32\": %.2f, \"ratio_vs_fp32_spread\": "
      "[%.2f, %.2f], \"encrypt_ns_per_value\": %.2f, \"decrypt_ns_per_value\": %.2f, "
      "\"bytes_up_per_value\": %.3f, \"bytes_down_per_value\": %.3f, \"bit_exact\": %s, "
      "\"switched_bits\": %u, \"bytes_down_switched_per_value\": %.3f, \"switch_s\": %.5f, "
      "\"decrypt_switched_ns_per_value\": %.2f, \"switched_bit_exact\": %s, "
      "\"borrowed_gemm_s\": %.5f, \"borrowed_gemm_spread\": [%.5f, %.5f], "
      "\"packed_t_gemm_s\": %.5f, \"borrowed_t_gemm_s\": %.5f, \"borrowed_t_gemm_spread\": "
      "[%.5f, %.5f], \"borrowed_over_packed\": %.3f, \"borrowed_t_over_packed_t\": %.3f, "
      "\"borrowed_identical\": %s, \"borrowed_impl\": \"%s\", "
      "\"planes\": %d, \"ntt\": \"%s\", \"gemm_impl\": \"%s\", \"int8_impl\": \"%s\"}\n",
      d_out, d_in, t, threads, reps, se.median, se.min, se.max, si.median, si.min, si.max,
      sf.median, sf.min, sf.max, se.median / si.median, ri.min, ri.max, se.median / sf.median,
      rf.min, rf.max, enc_ns, dec_ns, up, down, exact ? "true" : "false", switch_bits, down_sw,
      stats(tsw).median, dec_sw_ns, switched_exact ? "true" : "false", stats(tb).median,
      stats(tb).min, stats(tb).max, stats(tpt).median, stats(tbt).median, stats(tbt).min,
      stats(tbt).max, stats(tb).median / se.median, stats(tbt).median / stats(tpt).median,
      borrowed_identical ? "true" : "false", borrowed.implementation(), gemm.planes(),
      fhe::to_string(ctx->ntt().path()), gemm.implementation(), i8.impl().c_str());
  std::fflush(stdout);
}

// The GPU backend on one shape (see the file comment); threads only affect the CPU-side
// encryption, decryption and reference.
void run_shape_cuda(size_t d_out, size_t d_in, size_t t, int threads, int reps, int device) {
  constexpr int kPlainBurst = 20;
  omp_set_num_threads(threads);
  auto ctx = fhe::Context::create();
  std::mt19937_64 g(d_out * 31 + d_in * 7 + t);
  std::vector<int8_t> w(d_out * d_in), x(d_in * t), xt(t * d_in);
  for (auto& v : w) v = static_cast<int8_t>(static_cast<int>(g() % 256) - 128);
  for (auto& v : x) v = static_cast<int8_t>(static_cast<int>(g() % 256) - 128);
  for (size_t j = 0; j < d_in; ++j)
    for (size_t c = 0; c < t; ++c) xt[c * d_in + j] = x[j * t + c];

  const auto key = fhe::SecretKey::generate(ctx);
  fhe::Encryptor enc(key);
  fhe::Decryptor dec(key);
  fhe::CudaPlaneGemm gemm(ctx, w.data(), d_out, d_in, false, device);
  fhe::CudaPlainGemm i8(fhe::CudaPlainGemm::Type::kInt8, w.data(), d_out, d_in, t, device);
  fhe::CudaPlainGemm f32(fhe::CudaPlainGemm::Type::kFp32, w.data(), d_out, d_in, t, device);
  i8.upload(xt.data());
  f32.upload(xt.data());
  const auto bounds = gemm.bounds();
  fhe::CiphertextMatrix ct = enc.encrypt(x.data(), d_in, t, bounds, d_out * t);
  fhe::CiphertextMatrix prod = gemm.multiply(ct);  // warm-up
  i8.run();
  f32.run();
  std::vector<double> te, tdev, ti, tf, tenc, tdec, ratio_i8, ratio_f32;
  const uint32_t log2_delta = fhe::choose_log2_delta(ctx->params(), bounds, d_out * t);
  std::vector<int64_t> y(d_out * t);
  fhe::CudaGemmTiming phases;
  for (int r = 0; r < reps; ++r) {
    tenc.push_back(time_once([&] { enc.encrypt_into(x.data(), d_in, t, log2_delta, ct); }));
    te.push_back(time_once([&] { gemm.multiply_into(ct, prod); }));
    phases = gemm.last_timing();
    tdev.push_back(phases.device_s());
    // Plain GEMMs are short: time a burst and take the mean, so launch and sync overheads
    // do not count against the baseline.
    ti.push_back(time_once([&] { i8.run(kPlainBurst); }) / kPlainBurst);
    tf.push_back(time_once([&] { f32.run(kPlainBurst); }) / kPlainBurst);
    tdec.push_back(time_once([&] { dec.decrypt_into(prod, y.data()); }));
    ratio_i8.push_back(te.back() / ti.back());
    ratio_f32.push_back(te.back() / tf.back());
  }
  std::vector<int32_t> ref(d_out * t);
  i8.download(ref.data());  // d_out x t
  bool exact = true;
  for (size_t k = 0; k < ref.size() && exact; ++k) exact = y[k] == ref[k];
  // Word-for-word check of a sample of rows against the scalar reference.
  const size_t sample[] = {0, d_out / 2, d_out - 1};
  bool ct_identical = true;
  for (size_t i : sample) {
    const auto r = fhe::reference_multiply(*ctx, w.data() + i * d_in, 1, d_in, false, ct);
    const size_t n = ctx->n();
    for (size_t b = 0; b < ct.blocks(n) && ct_identical; ++b) {
      for (size_t c = 0; c < n; ++c) {
        if (r.c0[b * n + c] != prod.c0[(b * d_out + i) * n + c] ||
            r.c1[b * n + c] != prod.c1[(b * d_out + i) * n + c]) {
          ct_identical = false;
          break;
        }
      }
    }
  }
  const double up = static_cast<double>(fhe::serialize(*ctx, ct).size()) / (d_in * t);
  const double down = static_cast<double>(fhe::serialize(*ctx, prod).size()) / (d_out * t);
  const Stats se = stats(te), sd = stats(tdev), si = stats(ti), sf = stats(tf), sen = stats(tenc),
              sde = stats(tdec);
  const Stats ri = stats(ratio_i8), rf = stats(ratio_f32);
  const double enc_ns = sen.median * threads * 1e9 / (d_in * t);
  const double dec_ns = sde.median * threads * 1e9 / (d_out * t);
  std::printf(
      "{\"device\": \"cuda\", \"gpu\": \"%s\", \"shape\": [%zu, %zu, %zu], \"threads\": %d, "
      "\"reps\": %d, \"enc_gemm_s\": %.6f, \"enc_gemm_spread\": [%.6f, %.6f], "
      "\"enc_device_s\": %.6f, \"enc_device_spread\": [%.6f, %.6f], \"int8_gemm_s\": %.6f, "
      "\"int8_gemm_spread\": [%.6f, %.6f], \"fp32_gemm_s\": %.6f, \"fp32_gemm_spread\": [%.6f, "
      "%.6f], \"ratio_vs_int8\": %.2f, \"ratio_vs_int8_spread\": [%.2f, %.2f], "
      "\"ratio_vs_int8_device\": %.2f, \"ratio_vs_fp32\": %.2f, \"ratio_vs_fp32_spread\": [%.2f, "
      "%.2f], \"phases_s\": {\"upload\": %.6f, \"expand\": %.6f, \"split\": %.6f, \"gemm\": %.6f, "
      "\"recombine\": %.6f, \"download\": %.6f}, \"encrypt_ns_per_value\": %.2f, "
      "\"decrypt_ns_per_value\": %.2f, \"bytes_up_per_value\": %.3f, \"bytes_down_per_value\": "
      "%.3f, \"bit_exact\": %s, \"ct_sample_identical\": %s, \"planes\": %d}\n",
      gemm.device_name(), d_out, d_in, t, threads, reps, se.median, se.min, se.max, sd.median,
      sd.min, sd.max, si.median, si.min, si.max, sf.median, sf.min, sf.max, se.median / si.median,
      ri.min, ri.max, sd.median / si.median, se.median / sf.median, rf.min, rf.max, phases.upload_s,
      phases.expand_s, phases.split_s, phases.gemm_s, phases.recombine_s, phases.download_s, enc_ns,
      dec_ns, up, down, exact ? "true" : "false", ct_identical ? "true" : "false", gemm.planes());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, cuda = false;
  int reps = 5, threads = 0, device = 0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) {
      quick = true;
    } else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
      threads = std::max(1, std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--device") && i + 1 < argc) {
      const std::string d = argv[++i];
      if (d == "cpu") {
        cuda = false;
      } else if (d == "cuda" || d.rfind("cuda:", 0) == 0) {
        cuda = true;
        if (d.size() > 5) {
          char* end = nullptr;
          const long idx = std::strtol(d.c_str() + 5, &end, 10);
          if (*end != '\0' || idx < 0 || idx > 1023 || end == d.c_str() + 5) {
            std::fprintf(stderr, "bench_fhe: bad device '%s' (cpu, cuda or cuda:N)\n", d.c_str());
            return 2;
          }
          device = static_cast<int>(idx);
        }
      } else {
        std::fprintf(stderr, "bench_fhe: unknown device '%s' (cpu, cuda or cuda:N)\n", d.c_str());
        return 2;
      }
    } else if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::printf(
          "usage: bench_fhe [--quick] [--reps N] [--threads N] [--device cpu|cuda[:N]]\n"
          "  Times the encrypted GEMM against oneDNN's int8 and fp32 GEMMs of the same shape\n"
          "  (median of N alternating runs, default 5) and prints one JSON object per line.\n"
          "  --quick: only (2048, 2048, 2048) with all threads (under 20 s).\n"
          "  --threads N: only this thread count (default: 1 and all).\n"
          "  --device cuda[:N]: time the GPU backend against cuBLASLt's int8 and fp32 GEMMs\n"
          "    (one line per shape, CPU threads: all or --threads); default cpu.\n");
      return 0;
    } else {
      std::fprintf(stderr, "bench_fhe: unknown argument '%s' (see --help)\n", argv[i]);
      return 2;
    }
  }
  const int all = threads ? threads : omp_get_max_threads();
  try {
    if (cuda) {
      if (fhe::cuda_device_count() == 0) {
        std::fprintf(stderr, "bench_fhe: no CUDA device available\n");
        return 2;
      }
      const size_t cuda_shapes[3][3] = {{2048, 2048, 2048}, {5632, 2048, 2048}, {2048, 5632, 2048}};
      for (const auto& s : cuda_shapes) {
        run_shape_cuda(s[0], s[1], s[2], all, std::max(reps, 5), device);
        if (quick) break;
      }
      return 0;
    }
    if (quick) {
      run_shape(2048, 2048, 2048, all, reps);
      return 0;
    }
    const size_t shapes[3][3] = {{2048, 2048, 2048}, {5632, 2048, 2048}, {2048, 5632, 2048}};
    for (const auto& s : shapes) {
      for (int th : {1, all}) {
        if (threads && th != threads) continue;
        run_shape(s[0], s[1], s[2], th, reps);
        if (all == 1) break;
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_fhe: %s\n", e.what());
    return 2;
  }
  return 0;
}
