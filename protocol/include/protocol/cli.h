// The command line every executable shares (coordinator, participant, fhe_worker, fedctl and its
// subcommands, fedsim): one vocabulary of flag names, the deprecated spellings that map onto it,
// readable defaults in --help, range checks in the user's terms and one parse of argv plus an INI
// file. Header-only, on Boost.Program_options, like option_error.h.
//
//   po::options_description o("options");
//   o.add_options()("rounds", protocol::cli::value(&rounds), "rounds to run");
//   protocol::cli::Spec spec{&o};
//   spec.ranges = {protocol::cli::at_least("rounds", 1)};
//   auto p = protocol::cli::parse(argc, argv, spec, std::cerr);   // throws invalid_argument
//   if (p.help) { protocol::cli::print_help(std::cout, o); return 0; }
//
// Every failure is one line naming the flag as the user wrote it: "--rounds must be at least 1
// (got -1)"; a negative number given to an unsigned option is refused, never wrapped.
#pragma once

#include <boost/program_options.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "protocol/config_file.h"
#include "protocol/option_error.h"

namespace protocol::cli {

namespace po = boost::program_options;

// The vocabulary's deprecated spellings: `old_name` is accepted wherever an executable has
// `name`, with one line "warning: --OLD is deprecated; use --NEW" on stderr (one release).
struct Alias {
  const char* old_name;
  const char* name;
};
inline constexpr Alias kAliases[] = {
    {"secret-key", "key"},             // own CURVE secret key
    {"client-key", "key"},             //
    {"allow", "allow-dir"},            // directory of allowed *.pub keys
    {"endpoint", "bind"},              // an address this process listens on
    {"dp-sigma", "noise-multiplier"},  // DP-SGD noise multiplier sigma
    {"batch", "batch-size"},           // examples per micro-batch
};

// The levels --log-level takes, as --help and errors name them.
inline constexpr const char* kLogLevels = "trace, debug, info, warn, error";

// `v` as a person writes it: the shortest text that reads back as the same number (1e-05, 0.01).
template <class T>
std::string show(const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_arithmetic_v<T>) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
  } else {
    return std::string(v);
  }
}

// po::value(target) with *target as the default, shown readably in --help.
template <class T>
po::typed_value<T>* value(T* target) {
  return po::value(target)->default_value(*target, show(*target));
}
// po::value(target) with `fallback` as the default, shown readably.
template <class T, class U>
po::typed_value<T>* value(T* target, const U& fallback) {
  const T v = static_cast<T>(fallback);
  return po::value(target)->default_value(v, show(v));
}

// An allowed range of a numeric flag; checked after parsing (defaults included).
struct Range {
  std::string name;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_open = false, max_open = false;  // (min / max) excluded
  bool finite = true;                       // NaN and infinities refused
};
inline Range at_least(std::string name, double min) {
  return Range{std::move(name), min};
}
inline Range above(std::string name, double min) {
  Range r{std::move(name), min};
  r.min_open = true;
  return r;
}
inline Range within(std::string name, double min, double max, bool min_open = false,
                    bool max_open = false) {
  Range r{std::move(name), min, max};
  r.min_open = min_open;
  r.max_open = max_open;
  return r;
}

// The ranges of a round's training plan, under the names the coordinator and fedsim share.
inline std::vector<Range> round_plan_ranges() {
  return {at_least("local-steps", 1),
          above("lr", 0),
          at_least("batch-size", 1),
          within("sample-rate", 0, 1, true, false),
          above("noise-multiplier", 0),
          above("clip-norm", 0),
          within("delta", 0, 1, true, true),
          at_least("participant-clip", 0),
          at_least("participant-sigma", 0),
          above("server-lr", 0),
          within("fraction", 0, 1, true, false),
          at_least("min-participants", 1)};
}

// What to parse.
struct Spec {
  explicit Spec(const po::options_description* shown) : options(shown) {}
  const po::options_description* options = nullptr;  // shown by --help, read from argv
  const po::options_description* hidden = nullptr;   // read from argv (and the file), not shown
  const po::options_description* file = nullptr;     // keys of the --config file (null: all)
  std::string config_flag = "config";                // empty: no config file
  // Keys whose relative values in the config file are relative to the file's directory
  // (protocol/config_file.h); the current names (deprecated spellings are renamed first).
  std::vector<std::string> path_keys;
  std::vector<Range> ranges;
};

struct Parsed {
  po::variables_map vm;
  bool help = false;  // -h/--help given: nothing was checked, vm holds argv only
  // Current name -> the deprecated spelling the user gave, for messages in the user's terms.
  std::map<std::string, std::string> spelled;
  // "--NAME" as the user wrote it (the deprecated spelling when that one was used).
  std::string flag(const std::string& name) const {
    auto it = spelled.find(name);
    return "--" + (it == spelled.end() ? name : it->second);
  }
};

namespace detail {

inline bool has(const po::options_description& d, const std::string& name) {
  return d.find_nothrow(name, false, false, false) != nullptr;
}

// `d` plus a hidden option per alias whose current name `d` has.
inline void add_aliases(po::options_description& d) {
  for (const auto& a : kAliases) {
    if (has(d, a.name) && !has(d, a.old_name)) {
      d.add_options()(a.old_name, po::value<std::string>(), "");
    }
  }
}

inline std::string range_text(const Range& r) {
  const bool lo = std::isfinite(r.min), hi = std::isfinite(r.max);
  if (lo && hi) {
    return "lie in " + std::string(r.min_open ? "(" : "[") + show(r.min) + ", " + show(r.max) +
           (r.max_open ? ")" : "]");
  }
  if (lo) return r.min_open ? "be > " + show(r.min) : "be at least " + show(r.min);
  if (hi) return r.max_open ? "be < " + show(r.max) : "be at most " + show(r.max);
  return "be a finite number";
}

template <class T>
bool unsigned_of(const po::value_semantic* s) {
  return dynamic_cast<const po::typed_value<T>*>(s) != nullptr;
}

// Renames deprecated spellings onto the current names (one warning each) and refuses a negative
// number given to an unsigned option (Boost would wrap it: -1 -> 4294967295).
inline void rewrite(po::parsed_options& parsed, const std::vector<Range>& ranges, Parsed& out,
                    std::ostream& err, const std::string& where) {
  for (auto& opt : parsed.options) {
    for (const auto& a : kAliases) {
      if (opt.string_key == a.old_name && has(*parsed.description, a.name)) {
        err << "warning: --" << a.old_name << where << " is deprecated; use --" << a.name << "\n";
        out.spelled[a.name] = a.old_name;
        opt.string_key = a.name;
        break;
      }
    }
    const auto* d = parsed.description->find_nothrow(opt.string_key, false, false, false);
    if (!d) continue;
    const po::value_semantic* s = d->semantic().get();
    if (!(unsigned_of<unsigned>(s) || unsigned_of<unsigned long>(s) ||
          unsigned_of<unsigned long long>(s) || unsigned_of<unsigned short>(s))) {
      continue;
    }
    for (const auto& token : opt.value) {
      const auto first = token.find_first_not_of(" \t");
      if (first != std::string::npos && token[first] == '-') {
        Range r{opt.string_key, 0};
        for (const auto& given : ranges) {
          if (given.name == opt.string_key) r = given;
        }
        throw std::invalid_argument(out.flag(opt.string_key) + " must " + range_text(r) + " (got " +
                                    token.substr(first) + ")");
      }
    }
  }
}

// The stored number of `v` and its text, for the numeric types options use.
inline std::optional<std::pair<double, std::string>> number(const boost::any& v) {
#define FEDLORA_CLI_NUMBER(T)                                 \
  if (const T* p = boost::any_cast<T>(&v)) {                  \
    return std::make_pair(static_cast<double>(*p), show(*p)); \
  }
  FEDLORA_CLI_NUMBER(double)
  FEDLORA_CLI_NUMBER(float)
  FEDLORA_CLI_NUMBER(int)
  FEDLORA_CLI_NUMBER(long)
  FEDLORA_CLI_NUMBER(long long)
  FEDLORA_CLI_NUMBER(unsigned)
  FEDLORA_CLI_NUMBER(unsigned long)
  FEDLORA_CLI_NUMBER(unsigned long long)
#undef FEDLORA_CLI_NUMBER
  return std::nullopt;
}

}  // namespace detail

// Throws std::invalid_argument "--NAME must RANGE (got V)" when the parsed value of r.name lies
// outside r (nothing when the flag is absent or not a number).
inline void check_range(const Parsed& p, const Range& r) {
  if (!p.vm.count(r.name)) return;
  const auto n = detail::number(p.vm[r.name].value());
  if (!n) return;
  const double x = n->first;
  const bool ok = !std::isnan(x) && (!r.finite || std::isfinite(x)) &&
                  (r.min_open ? x > r.min : x >= r.min) && (r.max_open ? x < r.max : x <= r.max);
  if (!ok) {
    throw std::invalid_argument(p.flag(r.name) + " must " + detail::range_text(r) + " (got " +
                                n->second + ")");
  }
}

// Parses argv, then the --config file (the command line wins), renaming deprecated spellings and
// refusing negative unsigned values; then, unless --help was given, runs the notifiers (required
// options) and checks spec.ranges. Throws std::invalid_argument with one line.
inline Parsed parse(int argc, const char* const* argv, const Spec& spec, std::ostream& err) {
  Parsed p;
  try {
    po::options_description all;
    all.add(*spec.options);
    if (spec.hidden) all.add(*spec.hidden);
    detail::add_aliases(all);
    auto parsed = po::command_line_parser(argc, argv).options(all).run();
    detail::rewrite(parsed, spec.ranges, p, err, "");
    po::store(parsed, p.vm);
    if (p.vm.count("help")) {
      p.help = true;
      return p;
    }
    if (!spec.config_flag.empty() && p.vm.count(spec.config_flag)) {
      const std::string file = p.vm[spec.config_flag].as<std::string>();
      std::ifstream in(file);
      if (!in) throw std::invalid_argument(file + ": cannot read the config file");
      po::options_description keys;
      if (spec.file) {
        keys.add(*spec.file);
      } else {
        keys.add(all);
      }
      detail::add_aliases(keys);
      auto from_file = po::parse_config_file(in, keys);
      detail::rewrite(from_file, spec.ranges, p, err, " (in " + file + ")");
      resolve_relative_paths(from_file, file, spec.path_keys);
      po::store(from_file, p.vm);
    }
    po::notify(p.vm);
  } catch (const po::error& e) {
    std::string msg = option_error_message(e);
    for (auto& c : msg) {
      if (c == '\n') c = ' ';
    }
    throw std::invalid_argument(msg);
  }
  for (const auto& r : spec.ranges) check_range(p, r);
  return p;
}

// --help: the options, then the deprecated spellings they still accept.
inline void print_help(std::ostream& out, const po::options_description& visible) {
  out << visible << "\n";
  bool first = true;
  for (const auto& a : kAliases) {
    if (!detail::has(visible, a.name)) continue;
    if (first) out << "Deprecated spellings (still accepted, with a warning):\n";
    first = false;
    const size_t len = std::char_traits<char>::length(a.old_name);
    out << "  --" << a.old_name << std::string(len < 20 ? 20 - len : 1, ' ') << "use --" << a.name
        << "\n";
  }
}

// Throws std::invalid_argument unless `level` is one of kLogLevels (also critical and off).
inline void check_log_level(const std::string& level, const std::string& flag = "--log-level") {
  for (const char* l : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
    if (level == l) return;
  }
  throw std::invalid_argument(flag + " must be one of " + kLogLevels + " (got '" + level + "')");
}

// The --log-level option text every executable shows.
inline std::string log_level_help(const std::string& what = "lines shown on stderr") {
  return what + ": " + kLogLevels;
}

}  // namespace protocol::cli
