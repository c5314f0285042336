// A whole decoder layer's backward pass (input gradient and the gradients of LoRA adapters on
// all seven projections) against central finite differences in double precision.
#include <gtest/gtest.h>

#include <cstdio>

#include "model/decoder_layer.h"
#include "model/double_backend.h"
#include "model/error.h"
#include "model/lora_params.h"
#include "model/projection.h"
#include "training_test_util.h"

namespace {

using Mat = model::ActivationsT<double>;
using model::ProjectionKind;

const std::vector<ProjectionKind> kAllKinds = {
    ProjectionKind::kQ,    ProjectionKind::kK,  ProjectionKind::kV,   ProjectionKind::kO,
    ProjectionKind::kGate, ProjectionKind::kUp, ProjectionKind::kDown};

struct LayerFixture {
  model::LlamaConfig config = training_test::tiny_config(1);
  std::shared_ptr<const model::LlamaWeights> weights = training_test::random_weights(config, 40);
  model::DoubleBackend backend{*weights};
  model::TokenBatch batch{{{3, 1, 4, 1, 5}, {9, 2, 6}}};
  model::RopeTable rope{config, batch.max_length()};

  // sum(r .* layer(x)).
  double objective(const Mat& x, const Mat& r, const model::LoraParamsT<double>* lora) {
    Mat y = x;
    model::decoder_layer_forward(0, weights->layers[0], config, rope, batch, backend, y, nullptr,
                                 lora);
    return r.cwiseProduct(y).sum();
  }
};

TEST(DecoderLayerBackward, InputAndLoraGradientsMatchFiniteDifferences) {
  LayerFixture fx;
  model::LoraConfig lc;
  lc.rank = 2;
  lc.alpha = 3;
  lc.targets = kAllKinds;
  model::LoraParamsT<double> lora(fx.config, lc);
  training_test::randomize(lora, 41, 0.4);
  Mat x(fx.config.hidden_size, fx.batch.total_tokens()), r(x.rows(), x.cols());
  training_test::fill_random(x, 42);
  training_test::fill_random(r, 43);

  model::DecoderLayerCacheT<double> cache;
  Mat y = x;
  model::decoder_layer_forward(0, fx.weights->layers[0], fx.config, fx.rope, fx.batch, fx.backend,
                               y, &cache, &lora);
  EXPECT_DOUBLE_EQ(r.cwiseProduct(y).sum(), fx.objective(x, r, &lora));
  model::LoraGradientsT<double> grads;
  grads.batch = model::LoraParamsT<double>(fx.config, lc);
  Mat dx = r;
  model::decoder_layer_backward(0, fx.weights->layers[0], fx.config, fx.rope, fx.batch, fx.backend,
                                cache, dx, &lora, &grads);

  const auto f = [&] { return fx.objective(x, r, &lora); };
  const double input_error = training_test::gradient_error(x.data(), dx.data(), x.size(), f);
  std::printf("gradient check decoder layer dx           max relative error %.3g\n", input_error);
  EXPECT_LT(input_error, training_test::kGradientTolerance);
  for (const model::ProjectionId id : lora.ids()) {
    model::LoraPairT<double>& p = lora.at(id);
    const model::LoraPairT<double>& g = grads.batch.at(id);
    const double ea = training_test::gradient_error(p.a.data(), g.a.data(), p.a.size(), f);
    const double eb = training_test::gradient_error(p.b.data(), g.b.data(), p.b.size(), f);
    std::printf("gradient check decoder layer %-13s A %.3g  B %.3g\n",
                model::projection_name(id).c_str(), ea, eb);
    EXPECT_LT(ea, training_test::kGradientTolerance) << model::projection_name(id);
    EXPECT_LT(eb, training_test::kGradientTolerance) << model::projection_name(id);
  }
}

TEST(DecoderLayerBackward, WithoutAdapterTheInputGradientStillMatches) {
  LayerFixture fx;
  Mat x(fx.config.hidden_size, fx.batch.total_tokens()), r(x.rows(), x.cols());
  training_test::fill_random(x, 44);
  training_test::fill_random(r, 45);
  model::DecoderLayerCacheT<double> cache;
  Mat y = x;
  model::decoder_layer_forward(0, fx.weights->layers[0], fx.config, fx.rope, fx.batch, fx.backend,
                               y, &cache);
  Mat dx = r;
  model::decoder_layer_backward(0, fx.weights->layers[0], fx.config, fx.rope, fx.batch, fx.backend,
                                cache, dx);
  const double error = training_test::gradient_error(x.data(), dx.data(), x.size(),
                                                     [&] { return fx.objective(x, r, nullptr); });
  EXPECT_LT(error, training_test::kGradientTolerance);
}

TEST(DecoderLayerBackward, RefusesACacheWithoutTheAdapter) {
  LayerFixture fx;
  model::LoraConfig lc;
  lc.rank = 2;
  model::LoraParamsT<double> lora(fx.config, lc);
  model::LoraGradientsT<double> grads;
  grads.batch = lora;
  Mat x = Mat::Ones(fx.config.hidden_size, fx.batch.total_tokens());
  model::DecoderLayerCacheT<double> cache;
  model::decoder_layer_forward(0, fx.weights->layers[0], fx.config, fx.rope, fx.batch, fx.backend,
                               x, &cache);  // no adapter
  Mat dx = Mat::Ones(x.rows(), x.cols());
  EXPECT_THROW(model::decoder_layer_backward(0, fx.weights->layers[0], fx.config, fx.rope, fx.batch,
                                             fx.backend, cache, dx, &lora, &grads),
               model::ModelError);
}

}  // namespace
