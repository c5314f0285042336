# Messages between the coordinator and the participants and workers that register with it
# (docs/design.md §3 and §6).
#
# Framing is the worker protocol's (worker.capnp): one frame holding a `CoordEnvelope` followed by
# exactly `CoordEnvelope.blobs.length` raw frames, each described by a BlobDesc that the receiver
# checks before it reads a byte. An adapter (the global one, or a participant's delta) travels as
# ONE float32 blob of shape [total] plus a tensor table in the header (name, shape, offset): a
# LoRA adapter has more tensors than the 64 frames a message may carry.
#
# Every message struct starts with `version`; this file describes version 1. Field value 0 means
# "unset" wherever an enum or a version appears, and receivers refuse it.

@0xd3b1f0b2c4a59e61;

$import "/capnp/c++.capnp".namespace("protocol::coordwire");

using Worker = import "worker.capnp";

enum Role {
  unset @0;
  participant @1;  # a site with data: trains and uploads deltas
  worker @2;       # an fhe_worker: joins the worker directory
}

# participant or worker -> coordinator, first message on a connection (and again after the
# coordinator restarts). With a roster (docs/coordinator.md) the site id and role must be the
# ones the roster binds to the sender's CURVE key; without one, to the key that first registers.
# Site ids are 1..64 characters of [A-Za-z0-9._-] in every message that carries one.
struct Register {
  version @0 :UInt16;
  role @1 :Role;
  siteId @2 :Text;
  datasetSize @3 :UInt64;       # examples (participants; 0 for workers)
  epsilonMax @4 :Float64;       # the site's privacy budget (participants)
  delta @5 :Float64;
  computeEndpoint @6 :Text;     # workers: where participants connect
  publicKey @7 :Text;           # workers: their CURVE public key (Z85), "" when insecure
}

struct RegisterReply {
  version @0 :UInt16;
  accepted @1 :Bool;
  reason @2 :Text;              # why not, when refused
  heartbeatIntervalMs @3 :UInt32;
  nextRound @4 :UInt32;         # the round the coordinator will run next
}

# Both ways: a peer that misses several is marked dead.
struct Heartbeat {
  version @0 :UInt16;
  siteId @1 :Text;
  timestampNanos @2 :Int64;
}

# One tensor of an adapter: `count` = product(shape) float32 values starting at element `offset`
# of the adapter's blob. Tensors are listed in blob order and tile it exactly.
struct TensorEntry {
  name @0 :Text;
  shape @1 :List(UInt64);
  offset @2 :UInt64;
}

struct Adapter {
  tensors @0 :List(TensorEntry);
  blob @1 :UInt32;              # float32 [total elements]
}

struct WorkerEntry {
  endpoint @0 :Text;
  publicKey @1 :Text;           # Z85, "" when the worker is insecure (loopback)
}

struct TrainingPlan {
  localSteps @0 :UInt32;
  learningRate @1 :Float64;
  batchSize @2 :UInt32;         # expected batch size (q * dataset size)
  sampleRate @3 :Float64;       # Poisson sampling rate q of each DP-SGD step
  noiseMultiplier @4 :Float64;  # sigma
  clipNorm @5 :Float64;         # C
  delta @6 :Float64;
  deadlineUnixMs @7 :Int64;     # the upload must arrive before this
  seed @8 :UInt64;              # per-round, per-site seed
  # Participant-level DP (an option; absent in older messages, which therefore read as off):
  # the site clips its whole round delta to L2 norm participantClip (C_u) and adds
  # N(0, participantSigma^2 C_u^2) to every coordinate before uploading it.
  participantDp @9 :Bool;
  participantClip @10 :Float64;   # C_u: finite, > 0 when participantDp
  participantSigma @11 :Float64;  # sigma_u: finite, > 0 when participantDp
}

struct RoundInvitation {
  version @0 :UInt16;
  round @1 :UInt32;
  attempt @2 :UInt32;           # 1 for the first selection of a round, 2 after a retry, ...
  plan @3 :TrainingPlan;
  workers @4 :List(WorkerEntry);
  adapter @5 :Adapter;          # the global adapter
  # The run this invitation belongs to: 32 lowercase hex characters that the coordinator draws
  # from its CSPRNG when it starts a run (a run resumed from its checkpoint keeps it). A site
  # charges its budget once per (runId, round, attempt). Receivers refuse an invitation without a
  # well-formed one.
  runId @6 :Text;
}

struct Accept {
  version @0 :UInt16;
  round @1 :UInt32;
  attempt @2 :UInt32;
  siteId @3 :Text;
}

enum DeclineReason {
  unset @0;
  budget @1;                    # the round would exceed the site's privacy budget
  busy @2;
  noWorkers @3;
  other @4;
  misconfigured @5;             # the attempt failed for a reason that will repeat (model
                                # mismatch, key refused by a worker, shape error): the
                                # coordinator excludes the site until it registers again
}

struct Decline {
  version @0 :UInt16;
  round @1 :UInt32;
  attempt @2 :UInt32;
  siteId @3 :Text;
  reason @4 :DeclineReason;
  detail @5 :Text;
}

struct DeltaUpload {
  version @0 :UInt16;
  round @1 :UInt32;
  attempt @2 :UInt32;
  siteId @3 :Text;
  delta @4 :Adapter;            # local adapter - global adapter, same tensor table
  exampleCount @5 :UInt64;
  # Losses are optional: NaN means "not reported" (the default: an unnoised loss is a function of
  # the private data); otherwise finite.
  trainLoss @6 :Float64;
  heldoutLoss @7 :Float64;
  steps @8 :UInt32;
  epsilonSpent @9 :Float64;     # the site's own figure, over all rounds so far
}

enum UploadStatus {
  unset @0;
  accepted @1;
  late @2;                      # after the deadline or for an attempt already closed: dropped
  notSelected @3;
  duplicate @4;
}

struct UploadAck {
  version @0 :UInt16;
  round @1 :UInt32;
  attempt @2 :UInt32;
  status @3 :UploadStatus;
}

struct RoundResult {
  version @0 :UInt16;
  round @1 :UInt32;
  sites @2 :UInt32;
  trainLoss @3 :Float64;        # example-weighted mean of the reported losses; NaN when none
  heldoutLoss @4 :Float64;      # was reported
}

struct Shutdown {
  version @0 :UInt16;
  reason @1 :Text;
}

# The answer to a message that is malformed, unauthorised or out of protocol.
struct CoordError {
  version @0 :UInt16;
  error @1 :Worker.Error;
}

# fedctl status -> coordinator: what the coordinator knows of its run, read-only. Any key the
# coordinator admits (its allow-list; with a roster, a key the roster lists) may ask on a
# connection of its own without registering; answering changes nothing of any round.
struct StatusRequest {
  version @0 :UInt16;
}

# Where the current round is.
enum RoundPhase {
  unset @0;
  waiting @1;                   # no attempt out: gathering sites, or between attempts
  collecting @2;                # invitations out: the selected sites train and upload
  aggregating @3;               # the attempt's uploads are in: accounting, aggregating, checkpointing
}

# A site's seat in the current attempt.
enum SeatState {
  unset @0;
  none @1;                      # not selected (or no attempt out)
  invited @2;                   # selected and invited
  training @3;                  # accepted the invitation: training
  uploaded @4;                  # its delta arrived
  dropped @5;                   # declined, dead, unreachable, revoked or past the deadline
}

struct SiteStatus {
  siteId @0 :Text;
  role @1 :Role;
  alive @2 :Bool;
  heartbeatAgeMs @3 :Int64;     # since its last message; -1: not heard from by this process
  datasetSize @4 :UInt64;       # participants: as registered (two significant digits)
  epsilonSpent @5 :Float64;     # participants: the coordinator's own accounting (finite, >= 0)
  epsilonBudget @6 :Float64;    # participants: the budget it registered (finite, >= 0)
  exhausted @7 :Bool;           # its budget cannot fund another round
  misconfigured @8 :Bool;       # excluded until it registers again
  seat @9 :SeatState;
  dropReason @10 :Text;         # seat dropped: "deadline", "declined", "dead", ...
  computeEndpoint @11 :Text;    # workers
}

# A recent failure, as events.jsonl records it (participant_dropped, round_failed, delta_late,
# message_refused, registration_refused, site_dead, ...).
struct RecentFailure {
  event @0 :Text;
  ageMs @1 :Int64;              # how long ago (>= 0)
  round @2 :UInt32;             # the round it happened in
  siteId @3 :Text;              # "" when it is not about one site
  detail @4 :Text;
}

struct StatusReply {
  version @0 :UInt16;
  runId @1 :Text;               # 32 lowercase hex characters
  model @2 :Text;               # the adapter's base model (adapter_config.json), "" if unnamed
  round @3 :UInt32;             # the round running (or next to run)
  rounds @4 :UInt32;            # rounds of the run
  attempt @5 :UInt32;           # >= 1
  phase @6 :RoundPhase;
  deadlineInMs @7 :Int64;       # collecting: until the upload deadline (>= 0); else 0
  strategy @8 :Text;
  minParticipants @9 :UInt32;
  sites @10 :List(SiteStatus);  # participants and workers, sorted by id
  sitesOmitted @11 :UInt32;     # sites left out of a list that would exceed its bound
  failures @12 :List(RecentFailure);  # the most recent, oldest first
}

struct CoordEnvelope {
  body :union {
    register @0 :Register;
    registerReply @1 :RegisterReply;
    heartbeat @2 :Heartbeat;
    roundInvitation @3 :RoundInvitation;
    accept @4 :Accept;
    decline @5 :Decline;
    deltaUpload @6 :DeltaUpload;
    uploadAck @7 :UploadAck;
    roundResult @8 :RoundResult;
    shutdown @9 :Shutdown;
    error @10 :CoordError;
    statusRequest @12 :StatusRequest;
    statusReply @13 :StatusReply;
  }
  blobs @11 :List(Worker.BlobDesc);
}
