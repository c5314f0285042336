// coord::validate(): the field-level rules of coordinator messages, shared by encoder and decoder.
#include "protocol/coordinator_messages.h"

#include <cmath>
#include <cstring>
#include <iterator>
#include <set>
#include <variant>

#include "core/checks.h"
#include "protocol/keys.h"

namespace protocol::coord {

std::string_view role_name(Role role) {
  switch (role) {
    case Role::kParticipant:
      return "participant";
    case Role::kWorker:
      return "worker";
  }
  return "unknown";
}

std::string_view decline_reason_name(DeclineReason reason) {
  switch (reason) {
    case DeclineReason::kBudget:
      return "budget";
    case DeclineReason::kBusy:
      return "busy";
    case DeclineReason::kNoWorkers:
      return "no_workers";
    case DeclineReason::kOther:
      return "other";
    case DeclineReason::kMisconfigured:
      return "misconfigured";
  }
  return "unknown";
}

bool is_site_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxSiteIdBytes) return false;
  for (const char c : id) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool is_run_id(std::string_view id) {
  if (id.size() != kRunIdChars) return false;
  for (const char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string_view upload_status_name(UploadStatus status) {
  switch (status) {
    case UploadStatus::kAccepted:
      return "accepted";
    case UploadStatus::kLate:
      return "late";
    case UploadStatus::kNotSelected:
      return "not_selected";
    case UploadStatus::kDuplicate:
      return "duplicate";
  }
  return "unknown";
}

std::string_view round_phase_name(RoundPhase phase) {
  switch (phase) {
    case RoundPhase::kWaiting:
      return "waiting";
    case RoundPhase::kCollecting:
      return "collecting";
    case RoundPhase::kAggregating:
      return "aggregating";
  }
  return "unknown";
}

std::string_view seat_status_name(SeatStatus seat) {
  switch (seat) {
    case SeatStatus::kNone:
      return "none";
    case SeatStatus::kInvited:
      return "invited";
    case SeatStatus::kTraining:
      return "training";
    case SeatStatus::kUploaded:
      return "uploaded";
    case SeatStatus::kDropped:
      return "dropped";
  }
  return "unknown";
}

std::string_view body_name(const Body& body) {
  constexpr std::string_view kNames[] = {
      "register",   "registerReply", "heartbeat",  "roundInvitation", "accept",
      "decline",    "deltaUpload",   "uploadAck",  "roundResult",     "shutdown",
      "errorReply", "statusRequest", "statusReply"};
  static_assert(std::size(kNames) == std::variant_size_v<Body>);
  return kNames[body.index()];
}

uint64_t TensorEntry::count() const {
  uint64_t n = 1;
  for (const uint64_t d : shape) {
    if (!checked_mul(n, d, &n)) return 0;
  }
  return n;
}

uint64_t AdapterTable::total() const {
  uint64_t n = 0;
  for (const auto& t : tensors) {
    if (!checked_add(n, t.count(), &n)) return 0;
  }
  return n;
}

namespace {

constexpr ErrorCode kMalformed = ErrorCode::kMalformedRequest;
constexpr ErrorCode kShape = ErrorCode::kShapeMismatch;

using core::BlobUse;
using core::check_id;
using core::check_text;

Status check_site_id(const std::string& id, std::string_view what) {
  if (!is_site_id(id)) {
    return make_error(kMalformed, what, " must be 1..", kMaxSiteIdBytes,
                      " characters of [A-Za-z0-9._-] (", id.size(), " bytes given)");
  }
  return ok_status();
}

// An endpoint: printable ASCII without blanks (it reaches logs, events and checkpoints).
Status check_endpoint(const std::string& s, bool allow_empty, std::string_view what) {
  PROTOCOL_TRY(check_text(s, kMaxEndpointBytes, allow_empty, what));
  for (const char c : s) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return make_error(kMalformed, what, " must be printable ASCII without blanks");
    }
  }
  return ok_status();
}

// NaN: not reported; anything else must be finite.
Status check_loss(double v, std::string_view what) {
  if (loss_reported(v) && !std::isfinite(v)) return make_error(kMalformed, what, " is infinite");
  return ok_status();
}

Status check_finite(double v, std::string_view what) {
  if (!std::isfinite(v)) return make_error(kMalformed, what, " is not finite");
  return ok_status();
}

Status check_key_text(const std::string& key, std::string_view what) {
  if (key.empty()) return ok_status();
  if (auto k = parse_public_key(key, what); !k) return make_error(kMalformed, k.error().message);
  return ok_status();
}

Status check(const AdapterTable& a, BlobUse& use, std::string_view what) {
  if (a.tensors.empty() || a.tensors.size() > kMaxAdapterTensors) {
    return make_error(kMalformed, what, " lists ", a.tensors.size(), " tensors (1..",
                      kMaxAdapterTensors, " allowed)");
  }
  std::set<std::string_view> names;
  uint64_t next = 0;
  for (const auto& t : a.tensors) {
    PROTOCOL_TRY(check_id(t.name, "tensor name"));
    if (!names.insert(t.name).second) {
      return make_error(kMalformed, what, " lists tensor '", t.name, "' twice");
    }
    if (t.shape.size() > kMaxTensorRank) {
      return make_error(kShape, "tensor '", t.name, "' has ", t.shape.size(), " dimensions");
    }
    for (const uint64_t d : t.shape) {
      if (d == 0) return make_error(kShape, "tensor '", t.name, "' has a dimension of size 0");
    }
    const uint64_t count = t.count();
    if (count == 0) return make_error(kShape, "tensor '", t.name, "' shape overflows");
    if (t.offset != next) {
      return make_error(kShape, "tensor '", t.name, "' starts at element ", t.offset, ", expected ",
                        next, " (tensors must tile the blob in order)");
    }
    if (!checked_add(next, count, &next)) {
      return make_error(kShape, what, " element count overflows");
    }
  }
  auto blob = use.take(a.blob, what);
  if (!blob) return blob.error();
  const BlobDesc& d = *blob.value();
  if (d.dtype != DType::kFloat32 || d.shape.size() != 1 || d.shape[0] != next) {
    return make_error(kShape, what, " blob must be float32 [", next, "] for its tensor table");
  }
  return ok_status();
}

Status check(const Register& m, BlobUse&) {
  if (m.role != Role::kParticipant && m.role != Role::kWorker) {
    return make_error(kMalformed, "unknown role ", static_cast<unsigned>(m.role));
  }
  PROTOCOL_TRY(check_site_id(m.site_id, "site id"));
  PROTOCOL_TRY(check_endpoint(m.compute_endpoint, true, "compute endpoint"));
  PROTOCOL_TRY(check_key_text(m.public_key, "worker public key"));
  PROTOCOL_TRY(check_finite(m.epsilon_max, "epsilon_max"));
  PROTOCOL_TRY(check_finite(m.delta, "delta"));
  if (m.role == Role::kParticipant) {
    if (!(m.epsilon_max > 0)) return make_error(kMalformed, "epsilon_max must be > 0");
    if (!(m.delta > 0 && m.delta < 1)) return make_error(kMalformed, "delta must be in (0, 1)");
    if (m.dataset_size == 0) return make_error(kMalformed, "dataset size is 0");
  } else if (m.compute_endpoint.empty()) {
    return make_error(kMalformed, "a worker must give its compute endpoint");
  }
  return ok_status();
}

Status check(const RegisterReply& m, BlobUse&) {
  return check_text(m.reason, kMaxErrorBytes, true, "reason");
}

Status check(const Heartbeat& m, BlobUse&) {
  return check_site_id(m.site_id, "site id");
}

Status check(const TrainingPlan& p) {
  if (p.local_steps == 0) return make_error(kMalformed, "plan has 0 local steps");
  for (const auto& [v, what] :
       {std::pair{p.learning_rate, "learning rate"}, std::pair{p.sample_rate, "sample rate"},
        std::pair{p.noise_multiplier, "noise multiplier"}, std::pair{p.clip_norm, "clip norm"},
        std::pair{p.delta, "delta"}}) {
    PROTOCOL_TRY(check_finite(v, what));
  }
  if (!(p.learning_rate > 0)) return make_error(kMalformed, "learning rate must be > 0");
  if (!(p.sample_rate > 0 && p.sample_rate <= 1)) {
    return make_error(kMalformed, "sample rate must be in (0, 1]");
  }
  if (!(p.noise_multiplier > 0)) return make_error(kMalformed, "noise multiplier must be > 0");
  if (!(p.clip_norm > 0)) return make_error(kMalformed, "clip norm must be > 0");
  if (!(p.delta > 0 && p.delta < 1)) return make_error(kMalformed, "delta must be in (0, 1)");
  PROTOCOL_TRY(check_finite(p.participant_clip, "participant clip norm"));
  PROTOCOL_TRY(check_finite(p.participant_sigma, "participant noise multiplier"));
  if (p.participant_dp && !(p.participant_clip > 0)) {
    return make_error(kMalformed, "participant clip norm must be > 0 with participant-level DP");
  }
  if (p.participant_dp && !(p.participant_sigma > 0)) {
    return make_error(kMalformed,
                      "participant noise multiplier must be > 0 with participant-level DP");
  }
  return ok_status();
}

Status check(const RoundInvitation& m, BlobUse& use) {
  if (m.attempt == 0) return make_error(kMalformed, "attempt is 0");
  if (!is_run_id(m.run_id)) {
    return make_error(kMalformed, "run id must be ", kRunIdChars, " lowercase hex characters");
  }
  PROTOCOL_TRY(check(m.plan));
  if (m.workers.size() > kMaxWorkers) {
    return make_error(kMalformed, "worker directory lists ", m.workers.size(), " workers");
  }
  for (const auto& w : m.workers) {
    PROTOCOL_TRY(check_endpoint(w.endpoint, false, "worker endpoint"));
    PROTOCOL_TRY(check_key_text(w.public_key, "worker public key"));
  }
  return check(m.adapter, use, "global adapter");
}

Status check(const Accept& m, BlobUse&) {
  if (m.attempt == 0) return make_error(kMalformed, "attempt is 0");
  return check_site_id(m.site_id, "site id");
}

Status check(const Decline& m, BlobUse&) {
  if (m.attempt == 0) return make_error(kMalformed, "attempt is 0");
  if (static_cast<uint8_t>(m.reason) < 1 || static_cast<uint8_t>(m.reason) > 5) {
    return make_error(kMalformed, "unknown decline reason ", static_cast<unsigned>(m.reason));
  }
  PROTOCOL_TRY(check_site_id(m.site_id, "site id"));
  return check_text(m.detail, kMaxErrorBytes, true, "decline detail");
}

Status check(const DeltaUpload& m, BlobUse& use) {
  if (m.attempt == 0) return make_error(kMalformed, "attempt is 0");
  PROTOCOL_TRY(check_site_id(m.site_id, "site id"));
  if (m.example_count == 0) return make_error(kMalformed, "example count is 0");
  PROTOCOL_TRY(check_loss(m.train_loss, "train loss"));
  PROTOCOL_TRY(check_loss(m.heldout_loss, "held-out loss"));
  PROTOCOL_TRY(check_finite(m.epsilon_spent, "epsilon spent"));
  if (m.epsilon_spent < 0) return make_error(kMalformed, "epsilon spent is negative");
  return check(m.delta, use, "delta");
}

Status check(const UploadAck& m, BlobUse&) {
  if (static_cast<uint8_t>(m.status) < 1 || static_cast<uint8_t>(m.status) > 4) {
    return make_error(kMalformed, "unknown upload status ", static_cast<unsigned>(m.status));
  }
  return ok_status();
}

Status check(const RoundResult& m, BlobUse&) {
  PROTOCOL_TRY(check_loss(m.train_loss, "train loss"));
  return check_loss(m.heldout_loss, "held-out loss");
}

Status check(const Shutdown& m, BlobUse&) {
  return check_text(m.reason, kMaxErrorBytes, true, "shutdown reason");
}

Status check(const ErrorReply& m, BlobUse&) {
  return core::check_wire_error(m.error);
}

Status check(const StatusRequest&, BlobUse&) {
  return ok_status();
}

Status check_non_negative(double v, std::string_view what) {
  PROTOCOL_TRY(check_finite(v, what));
  if (v < 0) return make_error(kMalformed, what, " is negative");
  return ok_status();
}

Status check(const SiteStatus& s) {
  PROTOCOL_TRY(check_site_id(s.site_id, "status site id"));
  if (s.role != Role::kParticipant && s.role != Role::kWorker) {
    return make_error(kMalformed, "site '", s.site_id, "' has unknown role ",
                      static_cast<unsigned>(s.role));
  }
  if (s.heartbeat_age_ms < -1) {
    return make_error(kMalformed, "site '", s.site_id, "' heartbeat age is below -1");
  }
  PROTOCOL_TRY(check_non_negative(s.epsilon_spent, "epsilon spent"));
  PROTOCOL_TRY(check_non_negative(s.epsilon_budget, "epsilon budget"));
  if (static_cast<uint8_t>(s.seat) < 1 || static_cast<uint8_t>(s.seat) > 5) {
    return make_error(kMalformed, "site '", s.site_id, "' has unknown seat state ",
                      static_cast<unsigned>(s.seat));
  }
  PROTOCOL_TRY(check_text(s.drop_reason, kMaxStatusNameBytes, true, "drop reason"));
  return check_endpoint(s.compute_endpoint, true, "status compute endpoint");
}

Status check(const RecentFailure& f) {
  PROTOCOL_TRY(check_text(f.event, kMaxStatusNameBytes, false, "failure event"));
  if (f.age_ms < 0) return make_error(kMalformed, "failure age is negative");
  if (!f.site_id.empty()) PROTOCOL_TRY(check_site_id(f.site_id, "failure site id"));
  return check_text(f.detail, kMaxErrorBytes, true, "failure detail");
}

Status check(const StatusReply& m, BlobUse&) {
  if (!is_run_id(m.run_id)) {
    return make_error(kMalformed, "run id must be ", kRunIdChars, " lowercase hex characters");
  }
  PROTOCOL_TRY(check_text(m.model, kMaxIdBytes, true, "model"));
  if (m.attempt == 0) return make_error(kMalformed, "attempt is 0");
  if (static_cast<uint8_t>(m.phase) < 1 || static_cast<uint8_t>(m.phase) > 3) {
    return make_error(kMalformed, "unknown round phase ", static_cast<unsigned>(m.phase));
  }
  if (m.deadline_in_ms < 0) return make_error(kMalformed, "deadline is negative");
  PROTOCOL_TRY(check_text(m.strategy, kMaxStatusNameBytes, true, "strategy"));
  if (m.sites.size() > kMaxStatusSites) {
    return make_error(kMalformed, "status lists ", m.sites.size(), " sites (at most ",
                      kMaxStatusSites, ")");
  }
  std::set<std::string_view> ids;
  for (const auto& s : m.sites) {
    PROTOCOL_TRY(check(s));
    if (!ids.insert(s.site_id).second) {
      return make_error(kMalformed, "status lists site '", s.site_id, "' twice");
    }
  }
  if (m.failures.size() > kMaxStatusFailures) {
    return make_error(kMalformed, "status lists ", m.failures.size(), " failures (at most ",
                      kMaxStatusFailures, ")");
  }
  for (const auto& f : m.failures) PROTOCOL_TRY(check(f));
  return ok_status();
}

}  // namespace

Status validate(const Body& body, std::span<const BlobDesc> blobs) {
  return core::validate_body(body, blobs,
                             [](const auto& m, BlobUse& use) { return check(m, use); });
}

Result<Blob> float_blob(std::span<const float> values) {
  auto desc = BlobDesc::make(DType::kFloat32, 32, {values.size()});
  if (!desc) return desc.error();
  return Blob::copy_of(std::move(desc).value(),
                       {reinterpret_cast<const uint8_t*>(values.data()), values.size_bytes()});
}

Result<std::vector<float>> blob_floats(const Blob& blob) {
  if (blob.desc.dtype != DType::kFloat32 || blob.data.size() != blob.desc.count * sizeof(float)) {
    return make_error(kShape, "blob is not float32 of its described length");
  }
  std::vector<float> out(blob.desc.count);
  if (!out.empty()) std::memcpy(out.data(), blob.data.data(), blob.data.size());
  return out;
}

}  // namespace protocol::coord
