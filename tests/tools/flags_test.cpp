// One vocabulary of flags (protocol/cli.h): every executable of build/bin answers -h with exit 0,
// names the shared concepts alike (--key, --allow-dir, --bind, --noise-multiplier, --batch-size,
// --log-level), shows readable defaults, accepts the deprecated spellings with one warning line,
// and refuses out-of-range numbers before any work, in the user's terms, with exit status 2.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test_support/files.h"
#include "test_support/run.h"
#include "test_support/temp_dir.h"

namespace {

using test_support::run;
using test_support::TempDir;
namespace fs = std::filesystem;

const std::string kBin = FEDLORA_BIN_DIR;

std::string bin(const std::string& exe) {
  return kBin + "/" + exe;
}

// The fedctl subcommands, as `fedctl --help` lists them.
std::vector<std::string> fedctl_commands() {
  const auto r = run(bin("fedctl") + " --help");
  EXPECT_EQ(r.status, 0) << r.err;
  std::vector<std::string> out;
  std::istringstream in(r.out);
  std::string line;
  bool in_commands = false;
  while (std::getline(in, line)) {
    if (line == "commands:") {
      in_commands = true;
      continue;
    }
    if (in_commands && line.rfind("  ", 0) == 0) {
      std::istringstream words(line);
      std::string name;
      words >> name;
      out.push_back(name);
    } else if (in_commands && line.empty()) {
      break;
    }
  }
  return out;
}

// Every command line whose -h is checked: the executables and each fedctl subcommand.
std::vector<std::string> every_program() {
  std::vector<std::string> all = {"coordinator", "participant", "fhe_worker", "fedsim", "fedctl"};
  for (const auto& c : fedctl_commands()) all.push_back("fedctl " + c);
  return all;
}

// The option names a --help text lists (before its deprecated spellings).
std::set<std::string> options_of(const std::string& help) {
  std::set<std::string> names;
  std::istringstream in(help);
  std::string line;
  static const std::regex option(R"(^\s+(?:-\w \[ )?--([a-z0-9-]+))");  // "-h [ --help ]"
  while (std::getline(in, line)) {
    if (line.rfind("Deprecated spellings", 0) == 0) break;
    std::smatch m;
    if (std::regex_search(line, m, option)) names.insert(m[1]);
  }
  return names;
}

std::map<std::string, std::string>& helps() {
  static std::map<std::string, std::string> cache;
  return cache;
}

const std::string& help_of(const std::string& program) {
  auto& cache = helps();
  auto it = cache.find(program);
  if (it != cache.end()) return it->second;
  const auto r = run(bin(program) + " -h");
  EXPECT_EQ(r.status, 0) << program << " -h: " << r.err;
  return cache[program] = r.out;
}

TEST(Flags, EveryProgramAnswersHelpWithExitZero) {
  const auto programs = every_program();
  ASSERT_GE(programs.size(), 15u);
  for (const auto& p : programs) {
    if (p == "fedctl version") continue;  // prints the version, takes no options
    EXPECT_FALSE(help_of(p).empty()) << p;
    const auto r = run(bin(p) + " --help");
    EXPECT_EQ(r.status, 0) << p << " --help: " << r.err;
  }
}

TEST(Flags, SharedConceptsHaveOneName) {
  // The concept -> the programs that have it: each lists it under its one name.
  const std::map<std::string, std::vector<std::string>> expected = {
      {"key",
       {"coordinator", "participant", "fhe_worker", "fedctl train", "fedctl fhe-matmul",
        "fedctl status"}},
      {"allow-dir", {"coordinator", "fhe_worker"}},
      {"bind", {"coordinator", "fhe_worker"}},
      {"log-level", {"coordinator", "participant", "fhe_worker", "fedsim"}},
      {"noise-multiplier", {"coordinator", "fedsim", "fedctl train"}},
      {"batch-size", {"coordinator", "fedsim", "fedctl train", "fedctl eval", "fedctl pretrain"}},
      {"help", {"coordinator", "participant", "fhe_worker", "fedsim", "fedctl train"}},
  };
  for (const auto& [name, programs] : expected) {
    for (const auto& p : programs) {
      EXPECT_TRUE(options_of(help_of(p)).count(name)) << p << " does not list --" << name;
    }
  }
  // No program lists a deprecated spelling as an option of its own.
  for (const auto& p : every_program()) {
    if (p == "fedctl version") continue;
    const auto names = options_of(help_of(p));
    for (const char* old : {"secret-key", "client-key", "allow", "endpoint", "dp-sigma", "batch"}) {
      EXPECT_FALSE(names.count(old)) << p << " lists --" << old;
    }
  }
}

TEST(Flags, HelpShowsDefaultsAsWritten) {
  static const std::regex unreadable(R"(\d\.\d{9,})");  // 1.0000000000000001e-05
  for (const auto& p : every_program()) {
    if (p == "fedctl version") continue;
    EXPECT_FALSE(std::regex_search(help_of(p), unreadable)) << p << ":\n" << help_of(p);
  }
  EXPECT_NE(help_of("coordinator").find("(=1e-05)"), std::string::npos) << help_of("coordinator");
}

TEST(Flags, ADeprecatedSpellingWorksWithOneWarningLine) {
  // --batch maps onto --batch-size: its range check answers, in the spelling the user gave. A
  // fedctl refusal stays one line: the warning comes only after a command that ran.
  TempDir dir;
  const auto r =
      run(bin("fedctl") + " train --model " + dir / "none" + " --data x --steps 1" + " --batch 0");
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "fedctl train: --batch must be at least 1 (got 0)\n");

  // --secret-key and --allow on the worker, --endpoint on the coordinator: accepted (the start
  // then fails on the missing files, after the warnings).
  const auto w =
      run(bin("fhe_worker") + " --model " + dir / "none" + " --secret-key " + dir / "w.key" +
          " --allow " + dir.path().string() + " --bind tcp://127.0.0.1:0");
  EXPECT_EQ(w.status, 2);
  EXPECT_NE(w.err.find("warning: --secret-key is deprecated; use --key\n"), std::string::npos)
      << w.err;
  EXPECT_NE(w.err.find("warning: --allow is deprecated; use --allow-dir\n"), std::string::npos)
      << w.err;
  const auto c = run(bin("coordinator") + " --insecure --endpoint tcp://127.0.0.1:0 --run-dir " +
                     dir / "run" + " --initial-adapter " + dir / "none");
  EXPECT_EQ(c.status, 2);
  EXPECT_NE(c.err.find("warning: --endpoint is deprecated; use --bind\n"), std::string::npos)
      << c.err;

  // In an INI file too.
  test_support::write_file(dir / "c.ini", "endpoint = tcp://127.0.0.1:0\nrounds = 0\n");
  const auto ini = run(bin("coordinator") + " --insecure --config " + dir / "c.ini" +
                       " --run-dir " + dir / "run");
  EXPECT_EQ(ini.status, 2);
  EXPECT_NE(ini.err.find("is deprecated; use --bind"), std::string::npos) << ini.err;
  EXPECT_NE(ini.err.find("--rounds must be at least 1 (got 0)"), std::string::npos) << ini.err;
}

TEST(Flags, NumbersAreCheckedInTheUsersTerms) {
  TempDir dir;
  struct Case {
    std::string cmd, message;
  };
  const std::vector<Case> cases = {
      {"coordinator --insecure --run-dir " + dir / "c" + " --rounds=-1",
       "--rounds must be at least 1 (got -1)"},
      {"coordinator --insecure --run-dir " + dir / "c" + " --lr 0", "--lr must be > 0 (got 0)"},
      {"coordinator --insecure --run-dir " + dir / "c" + " --fraction 2",
       "--fraction must lie in (0, 1] (got 2)"},
      {"coordinator --insecure --run-dir " + dir / "c" + " --log-level loud",
       "--log-level must be one of trace, debug, info, warn, error (got 'loud')"},
      {"participant --insecure --site-id a --model m --data d --state-dir s --seq-len 0",
       "--seq-len must be at least 2 (got 0)"},
      {"participant --insecure --site-id a --model m --data d --state-dir s --delta 2",
       "--delta must lie in (0, 1) (got 2)"},
      {"fhe_worker --model m --insecure --compute-threads 0",
       "--compute-threads must lie in [1, 256] (got 0)"},
      {"fhe_worker --model m --insecure --max-queue -3", "--max-queue must be at least 1 (got -3)"},
      {"fedctl train --model m --data d --steps -1", "--steps must be at least 1 (got -1)"},
      {"fedctl train --model m --data d --steps 1 --dp-sigma 0 --dp-clip 1 --dp-delta 1e-5",
       "--dp-sigma must be > 0 (got 0)"},
      {"fedsim --run-dir " + dir / "s" + " --rounds=-1", "--rounds must be at least 1 (got -1)"},
      {"fedsim --run-dir " + dir / "s" + " --lr 0", "--lr must be > 0 (got 0)"},
      {"fedsim --run-dir " + dir / "s" + " --workers -2", "--workers must be at least 1 (got -2)"},
      {"fedsim --run-dir " + dir / "s" + " --hidden 66", "--hidden must be a multiple of --heads"},
      {"fedsim --run-dir " + dir / "s" + " --kv-heads 3", "--kv-heads must divide --heads"},
  };
  for (const auto& c : cases) {
    const auto r = run(bin(c.cmd));
    EXPECT_EQ(r.status, 2) << c.cmd << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.cmd << ": " << r.err;
    EXPECT_EQ(r.err.find("invalidArgument"), std::string::npos) << c.cmd << ": " << r.err;
  }
  // Nothing of fedsim's run directory was made.
  EXPECT_FALSE(fs::exists(dir / "s"));
  EXPECT_FALSE(fs::exists(dir / "c"));
}

TEST(Flags, FedsimLeavesNoHalfMadeRunDirectory) {
  TempDir dir;
  // The user's own directory with a file of theirs, and a file where fedsim's data/ goes: the
  // generation fails after the model is written; what fedsim made goes, the user's files stay.
  const fs::path run_dir = dir / "mine";
  fs::create_directories(run_dir);
  test_support::write_file(run_dir / "notes.txt", "keep me\n");
  test_support::write_file(run_dir / "data", "not a directory\n");
  const auto r = run(bin("fedsim") + " --run-dir " + run_dir.string() +
                     " --base random --hidden 16 --heads 2 --kv-heads 1 --intermediate 32 "
                     "--vocab 300 --layers 1 --records 20 --seq-len 16");
  EXPECT_NE(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(run_dir / "notes.txt"));
  EXPECT_TRUE(fs::is_regular_file(run_dir / "data"));
  for (const char* made : {"model", "sites", "logs", "initial_adapter", "model.partial"}) {
    EXPECT_FALSE(fs::exists(run_dir / made)) << made;
  }
  // A fresh run directory whose --data is wrong is never made.
  const fs::path fresh = dir / "fresh";
  const auto f = run(bin("fedsim") + " --run-dir " + fresh.string() +
                     " --base random --hidden 16 --heads 2 --kv-heads 1 --intermediate 32 "
                     "--vocab 300 --layers 1 --records 20 --seq-len 16 --data " +
                     dir / "none");
  EXPECT_EQ(f.status, 2) << f.err;
  EXPECT_FALSE(fs::exists(fresh));
}

TEST(Flags, FedsimSaysARunDirectoryHoldsAFinishedRun) {
  TempDir dir;
  const fs::path run_dir = dir / "done";
  const std::string base = bin("fedsim") + " --run-dir " + run_dir.string() +
                           " --sites 2 --workers 1 --hidden 32 --layers 1 --heads 2 --kv-heads 1"
                           " --intermediate 64 --vocab 300 --records 40 --seq-len 16 --base random"
                           " --lora-rank 2 --local-steps 1 --batch-size 4 --sample-rate 0.1"
                           " --seed 3 --log-level error --backend float --rounds 1";
  const auto first = run(base);
  ASSERT_EQ(first.status, 0) << first.err;
  // The same command again, as processes: the finished run is named and reported, not restarted
  // (before, the coordinator process ended at once: "the coordinator ended before the workers
  // registered").
  const auto again = run(base + " --processes");
  EXPECT_EQ(again.status, 0) << again.err;
  EXPECT_NE(again.err.find("run directory " + run_dir.string() +
                           " holds a finished run of 1 rounds; use --rounds M > 1 to extend it or "
                           "a new --run-dir"),
            std::string::npos)
      << again.err;
  EXPECT_EQ(again.err.find("coordinator ended"), std::string::npos) << again.err;
  EXPECT_NE(again.out.find("adapter (PEFT): "), std::string::npos) << again.out;
}

}  // namespace
