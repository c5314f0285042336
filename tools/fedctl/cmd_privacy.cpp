// fedctl privacy: differential-privacy accounting from the command line.
//
//   fedctl privacy epsilon --q 0.01 --sigma 1.1 --steps 1000 --delta 1e-5
//   fedctl privacy epsilon --phase 0.01,1.1,1000 --phase 0.02,1.5,500 --delta 1e-5
//   fedctl privacy sigma --q 0.01 --steps 1000 --epsilon 3 --delta 1e-5
//
// Each prints one JSON object on stdout. Bad input prints one line "fedctl privacy: <reason>" on
// stderr and exits with status 2.
#include <boost/program_options.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "privacy/accountant.h"
#include "privacy/error.h"

namespace po = boost::program_options;

namespace fedctl {
namespace {

constexpr const char* kUsage =
    "usage: fedctl privacy <subcommand> [options]\n"
    "\n"
    "RDP accounting of the Poisson-subsampled Gaussian mechanism (DP-SGD), as Opacus does it.\n"
    "\n"
    "subcommands:\n"
    "  epsilon   epsilon spent by one or more phases of steps at a delta\n"
    "  sigma     smallest noise multiplier keeping a run within a target epsilon\n"
    "\n"
    "`fedctl privacy <subcommand> --help` shows its options.\n";

// Bad input; reported as "fedctl privacy: <message>" with exit status 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Shortest text that reads back as exactly `v` (a valid JSON number for finite v).
std::string json_number(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

double parse_number(const std::string& text, const std::string& what) {
  double v = 0;
  const char* begin = text.data();
  const char* end = begin + text.size();
  const auto r = std::from_chars(begin, end, v);
  if (text.empty() || r.ec != std::errc() || r.ptr != end || !std::isfinite(v)) {
    throw UsageError(what + ": '" + text + "' is not a finite number");
  }
  return v;
}

int64_t parse_steps(const std::string& text, const std::string& what) {
  int64_t n = 0;
  const char* begin = text.data();
  const char* end = begin + text.size();
  const auto r = std::from_chars(begin, end, n);
  if (!text.empty() && r.ec == std::errc() && r.ptr == end) {
    if (n < 0) throw UsageError(what + " must be >= 0, got " + text);
    return n;
  }
  // Also accept an exact integer written as a number, such as 1e7.
  double v = 0;
  try {
    v = parse_number(text, what);
  } catch (const UsageError&) {
    throw UsageError(what + ": '" + text + "' is not an integer");
  }
  if (v < 0) throw UsageError(what + " must be >= 0, got " + text);
  if (v != std::floor(v) || v >= 9.2e18) {
    throw UsageError(what + ": '" + text + "' is not an integer in range");
  }
  return static_cast<int64_t>(v);
}

double check_q(double q, const std::string& what) {
  if (!(q > 0 && q <= 1))
    throw UsageError(what + " (sampling rate) must be in (0, 1], got " + json_number(q));
  return q;
}

double check_sigma(double sigma, const std::string& what) {
  if (!(sigma > 0))
    throw UsageError(what + " (noise multiplier) must be > 0, got " + json_number(sigma));
  return sigma;
}

double check_delta(double delta) {
  if (!(delta > 0 && delta < 1))
    throw UsageError("--delta must be in (0, 1), got " + json_number(delta));
  return delta;
}

// "q,sigma,steps"
privacy::Phase parse_phase(const std::string& text) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, ',')) parts.push_back(part);
  if (parts.size() != 3 || text.empty() || text.back() == ',') {
    throw UsageError("--phase '" + text + "' is not of the form q,sigma,steps");
  }
  const std::string what = "--phase '" + text + "'";
  privacy::Phase p;
  p.q = check_q(parse_number(parts[0], what + " q"), what + " q");
  p.sigma = check_sigma(parse_number(parts[1], what + " sigma"), what + " sigma");
  p.steps = parse_steps(parts[2], what + " steps");
  return p;
}

// Parses argv (argv[0] is the subcommand name) against `desc`; no abbreviations, no positionals.
po::variables_map parse(int argc, char** argv, const po::options_description& desc) {
  po::variables_map vm;
  const po::positional_options_description no_positionals;
  const int style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
  po::store(po::command_line_parser(argc, argv)
                .options(desc)
                .positional(no_positionals)
                .style(style)
                .run(),
            vm);
  po::notify(vm);
  return vm;
}

std::string required(const po::variables_map& vm, const char* name) {
  if (!vm.count(name)) throw UsageError(std::string("missing --") + name + " (see --help)");
  return vm[name].as<std::string>();
}

int run_epsilon(int argc, char** argv) {
  po::options_description desc(
      "usage: fedctl privacy epsilon (--q Q --sigma S --steps N | --phase Q,S,N ...) --delta D\n"
      "\nPrints {\"epsilon\": E, \"order\": A}: the epsilon spent at delta D by all the given\n"
      "phases composed (RDP adds per order) and the RDP order that gave it. With no steps at\n"
      "all only the (epsilon, delta) conversion term remains.\n\noptions");
  desc.add_options()("help,h", "show this help")("q", po::value<std::string>(),
                                                 "sampling rate of each step, in (0, 1]")(
      "sigma", po::value<std::string>(), "noise multiplier (noise std / clipping norm), > 0")(
      "steps", po::value<std::string>(), "number of steps, >= 0")(
      "phase", po::value<std::vector<std::string>>()->composing(),
      "a phase q,sigma,steps; repeat to compose phases (may be combined with --q/--sigma/--steps)")(
      "delta", po::value<std::string>(), "target delta, in (0, 1)");
  const po::variables_map vm = parse(argc, argv, desc);
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  std::vector<privacy::Phase> phases;
  const int single = static_cast<int>(vm.count("q") + vm.count("sigma") + vm.count("steps"));
  if (single > 0) {
    privacy::Phase p;
    p.q = check_q(parse_number(required(vm, "q"), "--q"), "--q");
    p.sigma = check_sigma(parse_number(required(vm, "sigma"), "--sigma"), "--sigma");
    p.steps = parse_steps(required(vm, "steps"), "--steps");
    phases.push_back(p);
  }
  if (vm.count("phase")) {
    for (const std::string& s : vm["phase"].as<std::vector<std::string>>()) {
      phases.push_back(parse_phase(s));
    }
  }
  if (phases.empty()) throw UsageError("missing --q/--sigma/--steps or --phase (see --help)");
  const double delta = check_delta(parse_number(required(vm, "delta"), "--delta"));

  privacy::RdpAccountant acc;
  for (const privacy::Phase& p : phases) acc.add(p);
  // With no step at all only the conversion term remains (as Opacus's compute_rdp gives it).
  const privacy::PrivacySpent s =
      acc.phases().empty() ? privacy::epsilon_for(phases.front(), delta) : acc.spent(delta);
  if (!std::isfinite(s.epsilon) || !std::isfinite(s.order)) {
    throw UsageError("epsilon is not finite for these parameters (no privacy)");
  }
  std::printf("{\"epsilon\": %s, \"order\": %s}\n", json_number(s.epsilon).c_str(),
              json_number(s.order).c_str());
  return 0;
}

int run_sigma(int argc, char** argv) {
  po::options_description desc(
      "usage: fedctl privacy sigma --q Q --steps N --epsilon E --delta D\n"
      "\nPrints {\"sigma\": S}: the smallest noise multiplier in [0.05, 1e4] (to 1e-6 relative)\n"
      "for which N steps at sampling rate Q spend at most epsilon E at delta D.\n\noptions");
  desc.add_options()("help,h", "show this help")("q", po::value<std::string>(),
                                                 "sampling rate of each step, in (0, 1]")(
      "steps", po::value<std::string>(), "number of steps, >= 0")(
      "epsilon", po::value<std::string>(), "target epsilon, > 0")("delta", po::value<std::string>(),
                                                                  "target delta, in (0, 1)");
  const po::variables_map vm = parse(argc, argv, desc);
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  const double q = check_q(parse_number(required(vm, "q"), "--q"), "--q");
  const int64_t steps = parse_steps(required(vm, "steps"), "--steps");
  const double epsilon = parse_number(required(vm, "epsilon"), "--epsilon");
  if (!(epsilon > 0)) throw UsageError("--epsilon must be > 0, got " + json_number(epsilon));
  const double delta = check_delta(parse_number(required(vm, "delta"), "--delta"));
  const double sigma = privacy::sigma_for_epsilon(q, steps, epsilon, delta);
  std::printf("{\"sigma\": %s}\n", json_number(sigma).c_str());
  return 0;
}

int fail(const std::string& message) {
  std::string line = message;
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::fprintf(stderr, "fedctl privacy: %s\n", line.c_str());
  return 2;
}

}  // namespace

int cmd_privacy(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string sub = argv[1];
  if (sub == "--help" || sub == "-h" || sub == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  try {
    if (sub == "epsilon") return run_epsilon(argc - 1, argv + 1);
    if (sub == "sigma") return run_sigma(argc - 1, argv + 1);
    return fail("unknown subcommand '" + sub + "' (expected epsilon or sigma; see --help)");
  } catch (const UsageError& e) {
    return fail(e.what());
  } catch (const privacy::PrivacyError& e) {
    return fail(e.what());
  } catch (const po::error& e) {
    return fail(e.what());
  } catch (const std::exception& e) {
    return fail(e.what());
  } catch (...) {
    return fail("unexpected error");
  }
}

}  // namespace fedctl
