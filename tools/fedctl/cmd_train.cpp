// fedctl train: LoRA fine-tuning of a model on a JSON-lines dataset with the float, int8 or
// encrypted linear backend (library: model, trainer.h).
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

#include "base/model_id.h"
#include "cli.h"
#include "model/evaluation.h"
#include "model/linear_backends.h"
#include "model/llama_model.h"
#include "model/llama_weights.h"
#include "model/lora_peft.h"
#include "model/model_hash.h"
#include "model/peft_adapter.h"
#include "model/trainer.h"
#include "participant/pool_flags.h"
#include "participant/remote_encrypted_backend.h"
#include "training_io.h"

namespace fedctl {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void require_at_least(int64_t value, int64_t min, const char* flag) {
  if (value < min) {
    throw std::invalid_argument(std::string(flag) + " must be at least " + std::to_string(min) +
                                ", got " + std::to_string(value));
  }
}

std::string duration_text(double seconds) {
  const auto s = static_cast<int64_t>(std::llround(seconds));
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  }
  return buf;
}

// The progress line on stderr: rewritten in place on a terminal, otherwise one line at the
// first and last step and at most every 10 seconds in between.
class Progress {
 public:
  explicit Progress(int64_t steps) : steps_(steps), tty_(::isatty(2) != 0) {}

  // `epsilon`: DP-SGD's epsilon spent so far (NaN without DP: not shown).
  void step(const model::TrainStepReport& r, double tokens_per_s, double elapsed,
            double epsilon = std::nan("")) {
    const bool due = r.step == 1 || r.step == steps_ || seconds_since(last_) >= 10;
    if (!tty_ && !due) return;
    const double eta = elapsed / static_cast<double>(r.step) * static_cast<double>(steps_ - r.step);
    char dp[48] = "";
    if (!std::isnan(epsilon)) std::snprintf(dp, sizeof dp, "  epsilon %.3f", epsilon);
    std::fprintf(stderr, "%sstep %lld/%lld  loss %.4f  lr %.3g%s  %.0f tok/s  ETA %s%s",
                 tty_ ? "\r\033[K" : "", static_cast<long long>(r.step),
                 static_cast<long long>(steps_), r.loss, r.lr, dp, tokens_per_s,
                 duration_text(eta).c_str(), tty_ ? "" : "\n");
    std::fflush(stderr);
    last_ = Clock::now();
  }

  void evaluation(int64_t step, const model::EvalResult& e) {
    std::fprintf(stderr, "%sstep %lld: held-out loss %.4f, perplexity %.3f (%lld tokens)\n",
                 tty_ ? "\r\033[K" : "", static_cast<long long>(step), e.loss, e.perplexity,
                 static_cast<long long>(e.tokens));
  }

  void finish() {
    if (tty_) std::fputc('\n', stderr);
  }

 private:
  int64_t steps_;
  bool tty_;
  Clock::time_point last_ = Clock::now();
};

}  // namespace

int cmd_train(int argc, char** argv) {
  std::string model_dir, data, eval, backend_flag, targets, schedule_flag, out, log_json;
  int64_t steps = 0, rank = 0, warmup = 0, batch = 0, grad_accum = 0, seq_len = 0, eval_every = 0,
          eval_batch = 0;
  double alpha = 0, lr = 0, weight_decay = 0;
  uint64_t seed = 0;
  bool freeze_a = false, recompute = false;
  DpFlags dp_flags;
  po::options_description options("train options");
  options.add_options()("model", po::value(&model_dir)->required(),
                        "model directory (config.json + safetensors checkpoint)")(
      "data", po::value(&data)->required(),
      "training set: JSON lines with a \"text\" field, one example per line")(
      "eval", po::value(&eval), "held-out set in the same format")(
      "steps", po::value(&steps)->required(), "optimizer steps")(
      "backend", po::value(&backend_flag)->default_value("float"),
      "how the frozen projections run: float, int8 or encrypted (RLWE, in process)")(
      "lora-rank", po::value(&rank)->default_value(8), "LoRA rank r")(
      "lora-alpha", po::value(&alpha)->default_value(16), "LoRA alpha (scaling alpha / r)")(
      "targets", po::value(&targets)->default_value("q,v"),
      "adapted projections of every layer, comma-separated: q, k, v, o, gate, up, down")(
      "freeze-a", po::bool_switch(&freeze_a), "FFA-LoRA: keep A at its initialisation")(
      "lr", po::value(&lr)->default_value(5e-3, "0.005"), "peak learning rate of AdamW")(
      "weight-decay", po::value(&weight_decay)->default_value(0.01),
      "AdamW's decoupled weight decay")(
      "schedule", po::value(&schedule_flag)->default_value("constant"),
      "learning-rate schedule after warmup: constant, linear or cosine")(
      "warmup", po::value(&warmup)->default_value(0), "linear warmup steps (from lr 0)")(
      "batch", po::value(&batch)->default_value(8), "examples per micro-batch")(
      "grad-accum", po::value(&grad_accum)->default_value(1),
      "micro-batches accumulated per optimizer step")(
      "seq-len", po::value(&seq_len)->default_value(128),
      "tokens per example (BOS + text + EOS, cut to this length)")(
      "seed", po::value(&seed)->default_value(0),
      "seed of the LoRA initialisation and the batch order (not of any key)")(
      "eval-every", po::value(&eval_every)->default_value(0),
      "evaluate the held-out set every K steps (0: only before the first and after the last)")(
      "eval-batch", po::value(&eval_batch)->default_value(8), "examples per evaluation batch")(
      "recompute-activations", po::bool_switch(&recompute),
      "keep one decoder layer's activations at a time: each layer's forward runs again in the "
      "backward pass (the same adapter bit for bit; one more forward pass per step)")(
      "out", po::value(&out), "write the adapter here in PEFT layout")(
      "log-json", po::value(&log_json),
      "write one JSON object per step: step, train_loss, lr, tokens_per_s, and heldout_loss and "
      "heldout_perplexity on evaluation steps (step 0: the evaluation before training, "
      "train_loss null), and epsilon with DP-SGD");
  add_dp_options(options, dp_flags);
  participant::PoolFlags pool_flags;
  std::string model_id;
  options.add_options()("workers", po::value(&pool_flags.workers),
                        "run the encrypted projections on these fhe_workers: tcp://A,tcp://B "
                        "(the secret key stays here)")(
      "workers-file", po::value(&pool_flags.workers_file),
      "the fhe_workers as a file: one `ENDPOINT [SERVER_KEY]` per line")(
      "client-key", po::value(&pool_flags.client_key), "with --workers: CURVE key PREFIX.key")(
      "server-key", po::value(&pool_flags.server_key),
      "with --workers: the workers' public key W.pub (one for all, or a comma list)")(
      "insecure", po::bool_switch(&pool_flags.insecure),
      "with --workers: no CURVE (loopback endpoints only)")(
      "model-id", po::value(&model_id),
      "with --workers: the id the workers serve the model as (default: the model directory's "
      "name)");
  return run_command(
      "train",
      "--model DIR --data FILE.jsonl --steps N [--eval FILE.jsonl] "
      "[--backend float|int8|encrypted] [options]\n\n"
      "Trains a LoRA adapter of the frozen model, shows step, loss, tokens/s and ETA on stderr, "
      "and prints a JSON summary.\nWith --dp-sigma S --dp-clip C --dp-delta D it trains with "
      "DP-SGD (Poisson-sampled examples, each gradient clipped to C, Gaussian noise of std S*C, "
      "divided by the expected batch) and reports epsilon at D (RDP accountant) as it goes and "
      "in the summary's \"dp\" object.",
      options, argc, argv, [&](const po::variables_map& vm) {
        require_at_least(steps, 1, "--steps");
        require_at_least(rank, 1, "--lora-rank");
        require_at_least(batch, 1, "--batch");
        require_at_least(grad_accum, 1, "--grad-accum");
        require_at_least(warmup, 0, "--warmup");
        require_at_least(eval_every, 0, "--eval-every");
        require_at_least(eval_batch, 1, "--eval-batch");
        if (eval_every > 0 && !vm.count("eval")) {
          throw std::invalid_argument("--eval-every needs a held-out set (--eval)");
        }
        if (!std::isfinite(alpha)) throw std::invalid_argument("--lora-alpha must be finite");
        if (!(lr >= 0) || !std::isfinite(lr)) {
          throw std::invalid_argument("--lr must be a finite number >= 0");
        }
        if (!(weight_decay >= 0) || !std::isfinite(weight_decay)) {
          throw std::invalid_argument("--weight-decay must be a finite number >= 0");
        }
        model::TrainingOptions o;
        o.lora.rank = rank;
        o.lora.alpha = alpha;
        o.lora.targets = model::parse_lora_targets(targets);
        o.lora.freeze_a = freeze_a;
        o.adamw.lr = lr;
        o.adamw.weight_decay = weight_decay;
        o.schedule = model::parse_lr_schedule_kind(schedule_flag);
        o.warmup_steps = warmup;
        o.steps = steps;
        o.batch_size = batch;
        o.grad_accum = grad_accum;
        o.seed = seed;
        const model::BackendKind kind = model::parse_backend_kind(backend_flag);

        const bool remote_pool = !pool_flags.workers.empty() || !pool_flags.workers_file.empty();
        // Through workers the decoder projections stay on them and the embedding tables in the
        // mapped files: never read into memory here.
        model::WeightLoadOptions load;
        load.decoder_projections = !remote_pool;
        load.embeddings = !remote_pool;
        auto weights =
            std::make_shared<const model::LlamaWeights>(model::load_llama_weights(model_dir, load));
        const model::LlamaConfig& config = weights->config;
        check_seq_len(seq_len, config);
        const auto tokenizer = model::load_tokenizer(model_dir, config.vocab_size);
        const model::TextDataset train = load_text_dataset(data, *tokenizer, seq_len);
        std::optional<model::TextDataset> heldout;
        if (vm.count("eval")) heldout.emplace(load_text_dataset(eval, *tokenizer, seq_len));
        model::validate_training_options(o, train.size());
        std::optional<DpTraining> dp;
        if (dp_requested(vm)) {
          dp.emplace(plan_dp(vm, dp_flags, train.size(), batch * grad_accum, steps), train.size());
        }
        std::ofstream log;
        if (vm.count("log-json")) {
          log.open(log_json, std::ios::trunc);
          if (!log) throw std::runtime_error(log_json + ": cannot open for writing");
        }
        if (vm.count("out")) {
          std::error_code ec;
          std::filesystem::create_directories(out, ec);
          if (ec) throw std::runtime_error(out + ": cannot create directory: " + ec.message());
        }

        std::unique_ptr<model::LinearBackend> backend;
        if (remote_pool) {
          if (vm["backend"].defaulted()) {
            backend_flag = "encrypted";
          } else if (kind != model::BackendKind::kEncrypted) {
            throw std::invalid_argument("--workers runs the encrypted backend, not " +
                                        backend_flag);
          }
          auto pool = participant::connect_pool(pool_flags);
          if (!pool) throw std::runtime_error(pool.error().to_string());
          participant::RemoteOptions remote;
          remote.model_id = model_id.empty() ? base::default_model_id(model_dir) : model_id;
          // Refuse workers holding other weights; hashed from the files, one tensor at a time.
          remote.model_hash =
              model::quantized_model_hash(model::TensorStore::open(model_dir), config);
          backend = std::make_unique<participant::RemoteEncryptedBackend>(
              std::move(pool).value(), config, remote, nullptr, weights.get());
        } else {
          backend = model::make_linear_backend(kind, weights);
        }
        model::LlamaModel llama(weights, std::move(backend));
        llama.set_recompute_activations(recompute);
        model::LoraTrainer trainer(llama, train, o);
        if (dp) dp->attach(trainer);
        Progress progress(steps);
        const auto evaluate = [&](int64_t step, nlohmann::json& line) {
          const model::EvalResult e = trainer.evaluate(*heldout, eval_batch);
          progress.evaluation(step, e);
          line["heldout_loss"] = e.loss;
          line["heldout_perplexity"] = e.perplexity;
          return e;
        };
        const auto write_log = [&](const nlohmann::json& line) {
          if (!log.is_open()) return;
          log << line.dump() << "\n";
          if (!log.flush()) throw std::runtime_error(log_json + ": write failed");
        };

        nlohmann::json summary = {{"backend", backend_flag}, {"steps", steps}};
        if (heldout) {
          nlohmann::json line = {{"step", 0}, {"train_loss", nullptr}};
          summary["initial_heldout_loss"] = evaluate(0, line).loss;
          write_log(line);
        }
        const Clock::time_point start = Clock::now();
        int64_t tokens = 0;
        model::TrainStepReport r;
        for (int64_t s = 1; s <= steps; ++s) {
          const Clock::time_point step_start = Clock::now();
          r = trainer.step();
          const double step_seconds = seconds_since(step_start);
          const double epsilon = dp ? dp->step_taken() : std::nan("");
          tokens += r.tokens;
          const double tokens_per_s = static_cast<double>(r.tokens) / step_seconds;
          nlohmann::json line = {{"step", r.step},
                                 {"train_loss", r.loss},
                                 {"lr", r.lr},
                                 {"tokens", r.tokens},
                                 {"tokens_per_s", tokens_per_s}};
          if (dp) line["epsilon"] = epsilon;
          progress.step(r, static_cast<double>(tokens) / seconds_since(start), seconds_since(start),
                        epsilon);
          if (heldout && ((eval_every > 0 && s % eval_every == 0) || s == steps)) {
            const model::EvalResult e = evaluate(s, line);
            summary["heldout_loss"] = e.loss;
            summary["heldout_perplexity"] = e.perplexity;
          }
          write_log(line);
        }
        progress.finish();
        summary["train_loss"] = r.loss;
        summary["seconds"] = seconds_since(start);
        if (dp) summary["dp"] = dp->summary();
        summary["trainable_parameters"] = o.lora.freeze_a
                                              ? trainer.last_gradient().parameter_count()
                                              : trainer.adapter().parameter_count();
        if (vm.count("out")) {
          model::write_peft_adapter(out, model::lora_to_peft(trainer.adapter(), config, model_dir));
          summary["adapter"] = out;
        }
        std::cout << summary.dump() << "\n";
        return 0;
      });
}

}  // namespace fedctl
