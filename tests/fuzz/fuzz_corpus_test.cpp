// Every fuzz target body (fuzz_*.cpp) over its seed corpus, tests/fuzz/corpus/NAME/: the seeds
// and every crash input added there since. A finding aborts the test binary.
//
// The seeds were written by this file too:
//   FEDLORA_WRITE_FUZZ_SEEDS=tests/fuzz/corpus build/bin/fuzz_corpus_tests
//       --gtest_filter=FuzzCorpus.WriteSeeds   (one command line)
// (SeedsAreAccepted checks that the valid ones still parse.)
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/npy.h"
#include "coordinator/checkpoint.h"
#include "coordinator/drbg.h"
#include "coordinator/registry.h"
#include "coordinator/roster.h"
#include "fhe/encryptor.h"
#include "fhe/secret_key.h"
#include "fhe/serialize.h"
#include "fuzz_files.h"
#include "fuzz_target.h"
#include "model/hf_tokenizer.h"
#include "model/peft_adapter.h"
#include "privacy/budget.h"
#include "test_support/files.h"

namespace {

namespace fs = std::filesystem;
const fs::path kCorpus = FUZZ_CORPUS_DIR;

TEST(FuzzCorpus, EveryTargetRunsOverItsCorpus) {
  const auto& targets = fuzz::registry();
  EXPECT_EQ(targets.size(), 9u);
  for (const auto& [name, body] : targets) {
    const fs::path dir = kCorpus / name;
    ASSERT_TRUE(fs::is_directory(dir)) << dir;
    size_t inputs = 0;
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string bytes = test_support::slurp(entry.path());
      SCOPED_TRACE(entry.path().string());
      EXPECT_EQ(body(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), 0);
      ++inputs;
    }
    EXPECT_GT(inputs, 0u) << name << " has no seeds";
    std::printf("fuzz target %s: %zu corpus input(s)\n", name.c_str(), inputs);
  }
}

// The valid seeds: what each parser must accept (so that the fuzzer starts from real files).
std::map<std::string, std::string> valid_seeds() {
  std::map<std::string, std::string> seeds;
  const auto dir = fuzz::scratch_dir();
  const std::vector<int8_t> m = {1, -2, 3, -4, 5, -6};
  fedtools::write_npy((dir / "a.npy").string(), fedtools::NpyType::kInt8, 2, 3, m.data());
  seeds["npy/int8_2x3.npy"] = test_support::slurp(dir / "a.npy");
  const int64_t v[] = {7, -8};
  fedtools::write_npy((dir / "b.npy").string(), fedtools::NpyType::kInt64, 2, 1, v);
  seeds["npy/int64_2x1.npy"] = test_support::slurp(dir / "b.npy");

  privacy::Budget budget(8.0, 1e-5);
  budget.commit({0.01, 1.1, 50});
  seeds["budget/spent.json"] = budget.to_json();

  auto ctx = fhe::Context::create();
  const auto key = fhe::SecretKey::generate(ctx);
  const int8_t x[] = {3, -1};
  const auto ct = fhe::Encryptor(key).encrypt(x, 2, 1, 20);
  const auto ct_bytes = fhe::serialize(*ctx, ct);
  seeds["ciphertext/fresh_2x1.ct"] = std::string(ct_bytes.begin(), ct_bytes.end());

  coordinator::Registry reg;
  protocol::coord::Register r{protocol::coord::Role::kParticipant, "site1", 100, 8.0, 1e-5, "", ""};
  EXPECT_TRUE(reg.register_site(r, "peer", "", coordinator::Clock::now()).ok());
  coordinator::Drbg drbg(5);
  coordinator::Checkpoint c;
  c.round = 2;
  c.drbg_state = drbg.state();
  c.global = coordinator::make_adapter({{"a", {2, 2}, {1, 2, 3, 4}}}).value();
  c.adapter_config = R"({"r": 2})";
  c.strategy = "fedadam";
  c.strategy_state = {1, {std::vector<float>(4, 0.5f), std::vector<float>(4, 0.25f)}};
  c.registry_json = reg.to_json();
  const auto ck = coordinator::serialize_checkpoint(c);
  seeds["checkpoint/fedadam.ckpt"] = std::string(ck.begin(), ck.end());
  // Without its digest: fuzz_checkpoint appends it (the second parse).
  seeds["checkpoint/fedadam_unsigned.ckpt"] = std::string(ck.begin(), ck.end() - 32);

  model::LlamaConfig lc;
  lc.hidden_size = 4;
  lc.intermediate_size = 6;
  lc.num_hidden_layers = 1;
  lc.num_attention_heads = 2;
  lc.num_key_value_heads = 1;
  lc.head_dim = 2;
  lc.vocab_size = 8;
  const auto adapter = model::make_peft_adapter(lc, 1, 2.0, {"q_proj", "v_proj"});
  model::write_peft_adapter(dir / "peft", adapter);
  seeds["peft_adapter/q_v_r1"] = test_support::slurp(dir / "peft" / model::kPeftConfigFile) +
                                 "\n--\n" +
                                 test_support::slurp(dir / "peft" / model::kPeftWeightsFile);
  return seeds;
}

TEST(FuzzCorpus, WriteSeeds) {
  const char* out = std::getenv("FEDLORA_WRITE_FUZZ_SEEDS");
  if (out == nullptr) GTEST_SKIP() << "set FEDLORA_WRITE_FUZZ_SEEDS=DIR to write the seeds";
  for (const auto& [name, bytes] : valid_seeds()) {
    const fs::path p = fs::path(out) / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << bytes;
  }
}

// The checked-in valid seeds are still what the writers produce the format of: each parses.
TEST(FuzzCorpus, SeedsAreAccepted) {
  for (const auto& name : {"npy/int8_2x3.npy", "npy/int64_2x1.npy"}) {
    const std::string b = test_support::slurp(kCorpus / name);
    EXPECT_NO_THROW(fedtools::parse_npy_header(b, b.size(), name)) << name;
  }
  EXPECT_NO_THROW(privacy::Budget::from_json(test_support::slurp(kCorpus / "budget/spent.json")));
  auto ctx = fhe::Context::create();
  const std::string ct = test_support::slurp(kCorpus / "ciphertext/fresh_2x1.ct");
  EXPECT_NO_THROW(fhe::deserialize(*ctx, reinterpret_cast<const uint8_t*>(ct.data()), ct.size()));
  const std::string ck = test_support::slurp(kCorpus / "checkpoint/fedadam.ckpt");
  EXPECT_TRUE(
      coordinator::parse_checkpoint({reinterpret_cast<const uint8_t*>(ck.data()), ck.size()}).ok());
  const std::string peft = test_support::slurp(kCorpus / "peft_adapter/q_v_r1");
  const size_t sep = peft.find("\n--\n");
  ASSERT_NE(sep, std::string::npos);
  fuzz::write_scratch(model::kPeftConfigFile, peft.substr(0, sep));
  fuzz::write_scratch(model::kPeftWeightsFile, peft.substr(sep + 4));
  EXPECT_NO_THROW(model::read_peft_adapter(fuzz::scratch_dir()));
  const auto roster = coordinator::Roster::parse(
      test_support::slurp(kCorpus / "roster/two_sites_one_worker.txt"), "roster.txt");
  ASSERT_TRUE(roster.ok()) << roster.error().message;
  EXPECT_EQ(roster.value().size(), 3u);
  const model::HfTokenizer tok(kCorpus / "tokenizer_json/tiny_bpe.json");
  EXPECT_EQ(tok.decode(tok.encode("the heat")), "the heat");
  EXPECT_EQ(tok.encode(" the").size(), 1u);  // " t" + "he" -> " the": the merges apply
}

}  // namespace
