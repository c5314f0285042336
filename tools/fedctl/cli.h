// Shared plumbing of fedctl subcommands: option parsing, --help, and turning every error into one
// line on stderr with exit status 2.
#pragma once

#include <boost/program_options.hpp>
#include <cstdio>
#include <exception>
#include <functional>
#include <iostream>
#include <string>

#include "protocol/option_error.h"

namespace fedctl {

namespace po = boost::program_options;

// Parses argv (argv[0] is the subcommand) against `opts` (a --help flag is added), then calls
// body. Any exception becomes "fedctl <name>: <what>" and exit status 2.
inline int run_command(const char* name, const char* synopsis, po::options_description opts,
                       int argc, char** argv,
                       const std::function<int(const po::variables_map&)>& body) {
  opts.add_options()("help,h", "show this help");
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: fedctl " << name << " " << synopsis << "\n\n" << opts << "\n";
      return 0;
    }
    po::notify(vm);
    return body(vm);
  } catch (const std::exception& e) {
    const auto* option_error = dynamic_cast<const po::error*>(&e);
    std::string msg = option_error ? protocol::option_error_message(*option_error) : e.what();
    for (auto& c : msg) {
      if (c == '\n') c = ' ';
    }
    std::fprintf(stderr, "fedctl %s: %s\n", name, msg.c_str());
    return 2;
  }
}

}  // namespace fedctl
