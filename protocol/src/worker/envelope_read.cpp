// The worker schema's message structs read into plain values (WorkerSchema::read_body).
#include "core/fields.h"
#include "worker/envelope.h"

namespace protocol {
namespace {

using core::check_version;
using core::read_enum;
using core::read_error;
using core::read_fixed_data;
using core::read_text;
using core::refuse;

constexpr ErrorCode kMalformed = ErrorCode::kMalformedRequest;

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

WorkerSchema::Body WorkerSchema::read_body(Envelope::Body::Reader body) {
  switch (body.which()) {
    case Envelope::Body::MODEL_INFO_REQUEST:
      return read(body.getModelInfoRequest());
    case Envelope::Body::MODEL_INFO_REPLY:
      return read(body.getModelInfoReply());
    case Envelope::Body::MATMUL_REQUEST:
      return read(body.getMatmulRequest());
    case Envelope::Body::MATMUL_REPLY:
      return read(body.getMatmulReply());
    case Envelope::Body::HEARTBEAT:
      return read(body.getHeartbeat());
    case Envelope::Body::ERROR_REPLY:
      return read(body.getErrorReply());
  }
  refuse(make_error(kMalformed, "unknown message type ", static_cast<unsigned>(body.which())));
}

}  // namespace protocol
