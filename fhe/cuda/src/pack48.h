// Host side of the 48-bit transfer format (kernels_common.h: coefficient k in bytes 6k .. 6k+5,
// little-endian): bulk packing of C0 into the pinned upload buffer and unpacking of the packed
// product from the pinned download buffer. Single-threaded; callers split large arrays among
// threads (any split at coefficient boundaries gives the same bytes).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels_common.h"

namespace fhe::cuda_detail {

static_assert(std::endian::native == std::endian::little,
              "the 48-bit packing assumes a little-endian host");

// Packs src[0 .. count) into dst (6 * count bytes) and returns false when a value is >= bound
// (bound <= 2^48; the packed bytes of such a value are its low 48 bits).
inline bool pack48(const uint64_t* src, size_t count, uint64_t bound, uint8_t* dst) {
  uint64_t bad = 0;
  size_t k = 0;
  // Whole 8-byte stores, each overwritten in its top two bytes by the next one.
  for (; k + 1 < count; ++k) {
    const uint64_t v = src[k];
    bad |= v >= bound;
    std::memcpy(dst + kPackedBytes * k, &v, sizeof v);
  }
  for (; k < count; ++k) {
    bad |= src[k] >= bound;
    store48(src[k], dst + kPackedBytes * k);
  }
  return bad == 0;
}

// Unpacks count coefficients of src (6 * count bytes) into dst.
inline void unpack48(const uint8_t* src, size_t count, uint64_t* dst) {
  size_t k = 0;
  // Whole 8-byte loads, masked; the last one would read past the end.
  for (; k + 1 < count; ++k) {
    uint64_t v;
    std::memcpy(&v, src + kPackedBytes * k, sizeof v);
    dst[k] = v & kMask48;
  }
  for (; k < count; ++k) dst[k] = load48(src + kPackedBytes * k);
}

}  // namespace fhe::cuda_detail
