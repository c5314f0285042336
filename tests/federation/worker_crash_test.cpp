// kill -9 of an fhe_worker while it serves a round: the sites' pools move the requests to the
// other worker and the round completes with every site.
#include "federation_fixture.h"

namespace federation_test {
namespace {

TEST_F(FederationTest, AWorkerKilledDuringARoundLeavesTheRoundToTheOther) {
  fedsim::SimConfig c = tiny_config();
  c.sites = 2;
  c.workers = 2;
  c.rounds = 2;
  c.min_participants = 2;  // the round completes only if both sites survive the worker's death
  c.local_steps = 3;
  c.log_level = "debug";  // the workers log every batch they compute
  auto& fed = federation(c, fresh_run_dir());
  fed.start_coordinator();  // the first round waits for every site
  fed.start_parties(kPatience);

  // worker-0 dies while it computes for round 1.
  ASSERT_TRUE(wait_for_log(fed, "worker-0", "computed in"));
  fed.kill("worker-0");
  const auto at_kill = events(fed);
  ASSERT_FALSE(has_event(at_kill, "round_finished")) << "round 1 ended before the crash";
  const size_t worker1_log_at_kill = slurp(fed.log_file("worker-1")).size();

  const auto rc = fed.wait_coordinator(kPatience);
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, 0);
  const auto all = events(fed);
  int finished = 0;
  for (const auto& e : all) {
    if (e["event"] != "round_finished") continue;
    ++finished;
    EXPECT_EQ(id_set(e, "sites"), (std::set<std::string>{"site-0", "site-1"}))
        << "round " << e["round"];
  }
  EXPECT_EQ(finished, 2);
  EXPECT_FALSE(has_event(all, "round_failed"));
  EXPECT_TRUE(has_event(all, "run_finished", [](const json& e) {
    return e["reason"] == "completed" && e["last_round"] == 2;
  }));
  // The requests went on at worker-1.
  EXPECT_NE(slurp(fed.log_file("worker-1")).find("computed in", worker1_log_at_kill),
            std::string::npos);
}

}  // namespace
}  // namespace federation_test
