// Ciphertext matrices on the wire: coefficient planes as packedUnsigned blobs of shape
// [blocks, rows, n] (block-major, as fhe/ciphertext.h lays them out), and the two ends of a
// matmul call built from / read into fhe::CiphertextMatrix. The worker uses the plane helpers;
// clients (tests, the participant's pool) can use the request/reply helpers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fhe/ciphertext.h"
#include "fhe/context.h"
#include "protocol/messages.h"
#include "protocol/result.h"

namespace fhe_worker {

// Packs rows x cols worth of planes (blocks * rows * n coefficients, each below 2^bits) as a
// blob. kInvalidArgument when the size does not match.
protocol::Result<protocol::Blob> pack_planes(const fhe::CoeffVector& coeffs, uint64_t rows,
                                             uint64_t cols, size_t n, uint32_t bits);

// Unpacks a blob after checking it is packedUnsigned [ceil(cols / n), rows, n] with `bits` bits
// (kShapeMismatch otherwise). Coefficient ranges are the caller's to check.
protocol::Result<fhe::CoeffVector> unpack_planes(const protocol::Blob& blob, uint64_t rows,
                                                 uint64_t cols, size_t n, uint32_t bits);

// What a client asks of a worker, besides the ciphertext.
struct MatmulCall {
  uint64_t request_id = 0;
  std::string model_id;
  uint32_t layer = 0;
  std::vector<protocol::ProjectionKind> projections;
  bool transpose = false;
  bool switch_modulus = false;
  bool stacked = false;  // transposed, the rows the projections' d_out stacked: one summed result
};

// The MatmulRequest of a fresh ciphertext: its c0 plane (log2 q bits per coefficient), seed,
// parameter set and scale.
protocol::Result<protocol::Message> make_matmul_request(const fhe::Context& ctx,
                                                        const MatmulCall& call,
                                                        const fhe::CiphertextMatrix& fresh);

// The product ciphertexts of a MatmulReply, in the order of its results (kProduct or
// kSwitched). The reply's error, or kMalformedRequest for a reply that does not fit ctx, as an
// WorkerError. `seed` is copied into every product (for bookkeeping; decryption does not use it).
protocol::Result<std::vector<fhe::CiphertextMatrix>> read_matmul_reply(
    const fhe::Context& ctx, const protocol::Message& reply, const fhe::Seed& seed = {});

}  // namespace fhe_worker
