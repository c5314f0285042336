// The coordinator schema's message structs written from plain values
// (CoordinatorSchema::write_body).
#include "coordinator/envelope.h"
#include "core/fields.h"

namespace protocol::coord {
namespace {

namespace cw = ::protocol::coordwire;

using core::text;
using core::with_version;
using core::write_error;

// The fields every answer to an invitation starts with (accept, decline, delta upload).
template <typename Builder, typename M>
Builder with_attempt(Builder w, const M& m) {
  w.setRound(m.round);
  w.setAttempt(m.attempt);
  w.setSiteId(text(m.site_id));
  return w;
}

void write_adapter(cw::Adapter::Builder b, const AdapterTable& a) {
  auto tensors = b.initTensors(a.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const auto& t = a.tensors[i];
    auto tb = tensors[i];
    tb.setName(text(t.name));
    auto shape = tb.initShape(t.shape.size());
    for (size_t d = 0; d < t.shape.size(); ++d) shape.set(d, t.shape[d]);
    tb.setOffset(t.offset);
  }
  b.setBlob(a.blob);
}

void write(cw::CoordEnvelope::Body::Builder b, const Register& m) {
  auto w = with_version(b.initRegister());
  w.setRole(static_cast<cw::Role>(m.role));
  w.setSiteId(text(m.site_id));
  w.setDatasetSize(m.dataset_size);
  w.setEpsilonMax(m.epsilon_max);
  w.setDelta(m.delta);
  w.setComputeEndpoint(text(m.compute_endpoint));
  w.setPublicKey(text(m.public_key));
}

void write(cw::CoordEnvelope::Body::Builder b, const RegisterReply& m) {
  auto w = with_version(b.initRegisterReply());
  w.setAccepted(m.accepted);
  w.setReason(text(m.reason));
  w.setHeartbeatIntervalMs(m.heartbeat_interval_ms);
  w.setNextRound(m.next_round);
}

void write(cw::CoordEnvelope::Body::Builder b, const Heartbeat& m) {
  auto w = with_version(b.initHeartbeat());
  w.setSiteId(text(m.site_id));
  w.setTimestampNanos(m.timestamp_nanos);
}

void write(cw::CoordEnvelope::Body::Builder b, const RoundInvitation& m) {
  auto w = with_version(b.initRoundInvitation());
  w.setRound(m.round);
  w.setAttempt(m.attempt);
  auto p = w.initPlan();
  p.setLocalSteps(m.plan.local_steps);
  p.setLearningRate(m.plan.learning_rate);
  p.setBatchSize(m.plan.batch_size);
  p.setSampleRate(m.plan.sample_rate);
  p.setNoiseMultiplier(m.plan.noise_multiplier);
  p.setClipNorm(m.plan.clip_norm);
  p.setDelta(m.plan.delta);
  p.setDeadlineUnixMs(m.plan.deadline_unix_ms);
  p.setSeed(m.plan.seed);
  p.setParticipantDp(m.plan.participant_dp);
  p.setParticipantClip(m.plan.participant_clip);
  p.setParticipantSigma(m.plan.participant_sigma);
  auto workers = w.initWorkers(m.workers.size());
  for (size_t i = 0; i < m.workers.size(); ++i) {
    workers[i].setEndpoint(text(m.workers[i].endpoint));
    workers[i].setPublicKey(text(m.workers[i].public_key));
  }
  write_adapter(w.initAdapter(), m.adapter);
  w.setRunId(text(m.run_id));
}

void write(cw::CoordEnvelope::Body::Builder b, const Accept& m) {
  with_attempt(with_version(b.initAccept()), m);
}

void write(cw::CoordEnvelope::Body::Builder b, const Decline& m) {
  auto w = with_attempt(with_version(b.initDecline()), m);
  w.setReason(static_cast<cw::DeclineReason>(m.reason));
  w.setDetail(text(m.detail));
}

void write(cw::CoordEnvelope::Body::Builder b, const DeltaUpload& m) {
  auto w = with_attempt(with_version(b.initDeltaUpload()), m);
  write_adapter(w.initDelta(), m.delta);
  w.setExampleCount(m.example_count);
  w.setTrainLoss(m.train_loss);
  w.setHeldoutLoss(m.heldout_loss);
  w.setSteps(m.steps);
  w.setEpsilonSpent(m.epsilon_spent);
}

void write(cw::CoordEnvelope::Body::Builder b, const UploadAck& m) {
  auto w = with_version(b.initUploadAck());
  w.setRound(m.round);
  w.setAttempt(m.attempt);
  w.setStatus(static_cast<cw::UploadStatus>(m.status));
}

void write(cw::CoordEnvelope::Body::Builder b, const RoundResult& m) {
  auto w = with_version(b.initRoundResult());
  w.setRound(m.round);
  w.setSites(m.sites);
  w.setTrainLoss(m.train_loss);
  w.setHeldoutLoss(m.heldout_loss);
}

void write(cw::CoordEnvelope::Body::Builder b, const Shutdown& m) {
  auto w = with_version(b.initShutdown());
  w.setReason(text(m.reason));
}

void write(cw::CoordEnvelope::Body::Builder b, const ErrorReply& m) {
  auto w = with_version(b.initError());
  write_error(w.initError(), m.error);
}

void write(cw::CoordEnvelope::Body::Builder b, const StatusRequest&) {
  with_version(b.initStatusRequest());
}

void write(cw::CoordEnvelope::Body::Builder b, const StatusReply& m) {
  auto w = with_version(b.initStatusReply());
  w.setRunId(text(m.run_id));
  w.setModel(text(m.model));
  w.setRound(m.round);
  w.setRounds(m.rounds);
  w.setAttempt(m.attempt);
  w.setPhase(static_cast<cw::RoundPhase>(m.phase));
  w.setDeadlineInMs(m.deadline_in_ms);
  w.setStrategy(text(m.strategy));
  w.setMinParticipants(m.min_participants);
  auto sites = w.initSites(m.sites.size());
  for (size_t i = 0; i < m.sites.size(); ++i) {
    const SiteStatus& s = m.sites[i];
    auto sb = sites[i];
    sb.setSiteId(text(s.site_id));
    sb.setRole(static_cast<cw::Role>(s.role));
    sb.setAlive(s.alive);
    sb.setHeartbeatAgeMs(s.heartbeat_age_ms);
    sb.setDatasetSize(s.dataset_size);
    sb.setEpsilonSpent(s.epsilon_spent);
    sb.setEpsilonBudget(s.epsilon_budget);
    sb.setExhausted(s.exhausted);
    sb.setMisconfigured(s.misconfigured);
    sb.setSeat(static_cast<cw::SeatState>(s.seat));
    sb.setDropReason(text(s.drop_reason));
    sb.setComputeEndpoint(text(s.compute_endpoint));
  }
  w.setSitesOmitted(m.sites_omitted);
  auto failures = w.initFailures(m.failures.size());
  for (size_t i = 0; i < m.failures.size(); ++i) {
    const RecentFailure& f = m.failures[i];
    auto fb = failures[i];
    fb.setEvent(text(f.event));
    fb.setAgeMs(f.age_ms);
    fb.setRound(f.round);
    fb.setSiteId(text(f.site_id));
    fb.setDetail(text(f.detail));
  }
}

}  // namespace

void CoordinatorSchema::write_body(Envelope::Body::Builder b, const Body& body) {
  std::visit([&b](const auto& m) { write(b, m); }, body);
}

}  // namespace protocol::coord
