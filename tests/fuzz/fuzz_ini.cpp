// The INI config files (--config FILE) of fhe_worker, the coordinator, the participant and
// fedsim: Boost.Program_options' parse_config_file and the checks each program applies after it.
// The input is the file; each parser gets `PROGRAM --config FILE`. Each must return or throw a
// std::exception (the executables print its what() and exit 2): anything else is a finding.
#include <sstream>

#include "coordinator/cli.h"
#include "fhe_worker/error.h"
#include "fhe_worker/options.h"
#include "fuzz_files.h"
#include "fuzz_target.h"
#include "participant/cli.h"
#include "sim_config.h"

namespace {

template <typename F>
void refused_cleanly(F&& parse) {
  try {
    parse();
  } catch (const std::exception& e) {
    if (std::string_view(e.what()).empty()) fuzz::finding("empty error message");
  }
}

int one_input(const uint8_t* data, size_t size) {
  const std::string file =
      fuzz::write_scratch("config.ini", {reinterpret_cast<const char*>(data), size});
  const char* argv[] = {"prog", "--config", file.c_str(), nullptr};
  std::ostringstream out;
  refused_cleanly([&] { fhe_worker::parse_command_line(3, argv); });
  refused_cleanly([&] {
    auto r = coordinator::parse_cli(3, argv, out);
    if (!r) fuzz::expect_one_line(r.error().message);
  });
  refused_cleanly([&] { participant::parse_cli(3, argv, out); });
  refused_cleanly([&] {
    fedsim::SimConfig config;
    fedsim::parse_sim_config(3, argv, out, config);
  });
  return 0;
}

}  // namespace

FEDLORA_FUZZ_TARGET(ini, one_input)
