// Private to the coordinator library: the state behind Coordinator (coordinator.h) and the
// explicit states of a round.
//
// Files: setup.cpp (configuration check, run directory, checkpoint or initial adapter, run id,
// socket), coordinator.cpp (sending, message handlers, roster, liveness, the public class),
// round_engine.cpp (the run loop and one attempt's steps: select -> configure -> collect ->
// account -> aggregate -> checkpoint -> report), round_state.cpp (names of the states below as
// events.jsonl writes them).
//
// A selected site's seat in the current attempt (Seat) moves
//
//   kInvited -> kAccepted             on Accept
//   kInvited | kAccepted -> kUploaded on a valid DeltaUpload (Accept is optional)
//   kInvited | kAccepted -> kDropped  with a DropReason: Decline, missed heartbeats, a failed
//                                     send, a roster revocation, the deadline, stop
//   kDropped -> kUploaded             on a valid DeltaUpload before the deadline, unless the
//                                     reason is kDeclined (that one is answered not_selected)
//
// kUploaded is final. The collect step ends when no seat is kInvited or kAccepted (pending()),
// or at the deadline, dropping the pending ones (kDeadline; kStopped on stop).
#pragma once

#include <spdlog/spdlog.h>

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/dir_lock.h"
#include "coordinator/aggregation.h"
#include "coordinator/coordinator.h"
#include "coordinator/drbg.h"
#include "coordinator/event_log.h"
#include "coordinator/peft.h"
#include "coordinator/registry.h"
#include "coordinator/roster.h"
#include "privacy/accountant.h"
#include "protocol/socket.h"

namespace coordinator {

enum class SeatState { kInvited, kAccepted, kUploaded, kDropped };

// Why a seat was dropped; drop_reason_name() is the `reason` of participant_dropped.
enum class DropReason {
  kDeadline,     // "deadline": no delta before the deadline
  kDeclined,     // "declined": it sent Decline (its reason is the event's detail)
  kDead,         // "dead": missed heartbeats
  kUnreachable,  // "unreachable": a send to it failed (queue full or gone)
  kRevoked,      // "revoked": a roster reload no longer allows it
  kStopped,      // "stopped": the run was stopped during the attempt
};
std::string_view drop_reason_name(DropReason reason);

// How one attempt ended (run_attempt()).
enum class AttemptOutcome {
  kCompleted,  // enough deltas: aggregated, checkpointed, reported; the next round starts
  kRetry,      // too few deltas: round_failed logged, charges checkpointed; attempt + 1
  kStopped,    // stop requested during the attempt: nothing of it is kept
  kFailed,     // an I/O failure (a checkpoint or an invitation that cannot be made): `status`
};
struct AttemptResult {
  AttemptOutcome outcome = AttemptOutcome::kFailed;
  base::Status status = base::ok_status();  // the error when kFailed
};

// Why the run ended; run_end_name() is run_finished's `reason`, RunSummary::reason and the
// Shutdown reason.
enum class RunEnd {
  kCompleted,        // "completed": every round ran
  kBudgetExhausted,  // "budget_exhausted": too few sites can still fund a round
  kNoParticipants,   // "no_participants": too few eligible sites within wait_for_sites
  kRoundFailed,      // "round_failed": max_attempts selections of one round failed
  kStopped,          // "stopped": stop was requested
};
std::string_view run_end_name(RunEnd end);

struct Seat {  // a selected site in the current attempt
  SeatState state = SeatState::kInvited;
  DropReason drop_reason = DropReason::kDeadline;  // meaningful when kDropped
  // It sent Accept in this attempt (so it may have trained and charged its own budget),
  // whatever its state is now: a site dropped after accepting is charged all the same.
  bool accepted = false;
  uint64_t examples = 0, weight = 0;
  double train_loss = 0, heldout_loss = 0, epsilon_reported = 0;
  uint32_t steps = 0;

  // Still expected to answer: the collect step waits for it.
  bool pending() const { return state == SeatState::kInvited || state == SeatState::kAccepted; }
  // Charged one phase for the attempt (account step).
  bool charged() const { return accepted || state == SeatState::kUploaded; }
  bool declined() const {
    return state == SeatState::kDropped && drop_reason == DropReason::kDeclined;
  }
};

// What the steps of one attempt share: its clocks, counts and timings.
struct AttemptContext {
  Clock::time_point started{}, collect_started{};
  uint64_t bytes_up0 = 0, bytes_down0 = 0;
  size_t eligible = 0, selected = 0;
  int64_t deadline_unix_ms = 0;
  double collect_s = 0, aggregate_s = 0, checkpoint_s = 0;
};

// The completed round's figures for round_finished and RoundResult (report step).
struct RoundStats {
  nlohmann::json sites = nlohmann::json::array();  // ids that contributed, sorted
  uint64_t examples = 0;
  double train_loss = 0, heldout_loss = 0;  // example-weighted; NaN when none reported one
};

// A failure kept for fedctl status (status.cpp): the newest kMaxStatusFailures events of the
// kinds status_failure_event() names.
struct FailureRecord {
  std::string event;
  Clock::time_point at{};
  uint32_t round = 0;
  std::string site;
  std::string detail;
};
bool status_failure_event(std::string_view event);

struct Coordinator::Impl {
  Impl(zmq::context_t& context, CoordinatorConfig config)
      : ctx(context), cfg(std::move(config)), drbg(cfg.seed) {}

  zmq::context_t& ctx;
  CoordinatorConfig cfg;
  std::shared_ptr<spdlog::logger> log;
  std::unique_ptr<protocol::ZapHandler> own_zap;  // destroyed after the server
  // The roster (empty optional: none) and what the file looked like when it was read.
  std::optional<Roster> roster;
  std::filesystem::file_time_type roster_mtime{};
  uintmax_t roster_size = 0;
  Clock::time_point roster_polled{};
  std::atomic<bool> roster_reload{false};
  std::set<std::string> unlisted_logged;     // keys refused as not in the roster, logged once
  std::map<std::string, uint64_t> refusals;  // per key: refusals so far (to bound log lines)

  // True for the first 10 refusals of a key and every 1000th after (one key cannot flood the
  // log or events.jsonl); at most 4096 keys are tracked, the rest share one count.
  bool should_log(const std::string& key);
  inline static const std::string kOverflow = "(more keys)";
  std::optional<base::DirLock> run_lock;  // RUN/.lock, held while this coordinator lives
  protocol::Limits limits;                // of the server socket and the decoder
  std::optional<protocol::Server> server;
  std::optional<EventLog> events;
  Registry registry;
  Drbg drbg;
  PeftAdapter global;
  std::unique_ptr<Strategy> strategy;
  uint32_t round = 1;
  std::string run_id;  // drawn when the run starts, kept in the checkpoint
  privacy::Phase phase;
  // Participant-level DP over the federation: one step per attempt that received deltas.
  privacy::RdpAccountant participant_accountant;

  // The current attempt.
  bool attempt_open = false;  // from select to the attempt's outcome (fedctl status)
  bool collecting = false;
  uint32_t attempt = 1;
  std::map<std::string, Seat> seats;
  Clock::time_point deadline{};
  std::optional<RoundAggregator> deltas;
  uint64_t bytes_up = 0, bytes_down = 0;

  std::filesystem::path checkpoint_path() const {
    return cfg.run_dir / "checkpoints" / "latest.ckpt";
  }

  // setup.cpp
  base::Status init();
  base::Status open_run_dir();
  base::Status load_state(bool* resumed, StrategyState* restored);
  base::Status restore_checkpoint(StrategyState* restored);
  base::Status resolve_run_id();
  base::Status make_run_strategy(bool resumed, StrategyState restored);
  base::Status bind_server();

  // round_engine.cpp: the run loop.
  base::Result<RunSummary> run(std::stop_token stop);
  void log_run_started();
  RunSummary finish_run(RunEnd end);
  // Marks the budgets that cannot fund another round (mark_exhausted), then the participants
  // eligible now; nullopt (after logging it) when so many sites have exhausted their budgets
  // that fewer than min_participants can still train.
  std::optional<std::vector<SiteRecord*>> eligible_participants();
  // Before the first round of this process: still gathering sites (fewer than start_after
  // `eligible`) or workers (the registry knows some, none is alive).
  bool gathering(size_t eligible) const;
  void mark_exhausted();

  // round_engine.cpp: one selection of the current round, and its steps.
  AttemptResult run_attempt(std::vector<SiteRecord*> eligible, std::stop_token stop);
  std::vector<SiteRecord*> select(std::vector<SiteRecord*> eligible, AttemptContext& a);
  base::Status configure(const std::vector<SiteRecord*>& selected, const AttemptContext& a);
  void collect(AttemptContext& a, std::stop_token stop);
  void account(const AttemptContext& a);
  AttemptResult retry(uint64_t received, std::stop_token stop);
  void aggregate(AttemptContext& a);
  base::Status checkpoint(AttemptContext& a, std::stop_token stop);
  RoundStats round_stats() const;
  void report(const AttemptContext& a, const RoundStats& stats);
  // Charges one phase to every seat that is charged() (account step).
  void charge_attempt();

  // round_engine.cpp: checkpoints. The checkpoint after round `completed`, the next round to
  // start with `next_attempt`.
  base::Status write_checkpoint_now(uint32_t completed, uint32_t next_attempt);
  // Writes it, retrying with backoff (serving peers meanwhile) until it succeeds or `stop` is
  // requested; failures are logged and written as checkpoint_failed (a bounded number per
  // streak), the recovery as checkpoint_recovered.
  base::Status checkpoint_with_retry(uint32_t completed, uint32_t next_attempt,
                                     std::stop_token stop);
  nlohmann::json epsilon_map();
  double participant_epsilon() const;

  // status.cpp: fedctl status, read-only.
  std::deque<FailureRecord> recent_failures;
  std::optional<std::string> model_name;  // adapter_config.json's base model, read once
  void note_event(std::string_view event, const nlohmann::json& fields);
  protocol::coord::StatusReply status_reply();
  void answer_status(const std::string& peer);

  // coordinator.cpp: peers.
  void pump(Clock::time_point until);
  void handle(protocol::RawIncoming&& in);
  // The registered site that sent `in` (after the roster, frame and key checks), or nullptr
  // when the message was answered already; `m` receives the decoded message.
  SiteRecord* admit(protocol::RawIncoming& in, uint64_t bytes, protocol::coord::Message* m);
  void handle_site_message(SiteRecord& site, const std::string& peer, protocol::coord::Message&& m,
                           uint64_t bytes);
  void handle_decline(SiteRecord& site, const protocol::coord::Decline& d);
  void handle_register(const protocol::coord::Register& r, const protocol::RawIncoming& in);
  void handle_upload(SiteRecord& s, protocol::coord::Message&& m, uint64_t bytes);
  // The seat an upload of the current attempt goes to, or nullptr after answering it (late,
  // not started, not selected, duplicate).
  Seat* upload_seat(SiteRecord& s, const protocol::coord::DeltaUpload& u);
  // Refuses (with a reply) a delta of another layout or more examples than registered.
  bool upload_refused(SiteRecord& s, const protocol::coord::DeltaUpload& u);
  void record_upload(SiteRecord& s, Seat& seat, const protocol::coord::DeltaUpload& u,
                     uint64_t weight, uint64_t bytes);
  base::Status load_roster(bool initial);
  void revoke_disallowed();
  void poll_roster();
  void drop(const std::string& id, DropReason reason, const std::string& detail = "");
  protocol::Status send(std::string peer, protocol::coord::Message&& m);
  void reply_error(const std::string& peer, const protocol::Error& e);
};

}  // namespace coordinator
