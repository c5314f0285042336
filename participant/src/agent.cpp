#include "participant/agent.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <variant>

#include "base/atomic_file.h"
#include "base/dir_lock.h"
#include "base/model_id.h"
#include "fhe/context.h"
#include "fhe/secret_key.h"
#include "model/dp_sgd_reducer.h"
#include "model/linear_backends.h"
#include "model/llama_model.h"
#include "model/llama_weights.h"
#include "model/model_hash.h"
#include "model/tokenizer.h"
#include "model/trainer.h"
#include "participant/adapter_tensors.h"
#include "participant/delta_dp.h"
#include "participant/releases.h"
#include "participant/remote_encrypted_backend.h"
#include "participant/worker_directory.h"
#include "participant/worker_pool.h"
#include "privacy/budget.h"
#include "privacy/gaussian.h"
#include "protocol/coordinator_client.h"

namespace participant {
namespace coord = protocol::coord;
namespace {

using Clock = std::chrono::steady_clock;

std::shared_ptr<spdlog::logger> console_logger(const std::string& name) {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto log = std::make_shared<spdlog::logger>(name, sink);
  log->set_pattern("%H:%M:%S.%e %^%l%$ [%n] %v");
  return log;
}

// The 32-byte secret seed of the DP streams: dp.seed in the state directory (64 hex digits,
// mode 0600), made from RAND_bytes on first start.
privacy::Seed load_or_make_seed(const std::filesystem::path& file) {
  if (std::filesystem::exists(file)) {
    std::ifstream in(file);
    std::string hex;
    in >> hex;
    return privacy::parse_seed_hex(hex);
  }
  privacy::Seed seed{};
  if (RAND_bytes(seed.data(), static_cast<int>(seed.size())) != 1) {
    throw std::runtime_error("RAND_bytes failed making the DP seed");
  }
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (const unsigned char b : seed) {
    hex += digits[b >> 4];
    hex += digits[b & 15];
  }
  hex += "\n";
  base::write_file_atomic(file, hex, 0600);
  OPENSSL_cleanse(hex.data(), hex.size());
  return seed;
}

std::vector<std::string> read_texts(const std::filesystem::path& path) {
  return model::read_jsonl_texts(path);
}

// The mean of the finite losses (empty Poisson batches report NaN), or NaN.
double mean_finite(const std::vector<double>& v) {
  double sum = 0;
  int n = 0;
  for (const double x : v) {
    if (std::isfinite(x)) {
      sum += x;
      ++n;
    }
  }
  return n ? sum / n : std::nan("");
}

// A count rounded down to two significant decimal digits (57 -> 57, 1234 -> 1200): what the
// coordinator learns of a site's dataset size, enough to weight its delta.
uint64_t coarsen_count(uint64_t n) {
  uint64_t unit = 1;
  while (n / unit >= 100) unit *= 10;
  return std::max<uint64_t>(1, n / unit * unit);
}

}  // namespace

struct Agent::Impl {
  AgentConfig config;
  std::shared_ptr<spdlog::logger> log;
  std::shared_ptr<const model::LlamaWeights> weights;
  std::optional<model::TextDataset> train;
  std::optional<model::TextDataset> heldout;
  std::optional<privacy::Budget> budget;
  privacy::Seed seed{};
  std::filesystem::path budget_file;
  std::filesystem::path key_file;
  std::optional<base::DirLock> state_lock;
  Digest site{};  // the site's part of every release context
  std::optional<ReleaseLedger> ledger;
  std::optional<model::ModelHash> own_model_hash;  // computed when workers are first used

  // The model with its backend, kept across rounds while the worker directory stays the same.
  std::unique_ptr<model::LlamaModel> llama;
  std::vector<coord::WorkerEntry> llama_workers;

  mutable std::mutex stats_mutex;
  AgentStats stats;

  // The round being prepared, then trained, in the background while run() keeps the
  // coordinator connection alive (heartbeats), and what it will upload. Preparing connects the
  // invitation's workers and checks their model against this site's (which may take a request
  // timeout when a worker does not answer); only then is the release charged and accepted.
  struct Training {
    coord::RoundInvitation invitation;
    Release release;
    std::vector<float> global_values;
    std::future<void> prepared;
    bool started = false;  // accepted, charged and training: `result` is valid
    std::future<coord::DeltaUpload> result;
    std::vector<float> delta_values;
  };
  std::unique_ptr<Training> training;

  // The last delta this site uploaded (also in the state directory). A coordinator restarted
  // from its checkpoint replays the round with the same run, round, attempt, global adapter and
  // plan (only the deadline differs), i.e. the same release; the site then sends this identical
  // delta again instead of training a second time: nothing new about the data is released.
  std::optional<CachedDelta> delivered;

  explicit Impl(AgentConfig c) : config(std::move(c)) {
    log = config.log ? config.log : console_logger(config.site_id);
    if (config.site_id.empty()) throw std::runtime_error("participant: a site id is required");
    if (config.state_dir.empty())
      throw std::runtime_error("participant: a state directory is required");
    if (config.backend != "remote" && config.backend != "encrypted" && config.backend != "float") {
      throw std::runtime_error("participant: backend must be remote, encrypted or float, got " +
                               config.backend);
    }
    if (config.model_id.empty()) config.model_id = base::default_model_id(config.model_dir);
    std::filesystem::create_directories(config.state_dir);
    std::filesystem::permissions(config.state_dir, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace);
    state_lock.emplace(base::DirLock::acquire(config.state_dir, "participant"));
    // Offloaded, the decoder projections are never read into memory here (the workers hold
    // them), nor the embedding tables (lookups read the mapped checkpoint; the LM head is
    // quantized from the files): only the norms.
    model::WeightLoadOptions load;
    load.decoder_projections = config.backend != "remote";
    load.embeddings = config.backend != "remote";
    weights = std::make_shared<const model::LlamaWeights>(
        model::load_llama_weights(config.model_dir, load));
    const auto tokenizer = model::load_tokenizer(config.model_dir, weights->config.vocab_size);
    const std::vector<std::string> texts = read_texts(config.train_file);
    train.emplace(texts, *tokenizer, config.seq_len);
    if (!config.heldout_file.empty()) {
      const std::vector<std::string> h = read_texts(config.heldout_file);
      heldout.emplace(h, *tokenizer, config.seq_len);
    }
    model::LoraParams probe(weights->config, config.lora);  // validates the LoRA config
    (void)probe;

    budget_file = config.state_dir / "budget.json";
    if (std::filesystem::exists(budget_file)) {
      budget.emplace(privacy::Budget::load(budget_file));
      if (budget->epsilon_max() != config.epsilon_max || budget->delta() != config.delta) {
        log->warn(
            "state budget (epsilon {} at delta {}) differs from the configured (epsilon {} "
            "at delta {}); the spent budget is kept and the configured limit applies",
            budget->epsilon_max(), budget->delta(), config.epsilon_max, config.delta);
        budget.emplace(config.epsilon_max, config.delta, budget->accountant());
      }
      log->info("resumed state: epsilon {:.4f} of {} spent at delta {}", budget->spent(),
                budget->epsilon_max(), budget->delta());
    } else {
      budget.emplace(config.epsilon_max, config.delta);
      budget->save(budget_file);
    }
    seed = config.dp_seed ? *config.dp_seed : load_or_make_seed(config.state_dir / "dp.seed");
    site = site_digest(config.site_id, config.train_file, config.seq_len, config.lora);
    ledger.emplace(ReleaseLedger::open(config.state_dir));
    delivered = load_cached_delta(config.state_dir);
    if (delivered) {
      log->info("cached delta of round {} (attempt {}) kept for a replay", delivered->upload.round,
                delivered->upload.attempt);
    }
    key_file = config.state_dir / "rlwe.key";
    if (!std::filesystem::exists(key_file)) {
      fhe::SecretKey::generate(fhe::Context::create()).save(key_file.string());
    }
    stats.epsilon_spent = budget->spent();
  }

  ~Impl() { OPENSSL_cleanse(seed.data(), seed.size()); }

  // The model over the backend this round needs (rebuilt when the worker directory changed).
  model::LlamaModel& model_for(const std::vector<coord::WorkerEntry>& workers) {
    if (llama && (config.backend != "remote" || workers == llama_workers)) return *llama;
    llama.reset();
    auto key = std::make_unique<fhe::SecretKey>(
        fhe::SecretKey::load(fhe::Context::create(), key_file.string()));
    std::unique_ptr<model::LinearBackend> backend;
    if (config.backend == "remote") {
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
        own_model_hash = model::quantized_model_hash(model::TensorStore::open(config.model_dir),
                                                     weights->config);
      }
      RemoteOptions remote;
      remote.model_id = config.model_id;
      remote.switch_modulus = config.switch_modulus;
      remote.model_hash = *own_model_hash;
      backend = std::make_unique<RemoteEncryptedBackend>(shared, weights->config, remote,
                                                         std::move(key), weights.get());
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

  // Trains one round; returns the upload (and its values) or throws.
  coord::DeltaUpload train_round(const coord::RoundInvitation& inv, const Release& release,
                                 std::span<const float> global_values,
                                 std::vector<float>& delta_values) {
    const coord::TrainingPlan& plan = inv.plan;
    const model::LlamaConfig& cfg = weights->config;
    model::LoraParams global(cfg, config.lora);
    read_adapter_table(inv.adapter, global_values, global);

    model::LlamaModel& llama_model = model_for(inv.workers);
    model::TrainingOptions o;
    o.lora = config.lora;
    o.adamw.lr = plan.learning_rate;
    o.adamw.weight_decay = 0;
    o.steps = plan.local_steps;
    o.batch_size = std::min<int64_t>(plan.batch_size, train->size());
    o.seed = plan.seed;
    model::LoraTrainer trainer(llama_model, *train, o);
    trainer.set_adapter(global);

    // The DP streams of this release (releases.h): never shared with another release.
    privacy::GaussianNoise noise(privacy::RandomSource(release.key, kNoiseStream));
    privacy::RandomSource sampling(release.key, kSamplingStream);
    model::UrbgRandomBits<privacy::RandomSource> bits(sampling);
    model::PoissonBatchSampler sampler(train->size(), plan.sample_rate, bits);
    model::DpSgdReducer dp(
        {.clip = plan.clip_norm,
         .sigma = plan.noise_multiplier,
         .expected_batch = plan.sample_rate * static_cast<double>(train->size())},
        noise);
    trainer.set_batch_sampler(&sampler);
    trainer.set_gradient_reducer(&dp);

    std::vector<double> losses;
    const Clock::time_point start = Clock::now();
    for (uint32_t s = 0; s < plan.local_steps; ++s) {
      const model::TrainStepReport r = trainer.step();
      losses.push_back(r.loss);
      log->debug("round {} step {}/{}: loss {:.4f}, {} examples", inv.round, r.step,
                 plan.local_steps, r.loss, r.examples);
    }
    coord::DeltaUpload up;
    up.round = inv.round;
    up.attempt = inv.attempt;
    up.site_id = config.site_id;
    up.example_count = coarsen_count(static_cast<uint64_t>(train->size()));
    up.steps = plan.local_steps;
    const double train_loss = mean_finite(losses);
    const double heldout_loss =
        heldout ? trainer.evaluate(*heldout, config.eval_batch).loss : train_loss;
    record_curve(inv, train_loss, heldout_loss);
    up.train_loss = config.report_losses ? train_loss : std::nan("");
    up.heldout_loss = config.report_losses ? heldout_loss : std::nan("");
    up.epsilon_spent = budget->spent();
    model::LoraParams delta = trainer.adapter();
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
          delta_values, {.clip = plan.participant_clip, .sigma = plan.participant_sigma},
          release.key, kDeltaNoiseStream);
      participant_dp = fmt::format("delta norm {:.4g}{} clip {}, noise std {:.4g}", r.norm,
                                   r.clipped ? " >" : " <=", plan.participant_clip, r.noise_std);
    }
    log->info(
        "round {}: trained {} steps in {:.1f} s, train loss {:.4f}, held-out loss {:.4f}, "
        "epsilon {:.3f} of {}, participant-level DP: {}",
        inv.round, plan.local_steps, std::chrono::duration<double>(Clock::now() - start).count(),
        train_loss, heldout_loss, up.epsilon_spent, budget->epsilon_max(), participant_dp);
    return up;
  }

  // Appends this round's own losses to STATE/curves.jsonl (the site's record; not sent unless
  // report_losses).
  void record_curve(const coord::RoundInvitation& inv, double train_loss, double heldout_loss) {
    const auto num = [](double v) {
      return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json();
    };
    const nlohmann::json line = {{"run_id", inv.run_id},
                                 {"round", inv.round},
                                 {"attempt", inv.attempt},
                                 {"train_loss", num(train_loss)},
                                 {"heldout_loss", num(heldout_loss)},
                                 {"examples", train->size()},
                                 {"heldout_examples", heldout ? heldout->size() : 0},
                                 {"epsilon", budget->spent()}};
    std::ofstream out(config.state_dir / "curves.jsonl", std::ios::app);
    out << line.dump() << "\n";
  }

  std::optional<coord::CoordinatorClient> connect(zmq::context_t& ctx) {
    protocol::ClientConfig cc;
    cc.endpoint = config.coordinator;
    cc.insecure = config.insecure;
    cc.key = config.key;
    cc.server_key = config.coordinator_key;
    auto client = coord::CoordinatorClient::connect(ctx, cc);
    if (!client.ok()) throw std::runtime_error("coordinator: " + client.error().message);
    return std::move(client.value());
  }

  coord::Register registration() const {
    coord::Register r;
    r.role = coord::Role::kParticipant;
    r.site_id = config.site_id;
    r.dataset_size = coarsen_count(static_cast<uint64_t>(train->size()));
    r.epsilon_max = config.epsilon_max;
    r.delta = config.delta;
    return r;
  }

  int run(std::stop_token stop) {
    zmq::context_t ctx(1);
    std::optional<coord::CoordinatorClient> client = connect(ctx);
    bool registered = false;
    Clock::time_point last_heard = Clock::now();
    Clock::time_point last_beat = Clock::now();
    while (!stop.stop_requested()) {
      if (!registered) {
        auto reply = client->register_site(registration(), config.heartbeat_interval * 2);
        if (!reply.ok()) {
          if (reply.error().code != protocol::ErrorCode::kTimeout) {
            log->warn("registration failed: {}", reply.error().message);
          }
          // After a timeout, a fresh socket: a DEALER keeps queueing for a peer that may never
          // come back. Any other failure is an answer from a live coordinator (often the error
          // reply to a heartbeat sent before this Register, which the coordinator may already
          // have accepted): register again on the same connection, so that the coordinator does
          // not see the site move to a new one and lose an invitation sent to the old.
          if (reply.error().code == protocol::ErrorCode::kTimeout) {
            client.reset();
            client = connect(ctx);
          }
          continue;
        }
        if (!reply.value().accepted) {
          log->error("the coordinator refused this site: {}", reply.value().reason);
          return 1;
        }
        registered = true;
        last_heard = Clock::now();
        {
          std::lock_guard lock(stats_mutex);
          ++stats.registrations;
        }
        log->info("registered with {} (next round {})", config.coordinator,
                  reply.value().next_round);
      }
      advance_training(*client);
      auto m = client->receive(std::min<std::chrono::milliseconds>(config.heartbeat_interval,
                                                                   std::chrono::milliseconds(100)));
      if (Clock::now() - last_beat >= config.heartbeat_interval) {
        (void)client->heartbeat(config.site_id);
        last_beat = Clock::now();
      }
      if (!m.ok()) {
        if (m.error().code != protocol::ErrorCode::kTimeout) {
          log->warn("coordinator message refused: {}", m.error().message);
        }
        if (Clock::now() - last_heard > config.reconnect_after) {
          log->warn("the coordinator has been silent for {} ms; registering again",
                    config.reconnect_after.count());
          registered = false;
          client.reset();
          client = connect(ctx);
        }
        continue;
      }
      last_heard = Clock::now();
      coord::Message& msg = m.value();
      if (auto* inv = std::get_if<coord::RoundInvitation>(&msg.body)) {
        if (training) {
          auto values = coord::adapter_values(inv->adapter, msg);
          if (values.ok() &&
              derive_release(seed, *inv, values.value(), site).id == training->release.id) {
            // A restarted coordinator replaying the round being trained: the delta follows (and
            // the answer, while it is still being prepared).
            log->info("round {} (attempt {}): invited again while training it", inv->round,
                      inv->attempt);
            if (training->started) (void)client->accept(*inv, config.site_id);
            continue;
          }
          log->warn("round {}: invited while still training round {}; declining", inv->round,
                    training->invitation.round);
          (void)client->decline(*inv, config.site_id, coord::DeclineReason::kBusy,
                                "still training an earlier round");
          continue;
        }
        handle_invitation(*client, *inv, msg);
      } else if (auto* ack = std::get_if<coord::UploadAck>(&msg.body)) {
        log->info("round {}: upload {}", ack->round, coord::upload_status_name(ack->status));
      } else if (auto* result = std::get_if<coord::RoundResult>(&msg.body)) {
        if (std::isfinite(result->heldout_loss)) {
          log->info("round {} finished: {} sites, train loss {:.4f}, held-out loss {:.4f}",
                    result->round, result->sites, result->train_loss, result->heldout_loss);
        } else {
          log->info("round {} finished: {} sites", result->round, result->sites);
        }
      } else if (auto* bye = std::get_if<coord::Shutdown>(&msg.body)) {
        if (bye->reason == "stopped") {
          // The coordinator's operator interrupted the run; a restarted coordinator resumes it
          // and replays the interrupted round, for which this site keeps its delta.
          log->info("the coordinator was stopped; waiting for it to come back");
          registered = false;
          continue;
        }
        log->info("coordinator shut the run down: {}", bye->reason);
        if (training) {
          training->prepared.wait();
          if (training->started) training->result.wait();
        }
        training.reset();
        return 0;
      } else if (auto* err = std::get_if<coord::ErrorReply>(&msg.body)) {
        log->warn("coordinator error: {}; registering again", err->error.message);
        registered = false;
      }
    }
    return 0;
  }

  void handle_invitation(coord::CoordinatorClient& client, const coord::RoundInvitation& inv,
                         const coord::Message& msg) {
    const coord::TrainingPlan& plan = inv.plan;
    auto values = coord::adapter_values(inv.adapter, msg);
    if (!values.ok()) {
      (void)client.decline(inv, config.site_id, coord::DeclineReason::kOther,
                           "global adapter: " + values.error().message);
      return;
    }
    const Release release = derive_release(seed, inv, values.value(), site);
    if (delivered && delivered->release_id == release.id) {
      // Already trained and paid for: send the identical delta again (see CachedDelta).
      log->info("round {} (attempt {}): invited again; re-sending the delta already trained",
                inv.round, inv.attempt);
      (void)client.accept(inv, config.site_id);
      const protocol::Status sent = client.upload(delivered->upload, delivered->values);
      if (!sent.ok()) log->warn("round {}: upload failed: {}", inv.round, sent.error().message);
      return;
    }
    if (config.backend == "remote" && inv.workers.empty()) {
      (void)client.decline(inv, config.site_id, coord::DeclineReason::kNoWorkers,
                           "the invitation lists no fhe_worker");
      return;
    }
    // Everything that would fail the same way on every attempt is checked before budget is
    // spent: the adapter against this site's LoRA configuration here, the workers' model against
    // this site's checkpoint in the background (advance_training).
    try {
      model::LoraParams probe(weights->config, config.lora);
      read_adapter_table(inv.adapter, values.value(), probe);
    } catch (const model::ModelError& e) {
      return decline_misconfigured(client, inv,
                                   std::string(e.what()) +
                                       " (this site's LoRA rank, alpha and targets must "
                                       "match the federation's adapter)");
    }
    if (ledger->find(release.id) == nullptr) {
      std::string why;
      if (budget->would_exceed(phase_of(plan), &why)) {
        log->warn("round {}: declining, budget: {}", inv.round, why);
        (void)client.decline(inv, config.site_id, coord::DeclineReason::kBudget, why);
        std::lock_guard lock(stats_mutex);
        ++stats.rounds_declined;
        return;
      }
    }
    training = std::make_unique<Training>();
    training->invitation = inv;
    training->release = release;
    training->global_values = std::move(values.value());
    Training* t = training.get();
    t->prepared = std::async(std::launch::async, [this, t] { model_for(t->invitation.workers); });
  }

  static privacy::Phase phase_of(const coord::TrainingPlan& plan) {
    return {.q = plan.sample_rate,
            .sigma = plan.noise_multiplier,
            .steps = static_cast<int64_t>(plan.local_steps)};
  }

  // Moves the background round on: once prepared, charges and accepts it and starts training;
  // once trained, uploads it.
  void advance_training(coord::CoordinatorClient& client) {
    if (!training) return;
    if (!training->started) {
      if (training->prepared.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return;
      const coord::RoundInvitation& inv = training->invitation;
      try {
        training->prepared.get();
      } catch (const ModelMismatchError& e) {
        decline_misconfigured(client, inv, e.what());
        training.reset();
        return;
      } catch (const std::exception& e) {
        log->warn("round {}: declining: {}", inv.round, e.what());
        (void)client.decline(inv, config.site_id, coord::DeclineReason::kOther, e.what());
        training.reset();
        return;
      }
      start_training(client);
      return;
    }
    finish_training(client);
  }

  void start_training(coord::CoordinatorClient& client) {
    Training* t = training.get();
    const coord::RoundInvitation& inv = t->invitation;
    const coord::TrainingPlan& plan = inv.plan;
    if (ledger->find(t->release.id) != nullptr) {
      log->info("round {} (attempt {}): release {} already paid for; training it again", inv.round,
                inv.attempt, t->release.id.substr(0, 12));
    } else {
      // Charged before any noise is drawn (a crash never forgets it), and once per release.
      budget->commit(phase_of(plan));
      budget->save(budget_file);
      ledger->add({t->release.id, inv.run_id, inv.round, inv.attempt, ""});
      std::lock_guard lock(stats_mutex);
      stats.epsilon_spent = budget->spent();
    }
    (void)client.accept(inv, config.site_id);
    log->info("round {} (attempt {}): training {} steps, q {}, sigma {}, clip {}", inv.round,
              inv.attempt, plan.local_steps, plan.sample_rate, plan.noise_multiplier,
              plan.clip_norm);
    t->started = true;
    t->result = std::async(std::launch::async, [this, t] {
      return train_round(t->invitation, t->release, t->global_values, t->delta_values);
    });
  }

  void decline_misconfigured(coord::CoordinatorClient& client, const coord::RoundInvitation& inv,
                             const std::string& why) {
    log->error("round {}: this site cannot train with this federation: {}", inv.round, why);
    (void)client.decline(inv, config.site_id, coord::DeclineReason::kMisconfigured, why);
  }

  // Uploads the background round once it is trained.
  void finish_training(coord::CoordinatorClient& client) {
    if (training->result.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return;
    const coord::RoundInvitation& inv = training->invitation;
    try {
      coord::DeltaUpload up = training->result.get();
      const std::string id = training->release.id;
      if (!ledger->bind_delta(id, delta_sha256(training->delta_values))) {
        // The same streams would serve two different deltas: their difference would cancel
        // the noise. Nothing is sent.
        log->error(
            "round {}: refusing to send a second, different delta for release {} (the data, "
            "model or workers changed since it was first trained); nothing was sent",
            inv.round, id.substr(0, 12));
        (void)client.decline(inv, config.site_id, coord::DeclineReason::kMisconfigured,
                             "a different delta for a release already made");
        training.reset();
        return;
      }
      delivered = CachedDelta{id, up, std::move(training->delta_values)};
      save_cached_delta(config.state_dir, *delivered);
      const protocol::Status sent = client.upload(std::move(up), delivered->values);
      if (!sent.ok()) log->warn("round {}: upload failed: {}", inv.round, sent.error().message);
      std::lock_guard lock(stats_mutex);
      ++stats.rounds_trained;
      stats.epsilon_spent = budget->spent();
    } catch (const ModelMismatchError& e) {
      decline_misconfigured(client, inv, e.what());
    } catch (const std::exception& e) {
      log->error("round {}: training failed: {}", inv.round, e.what());
      (void)client.decline(inv, config.site_id, coord::DeclineReason::kOther, e.what());
    }
    training.reset();
  }
};

Agent::Agent(AgentConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}
Agent::~Agent() = default;

int Agent::run(std::stop_token stop) {
  try {
    return impl_->run(stop);
  } catch (const std::exception& e) {
    impl_->log->error("{}", e.what());
    return 1;
  }
}

AgentStats Agent::stats() const {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->stats;
}

}  // namespace participant
