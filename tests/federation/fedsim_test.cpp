// fedsim as a user runs it (threads mode, the executable): a tiny federation runs to the end, the
// round table it prints agrees with the dashboard log, every round_finished carries the losses
// and each site's epsilon, and the exported adapter is a PEFT directory. Then the same run
// directory resumed with more rounds continues where it stopped.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "round_table.h"
#include "sim_eval.h"
#include "test_support/files.h"
#include "test_support/run.h"
#include "test_support/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using test_support::run_stdout;
using test_support::RunResult;

std::vector<json> events(const fs::path& file, const std::string& name) {
  std::vector<json> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    json e = json::parse(line);
    if (e.value("event", "") == name) out.push_back(e);
  }
  return out;
}

std::vector<std::string> table_rows(const std::string& out) {
  std::vector<std::string> rows;
  std::istringstream in(out);
  bool in_table = false;
  for (std::string line; std::getline(in, line);) {
    if (line == fedsim::table_header()) {
      in_table = true;
      continue;
    }
    if (in_table && line.size() > 5 && line[4] >= '0' && line[4] <= '9') rows.push_back(line);
  }
  return rows;
}

TEST(Fedsim, RunsPrintsTheLogsTableAndResumes) {
  const fs::path dir = fs::temp_directory_path() / ("fedsim_test_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string base = std::string(FEDLORA_BIN_DIR) + "/fedsim --run-dir " + dir.string() +
                           " --sites 2 --workers 1 --hidden 32 --layers 1 --heads 2 --kv-heads 1"
                           " --intermediate 64 --vocab 300 --records 40 --seq-len 16 --base random"
                           " --lora-rank 2 --local-steps 2 --batch-size 4 --sample-rate 0.1"
                           " --seed 3 --log-level error";
  const RunResult first = run_stdout(base + " --rounds 2");
  ASSERT_EQ(first.status, 0) << first.out;

  const fs::path log = dir / "events.jsonl";
  const std::vector<json> finished = events(log, "round_finished");
  ASSERT_EQ(finished.size(), 2u);
  const std::vector<std::string> rows = table_rows(first.out);
  ASSERT_EQ(rows.size(), finished.size()) << first.out;
  for (size_t i = 0; i < finished.size(); ++i) {
    // The table is the log, row for row, with the losses from the sites' own records: the
    // coordinator's log carries none (sites do not send unnoised losses).
    const json row = fedsim::with_site_losses(finished[i], dir / "sites");
    EXPECT_EQ(rows[i], fedsim::table_row(row));
    EXPECT_EQ(finished[i]["round"].get<int>(), static_cast<int>(i + 1));
    EXPECT_FALSE(finished[i].value("train_loss", json()).is_number()) << finished[i].dump();
    EXPECT_FALSE(finished[i].value("heldout_loss", json()).is_number()) << finished[i].dump();
    EXPECT_TRUE(row["train_loss"].is_number());
    EXPECT_TRUE(row["heldout_loss"].is_number());
    EXPECT_EQ(row.value("losses_from", ""), "sites");
    ASSERT_TRUE(finished[i]["epsilon"].is_object());
    EXPECT_EQ(finished[i]["epsilon"].size(), 2u);
    for (const auto& [site, eps] : finished[i]["epsilon"].items()) {
      EXPECT_GT(eps.get<double>(), 0) << site;
    }
  }
  // No per-site loss reaches the coordinator's log by default: not with the deltas either.
  const std::vector<json> received = events(log, "delta_received");
  ASSERT_FALSE(received.empty());
  for (const json& e : received) {
    EXPECT_FALSE(e.contains("train_loss")) << e.dump();
    EXPECT_FALSE(e.contains("heldout_loss")) << e.dump();
  }
  // Epsilon only grows.
  for (const auto& [site, eps] : finished[1]["epsilon"].items()) {
    EXPECT_GT(eps.get<double>(), finished[0]["epsilon"][site].get<double>());
  }
  const std::vector<json> end = events(log, "run_finished");
  ASSERT_EQ(end.size(), 1u);
  EXPECT_EQ(end[0].value("reason", ""), "completed");
  EXPECT_TRUE(fs::exists(dir / "adapter" / "adapter_model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "adapter" / "adapter_config.json"));
  EXPECT_FALSE(fs::is_empty(dir / "checkpoints"));

  // The same run directory with one more round resumes at round 3 and prints only that round.
  const RunResult second = run_stdout(base + " --rounds 3");
  ASSERT_EQ(second.status, 0) << second.out;
  const std::vector<json> all = events(log, "round_finished");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[2]["round"].get<int>(), 3);
  const std::vector<std::string> resumed = table_rows(second.out);
  ASSERT_EQ(resumed.size(), 1u) << second.out;
  EXPECT_EQ(resumed[0], fedsim::table_row(fedsim::with_site_losses(all[2], dir / "sites")));
  // fedsim names its report, and the resumed run's report covers every round.
  EXPECT_NE(second.out.find("report: " + (dir / "report.html").string()), std::string::npos);
  std::ifstream report(dir / "report.html");
  const std::string page((std::istreambuf_iterator<char>(report)),
                         std::istreambuf_iterator<char>());
  size_t round_rows = 0;
  for (size_t at = page.find("<tr><td>"); at != std::string::npos;
       at = page.find("<tr><td>", at + 1)) {
    ++round_rows;
  }
  EXPECT_EQ(round_rows, 3u);
  // The global model is evaluated before any round (round 0, the base model) and after every
  // round, once each across the resume, per site and pooled, and the report draws it.
  EXPECT_NE(first.out.find("global model before any round (round 0): held-out loss"),
            std::string::npos)
      << first.out;
  EXPECT_EQ(second.out.find("before any round"), std::string::npos)
      << "round 0 is not evaluated again";
  const std::vector<json> pooled = fedsim::pooled_evaluations(dir);
  ASSERT_EQ(pooled.size(), 4u);
  std::map<int, int> records;
  std::ifstream evaluation(dir / "evaluation.jsonl");
  for (std::string line; std::getline(evaluation, line);) ++records[json::parse(line)["round"]];
  for (int r = 0; r <= 3; ++r) {
    EXPECT_EQ(pooled[r]["round"].get<int>(), r);
    EXPECT_TRUE(pooled[r]["heldout_loss"].is_number());
    EXPECT_GT(pooled[r]["questions"].get<int>(), 0);
    EXPECT_EQ(records[r], 3) << "two sites and the pooled record, round " << r;
  }
  EXPECT_NE(pooled[3]["heldout_loss"], pooled[0]["heldout_loss"]) << "the federation changed it";
  EXPECT_NE(page.find("id=\"chart-global-loss\""), std::string::npos);

  // A bad flag is refused with exit status 2.
  EXPECT_EQ(run_stdout(std::string(FEDLORA_BIN_DIR) + "/fedsim --rounds 0 2>/dev/null").status, 2);
  fs::remove_all(dir);
}

}  // namespace

// The default base model is pretrained on the generated general corpus once per recipe and
// reused from the cache: two runs get the same weights, the second without pretraining, and the
// pretrained base already predicts the clinical notes better than the random one (round 0).
TEST(Fedsim, PretrainsTheBaseOnceAndEveryRunReusesIt) {
  test_support::TempDir tmp;
  const std::string common = std::string(FEDLORA_BIN_DIR) +
                             "/fedsim --sites 2 --workers 1 --hidden 32 --layers 1 --heads 2"
                             " --kv-heads 1 --intermediate 64 --vocab 300 --records 40"
                             " --seq-len 32 --lora-rank 2 --local-steps 1 --batch-size 4"
                             " --sample-rate 0.1 --seed 3 --log-level error --rounds 1"
                             " --backend float --pretrain-steps 60 --base-cache " +
                             (tmp / "cache").string();
  const auto first = test_support::run(common + " --run-dir " + (tmp / "a").string());
  ASSERT_EQ(first.status, 0) << first.out << first.err;
  EXPECT_NE(first.err.find("pretraining a base model"), std::string::npos) << first.err;
  const auto second = test_support::run(common + " --run-dir " + (tmp / "b").string());
  ASSERT_EQ(second.status, 0) << second.out << second.err;
  EXPECT_EQ(second.err.find("pretraining a base model"), std::string::npos) << second.err;

  std::vector<fs::path> cached;
  for (const auto& e : fs::directory_iterator(tmp / "cache")) cached.push_back(e.path());
  ASSERT_EQ(cached.size(), 1u);
  std::ifstream summary_in(cached[0] / "pretrain.json");
  const json summary = json::parse(summary_in);
  EXPECT_EQ(summary["recipe"]["steps"].get<int>(), 60);
  EXPECT_LT(summary["heldout_loss"].get<double>(),
            0.8 * summary["initial_heldout_loss"].get<double>());
  EXPECT_EQ(test_support::slurp(tmp / "a" / "model" / "model.safetensors"),
            test_support::slurp(cached[0] / "model.safetensors"));
  EXPECT_EQ(test_support::slurp(tmp / "b" / "model" / "model.safetensors"),
            test_support::slurp(cached[0] / "model.safetensors"));

  const auto random =
      test_support::run(common + " --base random --run-dir " + (tmp / "r").string());
  ASSERT_EQ(random.status, 0) << random.out << random.err;
  const auto round0 = [](const fs::path& run) {
    return fedsim::pooled_evaluations(run).front()["heldout_loss"].get<double>();
  };
  EXPECT_LT(round0(tmp / "a"), round0(tmp / "r"));
  EXPECT_EQ(round0(tmp / "a"), round0(tmp / "b"));
}
