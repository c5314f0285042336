# Messages between participants and fhe_workers (docs/design.md §3).
#
# On the wire a message is one ZeroMQ frame holding an `Envelope` (a single-segment Cap'n Proto
# message, unpacked) followed by exactly `Envelope.blobs.length` raw frames. Large tensors
# (ciphertext planes, weight scales) travel in those raw frames, never inside Cap'n Proto: a
# message refers to one by its index into `Envelope.blobs`, and `BlobDesc` says the frame's
# shape, element type, bit width and exact byte length, all of which the receiver checks before
# it reads a byte (protocol/include/protocol/codec.h).
#
# Every message struct starts with `version`; this file describes version 1. Field value 0 means
# "unset" everywhere an enum or version appears, and receivers refuse it.

@0xa148c15834fcca17;

$import "/capnp/c++.capnp".namespace("protocol::wire");

# --- Blobs ----------------------------------------------------------------------------------------

enum DType {
  unset @0;
  uint8 @1;           # 8 bits per element
  int8 @2;            # 8 bits per element
  float32 @3;         # 32 bits, IEEE 754, little-endian
  packedUnsigned @4;  # `bits` (1..64) bits per element, one little-endian bit stream
}

struct BlobDesc {
  dtype @0 :DType;
  bits @1 :UInt8;             # bits per element: 8, 8, 32, or 1..64 for packedUnsigned
  shape @2 :List(UInt64);     # 1 to 4 dimensions, none zero, row-major
  count @3 :UInt64;           # product of shape
  byteLength @4 :UInt64;      # ceil(count * bits / 8): the exact size of the frame
}

# --- Shared pieces --------------------------------------------------------------------------------

enum ProjectionKind {
  unset @0;
  q @1;
  k @2;
  v @3;
  o @4;
  gate @5;
  up @6;
  down @7;
  lmHead @8;
}

enum ErrorCode {
  unset @0;
  malformedRequest @1;
  unknownModel @2;
  unknownLayer @3;
  shapeMismatch @4;
  noiseBudget @5;
  overloaded @6;
  internal @7;
  unauthorised @8;
  unsupportedVersion @9;
}

struct Error {
  code @0 :ErrorCode;
  message @1 :Text;  # one readable line
}

# --- Model info -----------------------------------------------------------------------------------

struct ModelInfoRequest {
  version @0 :UInt16;
  modelId @1 :Text;
}

# Largest row norms of one layer's int8 weights, for both directions: `forward*` over the rows of
# W (what W·X multiplies by), `transpose*` over the rows of Wᵀ (the columns of W). L2 norms are
# carried squared, as the exact integers they are.
struct LayerNorms {
  layer @0 :UInt32;
  forwardL1 @1 :UInt64;
  forwardL2Squared @2 :UInt64;
  transposeL1 @3 :UInt64;
  transposeL2Squared @4 :UInt64;
}

# One projection kind of the model (the same shape in every layer). W is rows x cols (d_out x
# d_in). `norms` has one entry per layer this worker holds, in increasing layer order: every
# layer, or the range of a layer-sharded worker (fhe_worker --layers A-B). `scalesBlob` is the
# index of a float32 blob of shape [norms entries, rows]: row i holds the per output channel
# scales of layer norms[i].layer's int8 weights. The LM head (lmHead, rows = vocabulary) is one
# matrix, served as layer 0: its scales blob is [1, rows] and `norms` has one entry (layer 0).
# A worker lists only the kinds it holds: one that does not list the LM head leaves it to
# other workers or to the participant's local weights.
struct ProjectionInfo {
  kind @0 :ProjectionKind;
  rows @1 :UInt64;
  cols @2 :UInt64;
  scalesBlob @3 :UInt32;
  norms @4 :List(LayerNorms);
}

struct ModelInfo {
  modelId @0 :Text;
  modelHash @1 :Data;  # 32 bytes (SHA-256 of the weights as the worker loaded them)
  layerCount @2 :UInt32;
  projections @3 :List(ProjectionInfo);
}

struct ModelInfoReply {
  version @0 :UInt16;
  union {
    info @1 :ModelInfo;
    error @2 :Error;
  }
}

# --- Encrypted matmul -----------------------------------------------------------------------------

# Computes W·X (or Wᵀ·X when `transpose`) for every listed projection of one layer; all of them
# share the one input. The input is a fresh ciphertext matrix (fhe/ciphertext.h): its c0 plane
# travels as blob `inputBlob`, packedUnsigned of shape [blocks, rows, n] with
# blocks = ceil(cols / n); c1 = a is expanded by the worker from `seed`.
#
# `stacked` (with `transpose` and one or more projections; the input gradients of projections
# that share an input, e.g. q, k, v): the input's rows are the concatenation of the listed
# projections' d_out rows, in list order, and the reply is ONE ResultPlanes (its `projection`
# the first listed) holding the sum of Wⱼᵀ·Xⱼ over the projections, Xⱼ the input's rows of
# projection j: the stacked matrix's transposed product, decrypted once. Its noise budget is
# checked with the stacked bounds (L1 and L2² of the stacked matrix's columns bounded by the
# sums of the parts' largest).
struct MatmulRequest {
  version @0 :UInt16;
  requestId @1 :UInt64;
  modelId @2 :Text;
  layer @3 :UInt32;
  projections @4 :List(ProjectionKind);
  transpose @5 :Bool;
  paramsId @6 :UInt32;
  seed @7 :Data;         # 32 bytes
  log2Delta @8 :UInt32;
  rows @9 :UInt64;       # features of the input (d_in, or d_out when transposed)
  cols @10 :UInt64;      # tokens T
  switchModulus @11 :Bool;
  inputBlob @12 :UInt32;
  stacked @13 :Bool;
  # Output rows [rowBegin, rowEnd) of the request's results only; both 0: every row (what a
  # request without these fields means). The output rows are those of the one result for a
  # single or stacked product, and the concatenation of every listed projection's results in
  # list order otherwise: the reply then holds, in list order, the part of each projection
  # that intersects the range (a projection with no row in it is left out), each ResultPlanes'
  # `rows` that part's size. rowBegin < rowEnd <= the output rows, or the request is refused
  # (malformedRequest for rowBegin >= rowEnd, shapeMismatch for rowEnd past the output rows).
  # Several workers can so compute one product's rows in parallel; the concatenated parts are
  # bit for bit the whole product (modulus-switched parts use the whole product's modulus).
  rowBegin @14 :UInt64;
  rowEnd @15 :UInt64;
}

enum PlaneKind {
  unset @0;
  product @1;   # c1 in the NTT domain, coefficients modulo q
  switched @2;  # c0 and c1 in the coefficient domain, modulo 2^log2Modulus
}

# The product of one projection: c0 and c1 planes (blobs `c0Blob` and `c1Blob`, each
# packedUnsigned of shape [blocks, rows, n] with `bits` bits per coefficient).
struct ResultPlanes {
  projection @0 :ProjectionKind;
  rows @1 :UInt64;
  cols @2 :UInt64;
  kind @3 :PlaneKind;
  bits @4 :UInt8;
  log2Delta @5 :UInt32;
  log2Modulus @6 :UInt32;  # switched replies only; 0 for products
  c0Blob @7 :UInt32;
  c1Blob @8 :UInt32;
}

struct MatmulReply {
  version @0 :UInt16;
  requestId @1 :UInt64;
  union {
    results @2 :List(ResultPlanes);  # in the order of the request's projections (one if stacked)
    error @3 :Error;
  }
  timings @4 :MatmulTimings;  # optional (absent from older workers): where the worker's time went
}

# Wall-clock nanoseconds a worker spent on one request, for benchmarks (bench_worker). Phases
# shared by a batch of requests are the batch's. Informational only: nothing decides on them.
struct MatmulTimings {
  queueNanos @0 :UInt64;          # queued, from acceptance to the start of its batch
  unpackNanos @1 :UInt64;         # input plane unpacked from 48 bits and range-checked
  seedExpansionNanos @2 :UInt64;  # the c1 rows (A_hat) expanded from the seed
  gemmNanos @3 :UInt64;           # the plane GEMMs, digit split and recombination included
  recombineNanos @4 :UInt64;      # of gemmNanos: recombination (CPU time / threads)
  switchNanos @5 :UInt64;         # modulus switching of the reply (switchModulus only)
  packNanos @6 :UInt64;           # reply planes packed to `bits` bits
}

# --- Liveness and load ----------------------------------------------------------------------------

struct Heartbeat {
  version @0 :UInt16;
  senderId @1 :Text;
  queued @2 :UInt32;       # requests waiting
  inFlight @3 :UInt32;     # requests being computed
  capacity @4 :UInt32;     # requests it computes at once
  timestampNanos @5 :Int64;  # sender's clock, nanoseconds since the Unix epoch
}

# The answer to a message that could not be read well enough to answer in kind (a header that
# does not parse, a bad frame count, ...). requestId is 0 when it could not be read.
struct ErrorReply {
  version @0 :UInt16;
  requestId @1 :UInt64;
  error @2 :Error;
}

# --- The header frame -----------------------------------------------------------------------------

struct Envelope {
  body :union {
    modelInfoRequest @0 :ModelInfoRequest;
    modelInfoReply @1 :ModelInfoReply;
    matmulRequest @2 :MatmulRequest;
    matmulReply @3 :MatmulReply;
    heartbeat @4 :Heartbeat;
    errorReply @5 :ErrorReply;
  }
  blobs @6 :List(BlobDesc);
}
