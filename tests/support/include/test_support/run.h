// Command lines run through /bin/sh, as a user would type them, with their exit status and output.
#pragma once

#include <string>

namespace test_support {

struct RunResult {
  int status = -1;  // the exit status, or -1 when the command was killed by a signal
  std::string out;  // what it wrote to stdout
  std::string err;  // what it wrote to stderr (empty for run_stdout)
};

// Runs `cmd` with stdout and stderr captured (through two files of a private temporary
// directory, removed afterwards). `cmd` is passed to the shell as written: quote paths yourself.
RunResult run(const std::string& cmd);

// Runs `cmd` capturing only stdout (through a pipe); stderr goes to the test's own log.
RunResult run_stdout(const std::string& cmd);

}  // namespace test_support
