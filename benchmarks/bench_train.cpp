// bench_train: per-token cost of one LoRA training step (forward, loss and backward down to the
// LoRA gradients) with the local float backend and the encrypted backend, in one run.
//
// Builds a random model in memory (default: hidden 2048, intermediate 5632, 16 heads sharing 4
// kv heads of 128, vocab 1024, one layer; LoRA rank 8 on q and v) and runs lora_step on a batch
// of T = 2048 tokens (4 sequences of 512, one ciphertext block) with
//   float      FloatBackend: every projection W x and W^T g as a local float32 GEMM
//   encrypted  EncryptedBackend: quantize, encrypt, PlaneGemm (the worker's part), decrypt,
//              dequantize, for the forward W x and the backward W^T g of every projection
// alternating the two, --runs times (median, [min, max] spread). The encrypted backend's
// PlaneGemm multiplies are timed separately (EncryptedBackend::server_seconds): that is the
// work a remote FHE worker does, so the participant's (client's) time is the rest:
//   client_ms_per_token(encrypted) = (step time - server GEMM time) / T
//   offload_ratio = client_ms_per_token(encrypted) / client_ms_per_token(float)
// i.e. what the participant still pays per token, relative to training locally in float.
// Prints one JSON object per line; the last line holds the ratios.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "model/encrypted_backend.h"
#include "model/float_backend.h"
#include "model/llama_model.h"
#include "model/lora_params.h"

#include "bench_shape.h"

namespace {

using bench::make_shape;
using bench::Options;
using bench::random_weights;
using bench::Shape;

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

// {"name_ms_per_token": median, "name_ms_per_token_spread": [min, max]} fields, per token.
std::string per_token_fields(const char* name, const std::vector<double>& seconds, double tokens) {
  const Stats s = stats(seconds);
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "\"%s_ms_per_token\": %.5f, \"%s_ms_per_token_spread\": [%.5f, %.5f]", name,
                1e3 * s.median / tokens, name, 1e3 * s.min / tokens, 1e3 * s.max / tokens);
  return buf;
}

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: bench_train [--quick] [--runs N] [--layers L]\n\n"
               "Times one LoRA training step (forward, loss, backward; rank 8 on q and v) of 2048 "
               "tokens on a model with hidden 2048, intermediate 5632, 16 heads, 4 kv heads, "
               "vocab 1024 and L = 1 layer, with the float and the encrypted linear backends, "
               "alternating, N = 3 runs each (median and spread). Reports the encrypted "
               "backend's server-side GEMM time (the PlaneGemm multiplies) separately and prints "
               "JSON lines with client_ms_per_token per backend and a last line with "
               "offload_ratio = encrypted client time / float time.\n"
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
        std::fprintf(stderr, "bench_train: %s must be at least 1\n", a.c_str());
        return 2;
      }
      if (a == "--runs") {
        o.runs = static_cast<int>(std::min(v, 1000L));
      } else {
        o.layers = std::min(v, 64L);
      }
    } else {
      std::fprintf(stderr, "bench_train: unknown argument '%s' (see --help)\n", a.c_str());
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
    const auto tokens = static_cast<double>(batch.total_tokens());
    const auto weights = std::make_shared<const model::LlamaWeights>(random_weights(c, 42));
    std::mt19937_64 lora_rng(7);
    model::LoraParams lora = model::init_lora_params(c, {}, lora_rng);
    // A non-zero B, as after some training, so every LoRA product does real work.
    for (const model::ProjectionId id : lora.ids()) lora.at(id).b.setConstant(1e-3f);
    std::printf(
        "{\"bench\": \"train\", \"hidden\": %lld, \"intermediate\": %lld, \"heads\": %lld, "
        "\"kv_heads\": %lld, \"vocab\": %lld, \"layers\": %lld, \"tokens\": %lld, "
        "\"sequences\": %lld, \"lora_rank\": %lld, \"lora_targets\": \"q,v\", \"threads\": %d, "
        "\"runs\": %d}\n",
        static_cast<long long>(c.hidden_size), static_cast<long long>(c.intermediate_size),
        static_cast<long long>(c.num_attention_heads),
        static_cast<long long>(c.num_key_value_heads), static_cast<long long>(c.vocab_size),
        static_cast<long long>(c.num_hidden_layers), static_cast<long long>(batch.total_tokens()),
        static_cast<long long>(batch.sequence_count()), static_cast<long long>(lora.config().rank),
        omp_get_max_threads(), o.runs);
    std::fflush(stdout);

    auto t0 = std::chrono::steady_clock::now();
    model::LlamaModel local(weights, std::make_unique<model::FloatBackend>(weights));
    const double float_setup = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    auto encrypted_backend = std::make_unique<model::EncryptedBackend>(*weights);
    model::EncryptedBackend& encrypted = *encrypted_backend;
    model::LlamaModel remote(weights, std::move(encrypted_backend));
    const double encrypted_setup = seconds_since(t0);

    // Warm-up: first-use allocations and the transposed PlaneGemms (built on first backward).
    double float_loss = local.lora_step(batch, lora).loss;
    double encrypted_loss = remote.lora_step(batch, lora).loss;
    std::vector<double> float_s, encrypted_s, server_s, client_s;
    for (int r = 0; r < o.runs; ++r) {
      t0 = std::chrono::steady_clock::now();
      float_loss = local.lora_step(batch, lora).loss;
      float_s.push_back(seconds_since(t0));

      encrypted.reset_server_seconds();
      t0 = std::chrono::steady_clock::now();
      encrypted_loss = remote.lora_step(batch, lora).loss;
      encrypted_s.push_back(seconds_since(t0));
      server_s.push_back(encrypted.server_seconds());
      client_s.push_back(encrypted_s.back() - server_s.back());
    }

    std::printf(
        "{\"bench\": \"train\", \"backend\": \"float\", %s, %s, \"loss\": %.6f, "
        "\"setup_s\": %.3f}\n",
        per_token_fields("step", float_s, tokens).c_str(),
        per_token_fields("client", float_s, tokens).c_str(), float_loss, float_setup);
    std::printf(
        "{\"bench\": \"train\", \"backend\": \"encrypted\", %s, %s, %s, \"loss\": %.6f, "
        "\"setup_s\": %.3f}\n",
        per_token_fields("step", encrypted_s, tokens).c_str(),
        per_token_fields("server_gemm", server_s, tokens).c_str(),
        per_token_fields("client", client_s, tokens).c_str(), encrypted_loss, encrypted_setup);
    const double float_median = stats(float_s).median;
    const double client_median = stats(client_s).median;
    std::printf(
        "{\"bench\": \"train\", \"client_ms_per_token\": {\"float\": %.5f, \"encrypted\": %.5f}, "
        "\"offload_ratio\": %.3f, \"encrypted_step_vs_float_step\": %.3f, "
        "\"server_gemm_share_of_encrypted_step\": %.3f, \"loss_rel_diff_encrypted_vs_float\": "
        "%.3g}\n",
        1e3 * float_median / tokens, 1e3 * client_median / tokens, client_median / float_median,
        stats(encrypted_s).median / float_median,
        stats(server_s).median / stats(encrypted_s).median,
        std::fabs(encrypted_loss - float_loss) / float_loss);
    return std::isfinite(float_loss) && std::isfinite(encrypted_loss) ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_train: %s\n", e.what());
    return 2;
  }
}
