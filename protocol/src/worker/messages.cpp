// validate(): the field-level rules every message obeys, shared by the encoder and the decoder.
#include "protocol/messages.h"

#include <algorithm>

#include "core/checks.h"

namespace protocol {

std::string_view projection_name(ProjectionKind kind) {
  switch (kind) {
    case ProjectionKind::kQ:
      return "q";
    case ProjectionKind::kK:
      return "k";
    case ProjectionKind::kV:
      return "v";
    case ProjectionKind::kO:
      return "o";
    case ProjectionKind::kGate:
      return "gate";
    case ProjectionKind::kUp:
      return "up";
    case ProjectionKind::kDown:
      return "down";
    case ProjectionKind::kLmHead:
      return "lm_head";
  }
  return "unknown";
}

std::string_view body_name(const Body& body) {
  constexpr std::string_view kNames[] = {"modelInfoRequest", "modelInfoReply", "matmulRequest",
                                         "matmulReply",      "heartbeat",      "errorReply"};
  return kNames[body.index()];
}

Error to_wire(Error error) {
  if (!is_wire_code(error.code)) {
    error.message = std::string(error_code_name(error.code)) + ": " + error.message;
    error.code = ErrorCode::kInternal;
  }
  error.message = error.message.substr(0, std::min(error.message.find('\n'), kMaxErrorBytes));
  for (char& c : error.message) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return error;
}

namespace {

using core::BlobUse;
using core::check_id;
using core::check_wire_error;

constexpr ErrorCode kMalformed = ErrorCode::kMalformedRequest;
constexpr ErrorCode kShape = ErrorCode::kShapeMismatch;

bool valid_projection(ProjectionKind k) {
  const auto v = static_cast<uint8_t>(k);
  return v >= static_cast<uint8_t>(ProjectionKind::kQ) &&
         v <= static_cast<uint8_t>(ProjectionKind::kLmHead);
}

// A ciphertext plane blob for a rows x cols matrix: packedUnsigned [ceil(cols/n), rows, n].
Status check_planes(const BlobDesc& d, uint64_t rows, uint64_t cols, uint32_t bits,
                    std::string_view what) {
  if (d.dtype != DType::kPackedUnsigned || d.shape.size() != 3) {
    return make_error(kShape, what, " must be packed coefficients of shape [blocks, rows, n]");
  }
  const uint64_t n = d.shape[2];
  if (n > kMaxRingDegree || (n & (n - 1)) != 0) {
    return make_error(kShape, what, " has ring degree ", n, " (a power of two up to ",
                      kMaxRingDegree, " expected)");
  }
  const uint64_t blocks = cols / n + (cols % n != 0);
  if (d.shape[0] != blocks || d.shape[1] != rows) {
    return make_error(kShape, what, " has shape [", d.shape[0], ", ", d.shape[1], ", ", n,
                      "], expected [", blocks, ", ", rows, ", ", n, "] for ", rows, " x ", cols);
  }
  if (bits != 0 && d.bits != bits) {
    return make_error(kShape, what, " has ", d.bits, "-bit coefficients, expected ", bits);
  }
  return ok_status();
}

Status check_matrix_dims(uint64_t rows, uint64_t cols, std::string_view what) {
  if (rows == 0 || rows > kMaxRows || cols == 0 || cols > kMaxCols) {
    return make_error(kShape, what, " is ", rows, " x ", cols, " (1..", kMaxRows, " x 1..",
                      kMaxCols, " allowed)");
  }
  return ok_status();
}

Status check(const ModelInfoRequest& m, BlobUse&) {
  return check_id(m.model_id, "model id");
}

Status check(const ModelInfo& m, BlobUse& use) {
  PROTOCOL_TRY(check_id(m.model_id, "model id"));
  if (m.layer_count == 0 || m.layer_count > kMaxLayers) {
    return make_error(kMalformed, "layer count ", m.layer_count, " (1..", kMaxLayers, " allowed)");
  }
  if (m.projections.empty() || m.projections.size() > kMaxProjections) {
    return make_error(kMalformed, "model info lists ", m.projections.size(), " projections (1..",
                      kMaxProjections, " allowed)");
  }
  std::vector<ProjectionKind> seen;
  for (const auto& p : m.projections) {
    if (!valid_projection(p.kind)) return make_error(kMalformed, "unknown projection kind");
    if (std::find(seen.begin(), seen.end(), p.kind) != seen.end()) {
      return make_error(kMalformed, "projection ", projection_name(p.kind), " listed twice");
    }
    seen.push_back(p.kind);
    PROTOCOL_TRY(check_matrix_dims(p.rows, p.cols, "projection"));
    auto scales = use.take(p.scales_blob, "scales");
    if (!scales) return scales.error();
    // The LM head is one matrix, served as layer 0: one row of scales, one norm entry. A
    // decoder projection has one norm entry per layer the worker holds (all of them, or a
    // range of a layer-sharded worker), in increasing layer order, and one row of scales each.
    const bool lm_head = p.kind == ProjectionKind::kLmHead;
    const uint64_t max_layers = lm_head ? 1 : m.layer_count;
    if (p.norms.empty() || p.norms.size() > max_layers) {
      return make_error(kShape, "projection ", projection_name(p.kind), " has ", p.norms.size(),
                        " norm entries (1..", max_layers, lm_head ? " for the LM head)" : ")");
    }
    for (size_t i = 0; i < p.norms.size(); ++i) {
      if (p.norms[i].layer >= max_layers || (i > 0 && p.norms[i].layer <= p.norms[i - 1].layer)) {
        return make_error(kMalformed, "norm entry ", i, " of ", projection_name(p.kind),
                          " is for layer ", p.norms[i].layer,
                          " (layers must increase and stay below ", max_layers, ")");
      }
    }
    const uint64_t layers = p.norms.size();
    const BlobDesc& d = *scales.value();
    if (d.dtype != DType::kFloat32 || d.shape != std::vector<uint64_t>{layers, p.rows}) {
      return make_error(kShape, "scales of ", projection_name(p.kind),
                        " must be float32 [norm entries, rows] = [", layers, ", ", p.rows, "]");
    }
  }
  return ok_status();
}

Status check(const ModelInfoReply& m, BlobUse& use) {
  if (const auto* e = std::get_if<Error>(&m.outcome)) return check_wire_error(*e);
  return check(std::get<ModelInfo>(m.outcome), use);
}

Status check(const MatmulRequest& m, BlobUse& use) {
  PROTOCOL_TRY(check_id(m.model_id, "model id"));
  if (m.layer >= kMaxLayers) return make_error(kMalformed, "layer ", m.layer, " out of range");
  if (m.projections.empty() || m.projections.size() > kMaxProjections) {
    return make_error(kMalformed, "request lists ", m.projections.size(), " projections (1..",
                      kMaxProjections, " allowed)");
  }
  for (size_t i = 0; i < m.projections.size(); ++i) {
    if (!valid_projection(m.projections[i])) {
      return make_error(kMalformed, "unknown projection kind");
    }
    if (std::find(m.projections.begin(), m.projections.begin() + i, m.projections[i]) !=
        m.projections.begin() + i) {
      return make_error(kMalformed, "projection ", projection_name(m.projections[i]),
                        " listed twice");
    }
  }
  if (m.params_id == 0) return make_error(kMalformed, "parameter set id is 0");
  if (m.log2_delta == 0 || m.log2_delta > 63) {
    return make_error(kMalformed, "log2 delta ", m.log2_delta, " (1..63 allowed)");
  }
  PROTOCOL_TRY(check_matrix_dims(m.rows, m.cols, "input"));
  if (m.ranged() && (m.row_begin >= m.row_end || m.row_end > kMaxRows)) {
    return make_error(kMalformed, "output row range [", m.row_begin, ", ", m.row_end,
                      ") is empty or past ", kMaxRows, " rows (both 0 ask for every row)");
  }
  auto input = use.take(m.input_blob, "input");
  if (!input) return input.error();
  return check_planes(*input.value(), m.rows, m.cols, 0, "input");
}

Status check(const ResultPlanes& r, BlobUse& use) {
  if (!valid_projection(r.projection)) return make_error(kMalformed, "unknown projection kind");
  if (r.kind != PlaneKind::kProduct && r.kind != PlaneKind::kSwitched) {
    return make_error(kMalformed, "unknown plane kind ", static_cast<unsigned>(r.kind));
  }
  if (r.bits == 0 || r.bits > 64) return make_error(kMalformed, "plane bit width ", r.bits);
  if (r.log2_delta == 0 || r.log2_delta > 63) {
    return make_error(kMalformed, "log2 delta ", r.log2_delta, " (1..63 allowed)");
  }
  if (r.kind == PlaneKind::kSwitched ? r.log2_modulus != r.bits : r.log2_modulus != 0) {
    return make_error(kMalformed, "log2 modulus ", r.log2_modulus, " does not fit a ",
                      r.kind == PlaneKind::kSwitched ? "switched" : "product", " reply of ", r.bits,
                      "-bit coefficients");
  }
  PROTOCOL_TRY(check_matrix_dims(r.rows, r.cols, "result"));
  for (const auto& [index, what] : {std::pair{r.c0_blob, "c0"}, std::pair{r.c1_blob, "c1"}}) {
    auto blob = use.take(index, what);
    if (!blob) return blob.error();
    PROTOCOL_TRY(check_planes(*blob.value(), r.rows, r.cols, r.bits, what));
  }
  return ok_status();
}

Status check(const MatmulReply& m, BlobUse& use) {
  if (const auto* e = std::get_if<Error>(&m.outcome)) return check_wire_error(*e);
  const auto& results = std::get<std::vector<ResultPlanes>>(m.outcome);
  if (results.empty() || results.size() > kMaxProjections) {
    return make_error(kMalformed, "reply has ", results.size(), " results (1..", kMaxProjections,
                      " allowed)");
  }
  for (const auto& r : results) PROTOCOL_TRY(check(r, use));
  return ok_status();
}

Status check(const Heartbeat& m, BlobUse&) {
  return check_id(m.sender_id, "sender id");
}

Status check(const ErrorReply& m, BlobUse&) {
  return check_wire_error(m.error);
}

}  // namespace

Status validate(const Body& body, std::span<const BlobDesc> blobs) {
  return core::validate_body(body, blobs,
                             [](const auto& m, BlobUse& use) { return check(m, use); });
}

}  // namespace protocol
