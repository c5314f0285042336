// fedctl: one binary, one subcommand per task. `fedctl --help` lists them.
#include <cstdio>
#include <cstring>
#include <iterator>

#include "commands.h"

namespace fedctl {
// Subcommands, one per line; each is defined in a cmd_*.cpp file of this folder.
}  // namespace fedctl

namespace {

const fedctl::Command kCommands[] = {
    {"version", "print the version", [](int, char**) {
       std::puts("fedctl 0.1.0");
       return 0;
     }},
};

void usage(std::FILE* out) {
  std::fprintf(out, "usage: fedctl <command> [options]\n\ncommands:\n");
  for (const auto& c : kCommands) std::fprintf(out, "  %-14s %s\n", c.name, c.summary);
  std::fprintf(out, "\n`fedctl <command> --help` shows a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (const auto& c : kCommands) {
    if (!std::strcmp(argv[1], c.name)) return c.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "fedctl: unknown command '%s' (see fedctl --help)\n", argv[1]);
  return 2;
}
