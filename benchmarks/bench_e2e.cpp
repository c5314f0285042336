// bench_e2e: where the time of a remote LoRA training step goes, end to end.
//
// Writes a random model of a preset's shape (model::llama_preset: llama-3.2-1b by default),
// cut to --layers decoder layers and --vocab tokens, starts two real `fhe_worker` processes on
// it (next to this binary; loopback TCP, CURVE on with fresh key pairs, --threads
// --workers-threads each) and runs the same LoRA step (the same batch of --tokens tokens in
// sequences of up to 512, rank --rank on q, k, v, o, gate, up, down, the same adapter) --runs
// times, alternating the modes:
//   remote_1    RemoteEncryptedBackend over a pool of one worker (the LM head in this process,
//               as the int8 product: LmHeadPlacement::kLocal)
//   remote_2    the same over a pool of both workers (each product's output rows split over
//               both, the parts in flight at once; --no-split: each product to one worker)
//   float       model::FloatBackend: every projection a local float32 GEMM
//   encrypted   model::EncryptedBackend: encryption and the workers' PlaneGemm in this process
//   head_float  a 0-layer step with FloatBackend: embedding, final norm, LM head and loss only
//   head_int8   the same with Int8Backend: what remote_* pay for those parts
// It prints one JSON object per line: a header, one line per mode and figure (median and
// [min, max] over the runs): ms_per_token (wall, end to end), participant_cpu_ms_per_token
// (getrusage of this process, all its threads; the workers are other processes),
// worker_cpu_ms_per_token (utime + stime of the workers from /proc/PID/stat), wire bytes per
// token up and down, participant peak RSS (VmHWM after `5 > /proc/self/clear_refs`; the field
// rss_reset says whether that reset worked) and the workers' peak RSS; then the summary:
//   offload_ratio        participant CPU per token of remote_1 / float's
//   offload_ratio_layers the same without embedding, LM head and loss:
//                        (remote_1 - head_int8) / (float - head_float)
//   speedup_2_workers    remote_1 / remote_2 wall time
//   exact                the LoRA gradients of remote_1 and remote_2 equal encrypted's bit for
//                        bit (and so the adapter an optimizer step writes from them)
// The participant holds the whole model in this process (the float and encrypted modes need
// it), so its peak RSS in the remote modes is not the remote-only participant's: rss_above_start
// is the growth over the RSS at the mode's start.
//
// Defaults: llama-3.2-1b, 1 layer, vocab 32000, 2048 tokens, 5 runs. Each alternation costs
// about 6 remote-sized projection passes of the layer (bench_worker: ~1.6 s per 2048 x 2048
// projection on 2 shared cores), so the default run takes well over 5 minutes there (it did not
// finish in 15 minutes on a loaded 2-core machine); --runs 1 --vocab 4096 is a quick check.
// The acceptance shapes are run by flags, e.g.
//   bench_e2e --layers 16 --vocab 128256            (the whole 1B shape)
//   bench_e2e --preset llama-3.1-8b --layers 2      (hidden 4096, cut depth)
#include <fcntl.h>
#include <omp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "model/encrypted_backend.h"
#include "model/float_backend.h"
#include "model/int8_backend.h"
#include "model/llama_model.h"
#include "model/llama_presets.h"
#include "model/lora_params.h"
#include "model/random_model.h"
#include "participant/remote_encrypted_backend.h"
#include "protocol/keys.h"
#include "worker_process.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct Options {
  std::string preset = "llama-3.2-1b";
  int64_t layers = 1;
  int64_t vocab = 32000;  // 0: the preset's
  int64_t tokens = 2048;
  int64_t rank = 8;
  int runs = 5;
  int worker_threads = 0;  // 0: all cores
  std::string worker = "fhe_worker";
  bool split = true;  // remote_2 splits each product's rows over both workers
};

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "bench_e2e: %s\n", what.c_str());
  std::exit(2);
}

void usage() {
  std::printf(
      "usage: bench_e2e [--preset NAME] [--layers N] [--vocab V] [--tokens T] [--rank R]\n"
      "                 [--runs R] [--workers-threads N] [--no-split] [--worker PATH]\n\n"
      "One LoRA step of a preset-shaped random model (rank R on all seven projections) with every\n"
      "frozen projection on two real fhe_worker processes (loopback TCP, CURVE), alternating\n"
      "remote (1 worker), remote (2 workers), local float, in-process encrypted, and 0-layer\n"
      "steps (embedding + LM head + loss) in float and int8; JSON lines of medians and spreads.\n"
      "  --preset NAME         llama-3.2-1b (default), llama-3.2-3b, llama-3.1-8b\n"
      "  --layers N            decoder layers (default 1)\n"
      "  --vocab V             vocabulary (default 32000; 0: the preset's, 128256)\n"
      "  --tokens T            tokens per step, in sequences of up to 512 (default 2048)\n"
      "  --rank R              LoRA rank (default 8)\n"
      "  --runs R              alternating runs per mode (default 5; at least 1)\n"
      "  --workers-threads N   fhe_worker --threads (default 0: all cores)\n"
      "  --no-split            remote_2 sends each product whole to one worker (default: its\n"
      "                        rows split over both, all parts in flight at once)\n"
      "The defaults take well over 5 minutes on 2 cores (--runs 1 --vocab 4096: a quick check).\n"
      "Acceptance shapes: --layers 16\n"
      "--vocab 0 (Llama-3.2-1B), --preset llama-3.1-8b --layers 2 (hidden 4096).\n");
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
    const auto number = [&]() -> long long {
      const std::string v = value();
      char* end = nullptr;
      const long long n = std::strtoll(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0') fail(a + " needs a number, got '" + v + "'");
      return n;
    };
    if (a == "--help" || a == "-h") {
      usage();
      std::exit(0);
    } else if (a == "--preset") {
      o.preset = value();
    } else if (a == "--layers") {
      o.layers = number();
    } else if (a == "--vocab") {
      o.vocab = number();
    } else if (a == "--tokens") {
      o.tokens = number();
    } else if (a == "--rank") {
      o.rank = number();
    } else if (a == "--runs") {
      o.runs = static_cast<int>(std::clamp(number(), -1LL, 1000LL));
    } else if (a == "--workers-threads") {
      o.worker_threads = static_cast<int>(std::clamp(number(), -1LL, 1024LL));
    } else if (a == "--no-split") {
      o.split = false;
    } else if (a == "--worker") {
      o.worker = value();
    } else {
      fail("unknown option " + a + " (see --help)");
    }
  }
  if (o.layers < 1 || o.layers > 128 || o.vocab < 0 || o.vocab > 1000000 || o.tokens < 2 ||
      o.tokens > 65536 || o.rank < 1 || o.rank > 1024 || o.runs < 1 || o.worker_threads < 0) {
    fail(
        "--layers must be 1..128, --vocab 0..1000000, --tokens 2..65536, --rank 1..1024, "
        "--runs >= 1, --workers-threads >= 0");
  }
  return o;
}

// ---- process figures --------------------------------------------------------------------------

double process_cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// utime + stime of `pid` from /proc/PID/stat (fields 14 and 15, after the parenthesised name).
double pid_cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string f;
  unsigned long long utime = 0, stime = 0;
  for (int k = 3; k <= 15 && fields >> f; ++k) {
    if (k == 14) utime = std::stoull(f);
    if (k == 15) stime = std::stoull(f);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// A "VmHWM:" / "VmRSS:" line of /proc/PID/status, in MiB (0 when unreadable).
double status_mib(const std::string& pid, const char* key) {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0)
      return std::strtod(line.c_str() + std::strlen(key), nullptr) / 1024;
  }
  return 0;
}

bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

// ---- workers ------------------------------------------------------------------------------------

// One CURVE fhe_worker named `name` serving the benchmark model (its key pair and the allowed
// client keys are in `dir`).
class Worker : public bench::WorkerProcess {
 public:
  Worker(const Options& o, const fs::path& dir, const std::string& name)
      : bench::WorkerProcess(
            {o.worker, "--model", (dir / "model").string(), "--model-id", "bench", "--bind",
             "tcp://127.0.0.1:0", "--port-file", (dir / (name + ".port")).string(), "--key",
             (dir / (name + ".key")).string(), "--allow-dir", (dir / "allow").string(), "--threads",
             std::to_string(o.worker_threads), "--id", name, "--log-level", "warn"},
            (dir / (name + ".port")).string(), (dir / (name + ".log")).string(),
            std::chrono::seconds(600)) {}
};

protocol::KeyPair write_keys(const fs::path& prefix) {
  auto pair = protocol::KeyPair::generate();
  if (!pair) throw std::runtime_error(pair.error().message);
  if (auto s = protocol::write_key_pair(pair.value(), prefix.string(), true); !s) {
    throw std::runtime_error(s.error().message);
  }
  return pair.value();
}

// ---- statistics ---------------------------------------------------------------------------------

struct Stats {
  double median = 0, min = 0, max = 0;
};

Stats stats(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}

struct Mode {
  std::string name;
  model::LlamaModel* model = nullptr;
  const model::LoraParams* lora = nullptr;
  participant::RemoteEncryptedBackend* remote = nullptr;
  std::vector<double> wall, cpu, worker_cpu, up, down, peak_mib, above_mib;
  model::LoraStep last;
};

bool same_bits(const model::LoraParams& a, const model::LoraParams& b) {
  if (a.ids() != b.ids()) return false;
  for (const model::ProjectionId id : a.ids()) {
    const auto& x = a.at(id);
    const auto& y = b.at(id);
    if (x.a.size() != y.a.size() || x.b.size() != y.b.size()) return false;
    if (std::memcmp(x.a.data(), y.a.data(), sizeof(float) * static_cast<size_t>(x.a.size())) != 0 ||
        std::memcmp(x.b.data(), y.b.data(), sizeof(float) * static_cast<size_t>(x.b.size())) != 0) {
      return false;
    }
  }
  return true;
}

void print_figure(const Mode& m, const char* figure, const std::vector<double>& v, double scale) {
  const Stats s = stats(v);
  std::printf(
      "{\"bench\": \"e2e\", \"mode\": \"%s\", \"figure\": \"%s\", \"median\": %.4f, "
      "\"spread\": [%.4f, %.4f], \"runs\": %zu}\n",
      m.name.c_str(), figure, s.median * scale, s.min * scale, s.max * scale, v.size());
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  auto preset = model::llama_preset(o.preset);
  if (!preset) fail("unknown preset '" + o.preset + "'");
  model::LlamaConfig c = *preset;
  c.num_hidden_layers = o.layers;
  if (o.vocab != 0) {
    c.vocab_size = o.vocab;
    c.bos_token_id = 1;
    c.eos_token_id = {2};
  }
  std::string tmpl = (fs::temp_directory_path() / "bench-e2e-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) fail("cannot make a temporary folder");
  const fs::path dir = tmpl;
  std::vector<std::unique_ptr<Worker>> workers;
  int status = 0;
  try {
    const auto setup_start = Clock::now();
    model::write_random_llama(dir / "model", c, {.seed = 1, .dtype = model::DType::kBF16});
    fs::create_directories(dir / "allow");
    const protocol::KeyPair client = write_keys(dir / "allow" / "participant");
    fs::remove(dir / "allow" / "participant.key");  // the allow list holds public keys only
    std::vector<protocol::PublicKey> server_keys;
    for (const char* name : {"worker-a", "worker-b"}) {
      server_keys.push_back(write_keys(dir / name).public_key);
    }
    workers.push_back(std::make_unique<Worker>(o, dir, "worker-a"));
    workers.push_back(std::make_unique<Worker>(o, dir, "worker-b"));
    const auto weights =
        std::make_shared<const model::LlamaWeights>(model::load_llama_weights(dir / "model"));
    c = weights->config;

    const auto make_pool = [&](size_t count) {
      std::string list;
      std::vector<protocol::PublicKey> keys;
      for (size_t k = 0; k < count; ++k) {
        list += (k ? "," : "") + workers[k]->endpoint();
        keys.push_back(server_keys[k]);
      }
      auto directory = participant::WorkerDirectory::parse_list(list, keys);
      if (!directory) throw std::runtime_error(directory.error().to_string());
      participant::PoolOptions po;
      po.client_key = client;
      auto pool = participant::WorkerPool::connect(directory.value(), po);
      if (!pool) throw std::runtime_error(pool.error().to_string());
      return std::shared_ptr<participant::WorkerPool>(std::move(pool).value());
    };
    participant::RemoteOptions ro{"bench", false, participant::LmHeadPlacement::kLocal};
    ro.split_products = o.split;
    auto remote1_backend = std::make_unique<participant::RemoteEncryptedBackend>(
        make_pool(1), c, ro, nullptr, weights.get());
    auto remote2_backend = std::make_unique<participant::RemoteEncryptedBackend>(
        make_pool(2), c, ro, nullptr, weights.get());
    participant::RemoteEncryptedBackend* r1 = remote1_backend.get();
    participant::RemoteEncryptedBackend* r2 = remote2_backend.get();
    model::LlamaModel remote1(weights, std::move(remote1_backend));
    model::LlamaModel remote2(weights, std::move(remote2_backend));
    model::LlamaModel local_float(weights, std::make_unique<model::FloatBackend>(weights));
    model::LlamaModel encrypted(weights, std::make_unique<model::EncryptedBackend>(*weights));

    // The 0-layer model: the same embedding, final norm and LM head, no decoder layer.
    auto head = std::make_shared<model::LlamaWeights>();
    head->config = c;
    head->config.num_hidden_layers = 0;
    head->embed_tokens = weights->embed_tokens;
    head->norm = weights->norm;
    head->lm_head_weight = weights->lm_head_weight;
    std::shared_ptr<const model::LlamaWeights> head_weights = head;
    model::LlamaModel head_float(head_weights, std::make_unique<model::FloatBackend>(head_weights));
    model::LlamaModel head_int8(head_weights, std::make_unique<model::Int8Backend>(*head_weights));

    // The batch: sequences of up to 512 tokens; the adapter: rank R on all seven projections,
    // B non-zero (as after some training) so that every LoRA product does real work.
    std::vector<std::vector<int32_t>> sequences;
    std::mt19937 rng(1);  // benchmark data only
    for (int64_t left = o.tokens; left > 0;) {
      const int64_t n = std::min<int64_t>(left, 512);
      std::vector<int32_t> s(static_cast<size_t>(n));
      for (auto& t : s) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(c.vocab_size));
      sequences.push_back(std::move(s));
      left -= n;
    }
    const model::TokenBatch batch(sequences);
    const auto tokens = static_cast<double>(batch.total_tokens());
    model::LoraConfig lc;
    lc.rank = o.rank;
    lc.targets = {model::ProjectionKind::kQ,    model::ProjectionKind::kK,
                  model::ProjectionKind::kV,    model::ProjectionKind::kO,
                  model::ProjectionKind::kGate, model::ProjectionKind::kUp,
                  model::ProjectionKind::kDown};
    std::mt19937_64 lora_rng(7);
    model::LoraParams lora = model::init_lora_params(c, lc, lora_rng);
    for (const model::ProjectionId id : lora.ids()) lora.at(id).b.setConstant(1e-3f);
    std::mt19937_64 head_rng(7);
    const model::LoraParams head_lora = model::init_lora_params(head->config, lc, head_rng);
    const double setup_s = std::chrono::duration<double>(Clock::now() - setup_start).count();

    const bool rss_reset = reset_peak_rss() && status_mib("self", "VmHWM:") > 0;
    std::printf(
        "{\"bench\": \"e2e\", \"preset\": \"%s\", \"hidden\": %lld, \"intermediate\": %lld, "
        "\"heads\": %lld, \"kv_heads\": %lld, \"vocab\": %lld, \"layers\": %lld, \"tokens\": %lld, "
        "\"sequences\": %lld, \"lora_rank\": %lld, \"lora_targets\": \"q,k,v,o,gate,up,down\", "
        "\"participant_threads\": %d, \"worker_threads\": %d, \"workers\": 2, \"curve\": true, "
        "\"lm_head\": \"participant (int8)\", \"runs\": %d, \"setup_s\": %.1f, "
        "\"rss_reset\": %s, \"split\": %s}\n",
        o.preset.c_str(), static_cast<long long>(c.hidden_size),
        static_cast<long long>(c.intermediate_size), static_cast<long long>(c.num_attention_heads),
        static_cast<long long>(c.num_key_value_heads), static_cast<long long>(c.vocab_size),
        static_cast<long long>(c.num_hidden_layers), static_cast<long long>(batch.total_tokens()),
        static_cast<long long>(batch.sequence_count()), static_cast<long long>(o.rank),
        omp_get_max_threads(), o.worker_threads, o.runs, setup_s, rss_reset ? "true" : "false",
        o.split ? "true" : "false");
    std::fflush(stdout);

    const auto mode = [](const char* name, model::LlamaModel& m, const model::LoraParams& l,
                         participant::RemoteEncryptedBackend* r) {
      Mode out;
      out.name = name;
      out.model = &m;
      out.lora = &l;
      out.remote = r;
      return out;
    };
    std::vector<Mode> modes = {mode("remote_1", remote1, lora, r1),
                               mode("remote_2", remote2, lora, r2),
                               mode("float", local_float, lora, nullptr),
                               mode("encrypted", encrypted, lora, nullptr),
                               mode("head_float", head_float, head_lora, nullptr),
                               mode("head_int8", head_int8, head_lora, nullptr)};
    // Warm-up: connections, first-use allocations, the transposed GEMMs built on first use.
    for (Mode& m : modes) m.last = m.model->lora_step(batch, *m.lora);
    for (int r = 0; r < o.runs; ++r) {
      for (Mode& m : modes) {
        participant::RemoteStats rs;
        if (m.remote) m.remote->worker_products().set_stats(&rs);
        const double rss_start = status_mib("self", "VmRSS:");
        if (rss_reset) reset_peak_rss();
        double worker_cpu = 0;
        for (const auto& w : workers) worker_cpu -= pid_cpu_seconds(w->pid());
        const double cpu = process_cpu_seconds();
        const auto start = Clock::now();
        m.last = m.model->lora_step(batch, *m.lora);
        m.wall.push_back(std::chrono::duration<double>(Clock::now() - start).count());
        m.cpu.push_back(process_cpu_seconds() - cpu);
        for (const auto& w : workers) worker_cpu += pid_cpu_seconds(w->pid());
        m.worker_cpu.push_back(worker_cpu);
        const double peak = status_mib("self", "VmHWM:");
        m.peak_mib.push_back(peak);
        m.above_mib.push_back(peak - rss_start);
        if (m.remote) {
          m.remote->worker_products().set_stats(nullptr);
          m.up.push_back(static_cast<double>(rs.request_bytes));
          m.down.push_back(static_cast<double>(rs.reply_bytes));
        }
      }
    }
    for (const Mode& m : modes) {
      print_figure(m, "ms_per_token", m.wall, 1e3 / tokens);
      print_figure(m, "participant_cpu_ms_per_token", m.cpu, 1e3 / tokens);
      if (m.remote) {
        print_figure(m, "worker_cpu_ms_per_token", m.worker_cpu, 1e3 / tokens);
        print_figure(m, "wire_bytes_up_per_token", m.up, 1 / tokens);
        print_figure(m, "wire_bytes_down_per_token", m.down, 1 / tokens);
      }
      print_figure(m, "participant_peak_rss_mib", m.peak_mib, 1);
      print_figure(m, "participant_peak_rss_above_start_mib", m.above_mib, 1);
    }
    for (const auto& w : workers) {
      std::printf("{\"bench\": \"e2e\", \"worker\": \"%s\", \"peak_rss_mib\": %.1f}\n",
                  w->endpoint().c_str(), status_mib(std::to_string(w->pid()), "VmHWM:"));
    }
    const auto median = [&](size_t index, const std::vector<double> Mode::*field) {
      return stats(modes[index].*field).median;
    };
    const double cpu_r1 = median(0, &Mode::cpu), cpu_float = median(2, &Mode::cpu);
    const double layers_remote = cpu_r1 - median(5, &Mode::cpu);
    const double layers_float = cpu_float - median(4, &Mode::cpu);
    const double wall_float = median(2, &Mode::wall);
    const bool exact1 = same_bits(modes[0].last.gradients.batch, modes[3].last.gradients.batch);
    const bool exact2 = same_bits(modes[1].last.gradients.batch, modes[3].last.gradients.batch);
    const bool loss_exact =
        modes[0].last.loss == modes[3].last.loss && modes[1].last.loss == modes[3].last.loss;
    std::printf(
        "{\"bench\": \"e2e\", \"summary\": true, \"offload_ratio\": %.3f, "
        "\"offload_ratio_cpu_over_float_wall\": %.3f, \"offload_ratio_layers\": %.3f, "
        "\"speedup_2_workers\": %.3f, \"remote_1_ms_per_token\": %.3f, "
        "\"float_ms_per_token\": %.3f, \"exact_gradients_remote_1_vs_encrypted\": %s, "
        "\"exact_gradients_remote_2_vs_encrypted\": %s, \"exact_loss\": %s, \"loss\": %.6f}\n",
        cpu_r1 / cpu_float, cpu_r1 / wall_float, layers_remote / layers_float,
        median(0, &Mode::wall) / median(1, &Mode::wall), 1e3 * median(0, &Mode::wall) / tokens,
        1e3 * wall_float / tokens, exact1 ? "true" : "false", exact2 ? "true" : "false",
        loss_exact ? "true" : "false", modes[0].last.loss);
    status = exact1 && exact2 && loss_exact ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_e2e: %s\n", e.what());
    status = 2;
  }
  workers.clear();
  std::filesystem::remove_all(dir);
  return status;
}
