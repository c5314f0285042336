#include "fhe/secret_key.h"

#include <cstring>
#include <fstream>

#include "base/atomic_file.h"
#include "base/error.h"
#include "fhe/modarith.h"
#include "fhe/prng.h"

namespace fhe {

namespace {

constexpr char kKeyMagic[8] = {'F', 'L', 'S', 'K', '\r', '\n', 0x1a, '\n'};
constexpr uint32_t kKeyVersion = 1;

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

uint32_t get_u32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

}  // namespace

SecretKey::SecretKey(std::shared_ptr<const Context> ctx, std::vector<int8_t> s)
    : ctx_(std::move(ctx)), s_(std::move(s)) {
  const size_t n = ctx_->n();
  const uint64_t q = ctx_->q();
  if (s_.size() != n)
    throw FheError("secret key has " + std::to_string(s_.size()) + " coefficients, expected " +
                std::to_string(n));
  s_ntt_.resize(n);
  s_ntt_shoup_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (s_[i] < -1 || s_[i] > 1) throw FheError("secret key coefficient is not ternary");
    s_ntt_[i] = s_[i] < 0 ? q - 1 : static_cast<uint64_t>(s_[i]);
  }
  ctx_->ntt().forward(s_ntt_.data());
  s_ntt_shoup52_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    s_ntt_shoup_[i] = shoup(s_ntt_[i], q);
    s_ntt_shoup52_[i] = static_cast<uint64_t>((static_cast<u128>(s_ntt_[i]) << 52) / q);
  }
}

SecretKey::~SecretKey() {
  secure_wipe(s_.data(), s_.size());
  secure_wipe(s_ntt_.data(), s_ntt_.size() * sizeof(uint64_t));
  secure_wipe(s_ntt_shoup_.data(), s_ntt_shoup_.size() * sizeof(uint64_t));
  secure_wipe(s_ntt_shoup52_.data(), s_ntt_shoup52_.size() * sizeof(uint64_t));
}

SecretKey SecretKey::generate(std::shared_ptr<const Context> ctx) {
  std::vector<int8_t> s(ctx->n());
  Csprng rng;
  rng.ternary(s.data(), s.size());
  SecretKey key(std::move(ctx), s);
  secure_wipe(s.data(), s.size());
  return key;
}

SecretKey SecretKey::from_coefficients(std::shared_ptr<const Context> ctx,
                                       const std::vector<int8_t>& s) {
  return SecretKey(std::move(ctx), s);
}

void SecretKey::save(const std::string& path) const {
  std::vector<uint8_t> buf(kKeyMagic, kKeyMagic + 8);
  put_u32(buf, kKeyVersion);
  put_u32(buf, ctx_->params().id);
  put_u32(buf, static_cast<uint32_t>(ctx_->n()));
  put_u32(buf, 0);
  for (int8_t v : s_) buf.push_back(static_cast<uint8_t>(v));
  try {
    base::write_file_atomic(path, buf, 0600);
  } catch (const base::IoError& e) {
    secure_wipe(buf.data(), buf.size());
    throw FheError(std::string("cannot write key file: ") + e.what());
  }
  secure_wipe(buf.data(), buf.size());
}

SecretKey SecretKey::load(std::shared_ptr<const Context> ctx, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FheError("cannot open key file " + path);
  const size_t n = ctx->n();
  const size_t expected = 24 + n;
  std::vector<uint8_t> buf(expected + 1);
  in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
  const size_t got = static_cast<size_t>(in.gcount());
  if (got < 24 || std::memcmp(buf.data(), kKeyMagic, 8) != 0) {
    throw FheError(path + " is not a secret key file (bad magic)");
  }
  if (get_u32(&buf[8]) != kKeyVersion) throw FheError(path + ": unsupported key file version");
  const Params& p = Params::by_id(get_u32(&buf[12]));
  if (p.id != ctx->params().id || get_u32(&buf[16]) != n) {
    throw FheError(path + ": key is for another parameter set");
  }
  if (got != expected) throw FheError(path + ": key file is truncated or has trailing bytes");
  std::vector<int8_t> s(n);
  for (size_t i = 0; i < n; ++i) {
    const int8_t v = static_cast<int8_t>(buf[24 + i]);
    if (v < -1 || v > 1) {
      secure_wipe(buf.data(), buf.size());
      throw FheError(path + ": corrupt key file (coefficient not in {-1, 0, 1})");
    }
    s[i] = v;
  }
  secure_wipe(buf.data(), buf.size());
  SecretKey key(std::move(ctx), s);
  secure_wipe(s.data(), s.size());
  return key;
}

}  // namespace fhe
