// The participant agent's state and its parts (agent.h), private to the library:
//   agent.cpp           the site's state: configuration, model, data, budget, seed, ledger
//   agent_training.cpp  one round's training (model::run_training) and the delta it uploads
//   agent_session.cpp   the coordinator session: registration, invitations, background rounds
#pragma once

#include <spdlog/logger.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/dir_lock.h"
#include "fhe/secret_key.h"
#include "model/dataset.h"
#include "model/linear_backend.h"
#include "model/llama_model.h"
#include "model/llama_weights.h"
#include "model/lora_params.h"
#include "model/model_hash.h"
#include "model/training_run.h"
#include "participant/agent.h"
#include "participant/progress.h"
#include "participant/releases.h"
#include "privacy/budget.h"
#include "privacy/random_source.h"
#include "protocol/coordinator_client.h"

namespace participant {

namespace coord = protocol::coord;
using AgentClock = std::chrono::steady_clock;

// A count rounded down to two significant decimal digits (57 -> 57, 1234 -> 1200): what the
// coordinator learns of a site's dataset size, enough to weight its delta.
uint64_t coarsen_count(uint64_t n);

struct Agent::Impl {
  AgentConfig config;
  std::shared_ptr<spdlog::logger> log;
  std::shared_ptr<const model::LlamaWeights> weights;
  std::optional<model::TextDataset> train;
  // The held-out notes' loss each round: at most kHeldoutWindows of their windows (evenly
  // spaced), scored through the site's backend (the encrypted workers in remote mode).
  static constexpr int64_t kHeldoutWindows = 128;
  std::optional<model::TextDataset> heldout;
  int64_t heldout_records = 0;  // held-out notes
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

  // The coordinator connection of run().
  struct Session {
    zmq::context_t& context;
    std::optional<coord::CoordinatorClient> client;
    bool registered = false;
    AgentClock::time_point last_heard = AgentClock::now();
    AgentClock::time_point last_beat = AgentClock::now();
    int handshake_failures = 0;         // in a row, towards config.connect_attempts
    AgentClock::time_point next_try{};  // after a failed handshake: register again from then
  };
  int worker_refusals = 0;         // rounds in a row whose workers all refused this site's key
  std::optional<int> exit_status;  // set where run() must end (the workers refuse this site)

  // The round's progress as last published (config.progress_file): written by the training
  // thread while it trains, then by run()'s thread once the result is taken (never both at once).
  TrainingProgress progress;
  bool progress_failed = false;  // a write failed: warned once, not retried until one succeeds

  // ---- agent.cpp: the site's state
  explicit Impl(AgentConfig c);
  ~Impl();
  void check_config();
  void open_state_dir();
  void load_inputs();
  void load_budget();
  void load_state();

  // ---- agent_training.cpp: one round
  // The model over the backend this round needs (rebuilt when the worker directory changed).
  model::LlamaModel& model_for(const std::vector<coord::WorkerEntry>& workers);
  std::unique_ptr<model::LinearBackend> remote_backend(const std::vector<coord::WorkerEntry>& w,
                                                       std::unique_ptr<fhe::SecretKey> key);
  // Trains one round; returns the upload (and its values) or throws.
  coord::DeltaUpload train_round(const coord::RoundInvitation& inv, const Release& release,
                                 std::span<const float> global_values,
                                 std::vector<float>& delta_values);
  model::TrainingRunConfig round_run(const coord::TrainingPlan& plan, const Release& release,
                                     const model::LoraParams& global) const;
  // The round's DP-SGD upload of `run` (its delta from `global` in `delta_values`).
  coord::DeltaUpload round_upload(const coord::RoundInvitation& inv, const Release& release,
                                  const model::LoraParams& global,
                                  const model::TrainingRunResult& run,
                                  std::vector<float>& delta_values, AgentClock::time_point start);
  // Publishes `progress` to config.progress_file (nothing without one); a failed write is
  // logged, never fatal: the progress file is for watching, not state.
  void publish_progress();
  // Appends this round's own losses to STATE/curves.jsonl (the site's record; not sent unless
  // report_losses).
  void record_curve(const coord::RoundInvitation& inv, double train_loss, double heldout_loss);

  // ---- agent_session.cpp: the coordinator session
  int run(std::stop_token stop);
  std::optional<coord::CoordinatorClient> connect(zmq::context_t& ctx);
  coord::Register registration() const;
  std::optional<int> register_site(Session& s);
  // A handshake the coordinator did not complete (refused key, wrong --coordinator-key): 1 once
  // config.connect_attempts of them came in a row, else nothing (registers again later).
  std::optional<int> handshake_failed(Session& s, const protocol::Error& error);
  // Every worker of a round refused this site's key or its handshake: counted like the above.
  void workers_refused(const std::string& why);
  void heartbeat_if_due(Session& s);
  void coordinator_silent(Session& s, const protocol::Error& error);
  std::optional<int> dispatch(Session& s, coord::Message& msg);
  std::optional<int> shut_down(Session& s, const coord::Shutdown& bye);
  void invited(coord::CoordinatorClient& client, const coord::RoundInvitation& inv,
               const coord::Message& msg);
  void handle_invitation(coord::CoordinatorClient& client, const coord::RoundInvitation& inv,
                         const coord::Message& msg);
  static privacy::Phase phase_of(const coord::TrainingPlan& plan);
  // Moves the background round on: once prepared, charges and accepts it and starts training;
  // once trained, uploads it.
  void advance_training(coord::CoordinatorClient& client);
  void start_training(coord::CoordinatorClient& client);
  void decline_misconfigured(coord::CoordinatorClient& client, const coord::RoundInvitation& inv,
                             const std::string& why);
  // Uploads the background round once it is trained.
  void finish_training(coord::CoordinatorClient& client);
  // The trained round is over (uploaded, or declined): its progress says "idle".
  void round_ended();
};

}  // namespace participant
