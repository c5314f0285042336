// Ciphertext planes <-> blobs, and matmul requests/replies <-> ciphertext matrices.
#include "fhe_worker/ciphertext_wire.h"

#include <utility>

#include "fhe/serialize.h"

namespace fhe_worker {

using protocol::ErrorCode;
using protocol::make_error;

protocol::Result<protocol::Blob> pack_planes(const fhe::CoeffVector& coeffs, uint64_t rows,
                                             uint64_t cols, size_t n, uint32_t bits) {
  if (n == 0 || bits == 0 || bits > 56) {
    return make_error(ErrorCode::kInvalidArgument, "cannot pack ", bits, "-bit planes");
  }
  const uint64_t blocks = fhe::CiphertextMatrix::blocks_for(cols, n);
  auto desc = protocol::BlobDesc::planes(blocks, rows, n, bits);
  if (!desc) return desc.error();
  if (coeffs.size() != desc.value().count) {
    return make_error(ErrorCode::kInvalidArgument, "planes hold ", coeffs.size(),
                      " coefficients, expected ", desc.value().count);
  }
  std::vector<uint8_t> bytes(desc.value().byte_length);
  fhe::pack_coefficients(coeffs.data(), coeffs.size(), bits, bytes.data());
  return protocol::Blob::adopt(std::move(desc).value(), std::move(bytes));
}

protocol::Result<fhe::CoeffVector> unpack_planes(const protocol::Blob& blob, uint64_t rows,
                                                 uint64_t cols, size_t n, uint32_t bits) {
  const protocol::BlobDesc& d = blob.desc;
  const uint64_t blocks = fhe::CiphertextMatrix::blocks_for(cols, n);
  if (d.dtype != protocol::DType::kPackedUnsigned || d.bits != bits || bits > 56 ||
      d.shape != std::vector<uint64_t>{blocks, rows, n}) {
    return make_error(ErrorCode::kShapeMismatch, "planes must be ", bits,
                      "-bit packed coefficients of shape [", blocks, ", ", rows, ", ", n, "]");
  }
  if (blob.bytes().size() != d.byte_length) {
    return make_error(ErrorCode::kShapeMismatch, "planes frame has ", blob.bytes().size(),
                      " bytes, expected ", d.byte_length);
  }
  fhe::CoeffVector v(d.count);
  fhe::unpack_coefficients(blob.bytes().data(), v.size(), bits, v.data());
  return v;
}

protocol::Result<protocol::Message> make_matmul_request(const fhe::Context& ctx,
                                                        const MatmulCall& call,
                                                        const fhe::CiphertextMatrix& fresh) {
  if (fresh.kind != fhe::CtKind::kFresh) {
    return make_error(ErrorCode::kInvalidArgument, "only a fresh ciphertext can be sent");
  }
  auto blob = pack_planes(fresh.c0, fresh.rows, fresh.cols, ctx.n(), ctx.params().log2_q);
  if (!blob) return blob.error();
  protocol::MatmulRequest r;
  r.request_id = call.request_id;
  r.model_id = call.model_id;
  r.layer = call.layer;
  r.projections = call.projections;
  r.transpose = call.transpose;
  r.params_id = fresh.params_id;
  std::copy(fresh.seed.begin(), fresh.seed.end(), r.seed.begin());
  r.log2_delta = fresh.log2_delta;
  r.rows = fresh.rows;
  r.cols = fresh.cols;
  r.switch_modulus = call.switch_modulus;
  r.stacked = call.stacked;
  r.input_blob = 0;
  protocol::Message m;
  m.body = std::move(r);
  m.blobs.push_back(std::move(blob).value());
  return m;
}

protocol::Result<std::vector<fhe::CiphertextMatrix>> read_matmul_reply(
    const fhe::Context& ctx, const protocol::Message& reply, const fhe::Seed& seed) {
  const auto* m = std::get_if<protocol::MatmulReply>(&reply.body);
  if (m == nullptr) {
    if (const auto* e = std::get_if<protocol::ErrorReply>(&reply.body)) return e->error;
    return make_error(ErrorCode::kMalformedRequest, "expected a matmulReply, got ",
                      protocol::body_name(reply.body));
  }
  if (const auto* e = std::get_if<protocol::Error>(&m->outcome)) return *e;
  std::vector<fhe::CiphertextMatrix> out;
  for (const protocol::ResultPlanes& r :
       std::get<std::vector<protocol::ResultPlanes>>(m->outcome)) {
    if (r.c0_blob >= reply.blobs.size() || r.c1_blob >= reply.blobs.size()) {
      return make_error(ErrorCode::kMalformedRequest, "reply refers to a missing blob");
    }
    const bool switched = r.kind == protocol::PlaneKind::kSwitched;
    if (!switched && r.bits != ctx.params().log2_q) {
      return make_error(ErrorCode::kMalformedRequest, "product planes of ", r.bits, " bits");
    }
    fhe::CiphertextMatrix ct;
    ct.params_id = ctx.params().id;
    ct.kind = switched ? fhe::CtKind::kSwitched : fhe::CtKind::kProduct;
    ct.rows = r.rows;
    ct.cols = r.cols;
    ct.log2_delta = r.log2_delta;
    ct.log2_modulus = switched ? r.log2_modulus : 0;
    ct.seed = seed;
    auto c0 = unpack_planes(reply.blobs[r.c0_blob], r.rows, r.cols, ctx.n(), r.bits);
    if (!c0) return c0.error();
    auto c1 = unpack_planes(reply.blobs[r.c1_blob], r.rows, r.cols, ctx.n(), r.bits);
    if (!c1) return c1.error();
    ct.c0 = std::move(c0).value();
    ct.c1 = std::move(c1).value();
    out.push_back(std::move(ct));
  }
  return out;
}

}  // namespace fhe_worker
