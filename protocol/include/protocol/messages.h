// The messages of the participant <-> fhe_worker protocol as plain C++ values, one struct per
// message of schema/worker.capnp (read that file for what each field means). Code above the
// transport builds and reads these; only src/worker/ and src/core/ touch Cap'n Proto.
//
// Blob fields (`*_blob`) are indices into the message's blob list (Message::blobs, or the
// descriptions passed to encode_header). Every blob must be referenced exactly once.
// The `version` field of each message is implicit: encoding writes kProtocolVersion and decoding
// refuses any other.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "protocol/blob.h"
#include "protocol/limits.h"
#include "protocol/result.h"

namespace protocol {

enum class ProjectionKind : uint8_t { kQ = 1, kK, kV, kO, kGate, kUp, kDown, kLmHead };
enum class PlaneKind : uint8_t { kProduct = 1, kSwitched = 2 };

// "q", "k", ..., "lm_head"; "unknown" otherwise.
std::string_view projection_name(ProjectionKind kind);

using Hash = std::array<uint8_t, kHashBytes>;
using Seed = std::array<uint8_t, kSeedBytes>;

struct ModelInfoRequest {
  std::string model_id;
  bool operator==(const ModelInfoRequest&) const = default;
};

struct LayerNorms {
  uint32_t layer = 0;
  uint64_t forward_l1 = 0, forward_l2_squared = 0;      // largest over the rows of W
  uint64_t transpose_l1 = 0, transpose_l2_squared = 0;  // largest over the rows of W^T
  bool operator==(const LayerNorms&) const = default;
};

// The LM head (kLmHead), one matrix served as layer 0, has a float32 [1, rows] scales blob and one
// norms entry (layer 0); every other kind has one per layer.
struct ProjectionInfo {
  ProjectionKind kind = ProjectionKind::kQ;
  uint64_t rows = 0, cols = 0;    // W is rows x cols (d_out x d_in)
  uint32_t scales_blob = 0;       // float32 [layer_count, rows] ([1, rows] for kLmHead)
  std::vector<LayerNorms> norms;  // one per layer, in layer order (one for kLmHead)
  bool operator==(const ProjectionInfo&) const = default;
};

struct ModelInfo {
  std::string model_id;
  Hash model_hash{};
  uint32_t layer_count = 0;
  std::vector<ProjectionInfo> projections;
  bool operator==(const ModelInfo&) const = default;
};

struct ModelInfoReply {
  std::variant<ModelInfo, Error> outcome;
  bool operator==(const ModelInfoReply&) const = default;
};

struct MatmulRequest {
  uint64_t request_id = 0;
  std::string model_id;
  uint32_t layer = 0;
  std::vector<ProjectionKind> projections;  // 1..kMaxProjections, no repeats, one shared input
  bool transpose = false;
  uint32_t params_id = 0;
  Seed seed{};
  uint32_t log2_delta = 0;
  uint64_t rows = 0, cols = 0;  // of the input
  bool switch_modulus = false;
  uint32_t input_blob = 0;  // c0: packedUnsigned [ceil(cols / n), rows, n]
  // With transpose: the rows are the projections' d_out stacked in list order, and the reply
  // is ONE ResultPlanes, the sum of their transposed products (worker.capnp).
  bool stacked = false;
  // Output rows [row_begin, row_end) only (both 0: all): of the one result for a single or
  // stacked product, of the projections' results concatenated in list order for a group (the
  // reply then has the intersecting part of each, in order; worker.capnp). The decoder checks
  // row_begin < row_end <= kMaxRows; the worker checks row_end against the output rows.
  uint64_t row_begin = 0, row_end = 0;
  bool ranged() const { return row_begin != 0 || row_end != 0; }
  bool operator==(const MatmulRequest&) const = default;
};

struct ResultPlanes {
  ProjectionKind projection = ProjectionKind::kQ;
  uint64_t rows = 0, cols = 0;
  PlaneKind kind = PlaneKind::kProduct;
  uint32_t bits = 0;
  uint32_t log2_delta = 0;
  uint32_t log2_modulus = 0;          // kSwitched: == bits; kProduct: 0
  uint32_t c0_blob = 0, c1_blob = 0;  // packedUnsigned [ceil(cols / n), rows, n], `bits` bits
  bool operator==(const ResultPlanes&) const = default;
};

// Where a worker's time went on one request (schema/worker.capnp, MatmulTimings), in wall-clock
// nanoseconds. Informational: a reply without it (an older worker) decodes with has_timings false.
struct MatmulTimings {
  uint64_t queue_ns = 0, unpack_ns = 0, seed_expansion_ns = 0, gemm_ns = 0, recombine_ns = 0,
           switch_ns = 0, pack_ns = 0;
  bool operator==(const MatmulTimings&) const = default;
};

struct MatmulReply {
  uint64_t request_id = 0;
  std::variant<std::vector<ResultPlanes>, Error> outcome;
  bool has_timings = false;
  MatmulTimings timings{};
  bool operator==(const MatmulReply&) const = default;
};

struct Heartbeat {
  std::string sender_id;
  uint32_t queued = 0, in_flight = 0, capacity = 0;
  int64_t timestamp_nanos = 0;
  bool operator==(const Heartbeat&) const = default;
};

struct ErrorReply {
  uint64_t request_id = 0;  // 0 when it could not be read
  Error error;
  bool operator==(const ErrorReply&) const = default;
};

using Body = std::variant<ModelInfoRequest, ModelInfoReply, MatmulRequest, MatmulReply, Heartbeat,
                          ErrorReply>;

// "modelInfoRequest", "matmulReply", ...
std::string_view body_name(const Body& body);

// A whole message: the header's body and the blobs that follow it.
struct Message {
  Body body;
  std::vector<Blob> blobs;
};

// The error as it may travel in a reply: a local code (timeout, transport, ...) becomes
// kInternal, and the message is cut to its first line and at most kMaxErrorBytes, with any
// other control character replaced by "?".
Error to_wire(Error error);

// Checks a body against the blob descriptions it comes with: field ranges (ids, sizes, enum
// values, versions are implicit), blob indices in range and each blob used exactly once, and
// every blob's dtype and shape consistent with the fields that refer to it. Both encoding and
// decoding run it, so a peer never sends, and never accepts, a message that fails it.
Status validate(const Body& body, std::span<const BlobDesc> blobs);

}  // namespace protocol
