// Blobs: the raw frames that follow a message's header frame (ciphertext planes, weight scales).
//
// A BlobDesc is what the header says about a frame: element type, bits per element, shape, the
// element count (the product of the shape) and the exact byte length,
// ceil(count * bits / 8). check() verifies that these agree with each other using
// overflow-checked arithmetic, so an absurd shape is refused instead of wrapping around.
#pragma once

#include <zmq.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "protocol/result.h"

namespace protocol {

enum class DType : uint8_t {
  kUint8 = 1,
  kInt8 = 2,
  kFloat32 = 3,
  kPackedUnsigned = 4,  // `bits` (1..64) per element, one little-endian bit stream
};

struct BlobDesc {
  DType dtype = DType::kUint8;
  uint32_t bits = 8;
  std::vector<uint64_t> shape;
  uint64_t count = 0;
  uint64_t byte_length = 0;

  // A description whose count and byte length follow from the shape. Returns an error for a
  // shape or bit width check() would refuse.
  static Result<BlobDesc> make(DType dtype, uint32_t bits, std::vector<uint64_t> shape);
  // Packed ciphertext coefficients: shape [blocks, rows, n], `bits` bits each.
  static Result<BlobDesc> planes(uint64_t blocks, uint64_t rows, uint64_t n, uint32_t bits);

  // The description is self-consistent: a known dtype with its bit width, 1..kMaxBlobRank
  // dimensions, none zero, count == product(shape), byte_length == ceil(count * bits / 8), and
  // no step overflows 64 bits.
  Status check() const;

  bool operator==(const BlobDesc&) const = default;
};

// Overflow-checked arithmetic on sizes: false when the result does not fit in 64 bits.
bool checked_mul(uint64_t a, uint64_t b, uint64_t* out);
bool checked_add(uint64_t a, uint64_t b, uint64_t* out);
// ceil(count * bits / 8) without overflow; false when it does not fit.
bool packed_byte_length(uint64_t count, uint32_t bits, uint64_t* out);

// A blob with its bytes, held in a ZeroMQ message: received frames are kept without a copy, and
// outgoing data can be handed over without one (adopt).
struct Blob {
  BlobDesc desc;
  zmq::message_t data;

  std::span<const uint8_t> bytes() const {
    return {static_cast<const uint8_t*>(data.data()), data.size()};
  }

  // Copies `bytes`. Refuses a length that disagrees with desc.
  static Result<Blob> copy_of(BlobDesc desc, std::span<const uint8_t> bytes);
  // Takes ownership of `bytes` without copying them. Refuses a length that disagrees with desc.
  static Result<Blob> adopt(BlobDesc desc, std::vector<uint8_t>&& bytes);
};

}  // namespace protocol
