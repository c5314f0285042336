// kill -9 of the coordinator after a checkpoint, then a restart: the run resumes at the next
// round and, with fixed seeds (every site has a --dp-seed), ends with the same adapter as an
// uninterrupted run, byte for byte. Every site takes part in every round (min_participants =
// sites, fraction 1), so the resumed round sees the same sites; a site invited again for the
// round it is training or has trained sends that same delta (participant/src/agent.cpp): the
// second crash is timed so that the sites have trained the replayed round already.
#include "federation_fixture.h"

namespace federation_test {
namespace {

fedsim::SimConfig restart_config() {
  fedsim::SimConfig c = tiny_config();
  c.sites = 2;
  c.workers = 1;
  c.rounds = 3;
  c.min_participants = 2;
  c.fraction = 1.0;
  return c;
}

TEST_F(FederationTest, ACoordinatorKilledAfterACheckpointResumesBitExactly) {
  // Both runs replay one run id: the sites' DP streams are keyed by it (releases.h).
  const fedsim::FlagOverrides same_run = {{"--run-id", "5eed5eed5eed5eed5eed5eed5eed5eed"}};
  // The uninterrupted run.
  const fs::path reference_dir = fresh_run_dir("reference");
  {
    auto& fed = federation(restart_config(), reference_dir);
    fed.start_coordinator(same_run);
    fed.start_parties(kPatience);
    const auto rc = fed.wait_coordinator(kPatience);
    ASSERT_TRUE(rc.has_value());
    ASSERT_EQ(*rc, 0);
    ASSERT_FALSE(has_event(events(fed), "round_failed"));
    fed.stop_all();
  }

  // The same run (same model, data and initial adapter), its coordinator killed twice after a
  // checkpoint and each time started again with the same arguments.
  const fs::path run_dir = fresh_run_dir("interrupted");
  for (const char* part : {"model", "data", "initial_adapter"}) {
    fs::create_directories(run_dir / part);
    fs::copy(reference_dir / part, run_dir / part, fs::copy_options::recursive);
  }
  auto& fed = federation(restart_config(), run_dir);
  fed.start_coordinator(same_run);
  fed.start_parties(kPatience);
  auto checkpointed = [](int round) {
    return [round](const std::vector<json>& ev) {
      return has_event(ev, "checkpoint_written",
                       [round](const json& e) { return e["round"] == round; });
    };
  };

  // Crash 1: right after the checkpoint of round 1 (the sites are then usually training round
  // 2, and are invited again for it by the restarted coordinator).
  ASSERT_TRUE(wait_for(fed, checkpointed(1)));
  fed.kill("coordinator");
  ASSERT_FALSE(fed.running("coordinator"));
  ASSERT_TRUE(fs::exists(run_dir / "checkpoints" / "latest.ckpt"));
  fed.restart("coordinator");
  const uint64_t first_restart = fed.coordinator_started_at();

  // Crash 2: once round 2 is checkpointed and both sites have trained round 3 for the dead
  // coordinator, which the restarted one replays: the sites send the deltas they already have.
  ASSERT_TRUE(wait_for(fed, checkpointed(2)));
  ASSERT_TRUE(wait_for_log(fed, "site-0", "round 3 (attempt 1): training"));
  ASSERT_TRUE(wait_for_log(fed, "site-1", "round 3 (attempt 1): training"));
  fed.kill("coordinator");
  ASSERT_TRUE(wait_for_log(fed, "site-0", "round 3: trained"));
  ASSERT_TRUE(wait_for_log(fed, "site-1", "round 3: trained"));
  ASSERT_FALSE(fs::exists(run_dir / "adapter" / "adapter_model.safetensors"));
  fed.restart("coordinator");
  const uint64_t second_restart = fed.coordinator_started_at();
  const auto rc = fed.wait_coordinator(kPatience);
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, 0);

  // Each restart resumed at the round after its checkpoint and finished the rest once.
  const auto after_first = fedsim::read_events(fed.events_file(), first_restart);
  const auto after_second = fedsim::read_events(fed.events_file(), second_restart);
  EXPECT_TRUE(has_event(after_first, "run_started", [](const json& e) { return e["round"] == 2; }))
      << "the first restart did not resume at round 2";
  EXPECT_TRUE(has_event(after_second, "run_started", [](const json& e) { return e["round"] == 3; }))
      << "the second restart did not resume at round 3";
  std::vector<int> rounds;
  for (const auto& e : after_first) {
    if (e["event"] == "round_finished") rounds.push_back(e["round"].get<int>());
  }
  EXPECT_EQ(rounds, (std::vector<int>{2, 3}));
  EXPECT_FALSE(has_event(after_first, "round_failed"));
  // The replayed round 3 got the deltas trained for the dead coordinator (no second training).
  for (const char* site : {"site-0", "site-1"}) {
    const std::string log = slurp(fed.log_file(site));
    EXPECT_NE(log.find("round 3 (attempt 1): invited again; re-sending"), std::string::npos)
        << site;
    EXPECT_EQ(log.find("round 3: trained"), log.rfind("round 3: trained")) << site;
  }

  const std::string a = slurp(reference_dir / "adapter" / "adapter_model.safetensors");
  const std::string b = slurp(run_dir / "adapter" / "adapter_model.safetensors");
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "the resumed run's adapter differs from the uninterrupted run's";
}

}  // namespace
}  // namespace federation_test
