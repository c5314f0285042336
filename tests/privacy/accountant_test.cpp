#include "privacy/accountant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "privacy/error.h"
#include "privacy/rdp.h"

namespace {

double eps(double q, double sigma, int64_t steps, double delta = 1e-5) {
  return privacy::epsilon_for({q, sigma, steps}, delta).epsilon;
}

TEST(Accountant, GaussianClosedForm) {
  // q = 1: rdp(alpha) = steps * alpha / (2 sigma^2) exactly, so epsilon is an explicit minimum.
  for (double sigma : {0.6, 1.0, 3.0, 20.0}) {
    for (int64_t steps : {1, 10, 1000}) {
      for (double delta : {1e-5, 1e-8}) {
        double best = std::numeric_limits<double>::infinity();
        double best_order = 0;
        for (double a : privacy::default_orders()) {
          const double e = static_cast<double>(steps) * a / (2 * sigma * sigma) -
                           (std::log(delta) + std::log(a)) / (a - 1) + std::log((a - 1) / a);
          if (e < best) {
            best = e;
            best_order = a;
          }
        }
        const privacy::PrivacySpent s = privacy::epsilon_for({1.0, sigma, steps}, delta);
        EXPECT_NEAR(s.epsilon, best, 1e-12 * best) << sigma << " " << steps << " " << delta;
        EXPECT_EQ(s.order, best_order);
      }
    }
  }
}

TEST(Accountant, MonotoneInStepsAndSigma) {
  for (double q : {0.001, 0.01, 0.2}) {
    double previous = 0;
    for (int64_t steps : {1, 10, 100, 1000, 10000, 100000}) {
      const double e = eps(q, 1.0, steps);
      EXPECT_GT(e, previous) << "q=" << q << " steps=" << steps;
      previous = e;
    }
    previous = std::numeric_limits<double>::infinity();
    for (double sigma : {0.4, 0.6, 0.8, 1.0, 1.5, 2.0, 4.0, 8.0}) {
      const double e = eps(q, sigma, 1000);
      EXPECT_LT(e, previous) << "q=" << q << " sigma=" << sigma;
      previous = e;
    }
  }
  // More sampling costs more privacy.
  EXPECT_LT(eps(0.01, 1.0, 1000), eps(0.02, 1.0, 1000));
}

TEST(Accountant, CompositionAddsRdpPerOrder) {
  const privacy::Phase a{0.01, 1.1, 1000};
  const privacy::Phase b{0.05, 2.0, 300};
  privacy::RdpAccountant acc;
  acc.add(a);
  acc.add(b);
  ASSERT_EQ(acc.phases().size(), 2u);
  EXPECT_EQ(acc.total_steps(), 1300);
  const std::vector<double>& orders = privacy::default_orders();
  const std::vector<double> ra = privacy::compute_rdp(a.q, a.sigma, a.steps, orders);
  const std::vector<double> rb = privacy::compute_rdp(b.q, b.sigma, b.steps, orders);
  const std::vector<double> total = acc.rdp();
  ASSERT_EQ(total.size(), orders.size());
  std::vector<double> sum(orders.size());
  for (size_t k = 0; k < orders.size(); ++k) {
    sum[k] = ra[k] + rb[k];
    EXPECT_DOUBLE_EQ(total[k], sum[k]) << orders[k];
  }
  const privacy::PrivacySpent composed = acc.spent(1e-5);
  const privacy::PrivacySpent expected = privacy::privacy_spent(orders, sum, 1e-5);
  EXPECT_DOUBLE_EQ(composed.epsilon, expected.epsilon);
  EXPECT_EQ(composed.order, expected.order);
  // Composition costs more than either phase alone but less than the sum of their epsilons.
  EXPECT_GT(composed.epsilon, eps(a.q, a.sigma, a.steps));
  EXPECT_GT(composed.epsilon, eps(b.q, b.sigma, b.steps));
  EXPECT_LT(composed.epsilon, eps(a.q, a.sigma, a.steps) + eps(b.q, b.sigma, b.steps));
}

TEST(Accountant, StepsOfOnePhaseCompose) {
  privacy::RdpAccountant acc;
  for (int i = 0; i < 10; ++i) acc.add({0.02, 1.3, 100});
  ASSERT_EQ(acc.phases().size(), 1u);  // merged: same q and sigma
  EXPECT_EQ(acc.phases()[0].steps, 1000);
  EXPECT_DOUBLE_EQ(acc.spent(1e-6).epsilon, privacy::epsilon_for({0.02, 1.3, 1000}, 1e-6).epsilon);
  acc.add({0.02, 1.3, 0});  // no-op
  EXPECT_EQ(acc.total_steps(), 1000);
}

TEST(Accountant, EmptyAccountantHasSpentNothing) {
  privacy::RdpAccountant acc;
  EXPECT_EQ(acc.spent(1e-5).epsilon, 0.0);
  const privacy::PrivacySpent planned = acc.spent_with({0.01, 1.0, 100}, 1e-5);
  EXPECT_DOUBLE_EQ(planned.epsilon, eps(0.01, 1.0, 100));
  EXPECT_TRUE(acc.phases().empty());  // spent_with does not record
}

TEST(Accountant, CustomOrders) {
  privacy::RdpAccountant acc(std::vector<double>{2.0, 8.0, 32.0});
  acc.add({1.0, 2.0, 10});
  ASSERT_EQ(acc.rdp().size(), 3u);
  EXPECT_DOUBLE_EQ(acc.rdp()[1], 10 * 8.0 / 8.0);
  EXPECT_THROW(privacy::RdpAccountant(std::vector<double>{}), privacy::PrivacyError);
  EXPECT_THROW(privacy::RdpAccountant(std::vector<double>{0.5, 2.0}), privacy::PrivacyError);
}

TEST(Accountant, JsonRoundTripIsExact) {
  privacy::RdpAccountant acc;
  acc.add({0.013, 1.07, 777});
  acc.add({0.5, 3.3, 12});
  acc.add({1e-5, 0.9, 10'000'000});
  const std::string json = acc.to_json();
  const privacy::RdpAccountant back = privacy::RdpAccountant::from_json(json);
  ASSERT_EQ(back.phases().size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back.phases()[i].q, acc.phases()[i].q);
    EXPECT_EQ(back.phases()[i].sigma, acc.phases()[i].sigma);
    EXPECT_EQ(back.phases()[i].steps, acc.phases()[i].steps);
  }
  EXPECT_EQ(back.orders(), acc.orders());
  EXPECT_EQ(back.rdp(), acc.rdp());  // bit for bit
  EXPECT_EQ(back.spent(1e-5).epsilon, acc.spent(1e-5).epsilon);
  EXPECT_EQ(back.to_json(), json);
}

TEST(Accountant, FromJsonRejectsBadState) {
  EXPECT_THROW(privacy::RdpAccountant::from_json(""), privacy::PrivacyError);
  EXPECT_THROW(privacy::RdpAccountant::from_json("{\"orders\": [2.0], \"phases\": ["),
               privacy::PrivacyError);
  EXPECT_THROW(privacy::RdpAccountant::from_json("[]"), privacy::PrivacyError);
  EXPECT_THROW(privacy::RdpAccountant::from_json("{\"phases\": []}"), privacy::PrivacyError);
  EXPECT_THROW(privacy::RdpAccountant::from_json("{\"orders\": [1.0], \"phases\": []}"),
               privacy::PrivacyError);
  EXPECT_THROW(privacy::RdpAccountant::from_json(
                   R"({"orders": [2.0], "phases": [{"q": 1.5, "sigma": 1, "steps": 3}]})"),
               privacy::PrivacyError);
  EXPECT_THROW(privacy::RdpAccountant::from_json(
                   R"({"orders": [2.0], "phases": [{"q": 0.5, "sigma": 1, "steps": -3}]})"),
               privacy::PrivacyError);
  EXPECT_THROW(privacy::RdpAccountant::from_json(
                   R"({"orders": [2.0], "phases": [{"q": 0.5, "sigma": 1, "steps": 2.5}]})"),
               privacy::PrivacyError);
  EXPECT_THROW(privacy::RdpAccountant::from_json(
                   R"({"orders": [2.0], "phases": [{"q": "x", "sigma": 1, "steps": 2}]})"),
               privacy::PrivacyError);
  EXPECT_THROW(privacy::RdpAccountant::from_json(R"({"orders": [2.0], "phases": [{"q": 0.5}]})"),
               privacy::PrivacyError);
}

TEST(Accountant, RejectsInvalidPhases) {
  privacy::RdpAccountant acc;
  EXPECT_THROW(acc.add({-0.1, 1.0, 10}), privacy::PrivacyError);
  EXPECT_THROW(acc.add({1.01, 1.0, 10}), privacy::PrivacyError);
  EXPECT_THROW(acc.add({0.1, 0.0, 10}), privacy::PrivacyError);
  EXPECT_THROW(acc.add({0.1, 1.0, -1}), privacy::PrivacyError);
  EXPECT_THROW(acc.add({std::nan(""), 1.0, 1}), privacy::PrivacyError);
  // Step counts that would overflow are refused, leaving the accountant as it was.
  const int64_t big = std::numeric_limits<int64_t>::max() - 5;
  acc.add({0.1, 1.0, big});
  EXPECT_THROW(acc.add({0.1, 1.0, 10}), privacy::PrivacyError);
  EXPECT_THROW(acc.add({0.2, 1.0, 10}), privacy::PrivacyError);
  EXPECT_EQ(acc.total_steps(), big);
  ASSERT_EQ(acc.phases().size(), 1u);
  EXPECT_EQ(acc.phases()[0].steps, big);
  privacy::RdpAccountant fresh;
  EXPECT_THROW(fresh.spent(0.0), privacy::PrivacyError);
  EXPECT_THROW(fresh.spent(1.0), privacy::PrivacyError);
  EXPECT_THROW(fresh.add({-0.1, 1.0, 10}), privacy::PrivacyError);
  EXPECT_TRUE(fresh.phases().empty());
}

struct SigmaCase {
  double q;
  int64_t steps;
  double epsilon;
  double delta;
};

TEST(SigmaForEpsilon, InvertsEpsilon) {
  const SigmaCase cases[] = {
      {0.01, 1000, 2.0, 1e-5}, {0.01, 10000, 8.0, 1e-5}, {0.001, 100000, 0.5, 1e-6},
      {1.0, 1, 1.0, 1e-5},     {1.0, 100, 10.0, 1e-5},   {0.25, 50, 3.0, 1e-7},
  };
  for (const SigmaCase& c : cases) {
    const double sigma = privacy::sigma_for_epsilon(c.q, c.steps, c.epsilon, c.delta);
    const double e = eps(c.q, sigma, c.steps, c.delta);
    EXPECT_LE(e, c.epsilon) << "q=" << c.q << " steps=" << c.steps;
    EXPECT_GE(e, c.epsilon * (1 - 1e-3)) << "q=" << c.q << " steps=" << c.steps;
    // It is the smallest such sigma (to the 1e-4 relative the search promises).
    EXPECT_GT(eps(c.q, sigma * (1 - 1e-4), c.steps, c.delta), c.epsilon)
        << "q=" << c.q << " steps=" << c.steps;
  }
}

TEST(SigmaForEpsilon, EdgesOfTheSearchRange) {
  // A target so loose that the smallest sigma searched already meets it.
  EXPECT_EQ(privacy::sigma_for_epsilon(1e-4, 1, 1000.0, 1e-5), privacy::SigmaSearch{}.sigma_min);
  // Unreachable: the conversion alone costs more than 0.01 at delta = 1e-5, whatever sigma.
  EXPECT_THROW(privacy::sigma_for_epsilon(0.01, 100, 0.01, 1e-5), privacy::PrivacyError);
  try {
    privacy::sigma_for_epsilon(0.01, 100, 0.01, 1e-5);
  } catch (const privacy::PrivacyError& e) {
    EXPECT_NE(std::string(e.what()).find("unreachable"), std::string::npos) << e.what();
  }
  EXPECT_THROW(privacy::sigma_for_epsilon(0.01, 100, -1.0, 1e-5), privacy::PrivacyError);
  EXPECT_THROW(privacy::sigma_for_epsilon(0.01, -1, 1.0, 1e-5), privacy::PrivacyError);
  EXPECT_THROW(privacy::sigma_for_epsilon(1.5, 100, 1.0, 1e-5), privacy::PrivacyError);
  EXPECT_THROW(privacy::sigma_for_epsilon(0.01, 100, 1.0, 0.0), privacy::PrivacyError);
}

}  // namespace
