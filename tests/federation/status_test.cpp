// fedctl status against a live federation of real processes: with a site's key it shows the
// round, every site and its epsilon (as the coordinator accounts it) and the worker; a key the
// coordinator does not admit gets a clear error and a non-zero exit. The coordinator's log names
// each site as its state changes, and the sites' log files hold their step progress at fedsim's
// default log level.
#include "federation_fixture.h"
#include "test_support/run.h"

namespace federation_test {
namespace {

test_support::RunResult fedctl_status(fedsim::ProcessFederation& fed, const fs::path& key,
                                      const std::string& extra = "") {
  std::string cmd = "'";
  cmd += FEDLORA_BIN_DIR;
  cmd += "/fedctl' status --coordinator '" + fed.endpoint() + "' --coordinator-key '" +
         (fed.layout().keys / "coordinator.pub").string() + "' --key '" + key.string() + "' " +
         extra;
  return test_support::run(cmd);
}

TEST_F(FederationTest, StatusShowsTheRoundTheSitesAndTheirEpsilon) {
  fedsim::SimConfig c = tiny_config();
  c.rounds = 20;         // the test ends the run once it has seen what it needs
  c.log_level = "warn";  // fedsim's default: the log files still get info lines
  auto& fed = federation(c, fresh_run_dir());
  const fs::path intruder = fed.make_key("intruder", /*allowed=*/false);
  fed.start_coordinator();
  fed.start_parties(kPatience);
  const fs::path site_key = fed.layout().keys / "site-0.key";

  // Poll until the coordinator reports a completed round (round >= 2: every site has spent
  // some epsilon).
  json status;
  const auto end = std::chrono::steady_clock::now() + kPatience;
  while (std::chrono::steady_clock::now() < end && fed.running("coordinator")) {
    const auto r = fedctl_status(fed, site_key, "--json");
    ASSERT_EQ(r.status, 0) << r.err;
    status = json::parse(r.out);
    if (status.value("round", 0u) >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_GE(status.value("round", 0u), 2u) << status.dump();
  EXPECT_EQ(status["rounds"], c.rounds);
  EXPECT_GE(status["attempt"].get<uint32_t>(), 1u);
  const std::string phase = status["phase"];
  EXPECT_TRUE(phase == "waiting" || phase == "collecting" || phase == "aggregating") << phase;
  const auto run_started = events(fed);
  ASSERT_TRUE(has_event(run_started, "run_started", [&](const json& e) {
    return e.value("run_id", "") == status.value("run_id", "?");
  }));
  // The epsilon of round 1 as round_finished logged it: status shows at least that much.
  json round1;
  for (const auto& e : run_started) {
    if (e.value("event", "") == "round_finished" && e.value("round", 0u) == 1) round1 = e;
  }
  ASSERT_TRUE(round1.is_object());
  ASSERT_EQ(status["sites"].size(), 2u) << status.dump();
  for (const auto& s : status["sites"]) {
    const std::string id = s["id"];
    EXPECT_TRUE(id == "site-0" || id == "site-1") << id;
    EXPECT_TRUE(s["alive"].get<bool>()) << id;
    EXPECT_GE(s["epsilon"].get<double>(), round1["epsilon"][id].get<double>() - 1e-9) << id;
    EXPECT_GT(s["epsilon"].get<double>(), 0.0) << id;
    EXPECT_DOUBLE_EQ(s["epsilon_budget"].get<double>(), c.epsilon_max) << id;
    EXPECT_TRUE(s["last_heartbeat_s"].is_number()) << id;
    const std::string state = s["state"];
    EXPECT_TRUE(state == "none" || state == "invited" || state == "training" ||
                state == "uploaded" || state == "dropped")
        << state;
  }
  ASSERT_EQ(status["workers"].size(), 1u) << status.dump();
  EXPECT_EQ(status["workers"][0]["id"], "worker-0");
  EXPECT_TRUE(status["failures"].is_array());

  // The text form says the same in lines.
  const auto text = fedctl_status(fed, site_key);
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("site-1"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("epsilon"), std::string::npos) << text.out;

  // A key the coordinator does not admit: refused at the handshake, said in one line.
  const auto refused = fedctl_status(fed, fs::path(intruder.string() + ".key"), "--timeout 20");
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.err.find("allow-list"), std::string::npos) << refused.err;
  EXPECT_EQ(refused.err.find('\n'), refused.err.size() - 1) << refused.err;  // one line
  EXPECT_TRUE(refused.out.empty()) << refused.out;

  // Per-site state changes in the coordinator's log; step progress in a site's log file at
  // fedsim's default level.
  EXPECT_TRUE(wait_for_log(fed, "coordinator", "site-1 accepted, training"));
  EXPECT_TRUE(wait_for_log(fed, "coordinator", "site-0 selected and invited"));
  EXPECT_TRUE(wait_for_log(fed, "coordinator", "site-0 uploaded its delta"));
  EXPECT_TRUE(wait_for_log(fed, "site-0", "step 2/2"));
}

}  // namespace
}  // namespace federation_test
