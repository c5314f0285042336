#include "fhe/serialize.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "base/atomic_file.h"
#include "base/error.h"
#include "fhe/encryptor.h"
#include "fhe/modswitch.h"

namespace fhe {

namespace {

uint32_t coefficient_bits(const Params& p, const CiphertextMatrix& ct) {
  return ct.kind == CtKind::kSwitched ? ct.log2_modulus : p.log2_q;
}

constexpr char kMagic[8] = {'F', 'L', 'C', 'T', '\r', '\n', 0x1a, '\n'};
constexpr uint32_t kVersion = 1;

template <typename T>
void put(uint8_t* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i)
    p[i] = static_cast<uint8_t>(static_cast<uint64_t>(v) >> (8 * i));
}

template <typename T>
T get(const uint8_t* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= uint64_t{p[i]} << (8 * i);
  return static_cast<T>(v);
}

}  // namespace

namespace {

// Serial packing of values [begin, end) into the little-endian bit stream at `out`; `begin` is a
// multiple of 8, so the range starts on a byte boundary (8 values of `bits` bits fill `bits`
// bytes exactly). Flushes a partial last byte only when `end` is the stream's end.
void pack_range(const uint64_t* v, size_t begin, size_t end, uint32_t bits, uint8_t* out) {
  if (bits % 8 == 0) {
    const uint32_t bytes = bits / 8;
    for (size_t i = begin; i < end; ++i) {
      uint64_t x = v[i];
      for (uint32_t b = 0; b < bytes; ++b) {
        out[i * bytes + b] = static_cast<uint8_t>(x);
        x >>= 8;
      }
    }
    return;
  }
  // Value i occupies bits [i * bits, (i + 1) * bits). After each flush fewer than 8 bits wait in
  // acc, so bits <= 56 always fit.
  uint64_t acc = 0;
  uint32_t filled = 0;
  size_t o = begin / 8 * bits;
  for (size_t i = begin; i < end; ++i) {
    acc |= v[i] << filled;
    filled += bits;
    while (filled >= 8) {
      out[o++] = static_cast<uint8_t>(acc);
      acc >>= 8;
      filled -= 8;
    }
  }
  if (filled > 0) out[o] = static_cast<uint8_t>(acc);
}

void unpack_range(const uint8_t* in, size_t begin, size_t end, uint32_t bits, uint64_t* v) {
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  // The stream holds ceil(end * bits / 8) bytes: a coefficient whose 8 bytes from its first
  // byte lie inside is read with one unaligned load, the last few byte by byte.
  const size_t stream = (end * bits + 7) / 8;
  size_t i = begin;
  for (; i < end; ++i) {
    const size_t bit = i * bits, byte = bit / 8;
    if (byte + 8 > stream) break;
    uint64_t x;
    std::memcpy(&x, in + byte, sizeof x);  // little-endian, as the stream
    v[i] = (x >> (bit % 8)) & mask;
  }
  for (; i < end; ++i) {
    const size_t bit = i * bits, byte = bit / 8;
    const uint32_t shift = bit % 8;
    // bits + shift <= 56 + 7 < 64: at most 8 bytes are needed.
    uint64_t x = 0;
    const size_t need = (shift + bits + 7) / 8;
    for (size_t b = need; b-- > 0;) x = (x << 8) | in[byte + b];
    v[i] = (x >> shift) & mask;
  }
}

// Below this many values one thread packs or unpacks: a small plane is not worth the fork.
constexpr size_t kParallelValues = size_t{1} << 16;

// Runs f(begin, end) over [0, count) in ranges whose starts are multiples of 8, on every
// OpenMP thread for a large count: each range is byte-aligned in the stream, so the ranges write
// disjoint bytes and the result is the serial one byte for byte.
template <typename F>
void for_aligned_ranges(size_t count, F&& f) {
  const int threads = count < kParallelValues ? 1 : omp_get_max_threads();
  if (threads <= 1) return f(size_t{0}, count);
  const size_t per = (count / static_cast<size_t>(threads) + 7) / 8 * 8;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int t = 0; t < threads; ++t) {
    const size_t begin = std::min(count, static_cast<size_t>(t) * per);
    const size_t end = std::min(count, begin + per);
    if (begin < end) f(begin, end);
  }
}

}  // namespace

void pack_coefficients(const uint64_t* v, size_t count, uint32_t bits, uint8_t* out) {
  for_aligned_ranges(count, [&](size_t b, size_t e) { pack_range(v, b, e, bits, out); });
}

void unpack_coefficients(const uint8_t* in, size_t count, uint32_t bits, uint64_t* v) {
  for_aligned_ranges(count, [&](size_t b, size_t e) { unpack_range(in, b, e, bits, v); });
}

void unpack_coefficients_here(const uint8_t* in, size_t count, uint32_t bits, uint64_t* v) {
  unpack_range(in, 0, count, bits, v);
}

std::vector<uint8_t> serialize(const Context& ctx, const CiphertextMatrix& packed_or_not) {
  CiphertextMatrix held;  // the unpacked planes of a packed product
  if (packed_or_not.is_packed()) held = unpacked(ctx, packed_or_not);
  const CiphertextMatrix& ct = packed_or_not.is_packed() ? held : packed_or_not;
  validate(ctx, ct);
  const Params& p = ctx.params();
  const uint32_t bits = coefficient_bits(p, ct);
  const size_t values = ct.c0.size() + ct.c1.size();
  const uint64_t payload = (values * bits + 7) / 8;
  std::vector<uint8_t> out(kCtHeaderBytes + payload);
  uint8_t* h = out.data();
  std::memcpy(h, kMagic, 8);
  put<uint32_t>(h + 8, kVersion);
  put<uint32_t>(h + 12, p.id);
  put<uint32_t>(h + 16, static_cast<uint32_t>(p.n));
  put<uint32_t>(h + 20, static_cast<uint32_t>(ct.kind));
  put<uint64_t>(h + 24, p.q);
  put<uint64_t>(h + 32, ct.rows);
  put<uint64_t>(h + 40, ct.cols);
  put<uint32_t>(h + 48, ct.log2_delta);
  put<uint32_t>(h + 52, bits);
  std::memcpy(h + 56, ct.seed.data(), 32);
  put<uint64_t>(h + 88, payload);
  uint8_t* d = h + kCtHeaderBytes;
  // c0 and c1 form one stream: c1 starts right after the last bit of c0.
  if (ct.c1.empty()) {
    pack_coefficients(ct.c0.data(), ct.c0.size(), bits, d);
  } else {
    CoeffVector all(values);
    std::copy(ct.c0.begin(), ct.c0.end(), all.begin());
    std::copy(ct.c1.begin(), ct.c1.end(), all.begin() + static_cast<ptrdiff_t>(ct.c0.size()));
    pack_coefficients(all.data(), values, bits, d);
  }
  return out;
}

CiphertextMatrix deserialize(const Context& ctx, const uint8_t* data, size_t size) {
  if (size < kCtHeaderBytes) throw FheError("not a ciphertext: shorter than its 96-byte header");
  if (std::memcmp(data, kMagic, 8) != 0) throw FheError("not a ciphertext file (bad magic)");
  if (get<uint32_t>(data + 8) != kVersion) {
    throw FheError("unsupported ciphertext format version " + std::to_string(get<uint32_t>(data + 8)));
  }
  const Params& p = Params::by_id(get<uint32_t>(data + 12));
  if (p.id != ctx.params().id)
    throw FheError(std::string("ciphertext is for parameter set ") + p.name);
  if (get<uint32_t>(data + 16) != p.n || get<uint64_t>(data + 24) != p.q) {
    throw FheError("ciphertext header does not match its parameter set (n or q)");
  }
  CiphertextMatrix ct;
  ct.params_id = p.id;
  const uint32_t kind = get<uint32_t>(data + 20);
  if (kind < 1 || kind > 3) throw FheError("unknown ciphertext kind " + std::to_string(kind));
  ct.kind = static_cast<CtKind>(kind);
  const uint32_t bits = get<uint32_t>(data + 52);
  if (ct.kind == CtKind::kSwitched) {
    if (bits < kMinSwitchBits || bits > kMaxSwitchBits) {
      throw FheError("switched ciphertext with " + std::to_string(bits) + "-bit coefficients");
    }
    ct.log2_modulus = bits;
  } else if (bits != p.log2_q) {
    throw FheError("ciphertext coefficient size " + std::to_string(bits) + " bits, expected " +
                std::to_string(p.log2_q));
  }
  ct.rows = get<uint64_t>(data + 32);
  ct.cols = get<uint64_t>(data + 40);
  if (ct.rows == 0 || ct.cols == 0 || ct.rows > kMaxCtRows || ct.cols > kMaxCtCols) {
    throw FheError("ciphertext shape " + std::to_string(ct.rows) + " x " + std::to_string(ct.cols) +
                " is empty or too large");
  }
  ct.log2_delta = get<uint32_t>(data + 48);
  std::memcpy(ct.seed.data(), data + 56, 32);
  const uint64_t per = ct.blocks(p.n) * ct.rows * p.n;
  const uint64_t values = per * (ct.kind == CtKind::kFresh ? 1 : 2);
  const uint64_t payload = get<uint64_t>(data + 88), expected = (values * bits + 7) / 8;
  if (payload != expected) {
    throw FheError("ciphertext payload length " + std::to_string(payload) +
                " does not match its shape (expected " + std::to_string(expected) + ")");
  }
  if (size - kCtHeaderBytes != payload) {
    throw FheError(size - kCtHeaderBytes < payload ? "ciphertext is truncated"
                                                : "ciphertext has trailing bytes");
  }
  const uint8_t* d = data + kCtHeaderBytes;
  if (ct.kind == CtKind::kFresh) {
    ct.c0.resize(per);
    unpack_coefficients(d, per, bits, ct.c0.data());
  } else {
    CoeffVector all(values);
    unpack_coefficients(d, values, bits, all.data());
    ct.c0.assign(all.begin(), all.begin() + static_cast<ptrdiff_t>(per));
    ct.c1.assign(all.begin() + static_cast<ptrdiff_t>(per), all.end());
  }
  validate(ctx, ct);
  return ct;
}

void save_ciphertext(const Context& ctx, const CiphertextMatrix& ct, const std::string& path) {
  const auto bytes = serialize(ctx, ct);
  try {
    base::write_file_atomic(path, bytes);
  } catch (const base::IoError& e) {
    throw FheError(std::string("cannot write ciphertext: ") + e.what());
  }
}

CiphertextMatrix load_ciphertext(const Context& ctx, const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw FheError("cannot open " + path);
  const auto size = static_cast<size_t>(in.tellg());
  in.seekg(0);
  // Read the header first so that a lying header cannot make us allocate a huge buffer.
  if (size < kCtHeaderBytes) throw FheError(path + ": not a ciphertext (shorter than its header)");
  std::vector<uint8_t> buf(size);
  in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(size));
  if (!in) throw FheError("cannot read " + path);
  try {
    return deserialize(ctx, buf.data(), buf.size());
  } catch (const FheError& e) {
    throw FheError(path + ": " + e.what());
  }
}

}  // namespace fhe
