#include "envelope_read.h"

#include <cstring>

namespace protocol {
namespace {

constexpr ErrorCode kMalformed = ErrorCode::kMalformedRequest;

[[noreturn]] void refuse(Error e) {
  throw FieldError{std::move(e)};
}

void check_version(uint16_t version, std::string_view what) {
  if (version != kProtocolVersion) {
    refuse(make_error(ErrorCode::kUnsupportedVersion, what, " has protocol version ", version,
                      ", this build speaks ", kProtocolVersion));
  }
}

template <typename Enum, typename WireEnum>
Enum read_enum(WireEnum v, uint16_t max, std::string_view what) {
  const auto raw = static_cast<uint16_t>(v);
  if (raw == 0 || raw > max) refuse(make_error(kMalformed, "unknown ", what, " ", raw));
  return static_cast<Enum>(raw);
}

std::string read_text(capnp::Text::Reader text, size_t max, std::string_view what) {
  if (text.size() > max) {
    refuse(make_error(kMalformed, what, " has ", text.size(), " bytes (at most ", max, ")"));
  }
  return std::string(text.cStr(), text.size());
}

template <size_t N>
std::array<uint8_t, N> read_fixed_data(capnp::Data::Reader data, std::string_view what) {
  if (data.size() != N) {
    refuse(make_error(kMalformed, what, " has ", data.size(), " bytes, expected ", N));
  }
  std::array<uint8_t, N> out;
  std::memcpy(out.data(), data.begin(), N);
  return out;
}

BlobDesc read_blob(wire::BlobDesc::Reader r) {
  BlobDesc d;
  d.dtype = read_enum<DType>(r.getDtype(), 4, "blob dtype");
  d.bits = r.getBits();
  auto shape = r.getShape();
  if (shape.size() == 0 || shape.size() > kMaxBlobRank) {
    refuse(make_error(kMalformed, "blob has ", shape.size(), " dimensions (1 to ", kMaxBlobRank,
                      " allowed)"));
  }
  for (const uint64_t dim : shape) d.shape.push_back(dim);
  d.count = r.getCount();
  d.byte_length = r.getByteLength();
  return d;
}

Error read_error(wire::Error::Reader r) {
  Error e;
  e.code = read_enum<ErrorCode>(r.getCode(), static_cast<uint16_t>(ErrorCode::kUnsupportedVersion),
                                "error code");
  e.message = read_text(r.getMessage(), kMaxErrorBytes, "error message");
  return e;
}

ModelInfoRequest read(wire::ModelInfoRequest::Reader r) {
  check_version(r.getVersion(), "modelInfoRequest");
  return {read_text(r.getModelId(), kMaxIdBytes, "model id")};
}

ModelInfoReply read(wire::ModelInfoReply::Reader r) {
  check_version(r.getVersion(), "modelInfoReply");
  if (r.isError()) return {read_error(r.getError())};
  if (!r.isInfo()) refuse(make_error(kMalformed, "modelInfoReply has an unknown outcome"));
  auto info = r.getInfo();
  ModelInfo m;
  m.model_id = read_text(info.getModelId(), kMaxIdBytes, "model id");
  m.model_hash = read_fixed_data<kHashBytes>(info.getModelHash(), "model hash");
  m.layer_count = info.getLayerCount();
  auto projections = info.getProjections();
  if (projections.size() > kMaxProjections) {
    refuse(make_error(kMalformed, "model info lists ", projections.size(), " projections"));
  }
  for (auto p : projections) {
    ProjectionInfo pi;
    pi.kind = read_enum<ProjectionKind>(p.getKind(), 8, "projection kind");
    pi.rows = p.getRows();
    pi.cols = p.getCols();
    pi.scales_blob = p.getScalesBlob();
    auto norms = p.getNorms();
    if (norms.size() > kMaxLayers) {
      refuse(make_error(kMalformed, "projection has ", norms.size(), " norm entries"));
    }
    pi.norms.reserve(norms.size());
    for (auto n : norms) {
      pi.norms.push_back({n.getLayer(), n.getForwardL1(), n.getForwardL2Squared(),
                          n.getTransposeL1(), n.getTransposeL2Squared()});
    }
    m.projections.push_back(std::move(pi));
  }
  return {std::move(m)};
}

MatmulRequest read(wire::MatmulRequest::Reader r) {
  check_version(r.getVersion(), "matmulRequest");
  MatmulRequest m;
  m.request_id = r.getRequestId();
  m.model_id = read_text(r.getModelId(), kMaxIdBytes, "model id");
  m.layer = r.getLayer();
  auto projections = r.getProjections();
  if (projections.size() > kMaxProjections) {
    refuse(make_error(kMalformed, "request lists ", projections.size(), " projections"));
  }
  for (auto p : projections) {
    m.projections.push_back(read_enum<ProjectionKind>(p, 8, "projection kind"));
  }
  m.transpose = r.getTranspose();
  m.params_id = r.getParamsId();
  m.seed = read_fixed_data<kSeedBytes>(r.getSeed(), "seed");
  m.log2_delta = r.getLog2Delta();
  m.rows = r.getRows();
  m.cols = r.getCols();
  m.switch_modulus = r.getSwitchModulus();
  m.input_blob = r.getInputBlob();
  m.stacked = r.getStacked();
  m.row_begin = r.getRowBegin();
  m.row_end = r.getRowEnd();
  return m;
}

MatmulReply read(wire::MatmulReply::Reader r) {
  check_version(r.getVersion(), "matmulReply");
  MatmulReply m;
  m.request_id = r.getRequestId();
  if (r.hasTimings()) {
    const auto t = r.getTimings();
    m.has_timings = true;
    m.timings = {t.getQueueNanos(), t.getUnpackNanos(),    t.getSeedExpansionNanos(),
                 t.getGemmNanos(),  t.getRecombineNanos(), t.getSwitchNanos(),
                 t.getPackNanos()};
  }
  if (r.isError()) {
    m.outcome = read_error(r.getError());
    return m;
  }
  if (!r.isResults()) refuse(make_error(kMalformed, "matmulReply has an unknown outcome"));
  auto results = r.getResults();
  if (results.size() > kMaxProjections) {
    refuse(make_error(kMalformed, "reply has ", results.size(), " results"));
  }
  std::vector<ResultPlanes> out;
  for (auto p : results) {
    ResultPlanes rp;
    rp.projection = read_enum<ProjectionKind>(p.getProjection(), 8, "projection kind");
    rp.rows = p.getRows();
    rp.cols = p.getCols();
    rp.kind = read_enum<PlaneKind>(p.getKind(), 2, "plane kind");
    rp.bits = p.getBits();
    rp.log2_delta = p.getLog2Delta();
    rp.log2_modulus = p.getLog2Modulus();
    rp.c0_blob = p.getC0Blob();
    rp.c1_blob = p.getC1Blob();
    out.push_back(rp);
  }
  m.outcome = std::move(out);
  return m;
}

Heartbeat read(wire::Heartbeat::Reader r) {
  check_version(r.getVersion(), "heartbeat");
  return {read_text(r.getSenderId(), kMaxIdBytes, "sender id"), r.getQueued(), r.getInFlight(),
          r.getCapacity(), r.getTimestampNanos()};
}

ErrorReply read(wire::ErrorReply::Reader r) {
  check_version(r.getVersion(), "errorReply");
  return {r.getRequestId(), read_error(r.getError())};
}

}  // namespace

Header read_envelope(wire::Envelope::Reader env, const Limits& limits) {
  Header h;
  auto blobs = env.getBlobs();
  if (blobs.size() > limits.max_blobs) {
    refuse(make_error(kMalformed, "header announces ", blobs.size(), " blobs (at most ",
                      limits.max_blobs, ")"));
  }
  for (auto b : blobs) h.blobs.push_back(read_blob(b));
  auto body = env.getBody();
  switch (body.which()) {
    case wire::Envelope::Body::MODEL_INFO_REQUEST:
      h.body = read(body.getModelInfoRequest());
      break;
    case wire::Envelope::Body::MODEL_INFO_REPLY:
      h.body = read(body.getModelInfoReply());
      break;
    case wire::Envelope::Body::MATMUL_REQUEST:
      h.body = read(body.getMatmulRequest());
      break;
    case wire::Envelope::Body::MATMUL_REPLY:
      h.body = read(body.getMatmulReply());
      break;
    case wire::Envelope::Body::HEARTBEAT:
      h.body = read(body.getHeartbeat());
      break;
    case wire::Envelope::Body::ERROR_REPLY:
      h.body = read(body.getErrorReply());
      break;
    default:
      refuse(make_error(kMalformed, "unknown message type ", static_cast<unsigned>(body.which())));
  }
  return h;
}

}  // namespace protocol
