#include "model/encrypted_backend.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "fhe/context.h"
#include "fhe/encryptor.h"
#include "fhe/noise.h"
#include "fhe/params.h"
#include "fhe/secret_key.h"
#include "model/error.h"
#include "model/quantize.h"

namespace model {
namespace {

std::unique_ptr<fhe::SecretKey> key_or_fresh(std::unique_ptr<fhe::SecretKey> key) {
  if (key) return key;
  try {
    return std::make_unique<fhe::SecretKey>(fhe::SecretKey::generate(fhe::Context::create()));
  } catch (const fhe::FheError& e) {
    throw ModelError(std::string("encrypted backend: ") + e.what());
  }
}

uint64_t nanos_between(std::chrono::steady_clock::time_point a,
                       std::chrono::steady_clock::time_point b) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

}  // namespace

EncryptedBackend::EncryptedBackend(const LlamaWeights& weights, std::unique_ptr<fhe::SecretKey> key,
                                   EvaluatorFactory factory)
    : config_(weights.config), key_(key_or_fresh(std::move(key))) {
  encryptor_ = std::make_unique<fhe::Encryptor>(*key_);
  decryptor_ = std::make_unique<fhe::Decryptor>(*key_);
  products_ = std::make_unique<LocalEncryptedProducts>(
      weights, key_->context_ptr(), std::vector<ProjectionKind>{}, std::move(factory));
}

EncryptedBackend::EncryptedBackend(const LlamaConfig& config,
                                   std::unique_ptr<EncryptedProducts> products,
                                   std::unique_ptr<fhe::SecretKey> key)
    : config_(config), key_(key_or_fresh(std::move(key))), products_(std::move(products)) {
  if (!products_) throw ModelError("encrypted backend: no products");
  encryptor_ = std::make_unique<fhe::Encryptor>(*key_);
  decryptor_ = std::make_unique<fhe::Decryptor>(*key_);
}

EncryptedBackend::~EncryptedBackend() = default;

std::vector<int64_t> EncryptedBackend::decrypt(const fhe::CiphertextMatrix& y, int64_t out_features,
                                               int64_t tokens) {
  if (y.rows != static_cast<uint64_t>(out_features) || y.cols != static_cast<uint64_t>(tokens)) {
    throw ModelError("the product has shape " + std::to_string(y.rows) + " x " +
                     std::to_string(y.cols) + ", expected " + std::to_string(out_features) + " x " +
                     std::to_string(tokens));
  }
  const auto start = std::chrono::steady_clock::now();
  std::vector<int64_t> acc = decryptor_->decrypt(y);
  if (timings_ != nullptr) {
    timings_->decrypt_ns += nanos_between(start, std::chrono::steady_clock::now());
    ++timings_->products;
  }
  return acc;
}

fhe::CiphertextMatrix EncryptedBackend::encrypt_timed(const int8_t* rows, size_t features,
                                                      size_t tokens,
                                                      const fhe::WeightBounds& bounds,
                                                      uint64_t outputs) {
  const auto start = std::chrono::steady_clock::now();
  fhe::CiphertextMatrix ct = encryptor_->encrypt(rows, features, tokens, bounds, outputs);
  if (timings_ != nullptr) {
    timings_->encrypt_ns += nanos_between(start, std::chrono::steady_clock::now());
  }
  return ct;
}

void EncryptedBackend::count_multiply(std::chrono::steady_clock::time_point start) {
  const auto done = std::chrono::steady_clock::now();
  server_seconds_ += std::chrono::duration<double>(done - start).count();
  if (timings_ != nullptr) timings_->multiply_ns += nanos_between(start, done);
}

fhe::CiphertextMatrix EncryptedBackend::product(ProjectionId id, bool transpose,
                                                const std::vector<int8_t>& rows, int64_t features,
                                                int64_t out_features, int64_t tokens) {
  const auto t = static_cast<size_t>(tokens);
  const fhe::CiphertextMatrix ct =
      encrypt_timed(rows.data(), static_cast<size_t>(features), t, products_->bounds(id, transpose),
                    static_cast<uint64_t>(out_features) * t);
  const auto start = std::chrono::steady_clock::now();
  fhe::CiphertextMatrix y = products_->multiply(id, transpose, ct);
  count_multiply(start);
  return y;
}

void EncryptedBackend::decrypt_dequantized(const fhe::CiphertextMatrix& y, int64_t out_features,
                                           std::span<const float> w_scales,
                                           std::span<const float> x_scales, Activations& out) {
  const auto tokens = static_cast<int64_t>(x_scales.size());
  if (y.rows != static_cast<uint64_t>(out_features) || y.cols != static_cast<uint64_t>(tokens)) {
    throw ModelError("the product has shape " + std::to_string(y.rows) + " x " +
                     std::to_string(y.cols) + ", expected " + std::to_string(out_features) + " x " +
                     std::to_string(tokens));
  }
  if (!w_scales.empty() && static_cast<int64_t>(w_scales.size()) != out_features) {
    throw ModelError("dequantization: " + std::to_string(w_scales.size()) + " weight scales for " +
                     std::to_string(out_features) + " outputs");
  }
  const auto start = std::chrono::steady_clock::now();
  out.resize(out_features, tokens);
  // Called for distinct rows from every thread: each writes only its own elements.
  decryptor_->decrypt_rows(y, [&](size_t i, size_t t0, std::span<const int64_t> acc) {
    float* column = out.data() + static_cast<int64_t>(t0) * out_features + static_cast<int64_t>(i);
    if (w_scales.empty()) {
      for (size_t k = 0; k < acc.size(); ++k) {
        column[static_cast<int64_t>(k) * out_features] =
            dequantize_transposed_element(acc[k], x_scales[t0 + k]);
      }
      return;
    }
    const float w = w_scales[i];
    for (size_t k = 0; k < acc.size(); ++k) {
      column[static_cast<int64_t>(k) * out_features] =
          dequantize_element(acc[k], w, x_scales[t0 + k]);
    }
  });
  if (timings_ != nullptr) {
    timings_->decrypt_ns += nanos_between(start, std::chrono::steady_clock::now());
    ++timings_->products;
  }
}

std::vector<int64_t> EncryptedBackend::stacked_product(std::span<const ProjectionId> ids,
                                                       const int8_t* rows, int64_t d_in,
                                                       int64_t tokens) {
  const fhe::Params& params = key_->context().params();
  const auto t = static_cast<size_t>(tokens);
  const uint64_t outputs = static_cast<uint64_t>(d_in) * t;
  const auto fits = [&](std::span<const ProjectionId> run) {
    if (stacked_refused_ && run.size() > 1) return false;
    try {
      fhe::choose_log2_delta(params, products_->stacked_bounds(run), outputs);
      return true;
    } catch (const fhe::FheError&) {
      return false;
    }
  };
  std::vector<int64_t> acc;
  size_t begin = 0;
  int64_t row = 0;  // first row of the run in `rows`
  while (begin < ids.size()) {
    // The longest run from `begin` that fits (a single projection always goes: if it does not
    // fit, the encryptor's error names the bound).
    size_t end = ids.size();
    while (end > begin + 1 && !fits(ids.subspan(begin, end - begin))) --end;
    const std::span<const ProjectionId> run = ids.subspan(begin, end - begin);
    int64_t features = 0;
    for (const ProjectionId id : run) features += products_->dims(id).d_out;
    const fhe::CiphertextMatrix ct =
        encrypt_timed(rows + row * tokens, static_cast<size_t>(features), t,
                      products_->stacked_bounds(run), outputs);
    const auto start = std::chrono::steady_clock::now();
    fhe::CiphertextMatrix y;
    try {
      y = run.size() == 1 ? products_->multiply(run[0], /*transpose=*/true, ct)
                          : products_->multiply_stacked(run, ct);
    } catch (const StackedProductRefused&) {
      stacked_refused_ = true;  // the same run again, one projection at a time
      continue;
    }
    count_multiply(start);
    std::vector<int64_t> part = decrypt(y, d_in, tokens);
    if (acc.empty()) {
      acc = std::move(part);
    } else {
      for (size_t i = 0; i < acc.size(); ++i) acc[i] += part[i];  // exact partial sums
    }
    row += features;
    begin = end;
  }
  return acc;
}

void EncryptedBackend::forward(ProjectionId id, const Activations& x, Activations& y) {
  const auto [d_out, d_in] = products_->dims(id);
  if (x.rows() != d_in) {
    throw ModelError("projection " + projection_name(id) + ": input has " +
                     std::to_string(x.rows()) + " features, the weight takes " +
                     std::to_string(d_in));
  }
  auto phase = std::chrono::steady_clock::now();
  const QuantizedTokens xq = quantize_tokens(x);
  const std::vector<int8_t> rows = feature_rows(xq);
  if (timings_ != nullptr)
    timings_->quantize_ns += nanos_between(phase, std::chrono::steady_clock::now());
  try {
    const fhe::CiphertextMatrix product_ct =
        product(id, /*transpose=*/false, rows, d_in, d_out, x.cols());
    decrypt_dequantized(product_ct, d_out, products_->scales(id), xq.scales, y);
  } catch (const std::runtime_error& e) {  // fhe::FheError, model::ModelError
    throw ModelError("encrypted backend: projection " + projection_name(id) + ": " + e.what());
  }
}

void EncryptedBackend::backward(ProjectionId id, const Activations& g, Activations& dx) {
  const auto [d_out, d_in] = products_->dims(id);
  if (g.rows() != d_out) {
    throw ModelError("projection " + projection_name(id) + ": output gradient has " +
                     std::to_string(g.rows()) + " features, the weight gives " +
                     std::to_string(d_out));
  }
  auto phase = std::chrono::steady_clock::now();
  const QuantizedTokens gq = quantize_gradients(g, products_->scales(id));
  const std::vector<int8_t> rows = feature_rows(gq);
  if (timings_ != nullptr)
    timings_->quantize_ns += nanos_between(phase, std::chrono::steady_clock::now());
  try {
    const fhe::CiphertextMatrix product_ct =
        product(id, /*transpose=*/true, rows, d_out, d_in, g.cols());
    decrypt_dequantized(product_ct, d_in, {}, gq.scales, dx);
  } catch (const std::runtime_error& e) {  // fhe::FheError, model::ModelError
    throw ModelError("encrypted backend: backward of projection " + projection_name(id) + ": " +
                     e.what());
  }
}

void EncryptedBackend::forward_group(std::span<const ProjectionId> ids, const Activations& x,
                                     std::span<Activations* const> ys) {
  check_group(ids.size(), ys.size());
  // One scale for every product of the one ciphertext: the largest norms, every output counted.
  fhe::WeightBounds bounds{0, 0, static_cast<uint64_t>(x.rows())};
  uint64_t outputs = 0;
  for (const ProjectionId id : ids) {
    const auto [d_out, d_in] = products_->dims(id);
    if (x.rows() != d_in) {
      throw ModelError("projection " + projection_name(id) + ": input has " +
                       std::to_string(x.rows()) + " features, the weight takes " +
                       std::to_string(d_in));
    }
    const fhe::WeightBounds b = products_->bounds(id, /*transpose=*/false);
    bounds.max_row_l1 = std::max(bounds.max_row_l1, b.max_row_l1);
    bounds.max_row_l2 = std::max(bounds.max_row_l2, b.max_row_l2);
    outputs += static_cast<uint64_t>(d_out) * static_cast<uint64_t>(x.cols());
  }
  const QuantizedTokens xq = quantize_tokens(x);
  try {
    const std::vector<int8_t> rows = feature_rows(xq);
    const fhe::CiphertextMatrix ct = encrypt_timed(rows.data(), static_cast<size_t>(x.rows()),
                                                   static_cast<size_t>(x.cols()), bounds, outputs);
    const auto start = std::chrono::steady_clock::now();
    const std::vector<fhe::CiphertextMatrix> products = products_->multiply_group(ids, ct);
    count_multiply(start);
    if (products.size() != ids.size()) {
      throw ModelError(std::to_string(products.size()) + " products for " +
                       std::to_string(ids.size()) + " projections");
    }
    for (size_t j = 0; j < ids.size(); ++j) {
      decrypt_dequantized(products[j], products_->dims(ids[j]).d_out, products_->scales(ids[j]),
                          xq.scales, *ys[j]);
    }
  } catch (const std::runtime_error& e) {  // fhe::FheError, model::ModelError
    throw ModelError("encrypted backend: projection group from " + projection_name(ids[0]) + ": " +
                     e.what());
  }
}

void EncryptedBackend::backward_group(std::span<const ProjectionId> ids,
                                      std::span<const Activations* const> gs, Activations& dx) {
  check_group(ids.size(), gs.size());
  const int64_t d_in = products_->dims(ids[0]).d_in;
  std::vector<std::span<const float>> scales;
  for (size_t j = 0; j < ids.size(); ++j) {
    const auto [d_out, in] = products_->dims(ids[j]);
    if (gs[j]->rows() != d_out || in != d_in) {
      throw ModelError("projection " + projection_name(ids[j]) + ": output gradient has " +
                       std::to_string(gs[j]->rows()) + " features, the weight gives " +
                       std::to_string(d_out) + " (and takes " + std::to_string(in) +
                       ", the group " + std::to_string(d_in) + ")");
    }
    scales.push_back(products_->scales(ids[j]));
  }
  const QuantizedTokens gq = quantize_stacked_gradients(gs, scales);
  std::vector<int64_t> acc;
  try {
    const std::vector<int8_t> rows = feature_rows(gq);
    acc = stacked_product(ids, rows.data(), d_in, gq.tokens);
  } catch (const std::runtime_error& e) {  // fhe::FheError, model::ModelError
    throw ModelError("encrypted backend: backward of projection group from " +
                     projection_name(ids[0]) + ": " + e.what());
  }
  // acc is row-major d_in x T.
  dequantize_transposed_product(acc.data(), gq.tokens, 1, d_in, gq.scales, dx);
}

}  // namespace model
