// Strategy math against hand-computed formulas, the accumulator's order independence, and the
// per-site deltas a strategy can ask for (RoundAggregator).
#include <algorithm>
#include <cmath>
#include <cstring>

#include <gtest/gtest.h>

#include "coordinator/accumulator.h"
#include "coordinator/aggregation.h"
#include "coordinator/drbg.h"
#include "coordinator/strategy.h"
#include "recording_strategy.h"

namespace coordinator {
namespace {

TEST(Accumulator, FedAvgWeightsByExamples) {
  DeltaAccumulator acc(3);
  ASSERT_TRUE(acc.add(std::vector<float>{1.0f, -2.0f, 0.5f}, 1).ok());
  ASSERT_TRUE(acc.add(std::vector<float>{3.0f, 2.0f, 0.25f}, 3).ok());
  const auto mean = acc.mean();
  EXPECT_EQ(acc.total_examples(), 4u);
  EXPECT_FLOAT_EQ(mean[0], (1 * 1.0f + 3 * 3.0f) / 4);
  EXPECT_FLOAT_EQ(mean[1], (1 * -2.0f + 3 * 2.0f) / 4);
  EXPECT_FLOAT_EQ(mean[2], (1 * 0.5f + 3 * 0.25f) / 4);
}

TEST(Accumulator, RefusesBadContributionsAndAddsNothing) {
  DeltaAccumulator acc(2);
  EXPECT_FALSE(acc.add(std::vector<float>{1.0f}, 1).ok());
  EXPECT_FALSE(acc.add(std::vector<float>{1.0f, NAN}, 1).ok());
  EXPECT_FALSE(acc.add(std::vector<float>{1.0f, INFINITY}, 1).ok());
  EXPECT_FALSE(acc.add(std::vector<float>{1.0f, 1e30f}, 1).ok());
  EXPECT_FALSE(acc.add(std::vector<float>{1.0f, 1.0f}, 0).ok());
  EXPECT_FALSE(acc.add(std::vector<float>{1.0f, 1.0f}, (uint64_t{1} << 32) + 1).ok());
  EXPECT_EQ(acc.contributions(), 0u);
  EXPECT_EQ(acc.mean(), (std::vector<float>{0.0f, 0.0f}));
}

TEST(Accumulator, IsIndependentOfArrivalOrderBitForBit) {
  Drbg rng(7);
  const size_t sites = 9, size = 4096;
  std::vector<std::vector<float>> deltas(sites, std::vector<float>(size));
  std::vector<uint64_t> counts(sites);
  for (size_t s = 0; s < sites; ++s) {
    counts[s] = 1 + rng.uniform(1000);
    for (auto& v : deltas[s]) {
      // Values over many magnitudes, so float summation would depend on the order.
      const double u = static_cast<double>(rng.uniform(1u << 30)) / (1u << 30) - 0.5;
      v = static_cast<float>(std::ldexp(u, static_cast<int>(rng.uniform(40)) - 30));
    }
  }
  std::vector<size_t> order(sites);
  for (size_t i = 0; i < sites; ++i) order[i] = i;
  std::vector<float> first;
  for (int trial = 0; trial < 5; ++trial) {
    DeltaAccumulator acc(size);
    for (const size_t s : order) ASSERT_TRUE(acc.add(deltas[s], counts[s]).ok());
    const auto mean = acc.mean();
    if (trial == 0) {
      first = mean;
    } else {
      ASSERT_EQ(0, std::memcmp(first.data(), mean.data(), size * sizeof(float))) << trial;
    }
    std::reverse(order.begin(), order.end());
    std::rotate(order.begin(), order.begin() + 2, order.end());
  }
  // And it is the weighted mean (to float precision).
  double num = 0, den = 0;
  for (size_t s = 0; s < sites; ++s) {
    num += static_cast<double>(counts[s]) * deltas[s][17];
    den += static_cast<double>(counts[s]);
  }
  EXPECT_NEAR(first[17], num / den, 1e-6 * std::fabs(num / den) + 1e-13);
}

std::unique_ptr<Strategy> make(const std::string& name) {
  StrategyConfig c;
  c.name = name;
  c.server_lr = 0.1;
  c.beta1 = 0.9;
  c.beta2 = 0.99;
  c.tau = 1e-3;
  auto s = make_strategy(c, 2);
  EXPECT_TRUE(s.ok());
  return std::move(s).value();
}

TEST(Strategy, FedAvgAddsTheMeanDelta) {
  StrategyConfig c;
  auto s = make_strategy(c, 2).value();
  std::vector<float> x{1.0f, 2.0f};
  s->apply(x, std::vector<float>{0.5f, -0.25f});
  EXPECT_EQ(x, (std::vector<float>{1.5f, 1.75f}));
  EXPECT_EQ(s->state().steps, 1u);
  EXPECT_TRUE(s->state().buffers.empty());
}

TEST(Strategy, FedOptOneStepMatchesTheFormulas) {
  const double d = 0.5, x0 = 1.0, eta = 0.1, b1 = 0.9, b2 = 0.99, tau = 1e-3;
  const double m = (1 - b1) * d;
  const std::vector<std::pair<std::string, double>> v_of = {
      {"fedadam", (1 - b2) * d * d},
      {"fedadagrad", d * d},
      // v starts at 0 < d^2, so sign(v - d^2) = -1 and v = (1 - b2) d^2.
      {"fedyogi", (1 - b2) * d * d},
  };
  for (const auto& [name, v] : v_of) {
    auto s = make(name);
    std::vector<float> x{static_cast<float>(x0), 0.0f};
    s->apply(x, std::vector<float>{static_cast<float>(d), 0.0f});
    EXPECT_FLOAT_EQ(x[0], static_cast<float>(x0 + eta * m / (std::sqrt(v) + tau))) << name;
    EXPECT_FLOAT_EQ(x[1], 0.0f) << name;
    const auto st = s->state();
    ASSERT_EQ(st.buffers.size(), 2u) << name;
    EXPECT_FLOAT_EQ(st.buffers[0][0], static_cast<float>(m)) << name;
    EXPECT_FLOAT_EQ(st.buffers[1][0], static_cast<float>(v)) << name;
  }
}

TEST(Strategy, YogiAndAdamDifferOnTheSecondStep) {
  // Step 2 with a smaller delta: Adam decays v, Yogi (v > d^2) lowers it additively.
  auto adam = make("fedadam"), yogi = make("fedyogi");
  std::vector<float> xa{0.0f}, xy{0.0f};
  adam = make_strategy({"fedadam", 0.1, 0.9, 0.99, 1e-3}, 1).value();
  yogi = make_strategy({"fedyogi", 0.1, 0.9, 0.99, 1e-3}, 1).value();
  for (auto d : {1.0f, 0.01f}) {
    adam->apply(xa, std::vector<float>{d});
    yogi->apply(xy, std::vector<float>{d});
  }
  const double v1 = 0.01;  // (1 - b2) * 1
  const double adam_v2 = 0.99 * v1 + 0.01 * 1e-4;
  const double yogi_v2 = v1 - 0.01 * 1e-4 * 1.0;  // sign(v1 - d^2) = +1
  EXPECT_FLOAT_EQ(adam->state().buffers[1][0], static_cast<float>(adam_v2));
  EXPECT_FLOAT_EQ(yogi->state().buffers[1][0], static_cast<float>(yogi_v2));
}

TEST(Strategy, StateRestoresAndRefusesWrongShapes) {
  auto a = make("fedadam");
  std::vector<float> x{1.0f, 1.0f};
  a->apply(x, std::vector<float>{0.1f, 0.2f});
  auto b = make("fedadam");
  ASSERT_TRUE(b->restore(a->state()).ok());
  EXPECT_EQ(b->state(), a->state());
  EXPECT_FALSE(b->restore({1, {{1.0f}}}).ok());
  EXPECT_FALSE(make_strategy({"fedsgd"}, 2).ok());
  EXPECT_FALSE(make_strategy({"fedadam", 0.1, 1.0, 0.99, 1e-3}, 2).ok());
}

// Deltas of `size` values over many magnitudes (float sums would depend on the order).
std::vector<std::vector<float>> random_deltas(size_t sites, size_t size, uint64_t seed) {
  Drbg rng(seed);
  std::vector<std::vector<float>> d(sites, std::vector<float>(size));
  for (auto& site : d) {
    for (auto& v : site) {
      const double u = static_cast<double>(rng.uniform(1u << 30)) / (1u << 30) - 0.5;
      v = static_cast<float>(std::ldexp(u, static_cast<int>(rng.uniform(40)) - 30));
    }
  }
  return d;
}

TEST(StrategyDeltas, AStrategyThatAsksGetsEachAcceptedDeltaOnceWithItsWeight) {
  const size_t size = 64;
  const auto d = random_deltas(4, size, 11);
  std::vector<coordinator_test::RecordedRound> rounds;
  coordinator_test::RecordingStrategy rec(make_strategy(StrategyConfig{}, size).value(), &rounds);
  RoundAggregator agg(size, rec.wants_site_deltas());
  // Arrival order c, a, b; a refused delta (NaN) and a second delta from `a` are not kept.
  ASSERT_TRUE(agg.add("c", d[2], 30).ok());
  ASSERT_TRUE(agg.add("a", d[0], 10).ok());
  auto nan = d[3];
  nan[5] = NAN;
  EXPECT_FALSE(agg.add("d", nan, 40).ok());
  EXPECT_FALSE(agg.add("a", d[3], 10).ok());
  ASSERT_TRUE(agg.add("b", d[1], 20).ok());
  EXPECT_EQ(agg.contributions(), 3u);
  EXPECT_EQ(agg.total_examples(), 60u);
  std::vector<float> global(size, 1.0f);
  agg.aggregate(rec, global);
  ASSERT_EQ(rounds.size(), 1u);
  const auto& r = rounds[0];
  ASSERT_EQ(r.deltas.size(), 3u);  // sorted by site id, each once
  const std::vector<std::pair<std::string, uint64_t>> expected{{"a", 10}, {"b", 20}, {"c", 30}};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(r.deltas[i].site, expected[i].first);
    EXPECT_EQ(r.deltas[i].weight, expected[i].second);
    EXPECT_EQ(r.deltas[i].values, d[i]);
  }
  EXPECT_EQ(r.mean, agg.mean());
  // After reset() nothing is kept and a site may contribute again.
  agg.reset();
  EXPECT_EQ(agg.contributions(), 0u);
  ASSERT_TRUE(agg.add("a", d[0], 10).ok());
  agg.aggregate(rec, global);
  ASSERT_EQ(rounds.size(), 2u);
  ASSERT_EQ(rounds[1].deltas.size(), 1u);
  EXPECT_EQ(rounds[1].deltas[0].site, "a");
}

TEST(StrategyDeltas, FedAvgKeepsNoDeltasAndItsResultIsUnchangedBitForBit) {
  const size_t size = 4096;
  const auto d = random_deltas(6, size, 5);
  const std::vector<uint64_t> weights{3, 100, 7, 1, 999, 42};
  auto fedavg = make_strategy(StrategyConfig{}, size).value();
  EXPECT_FALSE(fedavg->wants_site_deltas());
  // The streaming accumulator and FedAvg's apply(), as before per-site deltas existed.
  DeltaAccumulator acc(size);
  for (size_t s = 0; s < d.size(); ++s) ASSERT_TRUE(acc.add(d[s], weights[s]).ok());
  std::vector<float> before(size, 0.25f);
  make_strategy(StrategyConfig{}, size).value()->apply(before, acc.mean());
  // Through RoundAggregator, in another order: FedAvg, and FedAvg behind a strategy that keeps
  // every delta, give the same bits.
  std::vector<coordinator_test::RecordedRound> rounds;
  coordinator_test::RecordingStrategy rec(make_strategy(StrategyConfig{}, size).value(), &rounds);
  for (Strategy* s : {static_cast<Strategy*>(fedavg.get()), static_cast<Strategy*>(&rec)}) {
    RoundAggregator agg(size, s->wants_site_deltas());
    for (size_t i = d.size(); i-- > 0;) {
      ASSERT_TRUE(agg.add("site" + std::to_string(i), d[i], weights[i]).ok());
    }
    std::vector<float> after(size, 0.25f);
    agg.aggregate(*s, after);
    EXPECT_EQ(0, std::memcmp(before.data(), after.data(), size * sizeof(float))) << s->name();
  }
  ASSERT_EQ(rounds.size(), 1u);
  EXPECT_EQ(rounds[0].deltas.size(), d.size());
}

TEST(Drbg, IsDeterministicAndResumesFromItsState) {
  Drbg a(42), b(42), c(43);
  EXPECT_EQ(a.next_u64(), b.next_u64());
  EXPECT_NE(Drbg(42).next_u64(), c.next_u64());
  auto restored = Drbg::from_state(a.state());
  ASSERT_TRUE(restored.ok());
  EXPECT_EQ(restored.value().next_u64(), a.next_u64());
  EXPECT_FALSE(Drbg::from_state("zz").ok());
  EXPECT_FALSE(Drbg::from_state(std::string(64, 'g') + ":1").ok());
  for (int i = 0; i < 1000; ++i) EXPECT_LT(a.uniform(3), 3u);
  // Roughly uniform: each of 4 values drawn 1000 +- 150 times out of 4000.
  int counts[4] = {};
  for (int i = 0; i < 4000; ++i) ++counts[a.uniform(4)];
  for (int k : counts) EXPECT_NEAR(k, 1000, 150);
}

}  // namespace
}  // namespace coordinator
