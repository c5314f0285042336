// fedctl provision: one start-up kit per party of a federation (tools/common/provision.h).
//
//   fedctl provision --description federation.ini --out kits [--model DIR]
//   fedctl provision --add-site st-luke --kits kits [--data FILE [--eval FILE]]
//
// Prints one line per kit written; bad input (the description's line at fault) prints one line
// on stderr and exits with status 2, leaving nothing written.
#include <cstdio>
#include <stdexcept>
#include <string>

#include "cli.h"
#include "common/provision.h"

namespace fedctl {

int cmd_provision(int argc, char** argv) {
  po::options_description o(
      "provision options\n\n"
      "The description (INI): federation = NAME, coordinator = tcp://HOST:PORT, one\n"
      "`site = NAME [DATA [EVAL]]` and one `worker = NAME tcp://HOST:PORT` line per party,\n"
      "optionally model = DIR, lora-rank, lora-alpha, targets, and sections [coordinator],\n"
      "[site], [worker] whose keys are copied into that party's config file. Writes\n"
      "OUT/coordinator, OUT/sites/NAME and OUT/workers/NAME: keys, roster or allow-list,\n"
      "config file (paths relative to the kit) and README.md each. Paths in the description\n"
      "are absolute or relative to each kit");
  // clang-format off
  o.add_options()
    ("description", po::value<std::string>(), "the federation's description file (INI)")
    ("out", po::value<std::string>(), "directory to write the kits into (new or empty)")
    ("model", po::value<std::string>(),
     "a base model directory readable here: its absolute path goes into every kit and the "
     "coordinator's initial adapter is made from it (default: the description's model)")
    ("add-site", po::value<std::string>(),
     "add this site to existing kits (--kits): its kit, the workers' allow-lists, the roster")
    ("kits", po::value<std::string>(), "with --add-site: the OUT of an earlier provision")
    ("data", po::value<std::string>(), "with --add-site: the new site's records (DATA)")
    ("eval", po::value<std::string>(), "with --add-site: the new site's held-out records");
  // clang-format on
  return run_command(
      "provision",
      "--description FILE --out DIR [--model DIR] | --add-site NAME --kits DIR [--data FILE]", o,
      argc, argv, [](const po::variables_map& vm) {
        const auto get = [&](const char* k) {
          return vm.count(k) ? vm[k].as<std::string>() : std::string();
        };
        std::vector<std::string> lines;
        if (vm.count("add-site")) {
          if (vm.count("description") || vm.count("out") || vm.count("model")) {
            throw std::invalid_argument(
                "--add-site takes --kits (and --data, --eval), not --description, --out or "
                "--model");
          }
          if (!vm.count("kits")) throw std::invalid_argument("--add-site needs --kits DIR");
          lines = tools::add_site(get("kits"), get("add-site"), get("data"), get("eval"));
          lines.push_back("then: kill -HUP the coordinator and every worker (no restart)");
        } else {
          if (!vm.count("description") || !vm.count("out")) {
            throw std::invalid_argument("needs --description FILE and --out DIR (or --add-site)");
          }
          if (vm.count("kits") || vm.count("data") || vm.count("eval")) {
            throw std::invalid_argument("--kits, --data and --eval go with --add-site");
          }
          const std::string file = get("description");
          std::FILE* f = std::fopen(file.c_str(), "rb");
          if (!f) throw std::invalid_argument("cannot read the description " + file);
          std::string text;
          char buf[4096];
          for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
          std::fclose(f);
          tools::ProvisionOptions options;
          options.model = get("model");
          lines = tools::provision(text, file, get("out"), options);
        }
        for (const auto& l : lines) std::printf("%s\n", l.c_str());
        return 0;
      });
}

}  // namespace fedctl
