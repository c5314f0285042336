// The ciphertext file format (documented in docs/file-formats.md), little-endian throughout:
//
//   offset size  field
//        0    8  magic "FLCT\r\n\x1a\n"
//        8    4  format version (1)
//       12    4  parameter set id (1 = P48)
//       16    4  ring degree n (2048)
//       20    4  kind: 1 = fresh (c0 + seed), 2 = product (c0 + c1 in the NTT domain),
//                3 = switched product (c0 + c1 in the coefficient domain modulo 2^bits)
//       24    8  modulus q
//       32    8  rows (features)
//       40    8  cols (tokens T)
//       48    4  log2 of the scale delta
//       52    4  bits per packed coefficient (48, or the switched modulus' bits)
//       56   32  seed of the c1 = a rows (fresh ciphertexts; carried along by products)
//       88    8  payload bytes that follow
//       96       c0: blocks * rows * n coefficients, block-major (see ciphertext.h); then, for
//                products, c1 the same way; all as one little-endian bit stream of `bits` bits
//                per coefficient (for 48 bits simply 6 little-endian bytes each).
//
// Readers check every field, the exact payload length and the range of every coefficient before
// returning, and throw FheError with one readable line otherwise.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fhe/ciphertext.h"
#include "fhe/context.h"

namespace fhe {

constexpr size_t kCtHeaderBytes = 96;
constexpr uint64_t kMaxCtRows = uint64_t{1} << 20;
constexpr uint64_t kMaxCtCols = uint64_t{1} << 26;

std::vector<uint8_t> serialize(const Context& ctx, const CiphertextMatrix& ct);
CiphertextMatrix deserialize(const Context& ctx, const uint8_t* data, size_t size);

// Writes serialize(ctx, ct) to `path` atomically (base::write_file_atomic); throws FheError.
void save_ciphertext(const Context& ctx, const CiphertextMatrix& ct, const std::string& path);
CiphertextMatrix load_ciphertext(const Context& ctx, const std::string& path);

// Packs values below 2^bits (bits <= 56) into a little-endian bit stream of
// ceil(count * bits / 8) bytes, and back.
void pack_coefficients(const uint64_t* v, size_t count, uint32_t bits, uint8_t* out);
void unpack_coefficients(const uint8_t* in, size_t count, uint32_t bits, uint64_t* v);
// unpack_coefficients on the calling thread alone (for callers that already run one task per
// thread, such as the decryptor reading a packed product row by row).
void unpack_coefficients_here(const uint8_t* in, size_t count, uint32_t bits, uint64_t* v);

}  // namespace fhe
