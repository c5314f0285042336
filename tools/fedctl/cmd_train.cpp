// fedctl train: LoRA fine-tuning of a model on a JSON-lines dataset with the float, int8 or
// encrypted linear backend (library: model, training_run.h).
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

#include "base/model_id.h"
#include "cli.h"
#include "model/dataset.h"
#include "model/linear_backends.h"
#include "model/llama_model.h"
#include "model/llama_weights.h"
#include "model/lora_peft.h"
#include "model/model_hash.h"
#include "model/trainer.h"
#include "model/training_run.h"
#include "participant/pool_flags.h"
#include "participant/remote_encrypted_backend.h"
#include "train_progress.h"
#include "training_io.h"

namespace fedctl {
namespace {

// The flags of `fedctl train`.
struct TrainFlags {
  std::string model_dir, data, eval, backend, targets, schedule, out, log_json, model_id,
      base_model_name;
  int64_t steps = 0, rank = 0, warmup = 0, batch = 0, grad_accum = 0, seq_len = 0, eval_every = 0,
          eval_batch = 0;
  double alpha = 0, lr = 0, weight_decay = 0;
  uint64_t seed = 0;
  bool freeze_a = false, recompute = false;
  bool has_eval = false, has_out = false, has_log = false;  // given, even if empty
  DpFlags dp;
  participant::PoolFlags pool;

  bool remote_pool() const { return !pool.workers.empty() || !pool.workers_file.empty(); }
};

void add_training_options(po::options_description& options, TrainFlags& f) {
  options.add_options()("model", po::value(&f.model_dir)->required(),
                        "model directory (config.json + safetensors checkpoint)")(
      "data", po::value(&f.data)->required(),
      "training set: JSON lines with a \"text\" field, one example per line")(
      "eval", po::value(&f.eval), "held-out set in the same format")(
      "steps", po::value(&f.steps)->required(), "optimizer steps")(
      "backend", po::value(&f.backend)->default_value("float"),
      "how the frozen projections run: float, int8 or encrypted (RLWE, in process)")(
      "lora-rank", po::value(&f.rank)->default_value(8), "LoRA rank r")(
      "lora-alpha", po::value(&f.alpha)->default_value(16), "LoRA alpha (scaling alpha / r)")(
      "targets", po::value(&f.targets)->default_value("q,v"),
      "adapted projections of every layer, comma-separated: q, k, v, o, gate, up, down")(
      "freeze-a", po::bool_switch(&f.freeze_a), "FFA-LoRA: keep A at its initialisation")(
      "lr", po::value(&f.lr)->default_value(5e-3, "0.005"), "peak learning rate of AdamW")(
      "weight-decay", po::value(&f.weight_decay)->default_value(0.01, "0.01"),
      "AdamW's decoupled weight decay")(
      "schedule", po::value(&f.schedule)->default_value("constant"),
      "learning-rate schedule after warmup: constant, linear or cosine")(
      "warmup", po::value(&f.warmup)->default_value(0), "linear warmup steps (from lr 0)")(
      "batch-size", po::value(&f.batch)->default_value(8), "examples per micro-batch")(
      "grad-accum", po::value(&f.grad_accum)->default_value(1),
      "micro-batches accumulated per optimizer step")(
      "seq-len", po::value(&f.seq_len)->default_value(128),
      "tokens per example (BOS + text + EOS, cut to this length)")(
      "seed", po::value(&f.seed)->default_value(0),
      "seed of the LoRA initialisation and the batch order (not of any key)")(
      "eval-every", po::value(&f.eval_every)->default_value(0),
      "evaluate the held-out set every K steps (0: only before the first and after the last)")(
      "eval-batch", po::value(&f.eval_batch)->default_value(8), "examples per evaluation batch")(
      "recompute-activations", po::bool_switch(&f.recompute),
      "keep one decoder layer's activations at a time: each layer's forward runs again in the "
      "backward pass (the same adapter bit for bit; one more forward pass per step)")(
      "out", po::value(&f.out), "write the adapter here in PEFT layout")(
      "base-model-name", po::value(&f.base_model_name),
      "the adapter's base_model_name_or_path in adapter_config.json, e.g. a Hugging Face hub "
      "id such as meta-llama/Llama-3.2-1B that PEFT can load (default: the --model path)")(
      "log-json", po::value(&f.log_json),
      "write one JSON object per step: step, train_loss, lr, tokens_per_s, and heldout_loss and "
      "heldout_perplexity on evaluation steps (step 0: the evaluation before training, "
      "train_loss null), and epsilon with DP-SGD");
}

void add_pool_options(po::options_description& options, TrainFlags& f) {
  options.add_options()("workers", po::value(&f.pool.workers),
                        "run the encrypted projections on these fhe_workers: tcp://A,tcp://B "
                        "(the secret key stays here)")(
      "workers-file", po::value(&f.pool.workers_file),
      "the fhe_workers as a file: one `ENDPOINT [SERVER_KEY]` per line")(
      "key", po::value(&f.pool.client_key),
      "with --workers: this client's CURVE secret key PREFIX.key")(
      "server-key", po::value(&f.pool.server_key),
      "with --workers: the workers' public key W.pub (one for all, or a comma list)")(
      "insecure", po::bool_switch(&f.pool.insecure),
      "with --workers: no CURVE (loopback endpoints only)")(
      "model-id", po::value(&f.model_id),
      "with --workers: the id the workers serve the model as (default: the model directory's "
      "name)");
}

void require_at_least(int64_t value, int64_t min, const char* flag) {
  if (value < min) {
    throw std::invalid_argument(std::string(flag) + " must be at least " + std::to_string(min) +
                                " (got " + std::to_string(value) + ")");
  }
}

// The ranges checked while parsing (protocol/cli.h), before the model is read.
std::vector<protocol::cli::Range> train_ranges() {
  namespace cli = protocol::cli;
  std::vector<cli::Range> r = {cli::at_least("steps", 1),      cli::at_least("lora-rank", 1),
                               cli::at_least("batch-size", 1), cli::at_least("grad-accum", 1),
                               cli::at_least("warmup", 0),     cli::at_least("eval-every", 0),
                               cli::at_least("eval-batch", 1), cli::at_least("seq-len", 2),
                               cli::at_least("lr", 0),         cli::at_least("weight-decay", 0)};
  for (auto& d : dp_ranges()) r.push_back(std::move(d));
  return r;
}

// Throws std::invalid_argument (exit 2) for a flag out of range.
void check_flags(const TrainFlags& f, const po::variables_map& vm) {
  require_at_least(f.steps, 1, "--steps");
  require_at_least(f.rank, 1, "--lora-rank");
  require_at_least(f.batch, 1, "--batch-size");
  require_at_least(f.grad_accum, 1, "--grad-accum");
  require_at_least(f.warmup, 0, "--warmup");
  require_at_least(f.eval_every, 0, "--eval-every");
  require_at_least(f.eval_batch, 1, "--eval-batch");
  if (f.eval_every > 0 && !vm.count("eval")) {
    throw std::invalid_argument("--eval-every needs a held-out set (--eval)");
  }
  if (!std::isfinite(f.alpha)) throw std::invalid_argument("--lora-alpha must be finite");
  if (!(f.lr >= 0) || !std::isfinite(f.lr)) {
    throw std::invalid_argument("--lr must be a finite number >= 0");
  }
  if (!(f.weight_decay >= 0) || !std::isfinite(f.weight_decay)) {
    throw std::invalid_argument("--weight-decay must be a finite number >= 0");
  }
}

model::TrainingOptions training_options(const TrainFlags& f) {
  model::TrainingOptions o;
  o.lora.rank = f.rank;
  o.lora.alpha = f.alpha;
  o.lora.targets = model::parse_lora_targets(f.targets);
  o.lora.freeze_a = f.freeze_a;
  o.adamw.lr = f.lr;
  o.adamw.weight_decay = f.weight_decay;
  o.schedule = model::parse_lr_schedule_kind(f.schedule);
  o.warmup_steps = f.warmup;
  o.steps = f.steps;
  o.batch_size = f.batch;
  o.grad_accum = f.grad_accum;
  o.seed = f.seed;
  return o;
}

// The model, its training and held-out sets. Through workers the decoder projections stay on
// them and the embedding tables in the mapped files: never read into memory here.
struct TrainInputs {
  std::shared_ptr<const model::LlamaWeights> weights;
  std::optional<model::TextDataset> train, heldout;
};

TrainInputs load_inputs(const TrainFlags& f) {
  model::WeightLoadOptions load;
  load.decoder_projections = !f.remote_pool();
  load.embeddings = !f.remote_pool();
  TrainInputs in;
  in.weights =
      std::make_shared<const model::LlamaWeights>(model::load_llama_weights(f.model_dir, load));
  const model::LlamaConfig& config = in.weights->config;
  check_seq_len(f.seq_len, config);
  const auto tokenizer = model::load_tokenizer(f.model_dir, config.vocab_size);
  in.train.emplace(model::load_text_dataset(f.data, *tokenizer, f.seq_len));
  if (f.has_eval) in.heldout.emplace(model::load_text_dataset(f.eval, *tokenizer, f.seq_len));
  return in;
}

// The encrypted backend over the --workers pool (the secret key stays here).
std::unique_ptr<model::LinearBackend> remote_backend(const TrainFlags& f,
                                                     const model::LlamaWeights& weights) {
  auto pool = participant::connect_pool(f.pool);
  if (!pool) throw std::runtime_error(pool.error().to_string());
  participant::RemoteOptions remote;
  remote.model_id = f.model_id.empty() ? base::default_model_id(f.model_dir) : f.model_id;
  // Refuse workers holding other weights; hashed from the files, one tensor at a time.
  remote.model_hash =
      model::quantized_model_hash(model::TensorStore::open(f.model_dir), weights.config);
  return std::make_unique<participant::RemoteEncryptedBackend>(
      std::move(pool).value(), weights.config, remote, nullptr, &weights);
}

// The backend of --backend, or of --workers (which sets --backend to encrypted by default).
std::unique_ptr<model::LinearBackend> make_backend(
    TrainFlags& f, const po::variables_map& vm, model::BackendKind kind,
    const std::shared_ptr<const model::LlamaWeights>& weights) {
  if (!f.remote_pool()) return model::make_linear_backend(kind, weights);
  if (vm["backend"].defaulted()) {
    f.backend = "encrypted";
  } else if (kind != model::BackendKind::kEncrypted) {
    throw std::invalid_argument("--workers runs the encrypted backend, not " + f.backend);
  }
  return remote_backend(f, *weights);
}

// The JSON summary printed at the end.
nlohmann::json train_summary(const TrainFlags& f, const model::TrainingRunResult& r,
                             const std::optional<DpPlan>& dp) {
  nlohmann::json summary = {{"backend", f.backend}, {"steps", f.steps}};
  if (r.initial_heldout) summary["initial_heldout_loss"] = r.initial_heldout->loss;
  if (r.heldout) {
    summary["heldout_loss"] = r.heldout->loss;
    summary["heldout_perplexity"] = r.heldout->perplexity;
  }
  summary["train_loss"] = r.steps.back().loss;
  summary["seconds"] = r.seconds;
  if (dp) summary["dp"] = dp_summary(*dp, r.dp.value_or(model::DpSgdSpent{}));
  summary["trainable_parameters"] = r.trainable_parameters;
  if (f.has_out) summary["adapter"] = f.out;
  return summary;
}

int train(TrainFlags& f, const po::variables_map& vm) {
  check_flags(f, vm);
  f.has_eval = vm.count("eval") > 0;
  f.has_out = vm.count("out") > 0;
  f.has_log = vm.count("log-json") > 0;
  model::TrainingRunConfig run;
  run.options = training_options(f);
  const model::BackendKind kind = model::parse_backend_kind(f.backend);
  TrainInputs in = load_inputs(f);
  model::validate_training_options(run.options, in.train->size());
  std::optional<DpPlan> dp;
  if (dp_requested(vm)) {
    dp = plan_dp(vm, f.dp, in.train->size(), f.batch * f.grad_accum, f.steps);
    run.dp = dp_settings(*dp);
  }
  TrainReporter reporter(f.steps, dp.has_value(),
                         f.has_log ? std::optional(f.log_json) : std::nullopt);
  if (f.has_out) {
    std::error_code ec;
    std::filesystem::create_directories(f.out, ec);
    if (ec) throw std::runtime_error(f.out + ": cannot create directory: " + ec.message());
  }
  model::LlamaModel llama(in.weights, make_backend(f, vm, kind, in.weights));
  llama.set_recompute_activations(f.recompute);
  if (in.heldout) run.heldout = &*in.heldout;
  run.eval_batch = f.eval_batch;
  run.eval_every = f.eval_every;
  run.evaluate_initial = true;
  reporter.begin();
  const model::TrainingRunResult result = model::run_training(llama, *in.train, run, &reporter);
  reporter.finish();
  if (f.has_out) {
    const std::string& base_name = vm.count("base-model-name") ? f.base_model_name : f.model_dir;
    model::write_lora_adapter(f.out, result.adapter, in.weights->config, base_name);
  }
  std::cout << train_summary(f, result, dp).dump() << "\n";
  return 0;
}

}  // namespace

int cmd_train(int argc, char** argv) {
  TrainFlags flags;
  po::options_description options("train options");
  add_training_options(options, flags);
  add_dp_options(options, flags.dp);
  add_pool_options(options, flags);
  return run_command(
      "train",
      "--model DIR --data FILE.jsonl --steps N [--eval FILE.jsonl] "
      "[--backend float|int8|encrypted] [options]\n\n"
      "Trains a LoRA adapter of the frozen model, shows step, loss, tokens/s and ETA on stderr, "
      "and prints a JSON summary.\nWith --noise-multiplier S --dp-clip C --dp-delta D it trains "
      "with "
      "DP-SGD (Poisson-sampled examples, each gradient clipped to C, Gaussian noise of std S*C, "
      "divided by the expected batch) and reports epsilon at D (RDP accountant) as it goes and "
      "in the summary's \"dp\" object.",
      options, argc, argv, [&](const po::variables_map& vm) { return train(flags, vm); },
      train_ranges());
}

}  // namespace fedctl
