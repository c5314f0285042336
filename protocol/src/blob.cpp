#include "protocol/blob.h"

#include <cstring>
#include <memory>

#include "protocol/limits.h"

namespace protocol {

bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}

bool checked_add(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}

bool packed_byte_length(uint64_t count, uint32_t bits, uint64_t* out) {
  // ceil(count * bits / 8) = (count / 8) * bits + ceil((count % 8) * bits / 8), no overflow in
  // the second term since it is at most 7 * 64.
  uint64_t whole;
  if (!checked_mul(count / 8, bits, &whole)) return false;
  const uint64_t rest = ((count % 8) * bits + 7) / 8;
  return checked_add(whole, rest, out);
}

namespace {

// Bits per element of the fixed-width types; 0 for packedUnsigned.
uint32_t fixed_bits(DType dtype) {
  switch (dtype) {
    case DType::kUint8:
    case DType::kInt8:
      return 8;
    case DType::kFloat32:
      return 32;
    case DType::kPackedUnsigned:
      return 0;
  }
  return 0;
}

bool known_dtype(DType dtype) {
  const auto v = static_cast<uint8_t>(dtype);
  return v >= static_cast<uint8_t>(DType::kUint8) &&
         v <= static_cast<uint8_t>(DType::kPackedUnsigned);
}

}  // namespace

Status BlobDesc::check() const {
  if (!known_dtype(dtype)) {
    return make_error(ErrorCode::kMalformedRequest, "unknown blob dtype ",
                      static_cast<unsigned>(dtype));
  }
  const uint32_t want_bits = fixed_bits(dtype);
  if (want_bits != 0 ? bits != want_bits : (bits < 1 || bits > 64)) {
    return make_error(ErrorCode::kMalformedRequest, "blob bit width ", bits,
                      " does not fit its dtype");
  }
  if (shape.empty() || shape.size() > kMaxBlobRank) {
    return make_error(ErrorCode::kMalformedRequest, "blob has ", shape.size(), " dimensions (1 to ",
                      kMaxBlobRank, " allowed)");
  }
  uint64_t product = 1;
  for (const uint64_t d : shape) {
    if (d == 0) return make_error(ErrorCode::kShapeMismatch, "blob has a dimension of size 0");
    if (!checked_mul(product, d, &product)) {
      return make_error(ErrorCode::kShapeMismatch, "blob shape overflows 64 bits");
    }
  }
  if (product != count) {
    return make_error(ErrorCode::kShapeMismatch, "blob count ", count,
                      " is not the product of its shape (", product, ")");
  }
  uint64_t bytes;
  if (!packed_byte_length(count, bits, &bytes)) {
    return make_error(ErrorCode::kShapeMismatch, "blob byte length overflows 64 bits");
  }
  if (bytes != byte_length) {
    return make_error(ErrorCode::kShapeMismatch, "blob byte length ", byte_length, " should be ",
                      bytes, " for its shape and bit width");
  }
  return ok_status();
}

Result<BlobDesc> BlobDesc::make(DType dtype, uint32_t bits, std::vector<uint64_t> shape) {
  BlobDesc d;
  d.dtype = dtype;
  d.bits = bits;
  d.shape = std::move(shape);
  uint64_t count = 1;
  for (const uint64_t dim : d.shape) {
    if (!checked_mul(count, dim, &count)) {
      return make_error(ErrorCode::kShapeMismatch, "blob shape overflows 64 bits");
    }
  }
  d.count = count;
  if (!packed_byte_length(count, bits, &d.byte_length)) {
    return make_error(ErrorCode::kShapeMismatch, "blob byte length overflows 64 bits");
  }
  if (auto s = d.check(); !s) return s.error();
  return d;
}

Result<BlobDesc> BlobDesc::planes(uint64_t blocks, uint64_t rows, uint64_t n, uint32_t bits) {
  return make(DType::kPackedUnsigned, bits, {blocks, rows, n});
}

Result<Blob> Blob::copy_of(BlobDesc desc, std::span<const uint8_t> bytes) {
  if (auto s = desc.check(); !s) return s.error();
  if (bytes.size() != desc.byte_length) {
    return make_error(ErrorCode::kShapeMismatch, "blob data has ", bytes.size(),
                      " bytes, its description says ", desc.byte_length);
  }
  return capture(ErrorCode::kInternal, "cannot allocate a blob: ", [&] {
    return Blob{std::move(desc), zmq::message_t(bytes.data(), bytes.size())};
  });
}

Result<Blob> Blob::adopt(BlobDesc desc, std::vector<uint8_t>&& bytes) {
  if (auto s = desc.check(); !s) return s.error();
  if (bytes.size() != desc.byte_length) {
    return make_error(ErrorCode::kShapeMismatch, "blob data has ", bytes.size(),
                      " bytes, its description says ", desc.byte_length);
  }
  return capture(ErrorCode::kInternal, "cannot wrap a blob: ", [&] {
    auto owner = std::make_unique<std::vector<uint8_t>>(std::move(bytes));
    auto* raw = owner.get();
    zmq::message_t msg(
        raw->data(), raw->size(),
        [](void*, void* hint) { delete static_cast<std::vector<uint8_t>*>(hint); }, raw);
    owner.release();
    return Blob{std::move(desc), std::move(msg)};
  });
}

}  // namespace protocol
