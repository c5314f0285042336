// Running the built fedctl (FEDCTL_PATH) in the CLI tests, with its exit status and output.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "test_support/run.h"

namespace fedctl_test {

using Result = test_support::RunResult;

// Runs `fedctl ARGS`; `args` goes through the shell as written (quote paths yourself).
inline Result fedctl(const std::string& args) {
  // Appended piecewise: GCC 12 warns (-Wrestrict, a false positive) on "'" + std::string(...).
  std::string cmd = "'";
  cmd += FEDCTL_PATH;
  cmd += "' ";
  cmd += args;
  return test_support::run(cmd);
}

// The training suites' inputs, made once per suite: a tiny model (hidden 64, 2 layers, 4 heads,
// vocab 300) in DIR/m and one site's notes with a held-out split and MCQs in DIR/data.
inline void make_tiny_model_and_data(const std::filesystem::path& dir) {
  const std::string at = dir.string();
  Result r = fedctl("make-model --out " + at + "/m" +
                    " --hidden 64 --layers 2 --heads 4 --kv-heads 2 --intermediate 128"
                    " --vocab 300 --max-pos 64 --seed 5");
  ASSERT_EQ(r.status, 0) << r.err;
  r = fedctl("make-data --out " + at + "/data" +
             " --sites 1 --records 44 --heldout-fraction 0.1 --mcq 6 --seed 2");
  ASSERT_EQ(r.status, 0) << r.err;
}

}  // namespace fedctl_test
