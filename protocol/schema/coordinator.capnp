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
  }
  blobs @11 :List(Worker.BlobDesc);
}
