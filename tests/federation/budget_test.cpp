// Privacy budgets over real processes: a site whose --epsilon-max admits one round is never
// selected again once exhausted (budget_exhausted logged once for it), and the run ends cleanly
// when no site can train any more.
#include "federation_fixture.h"

namespace federation_test {
namespace {

TEST_F(FederationTest, ExhaustedSitesAreNotSelectedAndTheRunEndsCleanly) {
  fedsim::SimConfig c = tiny_config();
  c.sites = 2;
  c.rounds = 6;
  c.min_participants = 1;
  c.fraction = 1.0;
  // q 0.1, sigma 1, 2 steps a round, delta 1e-5: epsilon 2.41 after one round, 2.76 after two,
  // 3.03 after three. site-0 affords one round, site-1 two.
  auto& fed = federation(c, fresh_run_dir());
  fed.start_coordinator();
  fed.start_workers(kPatience);
  fed.start_site(0, {{"--epsilon-max", "2.6"}});
  fed.start_site(1, {{"--epsilon-max", "2.9"}});

  const auto rc = fed.wait_coordinator(kPatience);
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, 0);
  const auto all = events(fed);

  int exhausted0 = 0, exhausted1 = 0;
  bool site0_out = false;
  std::vector<std::set<std::string>> selections;
  for (const auto& e : all) {
    if (e["event"] == "budget_exhausted") {
      if (e["site"] == "site-0") {
        ++exhausted0;
        site0_out = true;
      }
      if (e["site"] == "site-1") ++exhausted1;
    }
    if (e["event"] == "round_started") {
      selections.push_back(id_set(e, "selected"));
      EXPECT_FALSE(site0_out && selections.back().count("site-0"))
          << "site-0 selected for round " << e["round"] << " after its budget was exhausted";
    }
  }
  EXPECT_EQ(exhausted0, 1);
  EXPECT_EQ(exhausted1, 1);
  ASSERT_EQ(selections.size(), 2u);
  EXPECT_EQ(selections[0], (std::set<std::string>{"site-0", "site-1"}));
  EXPECT_EQ(selections[1], (std::set<std::string>{"site-1"}));
  EXPECT_FALSE(has_event(all, "participant_dropped"));  // nobody had to decline
  EXPECT_TRUE(has_event(all, "run_finished", [](const json& e) {
    return e["reason"] == "budget_exhausted" && e["last_round"] == 2;
  }));
  // The sites' own accounts agree: neither spent more than its limit.
  for (const auto& e : all) {
    if (e["event"] != "round_finished") continue;
    EXPECT_LE(e["epsilon"]["site-0"].get<double>(), 2.6);
    EXPECT_LE(e["epsilon"]["site-1"].get<double>(), 2.9);
  }
  // The coordinator told the sites the run is over: they exit on their own.
  EXPECT_EQ(fed.wait("site-0", kPatience), std::optional<int>(0));
  EXPECT_EQ(fed.wait("site-1", kPatience), std::optional<int>(0));
}

}  // namespace
}  // namespace federation_test
