// One round of the participant agent (agent_impl.h): the model over the round's backend, DP-SGD
// training of the global adapter (model::run_training) and the delta it uploads.
#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "agent_impl.h"
#include "base/result.h"
#include "fhe/context.h"
#include "fhe/secret_key.h"
#include "model/encrypted_backend.h"
#include "model/linear_backends.h"
#include "model/tensor_store.h"
#include "participant/adapter_tensors.h"
#include "participant/delta_dp.h"
#include "participant/remote_encrypted_backend.h"
#include "participant/worker_directory.h"
#include "participant/worker_pool.h"

namespace participant {
namespace {

// Every step of a round: its debug line, an info line every tenth of the round's steps, and the
// published progress (Agent::Impl::publish_progress).
class RoundProgress : public model::TrainingObserver {
 public:
  // `progress` is published by `publish` after every change.
  RoundProgress(spdlog::logger& log, TrainingProgress& progress, std::function<void()> publish,
                uint32_t round, uint32_t steps)
      : log_(log), progress_(progress), publish_(std::move(publish)), round_(round), steps_(steps) {
    progress_ = TrainingProgress{.round = round, .steps = steps, .phase = "training"};
    publish_();
  }

  void on_step(const model::TrainingStepProgress& p) override {
    const int64_t step = p.report.step;
    log_.debug("round {} step {}/{}: loss {:.4f}, {} examples", round_, step, steps_, p.report.loss,
               p.report.examples);
    const double rate =
        p.elapsed_seconds > 0 ? static_cast<double>(p.tokens_so_far) / p.elapsed_seconds : 0.0;
    const double eta = step > 0 ? p.elapsed_seconds / static_cast<double>(step) *
                                      static_cast<double>(steps_ - step)
                                : 0.0;
    progress_.step = step;
    progress_.tokens = p.tokens_so_far;
    progress_.tokens_per_s = rate;
    progress_.eta_s = std::max(0.0, eta);
    publish_();
    // Every tenth of the steps (each step of a round of ten or fewer) and the last one.
    if (step == steps_ || (steps_ > 0 && step * 10 / steps_ != (step - 1) * 10 / steps_)) {
      log_.info("round {}: step {}/{}, {:.0f} tok/s, ETA {:.0f} s", round_, step, steps_, rate,
                progress_.eta_s);
    }
  }

 private:
  spdlog::logger& log_;
  TrainingProgress& progress_;
  std::function<void()> publish_;
  uint32_t round_;
  int64_t steps_;
};

}  // namespace

model::LlamaModel& Agent::Impl::model_for(const std::vector<coord::WorkerEntry>& workers) {
  if (llama && (config.backend != "remote" || workers == llama_workers)) return *llama;
  llama.reset();
  auto key = std::make_unique<fhe::SecretKey>(
      fhe::SecretKey::load(fhe::Context::create(), key_file.string()));
  std::unique_ptr<model::LinearBackend> backend;
  if (config.backend == "remote") {
    backend = remote_backend(workers, std::move(key));
  } else if (config.backend == "encrypted") {
    backend = std::make_unique<model::EncryptedBackend>(*weights, std::move(key));
  } else {
    backend = model::make_linear_backend(model::BackendKind::kFloat, weights);
  }
  llama = std::make_unique<model::LlamaModel>(weights, std::move(backend));
  llama->set_recompute_activations(config.recompute_activations);
  llama_workers = workers;
  return *llama;
}

std::unique_ptr<model::LinearBackend> Agent::Impl::remote_backend(
    const std::vector<coord::WorkerEntry>& workers, std::unique_ptr<fhe::SecretKey> key) {
  std::vector<WorkerEndpoint> entries;
  for (const coord::WorkerEntry& w : workers) {
    WorkerEndpoint e{w.endpoint, std::nullopt};
    if (!w.public_key.empty()) {
      auto k = protocol::parse_public_key(w.public_key, "worker key");
      if (!k.ok()) throw std::runtime_error(k.error().message);
      e.server_key = k.value();
    }
    entries.push_back(std::move(e));
  }
  PoolOptions options;
  options.insecure = config.insecure;
  options.client_key = config.key;
  options.sender_id = config.site_id;
  options.request_timeout = config.request_timeout;
  auto pool = WorkerPool::connect(WorkerDirectory(std::move(entries)), options);
  if (!pool.ok()) throw std::runtime_error("worker pool: " + pool.error().message);
  std::shared_ptr<WorkerPool> shared(std::move(pool.value()));
  if (!own_model_hash) {  // from the files: the projections are not in memory
    own_model_hash =
        model::quantized_model_hash(model::TensorStore::open(config.model_dir), weights->config);
  }
  RemoteOptions remote;
  remote.model_id = config.model_id;
  remote.switch_modulus = config.switch_modulus;
  remote.model_hash = *own_model_hash;
  return std::make_unique<RemoteEncryptedBackend>(shared, weights->config, remote, std::move(key),
                                                  weights.get());
}

model::TrainingRunConfig Agent::Impl::round_run(const coord::TrainingPlan& plan,
                                                const Release& release,
                                                const model::LoraParams& global) const {
  model::TrainingRunConfig run;
  run.options.lora = config.lora;
  run.options.adamw.lr = plan.learning_rate;
  run.options.adamw.weight_decay = 0;
  run.options.steps = plan.local_steps;
  run.options.batch_size = std::min<int64_t>(plan.batch_size, train->size());
  run.options.seed = plan.seed;
  run.initial_adapter = &global;
  // The DP streams of this release (releases.h): never shared with another release. The budget
  // was charged for the whole round before it started: no accounting here.
  run.dp = model::DpSgdSettings{.sigma = plan.noise_multiplier,
                                .clip = plan.clip_norm,
                                .delta = 0,
                                .sample_rate = plan.sample_rate,
                                .seed = &release.key,
                                .sampling_stream = kSamplingStream,
                                .noise_stream = kNoiseStream};
  if (heldout) run.heldout = &*heldout;
  run.eval_batch = config.eval_batch;
  return run;
}

coord::DeltaUpload Agent::Impl::train_round(const coord::RoundInvitation& inv,
                                            const Release& release,
                                            std::span<const float> global_values,
                                            std::vector<float>& delta_values) {
  model::LoraParams global(weights->config, config.lora);
  read_adapter_table(inv.adapter, global_values, global);
  model::LlamaModel& llama_model = model_for(inv.workers);
  const AgentClock::time_point start = AgentClock::now();
  RoundProgress observer(
      *log, progress, [this] { publish_progress(); }, inv.round, inv.plan.local_steps);
  const model::TrainingRunResult run =
      model::run_training(llama_model, *train, round_run(inv.plan, release, global), &observer);
  progress.phase = "uploading";
  progress.eta_s = 0;
  publish_progress();
  return round_upload(inv, release, global, run, delta_values, start);
}

coord::DeltaUpload Agent::Impl::round_upload(const coord::RoundInvitation& inv,
                                             const Release& release,
                                             const model::LoraParams& global,
                                             const model::TrainingRunResult& run,
                                             std::vector<float>& delta_values,
                                             AgentClock::time_point start) {
  const coord::TrainingPlan& plan = inv.plan;
  coord::DeltaUpload up;
  up.round = inv.round;
  up.attempt = inv.attempt;
  up.site_id = config.site_id;
  up.example_count = coarsen_count(static_cast<uint64_t>(train->size()));
  up.steps = plan.local_steps;
  const double train_loss = run.mean_finite_loss();
  const double heldout_loss = run.heldout ? run.heldout->loss : train_loss;
  record_curve(inv, train_loss, heldout_loss);
  up.train_loss = config.report_losses ? train_loss : std::nan("");
  up.heldout_loss = config.report_losses ? heldout_loss : std::nan("");
  up.epsilon_spent = budget->spent();
  model::LoraParams delta = run.adapter;
  model::LoraParams minus = global;
  minus *= -1.0f;
  delta += minus;
  // The coordinator's table (its tensor order), so the delta lines up with its adapter.
  up.delta = inv.adapter;
  up.delta.blob = 0;
  delta_values = values_for_table(inv.adapter, delta);
  std::string participant_dp = "off";
  if (plan.participant_dp) {  // the whole delta as one vector, from its own seeded stream
    const DeltaDpReport r = privatize_delta(
        delta_values, {.clip = plan.participant_clip, .sigma = plan.participant_sigma}, release.key,
        kDeltaNoiseStream);
    participant_dp = fmt::format("delta norm {:.4g}{} clip {}, noise std {:.4g}", r.norm,
                                 r.clipped ? " >" : " <=", plan.participant_clip, r.noise_std);
  }
  log->info(
      "round {}: trained {} steps in {:.1f} s, train loss {:.4f}, held-out loss {:.4f}, "
      "epsilon {:.3f} of {}, participant-level DP: {}",
      inv.round, plan.local_steps, std::chrono::duration<double>(AgentClock::now() - start).count(),
      train_loss, heldout_loss, up.epsilon_spent, budget->epsilon_max(), participant_dp);
  return up;
}

void Agent::Impl::publish_progress() {
  if (config.progress_file.empty()) return;
  const base::Status written =
      base::capture([&] { write_progress(config.progress_file, progress); }, base::Code::kIo);
  if (written.ok()) {
    progress_failed = false;
  } else if (!progress_failed) {
    log->warn("progress file: {}", written.error().message);
    progress_failed = true;
  }
}

void Agent::Impl::record_curve(const coord::RoundInvitation& inv, double train_loss,
                               double heldout_loss) {
  const auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
  const nlohmann::json line = {{"run_id", inv.run_id},
                               {"round", inv.round},
                               {"attempt", inv.attempt},
                               {"train_loss", num(train_loss)},
                               {"heldout_loss", num(heldout_loss)},
                               {"examples", train->size()},
                               {"heldout_examples", heldout_records},
                               {"epsilon", budget->spent()}};
  std::ofstream out(config.state_dir / "curves.jsonl", std::ios::app);
  out << line.dump() << "\n";
}

}  // namespace participant
