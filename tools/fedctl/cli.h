// Shared plumbing of fedctl subcommands: option parsing, --help, and turning every error into one
// line on stderr with exit status 2.
#pragma once

#include <boost/program_options.hpp>
#include <cstdio>
#include <exception>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "protocol/cli.h"

namespace fedctl {

namespace po = boost::program_options;

// Parses argv (argv[0] is the subcommand) against `opts` (-h/--help is added) with the shared
// parser (protocol/cli.h: deprecated spellings, negative unsigned values refused, `ranges`
// checked), then calls body. Any exception becomes the one line "fedctl <name>: <what>" and exit
// status 2.
inline int run_command(const char* name, const char* synopsis, po::options_description opts,
                       int argc, char** argv,
                       const std::function<int(const po::variables_map&)>& body,
                       std::vector<protocol::cli::Range> ranges = {}) {
  opts.add_options()("help,h", "show this help");
  // The deprecation warnings come after the command's own output, and not at all with a refusal,
  // which stays one line.
  std::ostringstream warnings;
  try {
    protocol::cli::Spec spec{&opts};
    spec.config_flag.clear();
    spec.ranges = std::move(ranges);
    const auto parsed = protocol::cli::parse(argc, argv, spec, warnings);
    if (parsed.help) {
      std::cout << "usage: fedctl " << name << " " << synopsis << "\n\n";
      protocol::cli::print_help(std::cout, opts);
      return 0;
    }
    const int rc = body(parsed.vm);
    std::cerr << warnings.str();
    return rc;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    for (auto& c : msg) {
      if (c == '\n') c = ' ';
    }
    std::fprintf(stderr, "fedctl %s: %s\n", name, msg.c_str());
    return 2;
  }
}

}  // namespace fedctl
