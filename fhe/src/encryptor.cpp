#include "fhe/encryptor.h"

#include <omp.h>

#include <algorithm>
#include <memory>

#include <string>

#include "fhe/modarith.h"
#include "fhe/prng.h"
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

}  // namespace

void validate(const Context& ctx, const CiphertextMatrix& ct, bool check_range) {
  if (ct.params_id != ctx.params().id) {
    throw Error("ciphertext uses parameter set " + std::to_string(ct.params_id) + ", expected " +
                std::to_string(ctx.params().id));
  }
  if (ct.kind != CtKind::kFresh && ct.kind != CtKind::kProduct)
    throw Error("unknown ciphertext kind");
  if (ct.rows == 0 || ct.cols == 0) throw Error("empty ciphertext matrix");
  if (ct.log2_delta == 0 || ct.log2_delta >= ctx.params().log2_q) {
    throw Error("ciphertext scale 2^" + std::to_string(ct.log2_delta) + " is out of range");
  }
  const size_t n = ctx.n();
  const uint64_t want = ct.blocks(n) * ct.rows * n;
  if (ct.c0.size() != want) throw Error("ciphertext c0 has the wrong size for its shape");
  if (ct.kind == CtKind::kProduct ? ct.c1.size() != want : !ct.c1.empty()) {
    throw Error("ciphertext c1 has the wrong size for its shape");
  }
  if (!check_range) return;
  const uint64_t q = ctx.q();
  uint64_t bad = 0;
  for (uint64_t v : ct.c0) bad |= (v >= q);
  for (uint64_t v : ct.c1) bad |= (v >= q);
  if (bad) throw Error("ciphertext coefficient out of range (>= q)");
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
  if (rows == 0 || cols == 0) throw Error("cannot encrypt an empty matrix");
  if (log2_delta == 0 || log2_delta + 8 >= p.log2_q) {
    throw Error("scale 2^" + std::to_string(log2_delta) + " is out of range for " + p.name);
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
  Error* failure = nullptr;
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
    } catch (const Error& err) {
#pragma omp critical
      if (!failure) failure = new Error(err);
    }
  }
  if (failure) {
    Error err = *failure;
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
#pragma omp parallel
  {
    std::vector<uint64_t> tmp(n);
    std::unique_ptr<SeedExpander> expander;
    if (ct.kind == CtKind::kFresh) expander = std::make_unique<SeedExpander>(ct.seed, n, q);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < total; ++r) {
      const size_t b = static_cast<size_t>(r) / rows, i = static_cast<size_t>(r) % rows;
      if (expander) {
        expander->expand_row(static_cast<uint64_t>(r), tmp.data());
        times_secret(key_, tmp.data(), tmp.data());
      } else {
        times_secret(key_, ct.c1.data() + static_cast<size_t>(r) * n, tmp.data());
      }
      const uint64_t* c0 = ct.c0.data() + static_cast<size_t>(r) * n;
      int64_t* out = y + i * cols + b * n;
      const size_t valid = std::min(n, cols - b * n);
      if (simd) {
        detail::round_decode_avx512(c0, tmp.data(), out, valid, q, d);
        continue;
      }
      for (size_t t = 0; t < valid; ++t) {
        const uint64_t v = add_mod(c0[t], tmp[t], q);
        out[t] = (center(v, q) + half) >> d;
      }
    }
    secure_wipe(tmp.data(), n * sizeof(uint64_t));
  }
}

}  // namespace fhe
