// Runs the built fedctl make-data: files, determinism, non-IID sites, and refusals.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "fedctl_run.h"
#include "model/dataset.h"
#include "test_util.h"

namespace {

using model_test::TempDir;
using nlohmann::json;

using fedctl_test::fedctl;
using fedctl_test::Result;

void expect_refusal(const Result& r, const std::string& needle) {
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(r.err.rfind("fedctl make-data: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
}

// Service name -> notes of that service in a JSON-lines file.
std::map<std::string, int> services(const std::filesystem::path& path) {
  std::map<std::string, int> counts;
  for (const auto& text : model::read_jsonl_texts(path)) {
    EXPECT_EQ(text.rfind("Service: ", 0), 0u) << text;
    ++counts[text.substr(9, text.find('\n') - 9)];
  }
  return counts;
}

TEST(FedctlData, MakeDataWritesDeterministicNonIidSites) {
  TempDir dir;
  const std::string args = " --sites 3 --records 300 --seed 7 --heldout-fraction 0.2 --mcq 50";
  const Result r = fedctl("make-data --out " + (dir / "a").string() + args);
  ASSERT_EQ(r.status, 0) << r.err;
  const json summary = json::parse(r.out);
  ASSERT_EQ(summary["sites"].size(), 3u);
  EXPECT_EQ(summary["sites"][1]["train_records"], 240);
  EXPECT_EQ(summary["sites"][1]["heldout_records"], 60);
  EXPECT_EQ(summary["mcq"], 50);

  const char* home[] = {"Cardiology", "Endocrinology", "Pulmonology"};
  std::vector<std::map<std::string, int>> mix;
  for (int k = 0; k < 3; ++k) {
    const std::string site = "site" + std::to_string(k);
    const auto train = dir / "a" / (site + ".jsonl");
    const auto held = dir / "a" / (site + ".heldout.jsonl");
    EXPECT_EQ(model::read_jsonl_texts(train).size(), 240u);
    EXPECT_EQ(model::read_jsonl_texts(held).size(), 60u);
    // Every line is exactly {"text": ...}, the layout `datasets` reads.
    std::istringstream lines(test_support::slurp(train));
    for (std::string line; std::getline(lines, line);) {
      const json j = json::parse(line);
      ASSERT_EQ(j.size(), 1u);
      ASSERT_TRUE(j["text"].is_string());
    }
    mix.push_back(services(train));
    for (const auto& [service, n] : services(held)) mix.back()[service] += n;
    EXPECT_EQ(summary["sites"][k]["specialties"][home[k]], mix.back()[home[k]]);
  }
  // Non-IID: each site's most common service is its own, and the three mixes differ; every
  // site still sees other services.
  for (int k = 0; k < 3; ++k) {
    for (const auto& [service, n] : mix[static_cast<size_t>(k)]) {
      if (service != home[k]) {
        EXPECT_LT(n, mix[static_cast<size_t>(k)][home[k]]) << service;
      }
    }
    EXPECT_GT(mix[static_cast<size_t>(k)][home[k]], 140);  // expected 180 of 300
    EXPECT_GE(mix[static_cast<size_t>(k)].size(), 5u);
  }
  EXPECT_NE(mix[0], mix[1]);
  EXPECT_NE(mix[1], mix[2]);

  const auto mcq = model::read_mcq_jsonl(dir / "a" / "mcq.jsonl");
  ASSERT_EQ(mcq.size(), 50u);
  for (const auto& q : mcq) EXPECT_EQ(q.options.size(), 4u);

  // Same seed: byte-identical files; another seed: different ones.
  ASSERT_EQ(fedctl("make-data --out " + (dir / "b").string() + args).status, 0);
  ASSERT_EQ(fedctl("make-data --out " + (dir / "c").string() +
                   " --sites 3 --records 300 --seed 8 --heldout-fraction 0.2 --mcq 50")
                .status,
            0);
  for (const char* f : {"site0.jsonl", "site2.heldout.jsonl", "mcq.jsonl"}) {
    const std::string a = test_support::slurp(dir / "a" / f);
    EXPECT_FALSE(a.empty());
    EXPECT_EQ(a, test_support::slurp(dir / "b" / f)) << f;
    EXPECT_NE(a, test_support::slurp(dir / "c" / f)) << f;
  }
}

TEST(FedctlData, DefaultsAndHelp) {
  TempDir dir;
  const Result r = fedctl("make-data --out " + (dir / "d").string() + " --sites 1 --records 10");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(model::read_jsonl_texts(dir / "d" / "site0.jsonl").size(), 9u);  // 10% held out
  EXPECT_EQ(model::read_jsonl_texts(dir / "d" / "site0.heldout.jsonl").size(), 1u);
  EXPECT_EQ(model::read_mcq_jsonl(dir / "d" / "mcq.jsonl").size(), 100u);
  const Result help = fedctl("make-data --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("--heldout-fraction"), std::string::npos);
  EXPECT_NE(fedctl("--help").out.find("make-data"), std::string::npos);
}

TEST(FedctlData, RefusesBadFlags) {
  TempDir dir;
  const std::string out = " --out " + (dir / "x").string();
  expect_refusal(fedctl("make-data --sites 2 --records 10"), "out");
  expect_refusal(fedctl("make-data" + out + " --records 10"), "sites");
  expect_refusal(fedctl("make-data" + out + " --sites 0 --records 10"),
                 "--sites must be between 1 and 1000, got 0");
  expect_refusal(fedctl("make-data" + out + " --sites 2 --records -5"),
                 "--records must be between 1 and 10000000, got -5");
  expect_refusal(fedctl("make-data" + out + " --sites abc --records 10"), "sites");
  expect_refusal(fedctl("make-data" + out + " --sites 2 --records 10 --heldout-fraction 1"),
                 "--heldout-fraction must be in [0, 1)");
  expect_refusal(fedctl("make-data" + out + " --sites 2 --records 1 --heldout-fraction 0.6"),
                 "leaves none for training");
  expect_refusal(fedctl("make-data" + out + " --sites 2 --records 10 --mcq 100000"),
                 "--mcq must be between 0 and");
  expect_refusal(fedctl("make-data" + out + " --sites 2 --records 10 --bogus 1"), "bogus");
  EXPECT_FALSE(std::filesystem::exists(dir / "x"));
}

}  // namespace
