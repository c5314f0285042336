// AdamW against the update rule written out by hand, options and state checks, checkpoints.
#include "model/adamw.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "model/error.h"
#include "model/safetensors_writer.h"
#include "test_util.h"

namespace {

using model::AdamW;
using model::AdamWOptions;

TEST(AdamW, DefaultsAreTorchs) {
  const AdamWOptions o;
  EXPECT_EQ(o.lr, 1e-3);
  EXPECT_EQ(o.beta1, 0.9);
  EXPECT_EQ(o.beta2, 0.999);
  EXPECT_EQ(o.eps, 1e-8);
  EXPECT_EQ(o.weight_decay, 0.01);
}

// First step: m_hat = g and v_hat = g^2, so the step is lr * g / (|g| + eps) after decay.
TEST(AdamW, FirstStepByHand) {
  AdamW opt({.lr = 0.1, .weight_decay = 0.01});
  std::vector<float> p = {1.0f, -2.0f, 0.5f, 3.0f};
  const std::vector<float> g = {0.5f, -0.25f, 4.0f, 0.0f};
  opt.step({{"w", p, g}});
  EXPECT_NEAR(p[0], 1.0 * 0.999 - 0.1 * 0.5 / (0.5 + 1e-8), 1e-6);  // 0.899
  EXPECT_NEAR(p[1], -2.0 * 0.999 + 0.1, 1e-6);                      // -1.898
  EXPECT_NEAR(p[2], 0.5 * 0.999 - 0.1, 1e-6);                       // 0.3995
  EXPECT_NEAR(p[3], 3.0 * 0.999, 1e-6);                             // decay only
  EXPECT_EQ(opt.steps_taken(), 1);
  EXPECT_EQ(opt.state().at("w").step, 1);
  EXPECT_NEAR(opt.state().at("w").exp_avg[0], 0.05, 1e-7);      // (1 - 0.9) * 0.5
  EXPECT_NEAR(opt.state().at("w").exp_avg_sq[2], 0.016, 1e-8);  // (1 - 0.999) * 16
}

// Three steps on a two-element tensor, each value recomputed in the test from the formula.
TEST(AdamW, SeveralStepsMatchTheFormula) {
  const double lr = 0.05, b1 = 0.8, b2 = 0.95, eps = 1e-6, wd = 0.1;
  AdamW opt({.lr = lr, .beta1 = b1, .beta2 = b2, .eps = eps, .weight_decay = wd});
  std::vector<float> p = {0.7f, -1.3f};
  const std::vector<std::vector<float>> grads = {{0.2f, -1.0f}, {-0.4f, 0.5f}, {0.1f, 0.3f}};
  double ep[2] = {0.7, -1.3}, m[2] = {0, 0}, v[2] = {0, 0};
  for (int t = 1; t <= 3; ++t) {
    const auto& g = grads[static_cast<size_t>(t - 1)];
    opt.step({{"p", p, g}});
    for (int i = 0; i < 2; ++i) {
      ep[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[static_cast<size_t>(i)];
      v[i] = b2 * v[i] + (1 - b2) * g[static_cast<size_t>(i)] * g[static_cast<size_t>(i)];
      const double m_hat = m[i] / (1 - std::pow(b1, t));
      const double v_hat = v[i] / (1 - std::pow(b2, t));
      ep[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
      EXPECT_NEAR(p[static_cast<size_t>(i)], ep[i], 2e-6) << "step " << t << " element " << i;
    }
  }
  // Element 0's first moment by hand: 0.2*0.2 = 0.04, then 0.8*0.04 - 0.2*0.4 = -0.048, then
  // 0.8*(-0.048) + 0.2*0.1 = -0.0184; second moment 0.05*0.04 = 0.002, 0.95*0.002 + 0.05*0.16
  // = 0.0099, 0.95*0.0099 + 0.05*0.01 = 0.009905.
  EXPECT_NEAR(opt.state().at("p").exp_avg[0], -0.0184, 1e-7);
  EXPECT_NEAR(opt.state().at("p").exp_avg_sq[0], 0.009905, 1e-8);
  EXPECT_EQ(opt.state().at("p").step, 3);
}

TEST(AdamW, SetLrAndPerParameterSteps) {
  AdamW opt({.lr = 0.1, .weight_decay = 0.0});
  std::vector<float> a = {1.0f}, b = {1.0f};
  const std::vector<float> g = {1.0f};
  opt.step({{"a", a, g}});
  opt.set_lr(0.01);
  EXPECT_EQ(opt.lr(), 0.01);
  opt.step({{"a", a, g}, {"b", b, g}});       // b's first step: its own t = 1
  EXPECT_NEAR(a[0], 1.0 - 0.1 - 0.01, 1e-6);  // m_hat / sqrt(v_hat) = 1 for a constant gradient
  EXPECT_NEAR(b[0], 1.0 - 0.01, 1e-6);
  EXPECT_EQ(opt.state().at("a").step, 2);
  EXPECT_EQ(opt.state().at("b").step, 1);
  EXPECT_EQ(opt.steps_taken(), 2);
}

TEST(AdamW, RefusesBadOptionsAndShapes) {
  EXPECT_THROW(AdamW({.lr = -1}), model::ModelError);
  EXPECT_THROW(AdamW({.beta1 = 1.0}), model::ModelError);
  EXPECT_THROW(AdamW({.beta2 = -0.1}), model::ModelError);
  EXPECT_THROW(AdamW({.eps = -1e-8}), model::ModelError);
  EXPECT_THROW(AdamW({.weight_decay = -0.01}), model::ModelError);
  AdamW opt;
  EXPECT_THROW(opt.set_lr(std::nan("")), model::ModelError);

  std::vector<float> p = {1, 2}, q = {1, 2, 3};
  const std::vector<float> g2 = {0.1f, 0.2f}, g3 = {0.1f, 0.2f, 0.3f};
  EXPECT_THROW(opt.step({{"p", p, g3}}), model::ModelError);
  EXPECT_THROW(opt.step({{"p", p, g2}, {"p", p, g2}}), model::ModelError);
  EXPECT_THROW(opt.step({{"", p, g2}}), model::ModelError);
  opt.step({{"p", p, g2}});
  // A size that differs from the state is refused before anything moves.
  const std::vector<float> q_before = q;
  EXPECT_THROW(opt.step({{"other", q, g3}, {"p", q, g3}}), model::ModelError);
  EXPECT_EQ(q, q_before);
  EXPECT_FALSE(opt.state().contains("other"));
  EXPECT_EQ(opt.steps_taken(), 1);
}

TEST(AdamW, CheckpointResumesExactly) {
  model_test::TempDir dir;
  const std::vector<std::vector<float>> grads = {
      {0.3f, -0.2f, 0.1f}, {0.05f, 0.4f, -0.6f}, {-0.1f, 0.1f, 0.2f}, {0.7f, 0.0f, -0.3f}};
  const std::vector<float> bias_grad = {0.5f};
  std::vector<float> straight = {1, 2, 3}, straight_bias = {0.25f};
  AdamW a({.lr = 0.02, .beta1 = 0.85});
  for (const auto& g : grads)
    a.step({{"w", straight, g}, {"layers.0.b", straight_bias, bias_grad}});

  std::vector<float> resumed = {1, 2, 3}, resumed_bias = {0.25f};
  AdamW b({.lr = 0.02, .beta1 = 0.85});
  for (size_t i = 0; i < 2; ++i) {
    b.step({{"w", resumed, grads[i]}, {"layers.0.b", resumed_bias, bias_grad}});
  }
  model::save_adamw(dir / "opt.safetensors", b);
  AdamW c = model::load_adamw(dir / "opt.safetensors");
  EXPECT_EQ(c.steps_taken(), 2);
  EXPECT_EQ(c.state(), b.state());
  EXPECT_EQ(c.options().beta1, 0.85);
  EXPECT_EQ(c.lr(), 0.02);
  for (size_t i = 2; i < grads.size(); ++i) {
    c.step({{"w", resumed, grads[i]}, {"layers.0.b", resumed_bias, bias_grad}});
  }
  EXPECT_EQ(resumed, straight);  // bit for bit
  EXPECT_EQ(resumed_bias, straight_bias);
}

TEST(AdamW, RefusesBadCheckpoints) {
  model_test::TempDir dir;
  const auto path = dir / "opt.safetensors";
  EXPECT_THROW(model::load_adamw(path), model::ModelError);
  const std::vector<float> v = {1, 2};
  const model::TensorToWrite t[] = {{"w.exp_avg", model::DType::kF32, {2}, v}};
  model::write_safetensors(path, t, {{"format", "something-else"}});
  EXPECT_THROW(model::load_adamw(path), model::ModelError);

  AdamW opt;
  std::vector<float> p = {1, 2};
  opt.step({{"w", p, v}});
  model::save_adamw(path, opt);
  const std::string bytes = test_support::slurp(path);
  std::string renamed = bytes;
  renamed.replace(renamed.find("w.exp_avg_sq"), 12, "w.exp_avg_zz");
  test_support::write_file(path, renamed);
  try {
    model::load_adamw(path);
    ADD_FAILURE() << "loaded a checkpoint with an unknown tensor";
  } catch (const model::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown tensor 'w.exp_avg_zz'"), std::string::npos)
        << e.what();
  }
}

}  // namespace
