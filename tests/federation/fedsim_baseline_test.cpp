// fedsim --baseline local: after a tiny float federation every site trains alone with the same
// steps and DP-SGD, so each local adapter spends exactly the site's federated epsilon; the table
// names every site, RUN/baseline.json holds the federated row and one row per site, and a resumed
// run reuses the file instead of training again.
#include <gtest/gtest.h>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "baseline.h"
#include "privacy/budget.h"
#include "sim_setup.h"
#include "test_support/run.h"
#include "test_support/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str());
}

TEST(FedsimBaseline, EachSiteAloneSpendsItsFederatedEpsilonAndIsCompared) {
  test_support::TempDir tmp;
  const fs::path dir = tmp.path() / "run";
  const std::string command =
      std::string(FEDLORA_BIN_DIR) + "/fedsim --run-dir " + dir.string() +
      " --sites 2 --workers 1 --hidden 32 --layers 1 --heads 2 --kv-heads 1 --intermediate 64"
      " --vocab 300 --records 40 --seq-len 16 --base random --lora-rank 2 --local-steps 2 --batch-size 4"
      " --sample-rate 0.1 --seed 3 --log-level error --backend float --rounds 2"
      " --baseline local 2>&1";
  const test_support::RunResult first = test_support::run_stdout(command);
  ASSERT_EQ(first.status, 0) << first.out;

  const json b = read_json(dir / "baseline.json");
  EXPECT_EQ(b["format"], "fedsim-baseline");
  EXPECT_EQ(b["round"], 2);
  ASSERT_EQ(b["rows"].size(), 3u) << b.dump(2);  // federated + one per site
  EXPECT_EQ(b["rows"][0]["name"], "federated (round 2)");
  EXPECT_TRUE(b["rows"][0]["heldout_loss"].is_number());
  for (int k = 0; k < 2; ++k) {
    const std::string site = "site-" + std::to_string(k);
    const json& row = b["rows"][k + 1];
    EXPECT_EQ(row["site"], site);
    EXPECT_EQ(row["name"], site + " alone");
    EXPECT_EQ(row["steps"], 4);  // 2 rounds x 2 local steps
    EXPECT_TRUE(row["heldout_loss"].is_number()) << row.dump();
    const privacy::Budget budget = privacy::Budget::load(dir / "sites" / site / "budget.json");
    EXPECT_GT(budget.spent(), 0);
    EXPECT_NEAR(row["epsilon"].get<double>(), budget.spent(), 1e-9) << site;
    EXPECT_NEAR(row["federated_epsilon"].get<double>(), budget.spent(), 1e-9) << site;
    EXPECT_NEAR(b["rows"][0]["site_epsilon"][site].get<double>(), budget.spent(), 1e-9);
    // The table names the site, and the per-site line its epsilon.
    EXPECT_NE(first.out.find("\n" + site + " alone "), std::string::npos) << first.out;
  }
  EXPECT_NE(first.out.find("\nfederated (round 2) "), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("the federated run and the local baselines both ran in float"),
            std::string::npos)
      << first.out;
  const bool beats = b["federated_beats_every_local"].get<bool>();
  EXPECT_NE(first.out.find(beats ? "the federated adapter beats every local-only adapter on the "
                                   "pooled held-out loss"
                                 : "the federated adapter does not beat site-"),
            std::string::npos)
      << first.out;
  EXPECT_EQ(b["not_beaten_by"].empty(), beats);

  // A resumed run of the same rounds reuses baseline.json: the same figures, no training.
  const test_support::RunResult again = test_support::run_stdout(command);
  ASSERT_EQ(again.status, 0) << again.out;
  EXPECT_NE(again.out.find("baseline: reusing"), std::string::npos) << again.out;
  EXPECT_EQ(again.out.find("steps in"), std::string::npos) << again.out;
  EXPECT_EQ(read_json(dir / "baseline.json"), b);
}

TEST(FedsimBaseline, LocalStreamsAreNotTheFederationsAndBadValuesAreRefused) {
  for (uint32_t k = 0; k < 3; ++k) {
    EXPECT_NE(fedsim::baseline_dp_seed_hex(3, k), fedsim::site_dp_seed_hex(3, k));
    EXPECT_EQ(fedsim::baseline_dp_seed_hex(3, k).size(), 64u);
    EXPECT_NE(fedsim::baseline_dp_seed_hex(3, k), fedsim::baseline_dp_seed_hex(3, k + 1));
  }
  // An encrypted federation is said to be one, against the float baselines.
  const json b = {{"federated_backend", "remote"},
                  {"rows", json::array({{{"name", "federated (round 1)"}, {"heldout_loss", 1.0}},
                                        {{"name", "north alone"}, {"heldout_loss", 2.0}}})},
                  {"comparable", true},
                  {"federated_beats_every_local", true},
                  {"not_beaten_by", json::array()}};
  const std::string table = fedsim::baseline_table(b);
  EXPECT_NE(table.find("the federated run's products were encrypted (backend remote); the local "
                       "baselines run in float"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("\nnorth alone "), std::string::npos) << table;
  EXPECT_NE(table.find("the federated adapter beats every local-only adapter"), std::string::npos);

  const test_support::RunResult bad =
      test_support::run_stdout(std::string(FEDLORA_BIN_DIR) + "/fedsim --baseline global 2>&1");
  EXPECT_EQ(bad.status, 2) << bad.out;
  EXPECT_NE(bad.out.find("--baseline must be none or local"), std::string::npos) << bad.out;
}

}  // namespace
