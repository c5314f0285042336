// The participant agent's coordinator session (agent_impl.h): registration, heartbeats,
// invitations, and the background round from preparation to upload.
#include <cmath>
#include <future>
#include <stdexcept>
#include <thread>
#include <variant>

#include "agent_impl.h"
#include "participant/adapter_tensors.h"
#include "participant/worker_products.h"

namespace participant {

std::optional<coord::CoordinatorClient> Agent::Impl::connect(zmq::context_t& ctx) {
  protocol::ClientConfig cc;
  cc.endpoint = config.coordinator;
  cc.insecure = config.insecure;
  cc.key = config.key;
  cc.server_key = config.coordinator_key;
  cc.watch = protocol::HandshakeWords{"the coordinator", "this site",
                                      "is --coordinator-key the coordinator's public key?"};
  auto client = coord::CoordinatorClient::connect(ctx, cc);
  if (!client.ok()) throw std::runtime_error("coordinator: " + client.error().message);
  return std::move(client.value());
}

coord::Register Agent::Impl::registration() const {
  coord::Register r;
  r.role = coord::Role::kParticipant;
  r.site_id = config.site_id;
  r.dataset_size = coarsen_count(static_cast<uint64_t>(train->size()));
  r.epsilon_max = config.epsilon_max;
  r.delta = config.delta;
  return r;
}

int Agent::Impl::run(std::stop_token stop) {
  zmq::context_t ctx(1);
  Session s{.context = ctx, .client = connect(ctx)};
  while (!stop.stop_requested()) {
    if (exit_status) return *exit_status;
    if (!s.registered) {
      if (AgentClock::now() < s.next_try) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      if (const std::optional<int> refused = register_site(s)) return *refused;
      if (!s.registered) continue;
    }
    advance_training(*s.client);
    auto m = s.client->receive(std::min<std::chrono::milliseconds>(config.heartbeat_interval,
                                                                   std::chrono::milliseconds(100)));
    heartbeat_if_due(s);
    if (!m.ok()) {
      coordinator_silent(s, m.error());
      continue;
    }
    s.last_heard = AgentClock::now();
    if (const std::optional<int> done = dispatch(s, m.value())) return *done;
  }
  return 0;
}

// Registers with the coordinator; returns 1 when it refuses this site, otherwise nothing (and
// s.registered says whether to register again).
std::optional<int> Agent::Impl::register_site(Session& s) {
  auto reply = s.client->register_site(registration(), config.heartbeat_interval * 2);
  if (!reply.ok() && reply.error().code == protocol::ErrorCode::kHandshake) {
    return handshake_failed(s, reply.error());
  }
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
      s.client.reset();
      s.client = connect(s.context);
    }
    return std::nullopt;
  }
  if (!reply.value().accepted) {
    log->error("the coordinator refused this site: {}", reply.value().reason);
    return 1;
  }
  s.registered = true;
  s.handshake_failures = 0;
  s.last_heard = AgentClock::now();
  {
    std::lock_guard lock(stats_mutex);
    ++stats.registrations;
  }
  log->info("registered with {} (next round {})", config.coordinator, reply.value().next_round);
  return std::nullopt;
}

std::optional<int> Agent::Impl::handshake_failed(Session& s, const protocol::Error& error) {
  ++s.handshake_failures;
  const int n = s.handshake_failures, of = config.connect_attempts;
  if (of > 0 && n >= of) {
    log->error("{}; giving up after {} attempt{} (--connect-attempts)", error.message, n,
               n == 1 ? "" : "s");
    return 1;
  }
  const auto every = config.heartbeat_interval.count();
  if (of > 0) {
    log->error("{} (attempt {} of {}; trying again in {} ms)", error.message, n, of, every);
  } else {
    log->warn("{} (attempt {}; trying again every {} ms, --connect-attempts 0)", error.message, n,
              every);
  }
  // A fresh socket for the next try: libzmq does not reconnect after a ZAP refusal.
  s.registered = false;
  s.client.reset();
  s.client = connect(s.context);
  s.next_try = AgentClock::now() + config.heartbeat_interval;
  return std::nullopt;
}

void Agent::Impl::workers_refused(const std::string& why) {
  ++worker_refusals;
  const int n = worker_refusals, of = config.connect_attempts;
  if (of > 0 && n >= of) {
    log->error("{}; giving up after {} round{} (--connect-attempts)", why, n, n == 1 ? "" : "s");
    exit_status = 1;
  } else if (of > 0) {
    log->error("{} (round {} of {} before giving up)", why, n, of);
  } else {
    log->warn("{} (--connect-attempts 0: waiting for the next round)", why);
  }
}

void Agent::Impl::heartbeat_if_due(Session& s) {
  if (AgentClock::now() - s.last_beat >= config.heartbeat_interval) {
    (void)s.client->heartbeat(config.site_id);
    s.last_beat = AgentClock::now();
  }
}

// No message arrived: registers again on a fresh connection once the coordinator has been
// silent for reconnect_after.
void Agent::Impl::coordinator_silent(Session& s, const protocol::Error& error) {
  if (error.code == protocol::ErrorCode::kHandshake) {
    log->error("{}", error.message);
    s.registered = false;  // registering again counts the failed handshakes
    return;
  }
  if (error.code != protocol::ErrorCode::kTimeout) {
    log->warn("coordinator message refused: {}", error.message);
  }
  if (AgentClock::now() - s.last_heard > config.reconnect_after) {
    log->warn("the coordinator has been silent for {} ms; registering again",
              config.reconnect_after.count());
    s.registered = false;
    s.client.reset();
    s.client = connect(s.context);
  }
}

// Answers one coordinator message; returns the exit status when the run ends.
std::optional<int> Agent::Impl::dispatch(Session& s, coord::Message& msg) {
  if (auto* inv = std::get_if<coord::RoundInvitation>(&msg.body)) {
    invited(*s.client, *inv, msg);
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
    return shut_down(s, *bye);
  } else if (auto* err = std::get_if<coord::ErrorReply>(&msg.body)) {
    log->warn("coordinator error: {}; registering again", err->error.message);
    s.registered = false;
  }
  return std::nullopt;
}

std::optional<int> Agent::Impl::shut_down(Session& s, const coord::Shutdown& bye) {
  if (bye.reason == "stopped") {
    // The coordinator's operator interrupted the run; a restarted coordinator resumes it
    // and replays the interrupted round, for which this site keeps its delta.
    log->info("the coordinator was stopped; waiting for it to come back");
    s.registered = false;
    return std::nullopt;
  }
  log->info("coordinator shut the run down: {}", bye.reason);
  const bool trained = training && training->started;
  if (training) {
    training->prepared.wait();
    if (trained) training->result.wait();
  }
  training.reset();
  if (trained) round_ended();
  return 0;
}

// An invitation: declined while another round is still training, unless it replays that one.
void Agent::Impl::invited(coord::CoordinatorClient& client, const coord::RoundInvitation& inv,
                          const coord::Message& msg) {
  if (!training) return handle_invitation(client, inv, msg);
  auto values = coord::adapter_values(inv.adapter, msg);
  if (values.ok() && derive_release(seed, inv, values.value(), site).id == training->release.id) {
    // A restarted coordinator replaying the round being trained: the delta follows (and
    // the answer, while it is still being prepared).
    log->info("round {} (attempt {}): invited again while training it", inv.round, inv.attempt);
    if (training->started) (void)client.accept(inv, config.site_id);
    return;
  }
  log->warn("round {}: invited while still training round {}; declining", inv.round,
            training->invitation.round);
  (void)client.decline(inv, config.site_id, coord::DeclineReason::kBusy,
                       "still training an earlier round");
}

void Agent::Impl::handle_invitation(coord::CoordinatorClient& client,
                                    const coord::RoundInvitation& inv, const coord::Message& msg) {
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

privacy::Phase Agent::Impl::phase_of(const coord::TrainingPlan& plan) {
  return {.q = plan.sample_rate,
          .sigma = plan.noise_multiplier,
          .steps = static_cast<int64_t>(plan.local_steps)};
}

void Agent::Impl::advance_training(coord::CoordinatorClient& client) {
  if (!training) return;
  if (!training->started) {
    if (training->prepared.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return;
    const coord::RoundInvitation& inv = training->invitation;
    try {
      training->prepared.get();
    } catch (const WorkersRefusedError& e) {
      decline_misconfigured(client, inv, e.what());
      training.reset();
      workers_refused(e.what());
      return;
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
    worker_refusals = 0;
    start_training(client);
    return;
  }
  finish_training(client);
}

void Agent::Impl::start_training(coord::CoordinatorClient& client) {
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
            inv.attempt, plan.local_steps, plan.sample_rate, plan.noise_multiplier, plan.clip_norm);
  t->started = true;
  t->result = std::async(std::launch::async, [this, t] {
    return train_round(t->invitation, t->release, t->global_values, t->delta_values);
  });
}

void Agent::Impl::decline_misconfigured(coord::CoordinatorClient& client,
                                        const coord::RoundInvitation& inv, const std::string& why) {
  log->error("round {}: this site cannot train with this federation: {}", inv.round, why);
  (void)client.decline(inv, config.site_id, coord::DeclineReason::kMisconfigured, why);
}

void Agent::Impl::finish_training(coord::CoordinatorClient& client) {
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
      round_ended();
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
  round_ended();
}

void Agent::Impl::round_ended() {
  progress.phase = "idle";
  progress.eta_s = 0;
  publish_progress();
}
}  // namespace participant
