// The worker schema's message structs written from plain values (WorkerSchema::write_body).
#include "core/fields.h"
#include "worker/envelope.h"

namespace protocol {
namespace {

using core::text;
using core::with_version;
using core::write_error;

void write(wire::Envelope::Body::Builder b, const ModelInfoRequest& m) {
  auto w = with_version(b.initModelInfoRequest());
  w.setModelId(text(m.model_id));
}

void write(wire::Envelope::Body::Builder b, const ModelInfoReply& m) {
  auto w = with_version(b.initModelInfoReply());
  if (const auto* e = std::get_if<Error>(&m.outcome)) return write_error(w.initError(), *e);
  const auto& info = std::get<ModelInfo>(m.outcome);
  auto i = w.initInfo();
  i.setModelId(text(info.model_id));
  i.setModelHash(kj::arrayPtr(info.model_hash.data(), info.model_hash.size()));
  i.setLayerCount(info.layer_count);
  auto projections = i.initProjections(info.projections.size());
  for (size_t k = 0; k < info.projections.size(); ++k) {
    const auto& p = info.projections[k];
    auto pb = projections[k];
    pb.setKind(static_cast<wire::ProjectionKind>(p.kind));
    pb.setRows(p.rows);
    pb.setCols(p.cols);
    pb.setScalesBlob(p.scales_blob);
    auto norms = pb.initNorms(p.norms.size());
    for (size_t l = 0; l < p.norms.size(); ++l) {
      norms[l].setLayer(p.norms[l].layer);
      norms[l].setForwardL1(p.norms[l].forward_l1);
      norms[l].setForwardL2Squared(p.norms[l].forward_l2_squared);
      norms[l].setTransposeL1(p.norms[l].transpose_l1);
      norms[l].setTransposeL2Squared(p.norms[l].transpose_l2_squared);
    }
  }
}

void write(wire::Envelope::Body::Builder b, const MatmulRequest& m) {
  auto w = with_version(b.initMatmulRequest());
  w.setRequestId(m.request_id);
  w.setModelId(text(m.model_id));
  w.setLayer(m.layer);
  auto projections = w.initProjections(m.projections.size());
  for (size_t k = 0; k < m.projections.size(); ++k) {
    projections.set(k, static_cast<wire::ProjectionKind>(m.projections[k]));
  }
  w.setTranspose(m.transpose);
  w.setParamsId(m.params_id);
  w.setSeed(kj::arrayPtr(m.seed.data(), m.seed.size()));
  w.setLog2Delta(m.log2_delta);
  w.setRows(m.rows);
  w.setCols(m.cols);
  w.setSwitchModulus(m.switch_modulus);
  w.setInputBlob(m.input_blob);
  w.setStacked(m.stacked);
  w.setRowBegin(m.row_begin);
  w.setRowEnd(m.row_end);
}

void write(wire::Envelope::Body::Builder b, const MatmulReply& m) {
  auto w = with_version(b.initMatmulReply());
  w.setRequestId(m.request_id);
  if (m.has_timings) {
    auto t = w.initTimings();
    t.setQueueNanos(m.timings.queue_ns);
    t.setUnpackNanos(m.timings.unpack_ns);
    t.setSeedExpansionNanos(m.timings.seed_expansion_ns);
    t.setGemmNanos(m.timings.gemm_ns);
    t.setRecombineNanos(m.timings.recombine_ns);
    t.setSwitchNanos(m.timings.switch_ns);
    t.setPackNanos(m.timings.pack_ns);
  }
  if (const auto* e = std::get_if<Error>(&m.outcome)) return write_error(w.initError(), *e);
  const auto& results = std::get<std::vector<ResultPlanes>>(m.outcome);
  auto list = w.initResults(results.size());
  for (size_t k = 0; k < results.size(); ++k) {
    const auto& r = results[k];
    auto rb = list[k];
    rb.setProjection(static_cast<wire::ProjectionKind>(r.projection));
    rb.setRows(r.rows);
    rb.setCols(r.cols);
    rb.setKind(static_cast<wire::PlaneKind>(r.kind));
    rb.setBits(static_cast<uint8_t>(r.bits));
    rb.setLog2Delta(r.log2_delta);
    rb.setLog2Modulus(r.log2_modulus);
    rb.setC0Blob(r.c0_blob);
    rb.setC1Blob(r.c1_blob);
  }
}

void write(wire::Envelope::Body::Builder b, const Heartbeat& m) {
  auto w = with_version(b.initHeartbeat());
  w.setSenderId(text(m.sender_id));
  w.setQueued(m.queued);
  w.setInFlight(m.in_flight);
  w.setCapacity(m.capacity);
  w.setTimestampNanos(m.timestamp_nanos);
}

void write(wire::Envelope::Body::Builder b, const ErrorReply& m) {
  auto w = with_version(b.initErrorReply());
  w.setRequestId(m.request_id);
  write_error(w.initError(), m.error);
}

}  // namespace

void WorkerSchema::write_body(Envelope::Body::Builder b, const Body& body) {
  std::visit([&b](const auto& m) { write(b, m); }, body);
}

}  // namespace protocol
