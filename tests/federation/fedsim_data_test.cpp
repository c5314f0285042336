// fedsim --data DIR --model DIR as a user runs it: their own site files (one with a held-out file
// and questions, one without) and their own model with a SentencePiece tokenizer trained here by
// spm_train. Then every bad input the user can bring: exit status 2, one clear line, and no run
// directory left behind.
#include <gtest/gtest.h>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_support/run.h"
#include "test_support/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using test_support::RunResult;

// A command line with its stderr folded into stdout (fedsim reports on stderr).
RunResult run(const std::string& command) {
  return test_support::run_stdout(command + " 2>&1");
}

void write_lines(const fs::path& file, const std::vector<json>& lines) {
  std::ofstream out(file);
  for (const auto& l : lines) out << l.dump() << "\n";
}

std::vector<json> notes(const std::string& topic, int count) {
  std::vector<json> out;
  for (int i = 0; i < count; ++i) {
    out.push_back({{"text", "Patient " + std::to_string(i) + " seen in " + topic +
                                " clinic. Plan: continue the current medication and review in " +
                                std::to_string(2 + i % 5) + " weeks."}});
  }
  return out;
}

class FedsimDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(data_);
    write_lines(data_ / "north.jsonl", notes("cardiology", 30));
    // A note far longer than --seq-len: seen through windows, and counted.
    std::string long_note;
    for (int i = 0; i < 40; ++i) long_note += "Repeat echocardiogram shows normal function. ";
    std::vector<json> south = notes("renal", 24);
    south.push_back({{"text", long_note}, {"date", "2026-01-01"}});
    write_lines(data_ / "south.jsonl", south);
    write_lines(data_ / "south.heldout.jsonl", notes("renal", 4));
    write_lines(data_ / "south.mcq.jsonl",
                {{{"question", "Which clinic?"}, {"options", {"renal", "eye"}}, {"answer", 0}}});
  }

  // A random Llama whose vocabulary is a SentencePiece model trained on the sites' notes.
  void make_model(const fs::path& dir, int vocab, int model_vocab) {
    std::ofstream corpus(root_ / "corpus.txt");
    for (const auto& n : notes("cardiology", 30)) corpus << n["text"].get<std::string>() << "\n";
    for (const auto& n : notes("renal", 30)) corpus << n["text"].get<std::string>() << "\n";
    corpus.close();
    const std::string prefix = (root_ / "spm").string();
    const auto spm = run("spm_train --input=" + (root_ / "corpus.txt").string() +
                         " --model_prefix=" + prefix + " --vocab_size=" + std::to_string(vocab) +
                         " --model_type=bpe --bos_id=1 --eos_id=2 --unk_id=0");
    ASSERT_EQ(spm.status, 0) << spm.out;
    const auto made =
        run(std::string(FEDLORA_BIN_DIR) + "/fedctl make-model --out " + dir.string() +
            " --hidden 32 --layers 1 --heads 2 --kv-heads 1 --intermediate 64 --vocab " +
            std::to_string(model_vocab) + " --max-pos 128");
    ASSERT_EQ(made.status, 0) << made.out;
    fs::copy_file(prefix + ".model", dir / "tokenizer.model", fs::copy_options::overwrite_existing);
  }

  std::string fedsim(const std::string& flags, int seq_len = 32) const {
    return std::string(FEDLORA_BIN_DIR) + "/fedsim --run-dir " + run_.string() +
           " --workers 1 --rounds 2 --lora-rank 2 --local-steps 2 --batch-size 4"
           " --sample-rate 0.2 --seed 5 --log-level error --base random --seq-len " +
           std::to_string(seq_len) + " " + flags;
  }

  test_support::TempDir tmp_;
  fs::path root_ = tmp_.path(), data_ = root_ / "data", model_ = root_ / "model",
           run_ = root_ / "run";
};

TEST_F(FedsimDataTest, RunsOnTheUsersSitesAndModel) {
  make_model(model_, 160, 160);
  const RunResult r = run(fedsim("--data " + data_.string() + " --model " + model_.string()));
  ASSERT_EQ(r.status, 0) << r.out;
  // Each site is named by its file, counted, and the long note is reported as windowed.
  EXPECT_NE(r.out.find("site north: 30 notes, every 10th held out, 0 questions"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("site south: 25 notes, 4 held out, 1 questions; 1 notes longer than "
                       "--seq-len 32 tokens are seen through windows of 32 tokens"),
            std::string::npos)
      << r.out;
  // The user's model is used in place (no copy), the split of "north" is in the run directory.
  EXPECT_FALSE(fs::exists(run_ / "model"));
  std::ifstream heldout(run_ / "data" / "north.heldout.jsonl");
  int held = 0;
  for (std::string line; std::getline(heldout, line);) ++held;
  EXPECT_EQ(held, 3);
  // Both sites trained in both rounds, under their own names.
  std::ifstream log(run_ / "events.jsonl");
  int rounds = 0;
  for (std::string line; std::getline(log, line);) {
    const json e = json::parse(line);
    if (e.value("event", "") != "round_finished") continue;
    ++rounds;
    EXPECT_EQ(e["sites"], json({"north", "south"})) << line;
  }
  EXPECT_EQ(rounds, 2);
  EXPECT_TRUE(fs::exists(run_ / "sites" / "north" / "curves.jsonl"));
  EXPECT_TRUE(fs::exists(run_ / "adapter" / "adapter_model.safetensors"));
}

// Every bad input: exit 2, a line naming the problem, and no run directory.
TEST_F(FedsimDataTest, BadInputsAreRefusedBeforeAnythingIsWritten) {
  make_model(model_, 160, 160);
  const auto refused = [&](const std::string& flags, const std::string& expected,
                           int seq_len = 32) {
    fs::remove_all(run_);
    const RunResult r = run(fedsim(flags, seq_len));
    EXPECT_EQ(r.status, 2) << flags << "\n" << r.out;
    EXPECT_NE(r.out.find(expected), std::string::npos) << flags << "\n" << r.out;
    EXPECT_FALSE(fs::exists(run_)) << flags;
  };
  const std::string model = " --model " + model_.string();

  // A record without "text".
  const fs::path bad = root_ / "bad";
  fs::create_directories(bad);
  write_lines(bad / "east.jsonl", {{{"text", "fine"}}, {{"note", "no text field"}}});
  refused("--data " + bad.string() + model, "east.jsonl:2");

  // An empty site.
  fs::remove_all(bad);
  fs::create_directories(bad);
  std::ofstream(bad / "west.jsonl").close();
  refused("--data " + bad.string() + model, "site west");

  // No site files at all, and a held-out file without its site.
  fs::remove(bad / "west.jsonl");
  refused("--data " + bad.string() + model, "no site files");
  write_lines(bad / "west.heldout.jsonl", notes("eye", 2));
  refused("--data " + bad.string() + model, "no training file west.jsonl");

  // A bad question.
  write_lines(data_ / "south.mcq.jsonl",
              {{{"question", "?"}, {"options", {"a", "b"}}, {"answer", 7}}});
  refused("--data " + data_.string() + model, "south.mcq.jsonl");
  fs::remove(data_ / "south.mcq.jsonl");

  // A --seq-len beyond the model's context.
  refused("--data " + data_.string() + model, "beyond the model's context", 4096);

  // A tokenizer whose ids do not fit the model's vocabulary.
  const fs::path small = root_ / "small_model";
  make_model(small, 160, 100);
  refused("--data " + data_.string() + " --model " + small.string(), "--model:");

  // A model directory that is not one.
  refused("--data " + data_.string() + " --model " + bad.string(), "--model:");
}

}  // namespace
