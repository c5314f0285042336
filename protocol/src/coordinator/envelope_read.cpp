// The coordinator schema's message structs read into plain values (CoordinatorSchema::read_body).
#include "coordinator/envelope.h"
#include "core/fields.h"
#include "protocol/keys.h"

namespace protocol::coord {
namespace {

namespace cw = ::protocol::coordwire;

using core::check_version;
using core::read_enum;
using core::read_error;
using core::read_text;
using core::refuse;

constexpr ErrorCode kMalformed = ErrorCode::kMalformedRequest;

AdapterTable read_adapter(cw::Adapter::Reader r) {
  AdapterTable a;
  auto tensors = r.getTensors();
  if (tensors.size() > kMaxAdapterTensors) {
    refuse(make_error(kMalformed, "adapter lists ", tensors.size(), " tensors"));
  }
  a.tensors.reserve(tensors.size());
  for (auto t : tensors) {
    TensorEntry e;
    e.name = read_text(t.getName(), kMaxIdBytes, "tensor name");
    auto shape = t.getShape();
    if (shape.size() > kMaxTensorRank) {
      refuse(make_error(kMalformed, "tensor has ", shape.size(), " dimensions"));
    }
    for (const uint64_t d : shape) e.shape.push_back(d);
    e.offset = t.getOffset();
    a.tensors.push_back(std::move(e));
  }
  a.blob = r.getBlob();
  return a;
}

Register read(cw::Register::Reader r) {
  check_version(r.getVersion(), "register");
  Register m;
  m.role = read_enum<Role>(r.getRole(), 2, "role");
  m.site_id = read_text(r.getSiteId(), kMaxIdBytes, "site id");
  m.dataset_size = r.getDatasetSize();
  m.epsilon_max = r.getEpsilonMax();
  m.delta = r.getDelta();
  m.compute_endpoint = read_text(r.getComputeEndpoint(), kMaxEndpointBytes, "compute endpoint");
  m.public_key = read_text(r.getPublicKey(), kCurveKeyZ85Chars + 8, "public key");
  return m;
}

RegisterReply read(cw::RegisterReply::Reader r) {
  check_version(r.getVersion(), "registerReply");
  return {r.getAccepted(), read_text(r.getReason(), kMaxErrorBytes, "reason"),
          r.getHeartbeatIntervalMs(), r.getNextRound()};
}

Heartbeat read(cw::Heartbeat::Reader r) {
  check_version(r.getVersion(), "heartbeat");
  return {read_text(r.getSiteId(), kMaxIdBytes, "site id"), r.getTimestampNanos()};
}

RoundInvitation read(cw::RoundInvitation::Reader r) {
  check_version(r.getVersion(), "roundInvitation");
  RoundInvitation m;
  m.round = r.getRound();
  m.attempt = r.getAttempt();
  auto p = r.getPlan();
  m.plan = {p.getLocalSteps(),    p.getLearningRate(),    p.getBatchSize(),
            p.getSampleRate(),    p.getNoiseMultiplier(), p.getClipNorm(),
            p.getDelta(),         p.getDeadlineUnixMs(),  p.getSeed(),
            p.getParticipantDp(), p.getParticipantClip(), p.getParticipantSigma()};
  auto workers = r.getWorkers();
  if (workers.size() > kMaxWorkers) {
    refuse(make_error(kMalformed, "worker directory lists ", workers.size(), " workers"));
  }
  for (auto w : workers) {
    m.workers.push_back(
        WorkerEntry{read_text(w.getEndpoint(), kMaxEndpointBytes, "worker endpoint"),
                    read_text(w.getPublicKey(), kCurveKeyZ85Chars + 8, "worker key")});
  }
  m.adapter = read_adapter(r.getAdapter());
  m.run_id = read_text(r.getRunId(), kRunIdChars, "run id");
  return m;
}

Accept read(cw::Accept::Reader r) {
  check_version(r.getVersion(), "accept");
  return {r.getRound(), r.getAttempt(), read_text(r.getSiteId(), kMaxIdBytes, "site id")};
}

Decline read(cw::Decline::Reader r) {
  check_version(r.getVersion(), "decline");
  return {r.getRound(), r.getAttempt(), read_text(r.getSiteId(), kMaxIdBytes, "site id"),
          read_enum<DeclineReason>(r.getReason(), 5, "decline reason"),
          read_text(r.getDetail(), kMaxErrorBytes, "decline detail")};
}

DeltaUpload read(cw::DeltaUpload::Reader r) {
  check_version(r.getVersion(), "deltaUpload");
  DeltaUpload m;
  m.round = r.getRound();
  m.attempt = r.getAttempt();
  m.site_id = read_text(r.getSiteId(), kMaxIdBytes, "site id");
  m.delta = read_adapter(r.getDelta());
  m.example_count = r.getExampleCount();
  m.train_loss = r.getTrainLoss();
  m.heldout_loss = r.getHeldoutLoss();
  m.steps = r.getSteps();
  m.epsilon_spent = r.getEpsilonSpent();
  return m;
}

UploadAck read(cw::UploadAck::Reader r) {
  check_version(r.getVersion(), "uploadAck");
  return {r.getRound(), r.getAttempt(), read_enum<UploadStatus>(r.getStatus(), 4, "upload status")};
}

RoundResult read(cw::RoundResult::Reader r) {
  check_version(r.getVersion(), "roundResult");
  return {r.getRound(), r.getSites(), r.getTrainLoss(), r.getHeldoutLoss()};
}

Shutdown read(cw::Shutdown::Reader r) {
  check_version(r.getVersion(), "shutdown");
  return {read_text(r.getReason(), kMaxErrorBytes, "shutdown reason")};
}

ErrorReply read(cw::CoordError::Reader r) {
  check_version(r.getVersion(), "errorReply");
  return {read_error(r.getError())};
}

StatusRequest read(cw::StatusRequest::Reader r) {
  check_version(r.getVersion(), "statusRequest");
  return {};
}

StatusReply read(cw::StatusReply::Reader r) {
  check_version(r.getVersion(), "statusReply");
  StatusReply m;
  m.run_id = read_text(r.getRunId(), kRunIdChars, "run id");
  m.model = read_text(r.getModel(), kMaxIdBytes, "model");
  m.round = r.getRound();
  m.rounds = r.getRounds();
  m.attempt = r.getAttempt();
  m.phase = read_enum<RoundPhase>(r.getPhase(), 3, "round phase");
  m.deadline_in_ms = r.getDeadlineInMs();
  m.strategy = read_text(r.getStrategy(), kMaxStatusNameBytes, "strategy");
  m.min_participants = r.getMinParticipants();
  auto sites = r.getSites();
  if (sites.size() > kMaxStatusSites) {
    refuse(make_error(kMalformed, "status lists ", sites.size(), " sites"));
  }
  m.sites.reserve(sites.size());
  for (auto s : sites) {
    SiteStatus e;
    e.site_id = read_text(s.getSiteId(), kMaxSiteIdBytes, "status site id");
    e.role = read_enum<Role>(s.getRole(), 2, "role");
    e.alive = s.getAlive();
    e.heartbeat_age_ms = s.getHeartbeatAgeMs();
    e.dataset_size = s.getDatasetSize();
    e.epsilon_spent = s.getEpsilonSpent();
    e.epsilon_budget = s.getEpsilonBudget();
    e.exhausted = s.getExhausted();
    e.misconfigured = s.getMisconfigured();
    e.seat = read_enum<SeatStatus>(s.getSeat(), 5, "seat state");
    e.drop_reason = read_text(s.getDropReason(), kMaxStatusNameBytes, "drop reason");
    e.compute_endpoint = read_text(s.getComputeEndpoint(), kMaxEndpointBytes, "compute endpoint");
    m.sites.push_back(std::move(e));
  }
  m.sites_omitted = r.getSitesOmitted();
  auto failures = r.getFailures();
  if (failures.size() > kMaxStatusFailures) {
    refuse(make_error(kMalformed, "status lists ", failures.size(), " failures"));
  }
  for (auto f : failures) {
    m.failures.push_back(
        RecentFailure{read_text(f.getEvent(), kMaxStatusNameBytes, "failure event"), f.getAgeMs(),
                      f.getRound(), read_text(f.getSiteId(), kMaxSiteIdBytes, "failure site id"),
                      read_text(f.getDetail(), kMaxErrorBytes, "failure detail")});
  }
  return m;
}

}  // namespace

CoordinatorSchema::Body CoordinatorSchema::read_body(Envelope::Body::Reader body) {
  switch (body.which()) {
    case Envelope::Body::REGISTER:
      return read(body.getRegister());
    case Envelope::Body::REGISTER_REPLY:
      return read(body.getRegisterReply());
    case Envelope::Body::HEARTBEAT:
      return read(body.getHeartbeat());
    case Envelope::Body::ROUND_INVITATION:
      return read(body.getRoundInvitation());
    case Envelope::Body::ACCEPT:
      return read(body.getAccept());
    case Envelope::Body::DECLINE:
      return read(body.getDecline());
    case Envelope::Body::DELTA_UPLOAD:
      return read(body.getDeltaUpload());
    case Envelope::Body::UPLOAD_ACK:
      return read(body.getUploadAck());
    case Envelope::Body::ROUND_RESULT:
      return read(body.getRoundResult());
    case Envelope::Body::SHUTDOWN:
      return read(body.getShutdown());
    case Envelope::Body::ERROR:
      return read(body.getError());
    case Envelope::Body::STATUS_REQUEST:
      return read(body.getStatusRequest());
    case Envelope::Body::STATUS_REPLY:
      return read(body.getStatusReply());
    default:
      refuse(make_error(kMalformed, "unknown message type ", static_cast<unsigned>(body.which())));
  }
}

}  // namespace protocol::coord
