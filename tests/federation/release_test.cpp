// A site's DP releases across federations (participant/releases.h), with real processes: a site
// that takes part in a second federation, or in the same one with another plan, never draws the
// same noise twice, while an exact replay of a release gets the cached delta back without a
// second charge; and a site whose model has the workers' shapes but other weights is refused
// before it trains or spends anything.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "federation_fixture.h"
#include "model/llama_config.h"
#include "model/random_model.h"

namespace federation_test {
namespace {

fedsim::SimConfig one_round() {
  fedsim::SimConfig c = tiny_config();
  c.rounds = 1;
  c.sites = 2;
  c.min_participants = 2;
  return c;
}

json read_json(const fs::path& file) {
  std::ifstream in(file);
  return json::parse(in);
}

// The epsilon the site recorded with its last trained round (STATE/curves.jsonl).
double epsilon_spent(const fs::path& state_dir) {
  double last = 0;
  std::ifstream in(state_dir / "curves.jsonl");
  for (std::string line; std::getline(in, line);) last = json::parse(line)["epsilon"];
  return last;
}

class ReleaseTest : public FederationTest {
 protected:
  // Runs one round of a federation in `run_dir`, whose sites/ (and model, data, initial
  // adapter) are copied from `from` when given: the same hospitals joining another run.
  void run_federation(const fs::path& run_dir, const fs::path& from,
                      const fedsim::FlagOverrides& coordinator_flags) {
    if (!from.empty()) {
      for (const char* part : {"model", "data", "initial_adapter", "sites"}) {
        fs::create_directories(run_dir / part);
        fs::copy(from / part, run_dir / part, fs::copy_options::recursive);
      }
      for (const auto& site : fs::directory_iterator(run_dir / "sites")) {
        fs::remove(site.path() / ".lock");
      }
    }
    auto& fed = federation(one_round(), run_dir);
    fed.start_coordinator(coordinator_flags);
    fed.start_parties(kPatience);
    const auto rc = fed.wait_coordinator(kPatience);
    ASSERT_TRUE(rc.has_value());
    ASSERT_EQ(*rc, 0);
    ASSERT_TRUE(has_event(events(fed), "round_finished")) << slurp(fed.events_file());
    fed.stop_all();
  }
};

TEST_F(ReleaseTest, ASiteNeverRepeatsNoiseAcrossFederationsAndPlans) {
  const fedsim::FlagOverrides run_x = {{"--run-id", "0000000000000000000000000000000a"}};
  const fs::path a = fresh_run_dir("a");
  run_federation(a, {}, run_x);
  const fs::path site_a = a / "sites" / "site-0";
  const std::string delta_a = slurp(site_a / "last_delta.f32");
  ASSERT_FALSE(delta_a.empty());
  const double eps_a = epsilon_spent(site_a);
  ASSERT_GT(eps_a, 0);

  // The same sites in another federation (a fresh run id), everything else equal: without
  // run-keyed streams this round would draw the same samples and noise, and the difference of
  // the two deltas would cancel the noise.
  const fs::path b = fresh_run_dir("b");
  run_federation(b, a, {});
  const fs::path site_b = b / "sites" / "site-0";
  const std::string delta_b = slurp(site_b / "last_delta.f32");
  ASSERT_EQ(delta_b.size(), delta_a.size());
  EXPECT_NE(delta_b, delta_a);
  EXPECT_GT(epsilon_spent(site_b), eps_a);  // a new release, charged
  const json ledger_b = read_json(site_b / "releases.json");
  ASSERT_EQ(ledger_b["releases"].size(), 2u);
  EXPECT_NE(ledger_b["releases"][0]["id"], ledger_b["releases"][1]["id"]);
  EXPECT_NE(ledger_b["releases"][0]["run_id"], ledger_b["releases"][1]["run_id"]);

  // The same run id but another plan (the coordinator's seed gives every site another plan
  // seed): another release again.
  const fs::path c = fresh_run_dir("c");
  run_federation(c, a, {{"--run-id", "0000000000000000000000000000000a"}, {"--seed", "8"}});
  const std::string delta_c = slurp(c / "sites" / "site-0" / "last_delta.f32");
  EXPECT_NE(delta_c, delta_a);
  EXPECT_NE(delta_c, delta_b);
  EXPECT_EQ(read_json(c / "sites" / "site-0" / "releases.json")["releases"].size(), 2u);

  // An exact replay of A's round (same run id, same plan): the very same release, so the site
  // re-sends its cached delta, byte for byte, and pays nothing more.
  const fs::path d = fresh_run_dir("d");
  run_federation(d, a, run_x);
  const fs::path site_d = d / "sites" / "site-0";
  EXPECT_EQ(slurp(site_d / "last_delta.f32"), delta_a);
  EXPECT_EQ(read_json(site_d / "releases.json")["releases"].size(), 1u);
  EXPECT_EQ(slurp(site_d / "budget.json"), slurp(site_a / "budget.json"));
  EXPECT_NE(slurp(d / "logs" / "site-0.log").find("re-sending the delta already trained"),
            std::string::npos);
}

TEST_F(ReleaseTest, ASiteWithOtherWeightsOfTheSameShapesIsRefusedBeforeTraining) {
  fedsim::SimConfig config = tiny_config();
  config.rounds = 1;
  config.sites = 3;
  config.min_participants = 2;
  const fs::path run = fresh_run_dir();
  auto& fed = federation(config, run);
  // Site 1 holds a checkpoint of the very same config, with other weights.
  const fs::path other = run / "other_model";
  fs::copy(run / "model", other, fs::copy_options::recursive);
  model::write_random_llama(other, model::load_llama_config(run / "model"), {.seed = 12345});
  fed.start_coordinator();
  fed.start_workers(kPatience);
  fed.start_site(0);
  fed.start_site(1, {{"--model", other.string()}, {"--model-id", "model"}});
  fed.start_site(2);
  const auto rc = fed.wait_coordinator(kPatience);
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, 0);
  const std::vector<json> ev = events(fed);
  EXPECT_TRUE(has_event(ev, "round_finished", [](const json& e) {
    return id_set(e, "sites") == std::set<std::string>{"site-0", "site-2"};
  })) << slurp(fed.events_file());
  EXPECT_TRUE(has_event(ev, "participant_dropped", [](const json& e) {
    return e.value("site", "") == "site-1" && e.dump().find("misconfigured") != std::string::npos;
  })) << slurp(fed.events_file());
  const std::string log = slurp(fed.log_file("site-1"));
  EXPECT_NE(log.find("do not hold the same checkpoint"), std::string::npos) << log;
  // Refused before anything was spent or trained.
  EXPECT_FALSE(fs::exists(run / "sites" / "site-1" / "last_delta.f32"));
  EXPECT_FALSE(fs::exists(run / "sites" / "site-1" / "curves.jsonl"));
  const json ledger = fs::exists(run / "sites" / "site-1" / "releases.json")
                          ? read_json(run / "sites" / "site-1" / "releases.json")
                          : json{{"releases", json::array()}};
  EXPECT_TRUE(ledger["releases"].empty());
  // The coordinator's figure for every site equals the site's own: the healthy ones paid for
  // the one attempt they trained, the refused one for nothing.
  json finished;
  for (const auto& e : ev) {
    if (e.value("event", "") == "run_finished") finished = e;
  }
  ASSERT_TRUE(finished.is_object()) << slurp(fed.events_file());
  for (const char* site : {"site-0", "site-2"}) {
    const double own = epsilon_spent(run / "sites" / site);
    EXPECT_GT(own, 0) << site;
    EXPECT_NEAR(finished["epsilon"][site].get<double>(), own, 1e-9 * own) << site;
  }
  EXPECT_EQ(finished["epsilon"].value("site-1", 0.0), 0.0) << finished.dump();
}

// The coordinator's operator interrupts it (SIGINT) while the sites train round 2 and starts it
// again: the sites keep running, the replayed round is the same release (same run id, round,
// attempt, plan and adapter), so no site is charged twice, and at the end every site's own
// epsilon equals the coordinator's figure for it.
TEST_F(ReleaseTest, ACoordinatorInterruptedMidRoundChargesNoSiteTwice) {
  fedsim::SimConfig config = tiny_config();
  config.rounds = 3;
  config.local_steps = 6;  // a round long enough to be interrupted in
  const fs::path run = fresh_run_dir();
  auto& fed = federation(config, run);
  fed.start_coordinator();
  fed.start_parties(kPatience);
  ASSERT_TRUE(wait_for(fed, [](const std::vector<json>& ev) {
    return has_event(ev, "participant_selected", [](const json& e) { return e["round"] == 2; });
  })) << slurp(fed.events_file());
  fed.kill("coordinator", SIGINT);
  const auto stopped = fed.wait_coordinator(kPatience);
  ASSERT_TRUE(stopped.has_value());
  for (const char* site : {"site-0", "site-1"}) EXPECT_TRUE(fed.running(site)) << site;
  fed.restart("coordinator");
  const auto rc = fed.wait_coordinator(kPatience);
  ASSERT_TRUE(rc.has_value());
  ASSERT_EQ(*rc, 0);
  const std::vector<json> ev = events(fed);
  json finished;
  for (const auto& e : ev) {
    if (e.value("event", "") == "run_finished") finished = e;
  }
  ASSERT_EQ(finished.value("reason", ""), "completed") << slurp(fed.events_file());
  for (const char* site : {"site-0", "site-1"}) {
    const fs::path state = run / "sites" / site;
    const json ledger = read_json(state / "releases.json");
    EXPECT_EQ(ledger["releases"].size(), 3u) << site << ": " << ledger.dump();  // one per round
    const double own = epsilon_spent(state);
    const double coordinators = finished["epsilon"][site].get<double>();
    EXPECT_NEAR(own, coordinators, 1e-9 * coordinators) << site;
  }
}

}  // namespace
}  // namespace federation_test
