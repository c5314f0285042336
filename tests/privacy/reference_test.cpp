// Agreement with Opacus's RDP accountant on the reference sample in
// tests/privacy/reference/dp_opacus_sample.json (compute_rdp + get_privacy_spent with the default orders).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "privacy/accountant.h"
#include "privacy/rdp.h"

namespace {

const std::string kReferenceFile = std::string(FEDLORA_REFERENCE_DIR) + "/dp_opacus_sample.json";

// Loads the reference file; a missing or unreadable file fails the test (it is not skipped).
bool load_reference(nlohmann::json* out) {
  std::ifstream in(kReferenceFile);
  if (!in) {
    ADD_FAILURE() << "Opacus reference file " << kReferenceFile
                  << " is missing: it is part of the repository (tests/privacy/reference/)";
    return false;
  }
  try {
    *out = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    ADD_FAILURE() << "cannot parse " << kReferenceFile << ": " << e.what();
    return false;
  }
  return true;
}

TEST(OpacusReference, DefaultOrdersAreTheReferenceOrders) {
  nlohmann::json ref;
  if (!load_reference(&ref)) return;
  ASSERT_TRUE(ref.contains("orders")) << "reference has no \"orders\"";
  const std::vector<double> orders = ref["orders"].get<std::vector<double>>();
  EXPECT_EQ(orders, privacy::default_orders());
}

TEST(OpacusReference, EpsilonAndOrderAgreeOnEveryCase) {
  nlohmann::json ref;
  if (!load_reference(&ref)) return;
  ASSERT_TRUE(ref.contains("cases") && ref["cases"].is_array());
  const nlohmann::json& cases = ref["cases"];
  ASSERT_GE(cases.size(), 1u);
  double max_rel = 0;
  for (const nlohmann::json& c : cases) {
    const privacy::Phase phase{c.at("q").get<double>(), c.at("sigma").get<double>(),
                               c.at("steps").get<int64_t>()};
    const double delta = c.at("delta").get<double>();
    const double want = c.at("epsilon").get<double>();
    const privacy::PrivacySpent got = privacy::epsilon_for(phase, delta);
    const double rel = std::fabs(got.epsilon - want) / std::fabs(want);
    max_rel = std::max(max_rel, rel);
    EXPECT_LE(rel, 1e-6) << "q=" << phase.q << " sigma=" << phase.sigma << " steps=" << phase.steps
                         << " delta=" << delta << ": epsilon " << got.epsilon << " vs Opacus "
                         << want;
    if (c.contains("order")) {
      EXPECT_EQ(got.order, c["order"].get<double>())
          << "q=" << phase.q << " sigma=" << phase.sigma << " steps=" << phase.steps
          << " delta=" << delta;
    }
    // The accountant (phases recorded one by one) gives the same figure.
    privacy::RdpAccountant acc;
    acc.add(phase);
    EXPECT_LE(std::fabs(acc.spent(delta).epsilon - want) / want, 1e-6);
  }
  std::printf("[ reference ] %zu Opacus cases, max relative error on epsilon %.3g\n", cases.size(),
              max_rel);
  RecordProperty("reference_cases", static_cast<int>(cases.size()));
  RecordProperty("max_relative_error", std::to_string(max_rel));
}

}  // namespace
