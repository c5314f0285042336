// The messages between the coordinator and its participants and workers as plain C++ values,
// one struct per message of schema/coordinator.capnp (read that file for what each field means).
// Only src/coordinator/ and src/core/ touch Cap'n Proto.
//
// Adapters travel as ONE float32 blob of shape [total] and a tensor table (AdapterTable): each
// tensor's `offset` is its first element in the blob, tensors are listed in blob order and tile
// it exactly. `blob` fields are indices into the message's blob list, each used exactly once.
// The `version` of every message is implicit: encoding writes kProtocolVersion, decoding refuses
// any other.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "protocol/blob.h"
#include "protocol/limits.h"
#include "protocol/result.h"

namespace protocol::coord {

// Bounds specific to coordinator traffic.
constexpr size_t kMaxAdapterTensors = 1u << 14;
constexpr size_t kMaxEndpointBytes = 1024;
constexpr size_t kMaxWorkers = 1024;
constexpr size_t kMaxTensorRank = kMaxBlobRank;
constexpr size_t kMaxSiteIdBytes = 64;  // site and worker ids: 1..64 of [A-Za-z0-9._-]
constexpr size_t kRunIdChars = 32;      // a run id: 32 lowercase hex characters (128 bits)
// StatusReply: at most this many sites and recent failures, short texts.
constexpr size_t kMaxStatusSites = 1024;
constexpr size_t kMaxStatusFailures = 32;
constexpr size_t kMaxStatusNameBytes = 64;  // event names, drop reasons, strategy names

// True for 1..kMaxSiteIdBytes characters of [A-Za-z0-9._-] (an id that is safe in a file name,
// a JSON string and a log line).
bool is_site_id(std::string_view id);
// True for exactly kRunIdChars characters of [0-9a-f].
bool is_run_id(std::string_view id);
// A loss field: NaN means "not reported"; a reported loss is finite.
inline bool loss_reported(double loss) {
  return loss == loss;
}
// Equality of two loss fields: equal values, or both not reported.
inline bool same_loss(double a, double b) {
  return a == b || (!loss_reported(a) && !loss_reported(b));
}

enum class Role : uint8_t { kParticipant = 1, kWorker = 2 };
// kMisconfigured: the attempt failed for a reason that will repeat (model mismatch, a key a
// worker refuses, a shape error); the coordinator excludes the site until it registers again.
enum class DeclineReason : uint8_t {
  kBudget = 1,
  kBusy = 2,
  kNoWorkers = 3,
  kOther = 4,
  kMisconfigured = 5
};
enum class UploadStatus : uint8_t { kAccepted = 1, kLate = 2, kNotSelected = 3, kDuplicate = 4 };

std::string_view role_name(Role role);                       // "participant", "worker"
std::string_view decline_reason_name(DeclineReason reason);  // "budget", ..., "misconfigured"
std::string_view upload_status_name(UploadStatus status);    // "accepted", "late", ...

struct TensorEntry {
  std::string name;             // 1..kMaxIdBytes bytes, unique within the table
  std::vector<uint64_t> shape;  // 0..kMaxTensorRank dimensions, none zero
  uint64_t offset = 0;          // in elements
  uint64_t count() const;       // product of shape (1 for a scalar)
  bool operator==(const TensorEntry&) const = default;
};

struct AdapterTable {
  std::vector<TensorEntry> tensors;  // 1..kMaxAdapterTensors
  uint32_t blob = 0;                 // float32 [total]
  uint64_t total() const;            // sum of the counts
  bool operator==(const AdapterTable&) const = default;
};

struct Register {
  Role role = Role::kParticipant;
  std::string site_id;
  uint64_t dataset_size = 0;
  double epsilon_max = 0, delta = 0;  // participants: finite, epsilon_max > 0, delta in (0, 1)
  std::string compute_endpoint;       // workers: required
  std::string public_key;             // workers: Z85 (40 chars) or "" when insecure
  bool operator==(const Register&) const = default;
};

struct RegisterReply {
  bool accepted = false;
  std::string reason;
  uint32_t heartbeat_interval_ms = 0;
  uint32_t next_round = 0;
  bool operator==(const RegisterReply&) const = default;
};

struct Heartbeat {
  std::string site_id;
  int64_t timestamp_nanos = 0;
  bool operator==(const Heartbeat&) const = default;
};

struct TrainingPlan {
  uint32_t local_steps = 0;
  double learning_rate = 0;
  uint32_t batch_size = 0;
  double sample_rate = 0;       // q in (0, 1]
  double noise_multiplier = 0;  // sigma > 0
  double clip_norm = 0;         // > 0
  double delta = 0;             // (0, 1)
  int64_t deadline_unix_ms = 0;
  uint64_t seed = 0;
  // Participant-level DP (off by default): the site clips its round delta to participant_clip
  // and adds N(0, participant_sigma^2 participant_clip^2) per coordinate. Both finite; > 0 when on.
  bool participant_dp = false;
  double participant_clip = 0;   // C_u
  double participant_sigma = 0;  // sigma_u
  bool operator==(const TrainingPlan&) const = default;
};

struct WorkerEntry {
  std::string endpoint;
  std::string public_key;  // Z85 or ""
  bool operator==(const WorkerEntry&) const = default;
};

struct RoundInvitation {
  uint32_t round = 0;
  uint32_t attempt = 0;  // >= 1
  TrainingPlan plan;
  std::vector<WorkerEntry> workers;
  AdapterTable adapter;
  std::string run_id;  // is_run_id(): 32 lowercase hex characters
  bool operator==(const RoundInvitation&) const = default;
};

struct Accept {
  uint32_t round = 0, attempt = 0;
  std::string site_id;
  bool operator==(const Accept&) const = default;
};

struct Decline {
  uint32_t round = 0, attempt = 0;
  std::string site_id;
  DeclineReason reason = DeclineReason::kOther;
  std::string detail;
  bool operator==(const Decline&) const = default;
};

struct DeltaUpload {
  uint32_t round = 0, attempt = 0;
  std::string site_id;
  AdapterTable delta;
  uint64_t example_count = 0;  // >= 1
  // NaN: not reported (loss_reported()); otherwise finite.
  double train_loss = 0, heldout_loss = 0;
  uint32_t steps = 0;
  double epsilon_spent = 0;
  bool operator==(const DeltaUpload& o) const {  // unreported losses compare equal
    return round == o.round && attempt == o.attempt && site_id == o.site_id && delta == o.delta &&
           example_count == o.example_count && same_loss(train_loss, o.train_loss) &&
           same_loss(heldout_loss, o.heldout_loss) && steps == o.steps &&
           epsilon_spent == o.epsilon_spent;
  }
};

struct UploadAck {
  uint32_t round = 0, attempt = 0;
  UploadStatus status = UploadStatus::kAccepted;
  bool operator==(const UploadAck&) const = default;
};

struct RoundResult {
  uint32_t round = 0;
  uint32_t sites = 0;
  double train_loss = 0, heldout_loss = 0;  // NaN when no site reported one
  bool operator==(const RoundResult& o) const {
    return round == o.round && sites == o.sites && same_loss(train_loss, o.train_loss) &&
           same_loss(heldout_loss, o.heldout_loss);
  }
};

struct Shutdown {
  std::string reason;
  bool operator==(const Shutdown&) const = default;
};

// fedctl status -> coordinator: a read-only snapshot of the run (schema/coordinator.capnp).
struct StatusRequest {
  bool operator==(const StatusRequest&) const = default;
};

enum class RoundPhase : uint8_t { kWaiting = 1, kCollecting = 2, kAggregating = 3 };
enum class SeatStatus : uint8_t {
  kNone = 1,
  kInvited = 2,
  kTraining = 3,
  kUploaded = 4,
  kDropped = 5
};
std::string_view round_phase_name(RoundPhase phase);  // "waiting", "collecting", "aggregating"
std::string_view seat_status_name(SeatStatus seat);   // "none", "invited", "training", ...

struct SiteStatus {
  std::string site_id;  // is_site_id()
  Role role = Role::kParticipant;
  bool alive = false;
  int64_t heartbeat_age_ms = -1;  // >= -1; -1: not heard from by this coordinator process
  uint64_t dataset_size = 0;
  double epsilon_spent = 0, epsilon_budget = 0;  // finite, >= 0 (0 for workers)
  bool exhausted = false, misconfigured = false;
  SeatStatus seat = SeatStatus::kNone;
  std::string drop_reason;       // 0..kMaxStatusNameBytes, when seat is kDropped
  std::string compute_endpoint;  // workers; printable ASCII, 0..kMaxEndpointBytes
  bool operator==(const SiteStatus&) const = default;
};

struct RecentFailure {
  std::string event;   // 1..kMaxStatusNameBytes
  int64_t age_ms = 0;  // >= 0
  uint32_t round = 0;
  std::string site_id;  // "" or is_site_id()
  std::string detail;   // 0..kMaxErrorBytes
  bool operator==(const RecentFailure&) const = default;
};

struct StatusReply {
  std::string run_id;  // is_run_id()
  std::string model;   // 0..kMaxIdBytes
  uint32_t round = 0, rounds = 0;
  uint32_t attempt = 1;  // >= 1
  RoundPhase phase = RoundPhase::kWaiting;
  int64_t deadline_in_ms = 0;  // >= 0
  std::string strategy;        // 0..kMaxStatusNameBytes
  uint32_t min_participants = 0;
  std::vector<SiteStatus> sites;  // 0..kMaxStatusSites, ids unique
  uint32_t sites_omitted = 0;
  std::vector<RecentFailure> failures;  // 0..kMaxStatusFailures
  bool operator==(const StatusReply&) const = default;
};

// A typed error reply (malformed, unauthorised, out-of-protocol message).
struct ErrorReply {
  Error error;
  bool operator==(const ErrorReply&) const = default;
};

using Body =
    std::variant<Register, RegisterReply, Heartbeat, RoundInvitation, Accept, Decline, DeltaUpload,
                 UploadAck, RoundResult, Shutdown, ErrorReply, StatusRequest, StatusReply>;

// "register", "roundInvitation", ...
std::string_view body_name(const Body& body);

struct Message {
  Body body;
  std::vector<Blob> blobs;
};

// Field ranges, blob indices (each blob used exactly once), adapter tables against their blobs
// (float32, rank 1, [total]). Run by both the encoder and the decoder.
Status validate(const Body& body, std::span<const BlobDesc> blobs);

// --- Adapter blobs
// --------------------------------------------------------------------------------

// A float32 [values.size()] blob holding a copy of `values` (little-endian hosts).
Result<Blob> float_blob(std::span<const float> values);
// The float32 values of a blob (a copy); kShapeMismatch unless it is float32.
Result<std::vector<float>> blob_floats(const Blob& blob);

}  // namespace protocol::coord
