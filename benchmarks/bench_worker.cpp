// bench_worker: one projection's encrypted product through a real fhe_worker over loopback TCP,
// against the in-process encrypted backend on the same shape, in one run.
//
// Writes a random one-layer model whose q projection is --d x --d (default 2048 x 2048) to a
// temporary folder, starts `fhe_worker` on it (insecure, tcp://127.0.0.1, --threads all cores;
// or --connect ENDPOINT to use a running worker serving that model as --model-id) and runs
// --runs times, alternating:
//   remote           RemoteEncryptedBackend::forward of --tokens tokens (default 2048): quantize,
//                    encrypt, request, the worker's product, reply, decrypt, dequantize
//   remote_switched  the same with modulus-switched replies
//   local            the in-process EncryptedBackend::forward (LocalEncryptedProducts)
// and prints one JSON object per line: per variant the median seconds with [min, max] spread,
// tokens per second, and the ciphertext bytes on the wire per activation value up (request
// c0 plane / (d_in * T)) and down (reply c0 + c1 planes / (d_out * T)); then remote / local
// time ratios. Both ends share this machine's cores, so the remote figures include the worker
// competing with the client for them.
//
// Then the breakdown of the remote variant (one line per phase, median seconds over the runs
// with [min, max]): on the client quantize, encrypt, pack (c0 to 48 bits), unpack (the reply's
// planes checked and kept as received), decrypt (each row unpacked, range-checked, decrypted
// and dequantized at once), dequantize (what is left of it: zero for these products)
// (model::ProductTimings, participant::RemoteStats); on the worker, as it reports them in
// MatmulReply.timings, queue, unpack, seed_expansion, gemm (digit split, oneDNN,
// recombination), of which recombine, switch and reply pack; and transport = the pool's round trip less the worker's phases (send,
// ZeroMQ, the reply's transfer and decoding: not measured apart). The summary line holds
// remote time / sum of the measured parts (all but transport) and the client's encrypt and
// decrypt nanoseconds per value per core (threads x time / values; values = d_in x T for
// encrypt, d_out x T for decrypt).
#include <fcntl.h>
#include <omp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "model/encrypted_backend.h"
#include "model/random_model.h"
#include "participant/remote_encrypted_backend.h"
#include "worker_process.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int64_t d = 2048;
  int64_t tokens = 2048;
  int runs = 5;
  std::string worker = "fhe_worker";  // next to this binary by default
  std::string connect;
  std::string model_id = "bench";
};

struct Stats {
  double median = 0, min = 0, max = 0;
};

Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "bench_worker: %s\n", what.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  const std::string self = argv[0];
  const auto slash = self.rfind('/');
  if (slash != std::string::npos) o.worker = self.substr(0, slash + 1) + "fhe_worker";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(a + " needs a value");
      return argv[++i];
    };
    if (a == "--d") {
      o.d = std::stoll(value());
    } else if (a == "--tokens") {
      o.tokens = std::stoll(value());
    } else if (a == "--runs") {
      o.runs = std::stoi(value());
    } else if (a == "--worker") {
      o.worker = value();
    } else if (a == "--connect") {
      o.connect = value();
    } else if (a == "--model-id") {
      o.model_id = value();
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: bench_worker [--d N] [--tokens T] [--runs R] [--worker PATH | --connect "
          "tcp://127.0.0.1:PORT --model-id ID]\n");
      std::exit(0);
    } else {
      fail("unknown option " + a);
    }
  }
  if (o.d < 8 || o.d > 16384 || o.tokens < 1 || o.tokens > 65536 || o.runs < 1) {
    fail("--d must be 8..16384, --tokens 1..65536, --runs >= 1");
  }
  return o;
}

// The fhe_worker child process; SIGKILLed at exit.
// The fhe_worker serving the benchmark model (insecure, loopback, every core).
class Worker : public bench::WorkerProcess {
 public:
  Worker(const Options& o, const std::filesystem::path& dir)
      : bench::WorkerProcess({o.worker, "--model", (dir / "model").string(), "--model-id",
                              o.model_id, "--bind", "tcp://127.0.0.1:0", "--port-file",
                              (dir / "port").string(), "--insecure", "--threads", "0",
                              "--log-level", "warn"},
                             (dir / "port").string(), (dir / "worker.log").string(),
                             std::chrono::seconds(120)) {}
};

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  model::LlamaConfig c;
  c.hidden_size = o.d;
  c.intermediate_size = 64;
  c.num_hidden_layers = 1;
  c.num_attention_heads = o.d / 64 > 0 ? o.d / 64 : 1;
  c.num_key_value_heads = 1;
  c.head_dim = o.d / c.num_attention_heads;
  c.vocab_size = 64;
  c.max_position_embeddings = 64;
  std::string tmpl = (std::filesystem::temp_directory_path() / "bench-worker-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) fail("cannot make a temporary folder");
  const std::filesystem::path dir = tmpl;
  std::unique_ptr<Worker> worker;
  try {
    model::write_random_llama(dir / "model", c, {.seed = 1});
    const auto weights =
        std::make_shared<const model::LlamaWeights>(model::load_llama_weights(dir / "model"));
    std::string endpoint = o.connect;
    if (endpoint.empty()) {
      worker = std::make_unique<Worker>(o, dir);
      endpoint = worker->endpoint();
    }
    participant::PoolOptions po;
    po.insecure = true;
    auto directory = participant::WorkerDirectory::parse_list(endpoint, {});
    if (!directory) fail(directory.error().to_string());
    auto pool = participant::WorkerPool::connect(directory.value(), po);
    if (!pool) fail(pool.error().to_string());
    std::shared_ptr<participant::WorkerPool> shared(std::move(pool).value());
    participant::RemoteEncryptedBackend remote(shared, c, {o.model_id, false});
    participant::RemoteEncryptedBackend switched(shared, c, {o.model_id, true});
    model::EncryptedBackend local(*weights);

    std::mt19937_64 rng(3);  // benchmark data only
    std::normal_distribution<float> gauss(0, 1);
    model::Activations x(o.d, o.tokens), y;
    for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = gauss(rng);
    const model::ProjectionId id{model::ProjectionKind::kQ, 0};
    struct Variant {
      const char* name;
      model::EncryptedBackend* backend;
      std::vector<double> seconds;
    };
    std::vector<Variant> variants = {
        {"remote", &remote, {}}, {"remote_switched", &switched, {}}, {"local", &local, {}}};
    for (auto& v : variants) v.backend->forward(id, x, y);  // warm-up: transposes, connections
    // Per run, the remote variant's phases (seconds), in the order of `phase_names`.
    const std::vector<std::string> phase_names = {
        "client_quantize", "client_encrypt",        "client_pack", "worker_queue",
        "worker_unpack",   "worker_seed_expansion", "worker_gemm", "worker_recombine_of_gemm",
        "worker_switch",   "worker_reply_pack",     "transport",   "client_unpack",
        "client_decrypt",  "client_dequantize"};
    std::vector<std::vector<double>> phases(phase_names.size());
    std::vector<double> parts_sum;
    for (int r = 0; r < o.runs; ++r) {
      for (auto& v : variants) {
        model::ProductTimings pt;
        participant::RemoteStats rs;
        const bool breakdown = v.backend == &remote;
        if (breakdown) {
          remote.set_timings(&pt);
          remote.worker_products().set_stats(&rs);
        }
        const auto start = Clock::now();
        v.backend->forward(id, x, y);
        v.seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
        if (!breakdown) continue;
        remote.set_timings(nullptr);
        remote.worker_products().set_stats(nullptr);
        const protocol::MatmulTimings& w = rs.worker;
        const uint64_t worker_ns =
            w.queue_ns + w.unpack_ns + w.seed_expansion_ns + w.gemm_ns + w.switch_ns + w.pack_ns;
        const std::vector<uint64_t> ns = {pt.quantize_ns,
                                          pt.encrypt_ns,
                                          rs.pack_ns,
                                          w.queue_ns,
                                          w.unpack_ns,
                                          w.seed_expansion_ns,
                                          w.gemm_ns,
                                          w.recombine_ns,
                                          w.switch_ns,
                                          w.pack_ns,
                                          rs.call_ns > worker_ns ? rs.call_ns - worker_ns : 0,
                                          rs.unpack_ns,
                                          pt.decrypt_ns,
                                          pt.dequantize_ns};
        double sum = 0;
        for (size_t k = 0; k < ns.size(); ++k) {
          phases[k].push_back(1e-9 * static_cast<double>(ns[k]));
          const bool part =
              phase_names[k] != "transport" && phase_names[k] != "worker_recombine_of_gemm";
          if (part) sum += 1e-9 * static_cast<double>(ns[k]);
        }
        if (rs.worker_reports == 0) fail("the worker sent no timings (an older fhe_worker?)");
        parts_sum.push_back(sum);
      }
    }
    const double values = static_cast<double>(o.d) * static_cast<double>(o.tokens);
    std::vector<Stats> s;
    for (auto& v : variants) {
      s.push_back(stats(v.seconds));
      const Stats& t = s.back();
      std::printf(
          "{\"variant\": \"%s\", \"d_out\": %lld, \"d_in\": %lld, \"tokens\": %lld, \"runs\": %d, "
          "\"seconds\": %.4f, \"min\": %.4f, \"max\": %.4f, \"tokens_per_s\": %.1f",
          v.name, static_cast<long long>(o.d), static_cast<long long>(o.d),
          static_cast<long long>(o.tokens), o.runs, t.median, t.min, t.max,
          static_cast<double>(o.tokens) / t.median);
      if (auto* rb = dynamic_cast<participant::RemoteEncryptedBackend*>(v.backend)) {
        const auto& p = rb->worker_products();
        std::printf(", \"bytes_up_per_value\": %.3f, \"bytes_down_per_value\": %.3f",
                    static_cast<double>(p.last_request_bytes()) / values,
                    static_cast<double>(p.last_reply_bytes()) / values);
      }
      std::printf("}\n");
    }
    std::printf(
        "{\"ratio_remote_vs_local\": %.3f, \"ratio_remote_switched_vs_local\": %.3f, "
        "\"plaintext_bytes_per_value\": 1}\n",
        s[0].median / s[2].median, s[1].median / s[2].median);
    for (size_t k = 0; k < phase_names.size(); ++k) {
      const Stats t = stats(phases[k]);
      std::printf(
          "{\"breakdown\": \"remote\", \"phase\": \"%s\", \"seconds\": %.4f, \"min\": %.4f, "
          "\"max\": %.4f, \"share_of_remote\": %.3f}\n",
          phase_names[k].c_str(), t.median, t.min, t.max, t.median / s[0].median);
    }
    const int cores = omp_get_max_threads();
    const auto per_value_core = [&](size_t phase) {
      return 1e9 * stats(phases[phase]).median * cores / values;
    };
    const double enc = per_value_core(1), dec = per_value_core(12);
    const Stats sum = stats(parts_sum);
    std::printf(
        "{\"breakdown\": \"summary\", \"remote_seconds\": %.4f, \"sum_of_parts_seconds\": %.4f, "
        "\"sum_of_parts_spread\": [%.4f, %.4f], \"remote_over_sum_of_parts\": %.3f, "
        "\"target_remote_over_sum_of_parts\": 1.3, \"cores\": %d, "
        "\"client_encrypt_ns_per_value_core\": %.3f, \"client_decrypt_ns_per_value_core\": %.3f, "
        "\"client_encrypt_plus_decrypt_ns_per_value_core\": %.3f, "
        "\"target_encrypt_plus_decrypt_ns_per_value_core\": 5}\n",
        s[0].median, sum.median, sum.min, sum.max, s[0].median / sum.median, cores, enc, dec,
        enc + dec);
  } catch (const std::exception& e) {
    worker.reset();
    std::filesystem::remove_all(dir);
    fail(e.what());
  }
  worker.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
