// bench_forward: tokens per second of a whole Llama forward pass with each linear backend, in one
// run.
//
// Builds a random model in memory (default: hidden 2048, intermediate 5632, 16 heads sharing 4
// kv heads of 128, vocab 1024, one layer) and runs a batch of T = 2048 tokens (4 sequences of
// 512) through LlamaModel with
//   float         FloatBackend: Eigen float32 GEMM (compiled for the project's baseline ISA)
//   float_onednn  a bench-local backend calling oneDNN's sgemm (runtime-dispatched AVX-512), to
//                 show what a tuned float GEMM does on this machine
//   int8          Int8Backend: the exact int8 product, in plaintext
//   encrypted     EncryptedBackend: quantize, encrypt, PlaneGemm, decrypt, dequantize
// alternating the backends, --runs times (median, [min, max] spread). Everything but the
// projections (norms, RoPE, attention, SwiGLU) is the same Eigen code for every backend. Prints
// one JSON object per line; the last line holds the ratios of median times.
#include <omp.h>

#include <oneapi/dnnl/dnnl.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/encrypted_backend.h"
#include "model/float_backend.h"
#include "model/int8_backend.h"
#include "model/llama_model.h"

#include "bench_shape.h"

namespace {

using bench::make_shape;
using bench::Options;
using bench::random_weights;
using bench::Shape;

// y = W x through oneDNN's sgemm. Row-major view: y^T (T x d_out) = x^T (T x d_in) * W^T.
class OneDnnFloatBackend : public model::LinearBackend {
 public:
  explicit OneDnnFloatBackend(std::shared_ptr<const model::LlamaWeights> w) : w_(std::move(w)) {}
  void forward(model::ProjectionId id, const model::Activations& x,
               model::Activations& y) override {
    const model::Matrix& w = model::projection_weight(*w_, id);
    y.resize(w.rows(), x.cols());
    const dnnl_status_t st = dnnl_sgemm('N', 'T', x.cols(), w.rows(), w.cols(), 1.0f, x.data(),
                                        w.cols(), w.data(), w.cols(), 0.0f, y.data(), w.rows());
    if (st != dnnl_success) throw std::runtime_error("dnnl_sgemm failed");
  }
  std::string_view name() const override { return "float_onednn"; }

 private:
  std::shared_ptr<const model::LlamaWeights> w_;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Stats {
  double median, min, max;
};

Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: bench_forward [--quick] [--runs N] [--layers L]\n\n"
               "Times a Llama forward pass of 2048 tokens (hidden 2048, intermediate 5632, 16 "
               "heads, 4 kv heads, vocab 1024, L = 1 layer) with the float, float_onednn, int8 and "
               "encrypted linear backends, alternating, N = 3 runs each; prints JSON lines with "
               "tokens_per_s and a last line with ratio_encrypted_vs_float.\n"
               "  --quick     a smaller model (hidden 512, intermediate 1376, 8 heads, 2 kv heads, "
               "vocab 512) and 512 tokens\n"
               "  --runs N    timed runs per backend (at least 1; the median is reported)\n"
               "  --layers L  decoder layers (default 1)\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else if (a == "--quick") {
      o.quick = true;
    } else if ((a == "--runs" || a == "--layers") && i + 1 < argc) {
      const long v = std::strtol(argv[++i], nullptr, 10);
      if (v < 1) {
        std::fprintf(stderr, "bench_forward: %s must be at least 1\n", a.c_str());
        return 2;
      }
      if (a == "--runs") {
        o.runs = static_cast<int>(std::min(v, 1000L));
      } else {
        o.layers = std::min(v, 64L);
      }
    } else {
      std::fprintf(stderr, "bench_forward: unknown argument '%s' (see --help)\n", a.c_str());
      return 2;
    }
  }

  try {
    const Shape shape = make_shape(o);
    const model::LlamaConfig& c = shape.config;
    std::vector<std::vector<int32_t>> sequences;
    std::mt19937 rng(1);
    for (int n : shape.sequences) {
      std::vector<int32_t> s(static_cast<size_t>(n));
      for (auto& t : s) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(c.vocab_size));
      sequences.push_back(std::move(s));
    }
    const model::TokenBatch batch(sequences);
    const auto weights = std::make_shared<const model::LlamaWeights>(random_weights(c, 42));
    std::printf(
        "{\"bench\": \"forward\", \"hidden\": %lld, \"intermediate\": %lld, \"heads\": %lld, "
        "\"kv_heads\": %lld, \"vocab\": %lld, \"layers\": %lld, \"tokens\": %lld, "
        "\"sequences\": %lld, \"threads\": %d, \"runs\": %d}\n",
        static_cast<long long>(c.hidden_size), static_cast<long long>(c.intermediate_size),
        static_cast<long long>(c.num_attention_heads),
        static_cast<long long>(c.num_key_value_heads), static_cast<long long>(c.vocab_size),
        static_cast<long long>(c.num_hidden_layers), static_cast<long long>(batch.total_tokens()),
        static_cast<long long>(batch.sequence_count()), omp_get_max_threads(), o.runs);
    std::fflush(stdout);

    struct Entry {
      std::string name;
      double setup_s;
      std::unique_ptr<model::LlamaModel> model;
      std::vector<double> times;
      model::Matrix logits;
    };
    std::vector<Entry> entries;
    const auto add = [&](const std::string& name, auto make) {
      const auto t0 = std::chrono::steady_clock::now();
      auto m = std::make_unique<model::LlamaModel>(weights, make());
      entries.push_back({name, seconds_since(t0), std::move(m), {}, {}});
    };
    add("float", [&] { return std::make_unique<model::FloatBackend>(weights); });
    add("float_onednn", [&] { return std::make_unique<OneDnnFloatBackend>(weights); });
    add("int8", [&] { return std::make_unique<model::Int8Backend>(*weights); });
    add("encrypted", [&] { return std::make_unique<model::EncryptedBackend>(*weights); });

    for (auto& e : entries) e.logits = e.model->forward(batch);  // warm-up
    for (int r = 0; r < o.runs; ++r) {
      for (auto& e : entries) {
        const auto t0 = std::chrono::steady_clock::now();
        e.logits = e.model->forward(batch);
        e.times.push_back(seconds_since(t0));
      }
    }

    const model::Matrix& ref = entries[0].logits;
    const double max_ref = ref.cwiseAbs().maxCoeff();
    for (const auto& e : entries) {
      const Stats s = stats(e.times);
      const double rel = (e.logits - ref).cwiseAbs().maxCoeff() / max_ref;
      std::printf(
          "{\"bench\": \"forward\", \"backend\": \"%s\", \"tokens_per_s\": %.1f, \"median_s\": "
          "%.4f, \"spread_s\": [%.4f, %.4f], \"setup_s\": %.3f, "
          "\"max_rel_logit_diff_vs_float\": %.3g}\n",
          e.name.c_str(), static_cast<double>(batch.total_tokens()) / s.median, s.median, s.min,
          s.max, e.setup_s, rel);
    }
    const auto median = [&](size_t i) { return stats(entries[i].times).median; };
    const bool identical =
        std::memcmp(entries[2].logits.data(), entries[3].logits.data(),
                    sizeof(float) * static_cast<size_t>(entries[2].logits.size())) == 0;
    std::printf(
        "{\"bench\": \"forward\", \"ratio_encrypted_vs_float\": %.3f, "
        "\"ratio_encrypted_vs_float_onednn\": %.3f, \"ratio_encrypted_vs_int8\": %.3f, "
        "\"ratio_int8_vs_float\": %.3f, \"encrypted_equals_int8\": %s}\n",
        median(3) / median(0), median(3) / median(1), median(3) / median(2), median(2) / median(0),
        identical ? "true" : "false");
    return identical ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_forward: %s\n", e.what());
    return 2;
  }
}
