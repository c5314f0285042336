// Projection groups (linear_backend.h): q, k, v and gate, up through forward_group and
// backward_group. Int8's group forward equals separate calls bit for bit and its fused backward
// (one stacked matrix, one quantization scale per token) stays close to float; the encrypted
// backend's groups equal Int8's bit for bit, also past one ciphertext block and when the noise
// bound makes it split the stack.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "fhe/context.h"
#include "fhe/noise.h"
#include "fhe/secret_key.h"
#include "model/encrypted_backend.h"
#include "model/encrypted_products.h"
#include "model/error.h"
#include "model/float_backend.h"
#include "model/int8_backend.h"
#include "model/quantize.h"
#include "training_test_util.h"

namespace {

using model::Activations;
using model::ProjectionId;
using model::ProjectionKind;

bool bit_identical(const Activations& a, const Activations& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<size_t>(a.size())) == 0;
}

Activations gaussian(int64_t rows, int64_t cols, float stddev, uint64_t seed) {
  Activations g(rows, cols);
  training_test::fill_random(g, seed, stddev);
  return g;
}

std::vector<ProjectionId> qkv(int64_t layer) {
  return {{ProjectionKind::kQ, layer}, {ProjectionKind::kK, layer}, {ProjectionKind::kV, layer}};
}
std::vector<ProjectionId> gate_up(int64_t layer) {
  return {{ProjectionKind::kGate, layer}, {ProjectionKind::kUp, layer}};
}

// One gradient per projection of the group (d_out x tokens), with a zero token.
std::vector<Activations> gradients(const model::LlamaConfig& c,
                                   const std::vector<ProjectionId>& ids, int64_t tokens,
                                   uint64_t seed) {
  std::vector<Activations> gs;
  for (const ProjectionId id : ids) {
    gs.push_back(gaussian(model::projection_dims(c, id.kind).d_out, tokens, 0.02f, seed++));
    gs.back().col(1).setZero();
  }
  return gs;
}

std::vector<const Activations*> pointers(const std::vector<Activations>& v) {
  std::vector<const Activations*> p;
  for (const Activations& a : v) p.push_back(&a);
  return p;
}

std::vector<Activations> group_forward(model::LinearBackend& b,
                                       const std::vector<ProjectionId>& ids, const Activations& x) {
  std::vector<Activations> ys(ids.size());
  std::vector<Activations*> out;
  for (Activations& y : ys) out.push_back(&y);
  b.forward_group(ids, x, out);
  return ys;
}

Activations group_backward(model::LinearBackend& b, const std::vector<ProjectionId>& ids,
                           const std::vector<Activations>& gs) {
  Activations dx;
  b.backward_group(ids, pointers(gs), dx);
  return dx;
}

TEST(Int8Group, ForwardEqualsSeparateCallsBitForBit) {
  const model::LlamaConfig c = training_test::tiny_config(2);
  const auto weights = training_test::random_weights(c, 21, 0.05f);
  model::Int8Backend int8(*weights);
  const Activations x = gaussian(c.hidden_size, 7, 1.0f, 22);
  for (const auto& ids : {qkv(1), gate_up(0)}) {
    const std::vector<Activations> ys = group_forward(int8, ids, x);
    ASSERT_EQ(ys.size(), ids.size());
    for (size_t j = 0; j < ids.size(); ++j) {
      Activations y;
      int8.forward(ids[j], x, y);
      EXPECT_GT(y.cwiseAbs().maxCoeff(), 0);
      EXPECT_TRUE(bit_identical(ys[j], y)) << model::projection_name(ids[j]);
    }
  }
}

TEST(Int8Group, BackwardIsTheStackedProductAndStaysCloseToFloat) {
  const model::LlamaConfig c = training_test::tiny_config(1);
  const auto weights = training_test::random_weights(c, 23, 0.05f);
  model::Int8Backend int8(*weights);
  model::FloatBackend exact(weights);
  for (const auto& ids : {qkv(0), gate_up(0)}) {
    const std::vector<Activations> gs = gradients(c, ids, 9, 24);
    const Activations a = group_backward(int8, ids, gs);
    const Activations f = group_backward(exact, ids, gs);  // the default: float sum
    ASSERT_EQ(a.rows(), c.hidden_size);
    ASSERT_EQ(a.cols(), 9);
    EXPECT_EQ(a.col(1).cwiseAbs().maxCoeff(), 0);
    const double err = (a - f).cwiseAbs().maxCoeff() / f.cwiseAbs().maxCoeff();
    EXPECT_GT(err, 0) << "int8 cannot be exact";
    EXPECT_LE(err, 0.05) << model::projection_name(ids[0]);

    // Independently: W = [W_0; W_1; ...] quantized as one matrix (the same int8 rows and
    // scales), the stacked gradient through the single-projection int8_backward.
    model::QuantizedWeight stacked;
    std::vector<float> scales;
    for (const ProjectionId id : ids) {
      const model::QuantizedWeight& w = int8.weight(id);
      stacked.values.insert(stacked.values.end(), w.values.begin(), w.values.end());
      stacked.scales.insert(stacked.scales.end(), w.scales.begin(), w.scales.end());
      stacked.rows += w.rows;
      stacked.cols = w.cols;
    }
    Activations g(stacked.rows, 9);
    int64_t at = 0;
    for (const Activations& part : gs) {
      g.middleRows(at, part.rows()) = part;
      at += part.rows();
    }
    Activations want;
    model::int8_backward(ids[0], stacked, g, want);
    EXPECT_TRUE(bit_identical(a, want)) << model::projection_name(ids[0]);
  }
  // A group of one is the projection's own backward.
  const std::vector<ProjectionId> one{{ProjectionKind::kK, 0}};
  const std::vector<Activations> g1 = gradients(c, one, 4, 25);
  Activations dx;
  int8.backward(one[0], g1[0], dx);
  EXPECT_TRUE(bit_identical(group_backward(int8, one, g1), dx));
}

TEST(Int8Group, RefusesMismatchedGroups) {
  const model::LlamaConfig c = training_test::tiny_config(1);
  const auto weights = training_test::random_weights(c, 26, 0.05f);
  model::Int8Backend int8(*weights);
  model::EncryptedBackend encrypted(*weights);
  const std::vector<ProjectionId> ids = qkv(0);
  std::vector<Activations> gs = gradients(c, ids, 3, 27);
  for (model::LinearBackend* b : std::initializer_list<model::LinearBackend*>{&int8, &encrypted}) {
    Activations dx;
    std::vector<const Activations*> two = {&gs[0], &gs[1]};
    EXPECT_THROW(b->backward_group(ids, two, dx), model::ModelError) << b->name();
    std::vector<Activations> wrong = gs;
    wrong[1] = Activations::Zero(wrong[1].rows() + 1, 3);
    EXPECT_THROW(b->backward_group(ids, pointers(wrong), dx), model::ModelError) << b->name();
    // q and down do not share an input.
    const std::vector<ProjectionId> mixed{{ProjectionKind::kQ, 0}, {ProjectionKind::kDown, 0}};
    const std::vector<Activations> mg = gradients(c, mixed, 3, 28);
    EXPECT_THROW(b->backward_group(mixed, pointers(mg), dx), model::ModelError) << b->name();
    EXPECT_THROW(group_forward(*b, mixed, gaussian(c.hidden_size, 2, 1, 29)), model::ModelError)
        << b->name();
  }
}

TEST(EncryptedGroup, EqualsInt8BitForBitPastOneBlock) {
  const model::LlamaConfig c = training_test::tiny_config(2);
  const auto weights = training_test::random_weights(c, 30, 0.05f);
  model::Int8Backend int8(*weights);
  model::EncryptedBackend encrypted(*weights);
  for (const int64_t tokens : {int64_t{5}, int64_t{2049}}) {
    const Activations x = gaussian(c.hidden_size, tokens, 1.0f, 31);
    for (const auto& ids : {qkv(1), gate_up(0)}) {
      const std::vector<Activations> a = group_forward(int8, ids, x);
      const std::vector<Activations> b = group_forward(encrypted, ids, x);
      for (size_t j = 0; j < ids.size(); ++j) {
        EXPECT_TRUE(bit_identical(a[j], b[j])) << model::projection_name(ids[j]) << " " << tokens;
      }
      const std::vector<Activations> gs = gradients(c, ids, tokens, 32);
      const Activations da = group_backward(int8, ids, gs);
      const Activations db = group_backward(encrypted, ids, gs);
      EXPECT_GT(da.cwiseAbs().maxCoeff(), 0);
      EXPECT_TRUE(bit_identical(da, db)) << model::projection_name(ids[0]) << " " << tokens;
    }
  }
}

// Local products whose transposed bounds are reported `factor` times the real L2 norms (the
// products themselves stay exact: a larger bound only makes the encryptor choose a safer scale),
// counting the products asked for.
class InflatedProducts : public model::EncryptedProducts {
 public:
  InflatedProducts(const model::LlamaWeights& w, std::shared_ptr<const fhe::Context> ctx)
      : local_(w, std::move(ctx)) {}
  model::ProjectionDims dims(ProjectionId id) const override { return local_.dims(id); }
  std::span<const float> scales(ProjectionId id) const override { return local_.scales(id); }
  fhe::WeightBounds bounds(ProjectionId id, bool transpose) override {
    fhe::WeightBounds b = local_.bounds(id, transpose);
    if (transpose) b.max_row_l2 *= factor;
    return b;
  }
  fhe::CiphertextMatrix multiply(ProjectionId id, bool transpose,
                                 const fhe::CiphertextMatrix& fresh) override {
    ++single;
    return local_.multiply(id, transpose, fresh);
  }
  fhe::CiphertextMatrix multiply_stacked(std::span<const ProjectionId> ids,
                                         const fhe::CiphertextMatrix& fresh) override {
    ++stacked;
    if (refuse_stacking) throw model::StackedProductRefused("this device does not stack");
    return local_.multiply_stacked(ids, fresh);
  }
  double factor = 1;
  bool refuse_stacking = false;
  int single = 0, stacked = 0;

 private:
  model::LocalEncryptedProducts local_;
};

TEST(EncryptedGroup, SplitsAStackTheNoiseBoundRefusesAndStaysExact) {
  const model::LlamaConfig c = training_test::tiny_config(1);
  const auto weights = training_test::random_weights(c, 33, 0.05f);
  const auto ctx = fhe::Context::create();
  auto owned = std::make_unique<InflatedProducts>(*weights, ctx);
  InflatedProducts& products = *owned;
  model::EncryptedBackend encrypted(
      c, std::move(owned), std::make_unique<fhe::SecretKey>(fhe::SecretKey::generate(ctx)));
  model::Int8Backend int8(*weights);
  const std::vector<ProjectionId> ids = gate_up(0);
  const int64_t tokens = 6;
  const uint64_t outputs = static_cast<uint64_t>(c.hidden_size * tokens);
  const auto fits = [&](std::span<const ProjectionId> run) {
    try {
      fhe::choose_log2_delta(ctx->params(), products.stacked_bounds(run), outputs);
      return true;
    } catch (const fhe::FheError&) {
      return false;
    }
  };
  // Inflate until the stack of gate and up no longer fits one product.
  while (fits(ids) && products.factor < 1e12) products.factor *= 1.05;
  const std::span<const ProjectionId> all(ids);
  ASSERT_FALSE(fits(all));
  ASSERT_TRUE(fits(all.subspan(0, 1)) && fits(all.subspan(1, 1)))
      << "the parts must fit alone for this test";
  const std::vector<Activations> gs = gradients(c, ids, tokens, 34);
  const Activations db = group_backward(encrypted, ids, gs);
  EXPECT_EQ(products.stacked, 0);
  EXPECT_EQ(products.single, 2);  // one product per part, their accumulators summed
  EXPECT_TRUE(bit_identical(group_backward(int8, ids, gs), db));

  // Without inflation: one stacked product.
  products.factor = 1;
  products.single = 0;
  EXPECT_TRUE(bit_identical(group_backward(int8, ids, gs), group_backward(encrypted, ids, gs)));
  EXPECT_EQ(products.stacked, 1);
  EXPECT_EQ(products.single, 0);
}

TEST(EncryptedGroup, ProductsThatRefuseToStackGetThePartsOneByOne) {
  const model::LlamaConfig c = training_test::tiny_config(1);
  const auto weights = training_test::random_weights(c, 35, 0.05f);
  const auto ctx = fhe::Context::create();
  auto owned = std::make_unique<InflatedProducts>(*weights, ctx);
  InflatedProducts& products = *owned;
  products.refuse_stacking = true;
  model::EncryptedBackend encrypted(
      c, std::move(owned), std::make_unique<fhe::SecretKey>(fhe::SecretKey::generate(ctx)));
  model::Int8Backend int8(*weights);
  const std::vector<ProjectionId> ids = qkv(0);
  const std::vector<Activations> gs = gradients(c, ids, 5, 36);
  EXPECT_TRUE(bit_identical(group_backward(int8, ids, gs), group_backward(encrypted, ids, gs)));
  EXPECT_EQ(products.stacked, 1);  // asked once, refused
  EXPECT_EQ(products.single, 3);
  // Remembered: the next group goes one by one without asking again.
  EXPECT_TRUE(bit_identical(group_backward(int8, ids, gs), group_backward(encrypted, ids, gs)));
  EXPECT_EQ(products.stacked, 1);
  EXPECT_EQ(products.single, 6);
}

}  // namespace
