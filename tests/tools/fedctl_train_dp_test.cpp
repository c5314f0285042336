// `fedctl train --dp-*` end to end: a small model from `fedctl make-model`, notes from
// `fedctl make-data`; epsilon reported per step and in the summary (agreeing with the RDP
// accountant), seeded runs replaying bit for bit, and refusals with exit status 2.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fedctl_run.h"
#include "model/peft_adapter.h"
#include "privacy/accountant.h"
#include "test_util.h"

namespace {

using nlohmann::json;

using fedctl_test::fedctl;
using fedctl_test::Result;

const std::string kSeed = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

class FedctlTrainDp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test_support::TempDir;
    fedctl_test::make_tiny_model_and_data(dir_->path());
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string path(const std::string& name) { return (dir_->path() / name).string(); }

  // A short run on the tiny model: seq-len 24, batch 4 (so q = 4 / 40 by default).
  static Result train(const std::string& args) {
    return fedctl("train --model " + path("m") + " --data " + path("data/site0.jsonl") +
                  " --eval " + path("data/site0.heldout.jsonl") +
                  " --seq-len 24 --batch 4 --seed 3 " + args);
  }

  static std::vector<json> read_log(const std::string& file) {
    std::vector<json> lines;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
    return lines;
  }

  static test_support::TempDir* dir_;
};

test_support::TempDir* FedctlTrainDp::dir_ = nullptr;

void expect_refusal(const Result& r, const std::string& needle) {
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(r.err.rfind("fedctl train: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST_F(FedctlTrainDp, ReportsEpsilonAsItGoesAndInTheSummary) {
  const Result r =
      train("--steps 6 --dp-sigma 1.1 --dp-clip 1 --dp-delta 1e-5 --log-json " + path("dp.jsonl"));
  ASSERT_EQ(r.status, 0) << r.err;
  const json summary = json::parse(r.out);
  ASSERT_TRUE(summary.contains("dp")) << r.out;
  const json& dp = summary["dp"];
  const int64_t train_size = 40;  // 44 records, 10 % held out
  const double q = 4.0 / train_size;
  EXPECT_DOUBLE_EQ(dp["sample_rate"].get<double>(), q);
  EXPECT_DOUBLE_EQ(dp["expected_batch"].get<double>(), 4.0);
  EXPECT_EQ(dp["steps"].get<int64_t>(), 6);
  EXPECT_FALSE(dp["seeded"].get<bool>());
  const double expected = privacy::epsilon_for({.q = q, .sigma = 1.1, .steps = 6}, 1e-5).epsilon;
  EXPECT_DOUBLE_EQ(dp["epsilon"].get<double>(), expected);
  EXPECT_DOUBLE_EQ(dp["planned_epsilon"].get<double>(), expected);
  EXPECT_TRUE(std::isfinite(summary["heldout_loss"].get<double>()));

  // Every step's log line carries the epsilon spent so far, increasing.
  const auto log = read_log(path("dp.jsonl"));
  ASSERT_EQ(log.size(), 7u);  // step 0 (evaluation) + 6 steps
  double previous = 0;
  for (size_t i = 1; i < log.size(); ++i) {
    const double eps = log[i]["epsilon"].get<double>();
    EXPECT_DOUBLE_EQ(
        eps, privacy::epsilon_for({.q = q, .sigma = 1.1, .steps = static_cast<int64_t>(i)}, 1e-5)
                 .epsilon);
    EXPECT_GT(eps, previous);
    previous = eps;
  }
  // ... and so does the progress line on stderr.
  EXPECT_NE(r.err.find("epsilon "), std::string::npos) << r.err;
}

TEST_F(FedctlTrainDp, SeededRunsReplayBitForBit) {
  const std::string args =
      "--steps 4 --dp-sigma 0.8 --dp-clip 0.5 --dp-delta 1e-5 --dp-sample-rate 0.2 ";
  const Result a = train(args + "--dp-seed " + kSeed + " --out " + path("seed_a"));
  ASSERT_EQ(a.status, 0) << a.err;
  const Result b = train(args + "--dp-seed " + kSeed + " --out " + path("seed_b"));
  ASSERT_EQ(b.status, 0) << b.err;
  const Result c = train(args + "--out " + path("os"));  // OS randomness
  ASSERT_EQ(c.status, 0) << c.err;
  EXPECT_TRUE(json::parse(a.out)["dp"]["seeded"].get<bool>());
  const std::string weights = model::kPeftWeightsFile;
  const std::string wa = test_support::slurp(path("seed_a/" + weights));
  ASSERT_GT(wa.size(), 1000u);
  EXPECT_EQ(test_support::slurp(path("seed_b/" + weights)), wa);
  EXPECT_NE(test_support::slurp(path("os/" + weights)), wa);
  EXPECT_EQ(json::parse(a.out)["heldout_loss"], json::parse(b.out)["heldout_loss"]);
}

TEST_F(FedctlTrainDp, RefusesPlannedStepsAboveTheEpsilonLimit) {
  // 200 steps at q = 0.1, sigma = 0.5 spend far more than epsilon 1: refused before training.
  const Result r = train(
      "--steps 200 --dp-sigma 0.5 --dp-clip 1 --dp-delta 1e-5 "
      "--dp-epsilon-max 1 --out " +
      path("refused"));
  expect_refusal(r, "--dp-epsilon-max 1");
  EXPECT_NE(r.err.find("above the limit 1"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(path("refused")));
  // Within the limit it trains.
  const Result ok = train("--steps 2 --dp-sigma 2 --dp-clip 1 --dp-delta 1e-5 --dp-epsilon-max 10");
  ASSERT_EQ(ok.status, 0) << ok.err;
  EXPECT_LE(json::parse(ok.out)["dp"]["epsilon"].get<double>(), 10.0);
}

TEST_F(FedctlTrainDp, RefusesBadDpFlags) {
  expect_refusal(train("--steps 2 --dp-sigma 1 --dp-delta 1e-5"), "--dp-clip");
  expect_refusal(train("--steps 2 --dp-sigma 0 --dp-clip 1 --dp-delta 1e-5"), "--dp-sigma");
  expect_refusal(train("--steps 2 --dp-sigma 1 --dp-clip -1 --dp-delta 1e-5"), "--dp-clip");
  expect_refusal(train("--steps 2 --dp-sigma 1 --dp-clip 1 --dp-delta 1"), "--dp-delta");
  expect_refusal(train("--steps 2 --dp-sigma 1 --dp-clip 1 --dp-delta 1e-5 --dp-sample-rate 2"),
                 "--dp-sample-rate");
  expect_refusal(train("--steps 2 --dp-sigma 1 --dp-clip 1 --dp-delta 1e-5 --dp-seed abc"),
                 "64 hex digits");
}

TEST_F(FedctlTrainDp, HelpDescribesTheDpFlags) {
  const Result r = fedctl("train --help");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* flag : {"--dp-sigma", "--dp-clip", "--dp-delta", "--dp-sample-rate",
                           "--dp-epsilon-max", "--dp-seed"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
