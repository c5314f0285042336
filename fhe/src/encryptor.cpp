#include "fhe/encryptor.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include <string>

#include "fhe/modarith.h"
#include "fhe/modswitch.h"
#include "fhe/prng.h"
#include "fhe/serialize.h"
#include "simd_ops.h"

namespace fhe {

namespace {

// The vectorised kernels run exactly when the NTT runs its AVX-512 IFMA path (same CPU feature).
bool use_simd(const Context& ctx) {
  return ctx.ntt().path() == NttPath::kAvx512Ifma;
}

// out <- INTT(a_hat * s_hat): the coefficients of a*s (out may equal a_hat).
void times_secret(const SecretKey& key, const uint64_t* a, uint64_t* out) {
  const Context& ctx = key.context();
  const size_t n = ctx.n();
  const uint64_t q = ctx.q();
  if (use_simd(ctx)) {
    detail::mul_pointwise_ifma(a, key.ntt(), key.ntt_shoup52(), out, n, q);
  } else {
    const uint64_t* s = key.ntt();
    const uint64_t* sp = key.ntt_shoup();
    for (size_t t = 0; t < n; ++t) out[t] = mul_shoup(a[t], s[t], sp[t], q);
  }
  ctx.ntt().inverse(out);
}

// The modulus every coefficient of ct's planes lies below.
uint64_t plane_modulus(const Context& ctx, const CiphertextMatrix& ct) {
  return ct.kind == CtKind::kSwitched ? uint64_t{1} << ct.log2_modulus : ctx.q();
}

// Reads row r (block-major: block r / rows, row r % rows) of a product's c0 and c1: pointers
// into its planes, or, for packed planes, unpacked into this reader's buffers and checked
// against the modulus.
class RowReader {
 public:
  RowReader(const Context& ctx, const CiphertextMatrix& ct)
      : ct_(ct), n_(ctx.n()), modulus_(plane_modulus(ctx, ct)) {
    if (ct.is_packed()) {
      c0_.resize(n_);
      c1_.resize(n_);
    }
  }
  // False when a packed coefficient is not below the modulus.
  bool read(size_t r, const uint64_t*& c0, const uint64_t*& c1) {
    if (!ct_.is_packed()) {
      c0 = ct_.c0.data() + r * n_;
      c1 = ct_.c1.data() + r * n_;
      return true;
    }
    const size_t rows = ct_.rows, b = r / rows, i = r % rows;
    while (i < segment().row_begin) --seg_;  // rows are read in increasing order per thread,
    while (i >= segment().row_begin + segment().rows) ++seg_;  // mostly within one segment
    const PackedRows& s = segment();
    const size_t row_bytes = n_ * ct_.packed_bits / 8;  // n * bits is a multiple of 8
    const size_t offset = (b * s.rows + (i - s.row_begin)) * row_bytes;
    unpack_coefficients_here(s.c0 + offset, n_, ct_.packed_bits, c0_.data());
    unpack_coefficients_here(s.c1 + offset, n_, ct_.packed_bits, c1_.data());
    uint64_t bad = 0;
    for (size_t t = 0; t < n_; ++t) bad |= (c0_[t] >= modulus_) | (c1_[t] >= modulus_);
    c0 = c0_.data();
    c1 = c1_.data();
    return bad == 0;
  }

 private:
  const PackedRows& segment() const { return ct_.packed[seg_]; }

  const CiphertextMatrix& ct_;
  size_t n_;
  uint64_t modulus_;
  size_t seg_ = 0;
  std::vector<uint64_t> c0_, c1_;
};

// The layout of packed planes: segments in order covering every row, each of the exact length.
void validate_packed(const Context& ctx, const CiphertextMatrix& ct, bool check_range) {
  if (ct.kind == CtKind::kFresh) throw FheError("a fresh ciphertext cannot have packed planes");
  if (!ct.c0.empty() || !ct.c1.empty()) throw FheError("a packed ciphertext has unpacked planes too");
  const uint32_t bits = ct.kind == CtKind::kSwitched ? ct.log2_modulus : ctx.params().log2_q;
  if (ct.packed_bits != bits) {
    throw FheError("packed planes of " + std::to_string(ct.packed_bits) + " bits, expected " +
                std::to_string(bits));
  }
  const size_t n = ctx.n();
  uint64_t next = 0;
  for (const PackedRows& s : ct.packed) {
    const uint64_t bytes = ct.blocks(n) * s.rows * n * bits / 8;
    if (s.row_begin != next || s.rows == 0 || s.c0 == nullptr || s.c1 == nullptr ||
        s.c0_bytes != bytes || s.c1_bytes != bytes) {
      throw FheError("packed planes do not cover the ciphertext's rows in order");
    }
    next += s.rows;
  }
  if (next != ct.rows) throw FheError("packed planes do not cover the ciphertext's rows in order");
  if (!check_range) return;
  RowReader reader(ctx, ct);
  const uint64_t* c0 = nullptr;
  const uint64_t* c1 = nullptr;
  for (size_t r = 0; r < ct.blocks(n) * ct.rows; ++r) {
    if (!reader.read(r, c0, c1))
      throw FheError("ciphertext coefficient out of range (>= its modulus)");
  }
}

}  // namespace

CiphertextMatrix unpacked(const Context& ctx, const CiphertextMatrix& ct) {
  validate(ctx, ct, /*check_range=*/false);
  if (!ct.is_packed()) return ct;
  CiphertextMatrix out = ct;
  out.packed.clear();
  out.packed_bits = 0;
  const size_t n = ctx.n(), total = ct.blocks(n) * ct.rows;
  out.c0.resize(total * n);
  out.c1.resize(total * n);
  RowReader reader(ctx, ct);
  for (size_t r = 0; r < total; ++r) {
    const uint64_t* c0 = nullptr;
    const uint64_t* c1 = nullptr;
    if (!reader.read(r, c0, c1))
      throw FheError("ciphertext coefficient out of range (>= its modulus)");
    std::copy_n(c0, n, out.c0.data() + r * n);
    std::copy_n(c1, n, out.c1.data() + r * n);
  }
  return out;
}

void validate(const Context& ctx, const CiphertextMatrix& ct, bool check_range) {
  if (ct.params_id != ctx.params().id) {
    throw FheError("ciphertext uses parameter set " + std::to_string(ct.params_id) + ", expected " +
                std::to_string(ctx.params().id));
  }
  if (ct.kind != CtKind::kFresh && ct.kind != CtKind::kProduct && ct.kind != CtKind::kSwitched) {
    throw FheError("unknown ciphertext kind");
  }
  const bool switched = ct.kind == CtKind::kSwitched;
  if (switched ? (ct.log2_modulus < kMinSwitchBits || ct.log2_modulus > kMaxSwitchBits)
               : ct.log2_modulus != 0) {
    throw FheError("ciphertext reply modulus 2^" + std::to_string(ct.log2_modulus) +
                " is out of range");
  }
  if (ct.rows == 0 || ct.cols == 0) throw FheError("empty ciphertext matrix");
  if (ct.log2_delta == 0 || ct.log2_delta >= ctx.params().log2_q) {
    throw FheError("ciphertext scale 2^" + std::to_string(ct.log2_delta) + " is out of range");
  }
  const size_t n = ctx.n();
  const uint64_t want = ct.blocks(n) * ct.rows * n;
  if (ct.is_packed()) {
    validate_packed(ctx, ct, check_range);
    return;
  }
  if (ct.c0.size() != want) throw FheError("ciphertext c0 has the wrong size for its shape");
  if (ct.kind != CtKind::kFresh ? ct.c1.size() != want : !ct.c1.empty()) {
    throw FheError("ciphertext c1 has the wrong size for its shape");
  }
  if (!check_range) return;
  const uint64_t q = switched ? uint64_t{1} << ct.log2_modulus : ctx.q();
  uint64_t bad = 0;
  for (uint64_t v : ct.c0) bad |= (v >= q);
  for (uint64_t v : ct.c1) bad |= (v >= q);
  if (bad) throw FheError("ciphertext coefficient out of range (>= its modulus)");
}

Encryptor::Encryptor(const SecretKey& key) : key_(key) {}

CiphertextMatrix Encryptor::encrypt(const int8_t* x, size_t rows, size_t cols,
                                    const WeightBounds& bounds, uint64_t outputs) const {
  return encrypt(x, rows, cols, choose_log2_delta(key_.context().params(), bounds, outputs));
}

CiphertextMatrix Encryptor::encrypt(const int8_t* x, size_t rows, size_t cols,
                                    uint32_t log2_delta) const {
  CiphertextMatrix ct;
  encrypt_into(x, rows, cols, log2_delta, ct);
  return ct;
}

void Encryptor::encrypt_into(const int8_t* x, size_t rows, size_t cols, uint32_t log2_delta,
                             CiphertextMatrix& ct) const {
  const Context& ctx = key_.context();
  const Params& p = ctx.params();
  const size_t n = p.n;
  const uint64_t q = p.q;
  if (rows == 0 || cols == 0) throw FheError("cannot encrypt an empty matrix");
  if (log2_delta == 0 || log2_delta + 8 >= p.log2_q) {
    throw FheError("scale 2^" + std::to_string(log2_delta) + " is out of range for " + p.name);
  }
  ct.params_id = p.id;
  ct.kind = CtKind::kFresh;
  ct.rows = rows;
  ct.cols = cols;
  ct.log2_delta = log2_delta;
  ct.seed = random_seed();
  const size_t blocks = ct.blocks(n);
  ct.c0.resize(blocks * rows * n);
  ct.c1.clear();
  const int64_t sq = static_cast<int64_t>(q);
  const int64_t total = static_cast<int64_t>(blocks * rows);
  FheError* failure = nullptr;
  const bool simd = use_simd(ctx);
#pragma omp parallel
  {
    try {
      SeedExpander expander(ct.seed, n, q);
      Csprng rng;
      std::vector<uint64_t> as(n);
      std::vector<int64_t> e(n);
#pragma omp for schedule(static)
      for (int64_t r = 0; r < total; ++r) {
        const size_t b = static_cast<size_t>(r) / rows, j = static_cast<size_t>(r) % rows;
        expander.expand_row(static_cast<uint64_t>(r), as.data());
        times_secret(key_, as.data(), as.data());
        rng.centered_binomial(e.data(), n, p.eta);
        uint64_t* out = ct.c0.data() + static_cast<size_t>(r) * n;
        const int8_t* xr = x + j * cols + b * n;
        const size_t valid = std::min(n, cols - b * n);
        if (simd) {
          detail::encode_avx512(xr, valid, e.data(), as.data(), out, n, q,
                                static_cast<int>(log2_delta));
          continue;
        }
        for (size_t t = 0; t < n; ++t) {
          const int64_t m = t < valid ? xr[t] : 0;
          int64_t v = m * (int64_t{1} << log2_delta) + e[t] - static_cast<int64_t>(as[t]);
          v += (v < 0) ? sq : 0;
          v += (v < 0) ? sq : 0;
          out[t] = static_cast<uint64_t>(v);
        }
      }
      secure_wipe(as.data(), n * sizeof(uint64_t));
      secure_wipe(e.data(), n * sizeof(int64_t));
    } catch (const FheError& err) {
#pragma omp critical
      if (!failure) failure = new FheError(err);
    }
  }
  if (failure) {
    FheError err = *failure;
    delete failure;
    throw err;
  }
}

Decryptor::Decryptor(const SecretKey& key) : key_(key) {}

std::vector<int64_t> Decryptor::decrypt(const CiphertextMatrix& ct) const {
  validate(key_.context(), ct, false);
  std::vector<int64_t> y(ct.rows * ct.cols);
  decrypt_into(ct, y.data());
  return y;
}

void Decryptor::decrypt_into(const CiphertextMatrix& ct, int64_t* y) const {
  decrypt_impl(ct, y, nullptr);
}

void Decryptor::decrypt_rows(const CiphertextMatrix& ct, const RowSink& sink) const {
  decrypt_impl(ct, nullptr, &sink);
}

void Decryptor::decrypt_impl(const CiphertextMatrix& ct, int64_t* y, const RowSink* sink) const {
  const Context& ctx = key_.context();
  // Shapes are checked; a coefficient >= q cannot harm memory safety here, only the result.
  validate(ctx, ct, false);
  const size_t n = ctx.n();
  const uint64_t q = ctx.q();
  const size_t rows = ct.rows, cols = ct.cols, blocks = ct.blocks(n);
  const int64_t total = static_cast<int64_t>(blocks * rows);
  const int d = static_cast<int>(ct.log2_delta);
  const int64_t half = int64_t{1} << (d - 1);
  const bool simd = use_simd(ctx);
  if (ct.kind == CtKind::kSwitched) {
    decrypt_switched(ct, y, sink);
    return;
  }
  bool out_of_range = false;
#pragma omp parallel
  {
    std::vector<uint64_t> tmp(n);
    std::vector<int64_t> row(y ? 0 : n);  // one row's integers for the sink
    std::unique_ptr<SeedExpander> expander;
    if (ct.kind == CtKind::kFresh) expander = std::make_unique<SeedExpander>(ct.seed, n, q);
    RowReader reader(ctx, ct);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < total; ++r) {
      const size_t b = static_cast<size_t>(r) / rows, i = static_cast<size_t>(r) % rows;
      const uint64_t* c0 = ct.c0.data() + static_cast<size_t>(r) * n;
      if (expander) {
        expander->expand_row(static_cast<uint64_t>(r), tmp.data());
        times_secret(key_, tmp.data(), tmp.data());
      } else {
        const uint64_t* c1 = nullptr;
        if (!reader.read(static_cast<size_t>(r), c0, c1)) {
#pragma omp atomic write
          out_of_range = true;
          continue;
        }
        times_secret(key_, c1, tmp.data());
      }
      int64_t* out = y ? y + i * cols + b * n : row.data();
      const size_t valid = std::min(n, cols - b * n);
      if (simd) {
        detail::round_decode_avx512(c0, tmp.data(), out, valid, q, d);
      } else {
        for (size_t t = 0; t < valid; ++t) {
          const uint64_t v = add_mod(c0[t], tmp[t], q);
          out[t] = (center(v, q) + half) >> d;
        }
      }
      if (sink) (*sink)(i, b * n, std::span<const int64_t>(out, valid));
    }
    secure_wipe(tmp.data(), n * sizeof(uint64_t));
  }
  if (out_of_range) throw FheError("ciphertext coefficient out of range (>= its modulus)");
}

void Decryptor::decrypt_switched(const CiphertextMatrix& ct, int64_t* y,
                                 const RowSink* sink) const {
  // c0' + c1' * s = delta' * m + noise (mod 2^b) with delta' = delta * 2^b / q. The product
  // c1' * s is computed exactly over the integers with the NTT modulo q: |c1' * s| <= n * 2^(b-1)
  // < q / 2 for b <= 36.
  const Context& ctx = key_.context();
  const size_t n = ctx.n();
  const uint64_t q = ctx.q();
  const size_t rows = ct.rows, cols = ct.cols, blocks = ct.blocks(n);
  const int64_t total = static_cast<int64_t>(blocks * rows);
  const int b = static_cast<int>(ct.log2_modulus), d = static_cast<int>(ct.log2_delta);
  const uint64_t mod = uint64_t{1} << b, half_mod = mod >> 1;
  // m = round(v / delta') = round(v * q / 2^(d+b)); |v * q / 2^(d+b)| < 2^27, so the double
  // product is within 2^-25 of the exact quotient, and choose_switch_bits keeps the noise at least
  // 2^-20 delta' away from the rounding boundary.
  const double scale = std::ldexp(static_cast<double>(q), -(d + b));
  bool out_of_range = false;
#pragma omp parallel
  {
    std::vector<uint64_t> tmp(n);
    std::vector<int64_t> row(y ? 0 : n);  // one row's integers for the sink
    RowReader reader(ctx, ct);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < total; ++r) {
      const size_t blk = static_cast<size_t>(r) / rows, i = static_cast<size_t>(r) % rows;
      const uint64_t* c0 = nullptr;
      const uint64_t* c1 = nullptr;
      if (!reader.read(static_cast<size_t>(r), c0, c1)) {
#pragma omp atomic write
        out_of_range = true;
        continue;
      }
      for (size_t t = 0; t < n; ++t) {
        // centred c1' lifted to Z_q
        tmp[t] = c1[t] + (c1[t] >= half_mod ? q - mod : 0);
      }
      ctx.ntt().forward(tmp.data());
      times_secret(key_, tmp.data(), tmp.data());
      int64_t* out = y ? y + i * cols + blk * n : row.data();
      const size_t valid = std::min(n, cols - blk * n);
      for (size_t t = 0; t < valid; ++t) {
        const uint64_t v = (c0[t] + static_cast<uint64_t>(center(tmp[t], q))) & (mod - 1);
        const int64_t vc =
            static_cast<int64_t>(v) - (v >= half_mod ? static_cast<int64_t>(mod) : 0);
        out[t] = static_cast<int64_t>(std::nearbyint(static_cast<double>(vc) * scale));
      }
      if (sink) (*sink)(i, blk * n, std::span<const int64_t>(out, valid));
    }
    secure_wipe(tmp.data(), n * sizeof(uint64_t));
  }
  if (out_of_range) throw FheError("ciphertext coefficient out of range (>= its modulus)");
}

}  // namespace fhe
