// The float forward pass against the committed outputs of an independent pure-Python reference
// of Hugging Face's LlamaForCausalLM (reference/llama_reference.py; see reference/README.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/float_backend.h"
#include "model/llama_model.h"
#include "model/llama_weights.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kReferenceDir = FEDLORA_REFERENCE_DIR;

json read_json(const fs::path& path) {
  std::ifstream in(path);
  return json::parse(in);
}

std::vector<std::string> fixture_names() {
  std::vector<std::string> names;
  for (const auto& fx : read_json(kReferenceDir / "fixtures.json")) names.push_back(fx["name"]);
  return names;
}

class HfReference : public ::testing::TestWithParam<std::string> {};

TEST_P(HfReference, FloatLogitsMatchTheReference) {
  const fs::path dir = kReferenceDir / GetParam();
  const json expected = read_json(dir / "expected.json");
  auto weights = std::make_shared<const model::LlamaWeights>(model::load_llama_weights(dir));
  model::LlamaModel llama(weights, std::make_unique<model::FloatBackend>(weights));

  const auto sequences = expected["sequences"].get<std::vector<std::vector<int32_t>>>();
  const model::TokenBatch batch(sequences);  // all sequences in one batch
  const model::Matrix logits = llama.forward(batch);
  ASSERT_EQ(logits.rows(), batch.total_tokens());
  ASSERT_EQ(logits.cols(), weights->config.vocab_size);

  double worst = 0;
  for (size_t s = 0; s < sequences.size(); ++s) {
    const auto& ref_seq = expected["logits"][s];
    ASSERT_EQ(ref_seq.size(), sequences[s].size());
    for (size_t p = 0; p < sequences[s].size(); ++p) {
      const auto ref = ref_seq[p].get<std::vector<double>>();
      ASSERT_EQ(static_cast<int64_t>(ref.size()), logits.cols());
      double max_ref = 0, max_err = 0;
      for (size_t v = 0; v < ref.size(); ++v) {
        const int64_t row = batch.spans()[s].begin + static_cast<int64_t>(p);
        max_ref = std::max(max_ref, std::fabs(ref[v]));
        max_err = std::max(max_err, std::fabs(logits(row, static_cast<int64_t>(v)) - ref[v]));
      }
      EXPECT_LE(max_err, 1e-4 * max_ref) << "sequence " << s << " position " << p;
      worst = std::max(worst, max_err / max_ref);
    }
  }
  RecordProperty("max_relative_error", std::to_string(worst));
  std::printf("%s: max |logit - ref| / max |ref| = %.3g\n", GetParam().c_str(), worst);

  const double ref_loss = expected["loss"];
  EXPECT_NEAR(llama.loss(batch), ref_loss, 1e-5 * ref_loss);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfReference, ::testing::ValuesIn(fixture_names()),
                         [](const auto& test) { return test.param; });

bool have_python3() {
  return std::system("command -v python3 >/dev/null 2>&1") == 0;
}

// Regenerates every fixture with the current fedctl and the reference script, and checks that
// the committed files are current: the model files byte for byte, the expected logits to 1e-8.
TEST(HfReferenceFixtures, AreCurrent) {
  if (!have_python3()) GTEST_SKIP() << "python3 is not installed";
  model_test::TempDir tmp;
  const std::string cmd = "python3 '" + (kReferenceDir / "llama_reference.py").string() +
                          "' regenerate --fedctl '" + FEDCTL_PATH + "' --out '" +
                          tmp.path().string() + "' >'" + (tmp / "log.txt").string() + "' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << test_support::slurp(tmp / "log.txt");
  for (const std::string& name : fixture_names()) {
    SCOPED_TRACE(name);
    for (const char* file : {"config.json", "model.safetensors"}) {
      EXPECT_EQ(test_support::slurp(tmp.path() / name / file),
                test_support::slurp(kReferenceDir / name / file))
          << file << " differs: regenerate the fixtures (reference/README.md)";
    }
    const json fresh = read_json(tmp.path() / name / "expected.json");
    const json committed = read_json(kReferenceDir / name / "expected.json");
    ASSERT_EQ(fresh["sequences"], committed["sequences"]);
    EXPECT_NEAR(fresh["loss"].get<double>(), committed["loss"].get<double>(), 1e-9);
    ASSERT_EQ(fresh["logits"].size(), committed["logits"].size());
    for (size_t s = 0; s < fresh["logits"].size(); ++s) {
      for (size_t p = 0; p < fresh["logits"][s].size(); ++p) {
        const auto a = fresh["logits"][s][p].get<std::vector<double>>();
        const auto b = committed["logits"][s][p].get<std::vector<double>>();
        ASSERT_EQ(a.size(), b.size());
        for (size_t v = 0; v < a.size(); ++v) ASSERT_NEAR(a[v], b[v], 1e-8 * (1 + std::fabs(b[v])));
      }
    }
  }
}

}  // namespace
