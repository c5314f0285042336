// The coordinator: registry, round engine, aggregation, privacy accounting, checkpoints and the
// dashboard log, behind one object that a thin executable, a test or fedsim runs in a thread.
//
//   zmq::context_t ctx;
//   auto c = coordinator::Coordinator::create(ctx, config);   // binds, loads any checkpoint
//   std::jthread t([&](std::stop_token st) { summary = c.value()->run(st); });
//   ... participants connect to c.value()->endpoint() ...
//   t.request_stop();                                          // run() returns within ~100 ms
//
// One round (docs/design.md §6; each step is a function of src/round_engine.cpp):
// select (uniform random `fraction` of the eligible sites, at least min_participants, skipping
// dead, budget-exhausted and misconfigured ones (a site that declined `misconfigured` or sent a
// delta of the wrong layout, until it registers again); an attempt starts only when
// min_participants sites are eligible; AES-CTR DRBG) -> configure (RoundInvitation with the
// global adapter, the plan and the worker directory) -> train (at the sites) -> collect until
// the deadline or until every selected site has answered (deltas are accumulated as they arrive;
// late ones are logged and dropped) -> account -> aggregate (strategy.h) -> checkpoint -> report.
// Accounting: every site that accepted or uploaded in an attempt is charged one phase for that
// attempt (privacy::Budget), whether the attempt then completes or fails, which is what the site
// itself charges when it accepts; with participant-level DP on, every attempt that received a
// delta is also a step of the federation's participant-level accountant.
// Fewer than min_participants deltas: the attempt's charges are checkpointed and the round is
// retried with a new selection, at most max_attempts times. The run ends after `rounds` rounds,
// when the sites that have trained and the others can no longer fund min_participants,
// when too few sites show up within wait_for_sites, or on stop. A site whose budget cannot fund
// one round is never eligible and never ends the run by itself.
// A checkpoint that cannot be written is retried with backoff while peers are served
// (checkpoint_failed in events.jsonl); the run directory is locked (base/dir_lock.h).
// Nothing here is global: every coordinator has its own socket, logger and files.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>

#include "base/result.h"
#include "coordinator/strategy.h"
#include "protocol/coordinator_messages.h"
#include "protocol/keys.h"
#include "protocol/result.h"
#include "protocol/zap.h"

namespace coordinator {

struct CoordinatorConfig {
  // Transport.
  std::string endpoint = "tcp://127.0.0.1:5560";
  bool insecure = false;                      // loopback / inproc only
  std::optional<protocol::KeyPair> key;       // CURVE: the coordinator's key pair
  std::optional<protocol::AllowList> allow;   // CURVE: admitted keys (a ZAP handler is started)
  const protocol::ZapHandler* zap = nullptr;  // CURVE: or the context's existing handler
  // CURVE: the roster (roster.h) binding each key to one (id, role) and each worker to its
  // endpoint; its keys are admitted too (with `allow`, if given, admitting more keys whose
  // messages are then refused with an error naming the roster). Reloaded when the file changes
  // (its mtime or size, polled every second) and on reload_roster(); a bad file is refused and
  // the previous roster kept. Empty: no roster (an id is bound to the first key that uses it).
  std::filesystem::path roster_file;
  // A connection that has not finished its handshake within this is closed (ZMQ_HANDSHAKE_IVL):
  // idle unauthenticated TCP connections cannot pile up.
  std::chrono::milliseconds handshake_timeout{10000};

  // Logging: lines at `log_level` and above go to stderr ("trace" .. "off"); with `log_file`,
  // every line at info and above (or at log_level, when lower) is also appended to that file.
  std::string log_level = "info";
  std::filesystem::path log_file;

  // Files.
  std::filesystem::path run_dir;          // events.jsonl, checkpoints/, adapter/
  std::filesystem::path initial_adapter;  // PEFT dir (ignored when resuming from a checkpoint)

  // Rounds.
  uint32_t rounds = 5;
  double fraction = 1.0;  // of the eligible participants, in (0, 1]
  uint32_t min_participants = 2;
  uint32_t max_attempts = 5;  // selections per round before the run gives up
  std::chrono::milliseconds round_timeout{120000};
  std::chrono::milliseconds heartbeat_interval{1000};
  uint32_t missed_heartbeats = 5;
  std::chrono::milliseconds wait_for_sites{300000};
  // The first round of a run waits until this many participants are registered and alive (or
  // wait_for_sites has passed), so that a federation started all at once begins with all of
  // its sites; 0: start as soon as min_participants are eligible.
  uint32_t start_after = 0;
  uint64_t seed = 1;
  // The run id sent in every invitation (32 lowercase hex digits). Empty: a fresh one from the
  // CSPRNG when the run directory is new (a resumed run keeps its checkpoint's). Set it only to
  // replay a run bit for bit (tests); two federations must never share one.
  std::string run_id;
  // FedAvg weight: a delta counts with min(example count, max_example_weight) examples (0: no
  // cap). An upload claiming more examples than the site registered is refused either way.
  uint64_t max_example_weight = 0;

  // The training plan sent to the sites (deadline and per-site seed are filled per round).
  // Participant-level DP (plan.participant_dp, off by default): every site clips its round delta
  // to plan.participant_clip and adds N(0, participant_sigma^2 participant_clip^2) per
  // coordinate; the coordinator accounts it over rounds (privacy::RdpAccountant, one step per
  // attempt that received deltas) and logs `participant_epsilon` at plan.delta in
  // round_finished. The sampling rate of that accountant is 1 (no amplification by
  // subsampling): the guarantee must hold against the coordinator, which chooses the sample
  // and sees every delta. participant_amplification = true uses q = selected / eligible, a
  // figure valid only against a party that does not learn the selection (docs/coordinator.md).
  protocol::coord::TrainingPlan plan{.local_steps = 10,
                                     .learning_rate = 1e-3,
                                     .batch_size = 8,
                                     .sample_rate = 0.02,
                                     .noise_multiplier = 1.0,
                                     .clip_norm = 1.0,
                                     .delta = 1e-5};
  bool participant_amplification = false;

  StrategyConfig strategy;
  // Makes the strategy for an adapter of `size` elements instead of make_strategy(strategy,
  // size) (tests, strategies outside strategy.h). Checkpoints record strategy.name, so a
  // resumed run must be configured with the same name.
  std::function<base::Result<std::unique_ptr<Strategy>>(const StrategyConfig&, size_t size)>
      strategy_factory;
};

struct RunSummary {
  uint32_t last_round = 0;  // the last completed round
  std::string reason;       // "completed", "budget_exhausted", "no_participants",
                            // "round_failed", "stopped"
};

class Coordinator {
 public:
  // Checks the configuration, loads the checkpoint (or the initial adapter), binds the socket.
  static base::Result<std::unique_ptr<Coordinator>> create(zmq::context_t& context,
                                                           CoordinatorConfig config);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // The bound endpoint (with the port chosen for "*").
  const std::string& endpoint() const;
  // The round run() starts with (1, or the checkpoint's round + 1).
  uint32_t next_round() const;

  // Runs rounds until the run ends or `stop` is requested; exports the adapter, writes
  // run_finished, and sends Shutdown to the alive sites. Errors are I/O failures (a checkpoint
  // that cannot be written).
  base::Result<RunSummary> run(std::stop_token stop = {});

  // Asks run() to reload the roster file at its next poll (thread-safe, async-signal-safe: an
  // atomic flag). The executable calls it on SIGHUP.
  void reload_roster();

 private:
  struct Impl;
  explicit Coordinator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace coordinator
