// The participant agent: one hospital's end of a federation (docs/design.md §4).
//
//   participant::Agent agent(config);        // loads the model, the data and the site's state
//   std::jthread t([&](std::stop_token st) { agent.run(st); });
//
// It registers with the coordinator (site id, dataset size rounded down to two significant
// digits, privacy budget), then answers round invitations. For each it derives the release the
// invitation asks for (releases.h: the DP streams keyed by the site's secret seed and everything
// the release depends on) and
//   - re-sends the cached delta when it already sent this very release (a replayed round);
//   - checks the adapter table against its LoRA configuration and, with remote workers, the
//     workers' model (id, layers, shapes and the weights' hash against its own checkpoint),
//     declining with reason "misconfigured" (naming both sides) before anything is spent;
//   - checks the plan against its budget (declines, reason "budget", when it would exceed it);
//   - charges the budget and records the release in its ledger, atomically, before it accepts
//     (a release already charged, e.g. interrupted by a crash, is trained again at no charge);
// then trains the global adapter with DP-SGD (Poisson sampling with rate q, per-example clipping
// to C, Gaussian noise sigma * C) on its private records, every frozen projection encrypted and
// computed by the fhe_workers of the invitation's directory, binds the delta's hash to the
// release (a second, different delta for one release is refused and nothing is sent), caches
// the delta and uploads it with its (coarsened) example count and the epsilon spent so far.
// Losses stay on the site (STATE/curves.jsonl) unless report_losses is set.
//
// State directory (created if missing, mode 0700, locked while the agent runs; a restart
// resumes from it):
//   budget.json     the privacy budget and accountant (privacy::Budget, saved atomically)
//   releases.json   the ledger of releases paid for (releases.h)
//   last_delta.*    the last delta sent, for a replayed round
//   curves.jsonl    this site's own train and held-out loss per round (never sent by default)
//   rlwe.key        the RLWE secret key (mode 0600); generated on first start
//   dp.seed         the secret seed of the DP streams (mode 0600); generated on first start
//                   unless the config gives one
//   progress.json   (where progress_file names it) the round's training progress
// It re-registers when the coordinator has been silent for `reconnect_after` or answers that
// it does not know the site (a restarted coordinator). It exits run() on stop and on a Shutdown
// that ends the run; a Shutdown with reason "stopped" (the coordinator's operator interrupted
// it) keeps the site waiting for the coordinator to come back.
#pragma once

#include <spdlog/logger.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>

#include "model/lora_config.h"
#include "privacy/random_source.h"
#include "protocol/keys.h"

namespace participant {

struct AgentConfig {
  std::string site_id;

  // Coordinator connection (the same key pair is used towards the workers).
  std::string coordinator = "tcp://127.0.0.1:5560";
  bool insecure = false;  // loopback only
  std::optional<protocol::KeyPair> key;
  std::optional<protocol::PublicKey> coordinator_key;

  // Model, data, state.
  std::filesystem::path model_dir;
  std::string model_id;  // as the workers serve it; empty: the model directory's name
  std::filesystem::path train_file, heldout_file;  // JSON lines with "text"; heldout optional
  std::filesystem::path state_dir;
  int64_t seq_len = 64;
  int64_t eval_batch = 8;
  model::LoraConfig lora;  // must match the federation's adapter (checked on every round)

  // Privacy budget of this site.
  double epsilon_max = 8;
  double delta = 1e-5;
  std::optional<privacy::Seed> dp_seed;  // replayable runs; otherwise dp.seed in state_dir

  // How frozen projections run: "remote" (encrypted, on the invitation's workers; the default),
  // "encrypted" (in process), "float" (plaintext, for debugging only).
  std::string backend = "remote";
  bool switch_modulus = false;
  // Recompute each decoder layer's activations in the backward pass (LlamaModel::
  // set_recompute_activations): one layer's activations in memory instead of all, for one more
  // forward pass per step.
  bool recompute_activations = false;

  // Send train and held-out losses to the coordinator with every delta. Off by default: they
  // are not DP-noised, and the site keeps them in STATE/curves.jsonl either way.
  bool report_losses = false;

  // Where the agent publishes its training progress after every step (participant/progress.h:
  // round, step, tokens per second, ETA, phase), replaced atomically; empty: not published.
  // fedsim sets STATE/progress.json for its progress line.
  std::filesystem::path progress_file;

  std::chrono::milliseconds heartbeat_interval{1000};
  std::chrono::milliseconds reconnect_after{5000};
  // Failed CURVE handshakes in a row (the coordinator refused this site's key or did not accept
  // the handshake: a wrong coordinator key; or every worker of a round did) after which run()
  // logs why and returns 1; one try each heartbeat_interval. 0: keep trying, warning each time.
  int connect_attempts = 5;
  std::chrono::milliseconds request_timeout{60000};
  std::shared_ptr<spdlog::logger> log;  // null: a console logger named after the site
};

struct AgentStats {
  uint32_t rounds_trained = 0;
  uint32_t rounds_declined = 0;
  uint32_t registrations = 0;
  double epsilon_spent = 0;
};

class Agent {
 public:
  // Loads the model, the data and the state directory; throws std::runtime_error (or
  // model::ModelError / privacy::PrivacyError) with one line for a bad config, a missing file or a
  // state that does not fit (another budget than configured).
  explicit Agent(AgentConfig config);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Serves the coordinator until Shutdown (returns 0) or `stop` (returns 0); returns 1 after
  // logging an unrecoverable error (e.g. the state directory cannot be written).
  int run(std::stop_token stop = {});

  AgentStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace participant
