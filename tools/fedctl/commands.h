// The fedctl subcommands. Each takes the arguments after the subcommand name (argv[0] is the
// subcommand) and returns the process exit status: 0 success, 2 bad input or refused request.
#pragma once

namespace fedctl {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);
};

}  // namespace fedctl
