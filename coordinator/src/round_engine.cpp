// The round engine: the run loop and the steps of one attempt (docs/coordinator.md, "How a
// round works"): select -> configure -> collect -> account -> aggregate -> checkpoint ->
// report, or, with too few deltas, account -> retry. The states are in coordinator_impl.h.
#include <algorithm>
#include <cmath>

#include "coordinator/checkpoint.h"
#include "coordinator_impl.h"
#include "protocol/coordinator_codec.h"

namespace coordinator {
namespace {

using json = nlohmann::json;
namespace pc = protocol::coord;

constexpr std::chrono::milliseconds kPollSlice{50};

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

AttemptResult failed(base::Status status) {
  return {AttemptOutcome::kFailed, std::move(status)};
}

}  // namespace

// --- The run -------------------------------------------------------------------------------------

base::Result<RunSummary> Coordinator::Impl::run(std::stop_token stop) {
  log_run_started();
  RunEnd end = RunEnd::kCompleted;
  bool started = false;
  auto waiting_since = Clock::now();
  for (;;) {
    if (stop.stop_requested()) {
      end = RunEnd::kStopped;
      break;
    }
    if (round > cfg.rounds) {
      end = RunEnd::kCompleted;
      break;
    }
    auto eligible = eligible_participants();
    if (!eligible) {
      end = RunEnd::kBudgetExhausted;
      break;
    }
    const bool gather = !started && gathering(eligible->size());
    const bool waited_out = Clock::now() - waiting_since > cfg.wait_for_sites;
    if (eligible->size() < cfg.min_participants || gather) {
      if (gather && eligible->size() >= cfg.min_participants && waited_out) {
        started = true;  // start with the sites that came
        continue;
      }
      if (waited_out) {
        end = RunEnd::kNoParticipants;
        break;
      }
      pump(Clock::now() + kPollSlice);
      continue;
    }
    started = true;
    const AttemptResult r = run_attempt(std::move(*eligible), stop);
    if (r.outcome == AttemptOutcome::kFailed) return r.status.error();
    waiting_since = Clock::now();
    if (r.outcome == AttemptOutcome::kCompleted) {
      ++round;
      attempt = 1;
    } else if (r.outcome == AttemptOutcome::kRetry && !stop.stop_requested() &&
               ++attempt > cfg.max_attempts) {
      end = RunEnd::kRoundFailed;
      break;
    }
  }
  // After no completed round the global adapter is still the initial one: nothing to export.
  if (round > 1) {
    if (auto s = export_peft(cfg.run_dir / "adapter", global); !s) return s.error();
  }
  return finish_run(end);
}

void Coordinator::Impl::log_run_started() {
  events->write("run_started", {{"round", round},
                                {"run_id", run_id},
                                {"rounds", cfg.rounds},
                                {"strategy", strategy->name()},
                                {"endpoint", server->endpoint()},
                                {"min_participants", cfg.min_participants},
                                {"fraction", cfg.fraction}});
  if (cfg.plan.participant_dp) {
    events->write("participant_dp", {{"clip", cfg.plan.participant_clip},
                                     {"sigma", cfg.plan.participant_sigma},
                                     {"delta", cfg.plan.delta},
                                     {"epsilon", participant_epsilon()},
                                     {"releases", participant_accountant.total_steps()}});
  }
}

RunSummary Coordinator::Impl::finish_run(RunEnd end) {
  const uint32_t last = round - 1;
  const std::string reason(run_end_name(end));
  json finished = {
      {"reason", reason},
      {"last_round", last},
      {"epsilon", epsilon_map()},
      {"adapter", last == 0 ? json(nullptr) : json((cfg.run_dir / "adapter").string())}};
  if (cfg.plan.participant_dp) finished["participant_epsilon"] = participant_epsilon();
  events->write("run_finished", finished);
  if (last == 0) {
    log->warn("run finished before any round completed ({}): nothing to export", reason);
  } else {
    log->info("run finished after round {}: {}; adapter exported to {}", last, reason,
              (cfg.run_dir / "adapter").string());
  }
  for (const auto& [id, s] : registry.sites()) {
    if (s.alive && !s.peer.empty()) (void)send(s.peer, pc::Message{pc::Shutdown{reason}, {}});
  }
  return RunSummary{last, reason};
}

std::optional<std::vector<SiteRecord*>> Coordinator::Impl::eligible_participants() {
  mark_exhausted();
  std::vector<SiteRecord*> eligible;
  size_t can_train = 0, exhausted = 0;
  for (auto* p : registry.participants()) {
    if (p->exhausted) {
      // A site that could never fund a round (a tiny stated budget) does not end the run.
      if (!p->unfundable()) ++exhausted;
      continue;
    }
    ++can_train;
    if (p->alive && !p->peer.empty() && !p->misconfigured) eligible.push_back(p);
  }
  if (exhausted > 0 && can_train < cfg.min_participants) {
    log->warn("{} sites can still train, {} needed: ending the run", can_train,
              cfg.min_participants);
    return std::nullopt;
  }
  return eligible;
}

// Before the first round of this process, also wait for a worker when the registry knows some
// but none is back yet (a run resumed from its checkpoint): with an empty worker directory
// every site would decline (no_workers) and the round be retried.
bool Coordinator::Impl::gathering(size_t eligible) const {
  size_t workers_known = 0, workers_alive = 0;
  for (const auto& [id, s] : registry.sites()) {
    if (s.role != pc::Role::kWorker) continue;
    ++workers_known;
    if (s.alive) ++workers_alive;
  }
  return eligible < cfg.start_after || (workers_known > 0 && workers_alive == 0);
}

void Coordinator::Impl::mark_exhausted() {
  for (auto* p : registry.participants()) {
    if (!p->budget || p->exhausted) continue;
    std::string why;
    if (!p->budget->would_exceed(phase, &why)) continue;
    p->exhausted = true;
    if (p->unfundable()) {
      events->write("budget_insufficient", {{"site", p->id},
                                            {"epsilon_max", p->budget->epsilon_max()},
                                            {"delta", p->budget->delta()},
                                            {"detail", why}});
      log->warn("{}: its privacy budget cannot fund one round ({}); never selected", p->id, why);
      continue;
    }
    events->write("budget_exhausted", {{"site", p->id},
                                       {"epsilon", p->budget->spent()},
                                       {"epsilon_max", p->budget->epsilon_max()},
                                       {"delta", p->budget->delta()},
                                       {"detail", why}});
    log->warn("{}: privacy budget exhausted ({}); never selected again", p->id, why);
  }
}

// --- One attempt ---------------------------------------------------------------------------------

AttemptResult Coordinator::Impl::run_attempt(std::vector<SiteRecord*> eligible,
                                             std::stop_token stop) {
  AttemptContext a;
  a.started = Clock::now();
  attempt_open = true;  // until this function returns (fedctl status: aggregating after collect)
  struct Close {
    bool& open;
    ~Close() { open = false; }
  } close{attempt_open};
  a.bytes_up0 = bytes_up;
  a.bytes_down0 = bytes_down;
  const auto selected = select(std::move(eligible), a);
  if (auto st = configure(selected, a); !st) return failed(std::move(st));
  collect(a, stop);
  if (stop.stop_requested()) {
    // Stopped mid-attempt: nothing of it is kept. A restarted coordinator replays this very
    // attempt from the last checkpoint (same run, round, attempt, plan and adapter), which every
    // site recognises as the same release: it re-sends the delta it made, or trains it again,
    // without paying twice; the coordinator charges it when it accepts the replay.
    return {AttemptOutcome::kStopped};
  }
  const uint64_t received = deltas->contributions();
  account(a);
  a.collect_s = seconds_since(a.collect_started);
  if (received < cfg.min_participants) return retry(received, stop);
  aggregate(a);
  const RoundStats stats = round_stats();
  if (auto st = checkpoint(a, stop); !st) return failed(std::move(st));
  report(a, stats);
  return {AttemptOutcome::kCompleted};
}

// select: a uniform random subset of `min_participants` or more (partial Fisher-Yates over the
// ids in sorted order); every selected site gets a kInvited seat.
std::vector<SiteRecord*> Coordinator::Impl::select(std::vector<SiteRecord*> eligible,
                                                   AttemptContext& a) {
  const size_t n = eligible.size();
  size_t k = static_cast<size_t>(std::ceil(cfg.fraction * static_cast<double>(n) - 1e-9));
  k = std::min(n, std::max<size_t>(k, cfg.min_participants));
  for (size_t i = 0; i < k; ++i) std::swap(eligible[i], eligible[i + drbg.uniform(n - i)]);
  eligible.resize(k);
  std::sort(eligible.begin(), eligible.end(),
            [](const SiteRecord* x, const SiteRecord* y) { return x->id < y->id; });
  seats.clear();
  json ids = json::array();
  for (auto* s : eligible) {
    seats[s->id] = Seat{};
    ids.push_back(s->id);
  }
  if (!deltas) deltas.emplace(global.adapter.values.size(), strategy->wants_site_deltas());
  deltas->reset();
  deadline = Clock::now() + cfg.round_timeout;
  a.eligible = n;
  a.selected = k;
  a.deadline_unix_ms = unix_ms() + cfg.round_timeout.count();
  events->write("round_started", {{"round", round},
                                  {"attempt", attempt},
                                  {"eligible", n},
                                  {"selected", ids},
                                  {"deadline_unix_ms", a.deadline_unix_ms}});
  log->info("round {} attempt {}: {} of {} eligible sites selected", round, attempt, k, n);
  return eligible;
}

// configure: a RoundInvitation (plan with the deadline and a per-site seed, worker directory,
// global adapter) to every selected site; one that cannot be reached is dropped.
base::Status Coordinator::Impl::configure(const std::vector<SiteRecord*>& selected,
                                          const AttemptContext& a) {
  const auto workers = registry.worker_directory();
  collecting = true;
  for (auto* s : selected) {
    pc::TrainingPlan plan = cfg.plan;
    plan.deadline_unix_ms = a.deadline_unix_ms;
    plan.seed = drbg.next_u64();
    json selected_event = {
        {"round", round}, {"attempt", attempt}, {"site", s->id}, {"dataset_size", s->dataset_size}};
    if (s->budget) selected_event["epsilon_max"] = s->budget->epsilon_max();
    events->write("participant_selected", selected_event);
    auto blob = pc::float_blob(global.adapter.values);
    if (!blob) return protocol::to_base(blob.error());
    pc::Message m{
        pc::RoundInvitation{round, attempt, plan, workers, global.adapter.table(), run_id}, {}};
    m.blobs.push_back(std::move(blob).value());
    if (auto st = send(s->peer, std::move(m)); !st) {
      drop(s->id, DropReason::kUnreachable, st.error().message);
    } else {
      log->info("round {} attempt {}: {} selected and invited", round, attempt, s->id);
    }
  }
  return base::ok_status();
}

// collect: serve the peers until the deadline or until no seat is pending (each valid delta
// goes into the aggregator as it arrives); the seats still pending are dropped.
void Coordinator::Impl::collect(AttemptContext& a, std::stop_token stop) {
  a.collect_started = Clock::now();
  auto pending = [&] {
    return std::any_of(seats.begin(), seats.end(),
                       [](const auto& kv) { return kv.second.pending(); });
  };
  while (!stop.stop_requested() && Clock::now() < deadline && pending()) pump(deadline);
  for (auto& [id, seat] : seats) {
    if (seat.pending())
      drop(id, stop.stop_requested() ? DropReason::kStopped : DropReason::kDeadline);
  }
  collecting = false;
}

// account: every site that accepted or uploaded may have trained, and charged its own budget
// for this attempt; so does the coordinator, whatever happens to the attempt next.
void Coordinator::Impl::account(const AttemptContext& a) {
  charge_attempt();
  if (cfg.plan.participant_dp && deltas->contributions() > 0) {
    // Every attempt whose (noised) deltas reached the coordinator is a release, even one that is
    // then retried: one step of the Gaussian mechanism. Without amplification by
    // subsampling (q = 1): the coordinator chose the sample and sees each delta.
    const double q = cfg.participant_amplification
                         ? static_cast<double>(a.selected) / static_cast<double>(a.eligible)
                         : 1.0;
    participant_accountant.add({.q = q, .sigma = cfg.plan.participant_sigma, .steps = 1});
  }
}

void Coordinator::Impl::charge_attempt() {
  for (auto& [id, seat] : seats) {
    if (!seat.charged()) continue;
    SiteRecord* s = registry.find(id);
    if (s == nullptr || !s->budget) continue;
    try {
      s->budget->commit(phase);
    } catch (const std::exception& e) {
      // The site trained although the figures say it could not: record the phase anyway.
      log->error("{}: {}", id, e.what());
      auto acc2 = s->budget->accountant();
      acc2.add(phase);
      s->budget.emplace(s->budget->epsilon_max(), s->budget->delta(), std::move(acc2));
    }
  }
}

// Too few deltas: round_failed, and the attempt's charges and the DRBG state reach disk before
// the next selection (attempt + 1).
AttemptResult Coordinator::Impl::retry(uint64_t received, std::stop_token stop) {
  events->write("round_failed", {{"round", round},
                                 {"attempt", attempt},
                                 {"received", received},
                                 {"needed", cfg.min_participants},
                                 {"epsilon", epsilon_map()}});
  log->warn("round {} attempt {}: {} deltas, {} needed; retrying with a new selection", round,
            attempt, received, cfg.min_participants);
  if (auto st = checkpoint_with_retry(round - 1, attempt + 1, stop); !st) {
    return failed(std::move(st));
  }
  return {AttemptOutcome::kRetry};
}

// aggregate: the strategy turns the round's deltas (their exact mean; each delta too for a
// strategy that wants them) into the next global adapter.
void Coordinator::Impl::aggregate(AttemptContext& a) {
  const auto t = Clock::now();
  deltas->aggregate(*strategy, global.adapter.values);
  a.aggregate_s = seconds_since(t);
}

// Example-weighted means over the sites that reported a loss (NaN when none did).
RoundStats Coordinator::Impl::round_stats() const {
  RoundStats r;
  double train = 0, heldout = 0, train_w = 0, heldout_w = 0;
  for (const auto& [id, seat] : seats) {
    if (seat.state != SeatState::kUploaded) continue;
    r.sites.push_back(id);
    const auto w = static_cast<double>(seat.examples);
    if (pc::loss_reported(seat.train_loss)) {
      train += seat.train_loss * w;
      train_w += w;
    }
    if (pc::loss_reported(seat.heldout_loss)) {
      heldout += seat.heldout_loss * w;
      heldout_w += w;
    }
    r.examples += seat.examples;
  }
  r.train_loss = train_w > 0 ? train / train_w : std::nan("");
  r.heldout_loss = heldout_w > 0 ? heldout / heldout_w : std::nan("");
  return r;
}

// checkpoint: the completed round, the next one to start at attempt 1.
base::Status Coordinator::Impl::checkpoint(AttemptContext& a, std::stop_token stop) {
  const auto t = Clock::now();
  if (auto st = checkpoint_with_retry(round, 1, stop); !st) return st;
  a.checkpoint_s = seconds_since(t);
  events->write(
      "checkpoint_written",
      {{"round", round}, {"path", checkpoint_path().string()}, {"seconds", a.checkpoint_s}});
  return base::ok_status();
}

// report: round_finished, the console, and RoundResult to the sites that contributed.
void Coordinator::Impl::report(const AttemptContext& a, const RoundStats& stats) {
  json finished = {{"round", round},
                   {"attempt", attempt},
                   {"sites", stats.sites},
                   {"examples", stats.examples},
                   {"epsilon", epsilon_map()},
                   {"bytes_up", bytes_up - a.bytes_up0},
                   {"bytes_down", bytes_down - a.bytes_down0},
                   {"duration_s", seconds_since(a.started)},
                   {"collect_s", a.collect_s},
                   {"aggregate_s", a.aggregate_s},
                   {"checkpoint_s", a.checkpoint_s}};
  if (pc::loss_reported(stats.train_loss)) finished["train_loss"] = stats.train_loss;
  if (pc::loss_reported(stats.heldout_loss)) finished["heldout_loss"] = stats.heldout_loss;
  if (cfg.plan.participant_dp) finished["participant_epsilon"] = participant_epsilon();
  events->write("round_finished", finished);
  if (pc::loss_reported(stats.heldout_loss)) {
    log->info("round {} finished: {} sites, train loss {:.4f}, held-out loss {:.4f}, {:.2f} s",
              round, stats.sites.size(), stats.train_loss, stats.heldout_loss,
              seconds_since(a.started));
  } else {
    log->info("round {} finished: {} sites, {:.2f} s", round, stats.sites.size(),
              seconds_since(a.started));
  }
  if (cfg.plan.participant_dp) {
    log->info("round {}: participant-level epsilon {:.4f} at delta {} ({} releases)", round,
              participant_epsilon(), cfg.plan.delta, participant_accountant.total_steps());
  }
  const pc::RoundResult result{round, static_cast<uint32_t>(stats.sites.size()), stats.train_loss,
                               stats.heldout_loss};
  for (const auto& [id, seat] : seats) {
    if (seat.state != SeatState::kUploaded) continue;
    if (SiteRecord* s = registry.find(id); s != nullptr && !s->peer.empty()) {
      (void)send(s->peer, pc::Message{result, {}});
    }
  }
}

// --- Checkpoints and figures ---------------------------------------------------------------------

base::Status Coordinator::Impl::write_checkpoint_now(uint32_t completed, uint32_t next_attempt) {
  Checkpoint c{completed,
               drbg.state(),
               global.adapter,
               global.config_json,
               cfg.strategy.name,
               strategy->state(),
               registry.to_json(),
               /*participant_accountant_json=*/{},
               run_id,
               next_attempt};
  // Written once the option has been used (a resumed run keeps what an earlier one spent).
  if (cfg.plan.participant_dp || participant_accountant.total_steps() > 0) {
    c.participant_accountant_json = participant_accountant.to_json();
  }
  return write_checkpoint(checkpoint_path(), c);
}

base::Status Coordinator::Impl::checkpoint_with_retry(uint32_t completed, uint32_t next_attempt,
                                                      std::stop_token stop) {
  uint32_t failures = 0;
  std::chrono::milliseconds backoff{100};
  for (;;) {
    auto st = write_checkpoint_now(completed, next_attempt);
    if (st) {
      if (failures > 0) {
        log->info("checkpoint written after {} failed tries", failures);
        events->write("checkpoint_recovered", {{"round", round}, {"failures", failures}});
      }
      return st;
    }
    ++failures;
    if (failures <= 3 || failures % 50 == 0) {
      log->error("cannot write the checkpoint (try {}), retrying in {} ms: {}", failures,
                 backoff.count(), st.error().message);
      events->write("checkpoint_failed", {{"round", round},
                                          {"failures", failures},
                                          {"error", st.error().message},
                                          {"retry_in_s", backoff.count() / 1000.0}});
    }
    if (stop.stop_requested()) return st;
    const auto until = Clock::now() + backoff;
    while (!stop.stop_requested() && Clock::now() < until) pump(until);
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(10));
  }
}

double Coordinator::Impl::participant_epsilon() const {
  return participant_accountant.spent(cfg.plan.delta).epsilon;
}

json Coordinator::Impl::epsilon_map() {
  json eps = json::object();
  for (auto* p : registry.participants()) {
    if (p->budget) eps[p->id] = p->budget->spent();
  }
  return eps;
}

}  // namespace coordinator
