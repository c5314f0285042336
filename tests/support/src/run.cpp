#include "test_support/run.h"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>

#include "test_support/files.h"
#include "test_support/temp_dir.h"

namespace test_support {

namespace {

int exit_status(int raw) {
  return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
}

}  // namespace

RunResult run(const std::string& cmd) {
  const TempDir dir;
  const auto out = dir / "stdout.txt";
  const auto err = dir / "stderr.txt";
  const int raw = std::system((cmd + " >'" + out + "' 2>'" + err + "'").c_str());
  RunResult r;
  r.status = exit_status(raw);
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

RunResult run_stdout(const std::string& cmd) {
  RunResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  r.status = exit_status(::pclose(p));
  return r;
}

}  // namespace test_support
