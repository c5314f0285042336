// kill -9 of a participant during a round: the round completes from the other sites, and the
// site, restarted on the same state directory, rejoins and delivers a delta in a later round.
#include "federation_fixture.h"

namespace federation_test {
namespace {

TEST_F(FederationTest, AParticipantKilledDuringARoundRejoinsLater) {
  fedsim::SimConfig c = tiny_config();
  c.sites = 3;
  c.rounds = 3;
  c.min_participants = 2;
  c.fraction = 1.0;
  auto& fed = federation(c, fresh_run_dir());
  fed.start_coordinator();  // the first round waits for every site
  fed.start_parties(kPatience);

  // Round 1 starts with all three sites; site-2 dies while they train.
  ASSERT_TRUE(wait_for(fed, [](const std::vector<json>& ev) {
    return has_event(ev, "round_started", [](const json& e) { return e["round"] == 1; });
  }));
  fed.kill("site-2");
  EXPECT_FALSE(fed.running("site-2"));
  const auto at_kill = events(fed);
  ASSERT_FALSE(has_event(at_kill, "delta_received", [](const json& e) {
    return e["round"] == 1 && e["site"] == "site-2";
  })) << "site-2 delivered before it was killed: not a crash during the round";

  // The others complete round 1 without it.
  ASSERT_TRUE(wait_for(fed, [](const std::vector<json>& ev) {
    return has_event(ev, "round_finished", [](const json& e) { return e["round"] == 1; });
  }));
  for (const auto& e : events(fed)) {
    if (e["event"] == "round_started" && e["round"] == 1) {
      EXPECT_EQ(id_set(e, "selected"), (std::set<std::string>{"site-0", "site-1", "site-2"}));
    }
    if (e["event"] == "round_finished" && e["round"] == 1) {
      EXPECT_EQ(id_set(e, "sites"), (std::set<std::string>{"site-0", "site-1"}));
    }
  }

  // Restarted with the same arguments and state directory, it comes back.
  fed.restart("site-2");
  const auto rc = fed.wait_coordinator(kPatience);
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, 0);
  const auto all = events(fed);
  EXPECT_TRUE(has_event(all, "participant_dropped",
                        [](const json& e) { return e["round"] == 1 && e["site"] == "site-2"; }));
  EXPECT_TRUE(has_event(all, "delta_received", [](const json& e) {
    return e["round"].get<int>() > 1 && e["site"] == "site-2";
  })) << "the restarted site delivered no delta in a later round";
  EXPECT_TRUE(has_event(all, "run_finished", [](const json& e) {
    return e["reason"] == "completed" && e["last_round"] == 3;
  }));
}

}  // namespace
}  // namespace federation_test
