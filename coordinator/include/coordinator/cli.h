// The coordinator's command line and INI file (Boost.Program_options): every flag `--name V`
// can also be given as `name = V` in the file named by --config (flags win). Kept in the
// library so that tests and fedsim parse exactly what the executable parses.
#pragma once

#include <ostream>
#include <string>

#include "base/result.h"
#include "coordinator/coordinator.h"
#include "protocol/result.h"

namespace coordinator {

struct CliOutcome {
  bool help = false;  // --help was given: the text went to `out`, nothing to run
  CoordinatorConfig config;
};

// Parses argv (and the --config file). kInvalidArgument, with one line, for an unknown or bad
// flag, a missing required value, an unreadable key or allow-list.
base::Result<CliOutcome> parse_cli(int argc, const char* const* argv, std::ostream& out);

}  // namespace coordinator
