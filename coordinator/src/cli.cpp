#include "coordinator/cli.h"

#include <boost/program_options.hpp>

#include <fstream>

#include "protocol/cli.h"

namespace coordinator {

namespace {

namespace po = boost::program_options;
namespace cli = protocol::cli;
using base::make_error;

// The flags that are not fields of CoordinatorConfig as they are (files, keys, seconds).
struct RawFlags {
  double round_timeout_s = 120, wait_for_sites_s = 300, handshake_timeout_s = 10;
  uint32_t heartbeat_ms = 1000;
  std::string key_file, allow_dir, roster, run_dir, initial_adapter, config_file, log_file;
};

void add_transport_options(po::options_description& o, CoordinatorConfig& c, RawFlags& f) {
  // clang-format off
  o.add_options()
    ("help,h", "print this help")
    ("config", po::value(&f.config_file), "INI file with any of these options")
    ("bind", cli::value(&c.endpoint),
     "address to listen on (ZeroMQ endpoint; port 0 or * picks a free one)")
    ("insecure", po::bool_switch(&c.insecure), "no CurveZMQ (loopback endpoints only)")
    ("key", po::value(&f.key_file), "the coordinator's secret key file (fedctl keygen)")
    ("allow-dir", po::value(&f.allow_dir), "directory of *.pub keys of participants and workers")
    ("roster", po::value(&f.roster),
     "roster file binding each key to one site or worker id (docs/coordinator.md); reloaded on "
     "SIGHUP and when it changes")
    ("handshake-timeout", cli::value(&f.handshake_timeout_s),
     "seconds a connection may take to complete its CURVE handshake before it is closed")
    ("run-dir", po::value(&f.run_dir), "run directory: events.jsonl, checkpoints/, adapter/")
    ("initial-adapter", po::value(&f.initial_adapter),
     "PEFT dir (adapter_model.safetensors + adapter_config.json) of the initial global adapter")
    ("log-level", cli::value(&c.log_level),
     cli::log_level_help().c_str())
    ("log-file", po::value(&f.log_file),
     "also append every line at info and above (or --log-level, when lower) to this file");
  // clang-format on
}

void add_round_options(po::options_description& o, CoordinatorConfig& c, RawFlags& f) {
  // clang-format off
  o.add_options()
    ("rounds", cli::value(&c.rounds), "rounds to run")
    ("fraction", cli::value(&c.fraction),
     "fraction of eligible sites selected per round")
    ("min-participants", cli::value(&c.min_participants),
     "fewest deltas that complete a round")
    ("max-attempts", cli::value(&c.max_attempts),
     "selections per round before the run gives up")
    ("round-timeout", cli::value(&f.round_timeout_s),
     "seconds from invitation to the upload deadline")
    ("heartbeat-ms", cli::value(&f.heartbeat_ms),
     "heartbeat interval asked of the sites")
    ("missed-heartbeats", cli::value(&c.missed_heartbeats),
     "heartbeats missed before a site is dead")
    ("wait-for-sites", cli::value(&f.wait_for_sites_s),
     "seconds to wait for enough sites before ending the run")
    ("start-after", cli::value(&c.start_after),
     "participants to wait for before the first round (0: min-participants)")
    ("seed", cli::value(&c.seed), "seed of the selection DRBG")
    ("run-id", po::value(&c.run_id),
     "32 hex digits: replay a run with this id (tests only; default: a fresh random id)")
    ("max-example-weight",
     cli::value(&c.max_example_weight),
     "FedAvg weight cap: a delta counts with at most this many examples (0: no cap)");
  // clang-format on
}

void add_plan_options(po::options_description& o, CoordinatorConfig& c) {
  // clang-format off
  o.add_options()
    ("local-steps", cli::value(&c.plan.local_steps),
     "DP-SGD steps per round at each site")
    ("lr", cli::value(&c.plan.learning_rate),
     "local learning rate")
    ("batch-size", cli::value(&c.plan.batch_size),
     "expected local batch size")
    ("sample-rate", cli::value(&c.plan.sample_rate),
     "Poisson sampling rate q of each step")
    ("noise-multiplier",
     cli::value(&c.plan.noise_multiplier),
     "DP noise multiplier sigma")
    ("clip-norm", cli::value(&c.plan.clip_norm),
     "per-example clipping norm C")
    ("delta", cli::value(&c.plan.delta), "DP delta of the plan")
    ("participant-dp", po::bool_switch(&c.plan.participant_dp),
     "participant-level DP: sites clip and noise their whole round delta (off by default)")
    ("participant-clip", po::value(&c.plan.participant_clip),
     "participant-level DP: L2 clip norm C_u of a site's round delta")
    ("participant-sigma", po::value(&c.plan.participant_sigma),
     "participant-level DP: noise multiplier sigma_u (noise std sigma_u * C_u per coordinate)")
    ("participant-amplification", po::bool_switch(&c.participant_amplification),
     "participant-level DP: account with amplification by subsampling (q = selected/eligible); "
     "valid only against a party that does not learn the selection, never the coordinator")
    ("strategy", cli::value(&c.strategy.name),
     "fedavg | fedadam | fedyogi | fedadagrad")
    ("server-lr", cli::value(&c.strategy.server_lr),
     "server learning rate eta")
    ("beta1", cli::value(&c.strategy.beta1), "FedOpt beta1")
    ("beta2", cli::value(&c.strategy.beta2), "FedOpt beta2")
    ("tau", cli::value(&c.strategy.tau), "FedOpt tau");
  // clang-format on
}

// The ranges of the numeric flags, checked before anything is read or bound.
std::vector<cli::Range> ranges() {
  std::vector<cli::Range> r = cli::round_plan_ranges();
  for (cli::Range x : {cli::at_least("rounds", 1), cli::at_least("max-attempts", 1),
                       cli::above("round-timeout", 0), cli::at_least("heartbeat-ms", 1),
                       cli::at_least("missed-heartbeats", 1), cli::above("wait-for-sites", 0),
                       cli::within("handshake-timeout", 0, 3600, true, false),
                       cli::within("beta1", 0, 1, false, true),
                       cli::within("beta2", 0, 1, false, true), cli::above("tau", 0)}) {
    r.push_back(std::move(x));
  }
  return r;
}

// Parses argv, then the --config file; true when --help was given (the text went to `out`).
base::Result<bool> read_options(int argc, const char* const* argv, const po::options_description& o,
                                std::ostream& out, std::string& log_level) {
  try {
    cli::Spec spec{&o};
    spec.ranges = ranges();
    spec.path_keys = {"key", "allow-dir", "roster", "run-dir", "initial-adapter", "log-file"};
    const auto p = cli::parse(argc, argv, spec, std::cerr);
    if (p.help) {
      out << "usage: coordinator --run-dir DIR --initial-adapter DIR [options]\n";
      cli::print_help(out, o);
      return true;
    }
    cli::check_log_level(log_level);
  } catch (const std::exception& e) {
    return make_error(base::Code::kInvalidArgument, e.what());
  }
  return false;
}

base::Status apply_times(const RawFlags& f, CoordinatorConfig& c) {
  // The ranges were checked by read_options (ranges()); the conversions cannot overflow.
  c.handshake_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(f.handshake_timeout_s * 1000));
  c.round_timeout = std::chrono::milliseconds(static_cast<int64_t>(f.round_timeout_s * 1000));
  c.wait_for_sites = std::chrono::milliseconds(static_cast<int64_t>(f.wait_for_sites_s * 1000));
  c.heartbeat_interval = std::chrono::milliseconds(f.heartbeat_ms);
  return base::ok_status();
}

base::Status apply_security(const RawFlags& f, CoordinatorConfig& c) {
  c.roster_file = f.roster;
  if (c.insecure) {
    if (!f.roster.empty()) {
      return make_error(base::Code::kInvalidArgument, "--roster needs CURVE (not --insecure)");
    }
    return base::ok_status();
  }
  if (f.key_file.empty() || (f.allow_dir.empty() && f.roster.empty())) {
    return make_error(base::Code::kInvalidArgument,
                      "CURVE needs --key and --roster or --allow-dir (or --insecure on loopback)");
  }
  auto key = protocol::load_key_pair(f.key_file);
  if (!key) return make_error(base::Code::kInvalidArgument, key.error().message);
  c.key = std::move(key).value();
  if (!f.allow_dir.empty()) {
    auto allow = protocol::AllowList::load_directory(f.allow_dir);
    if (!allow) return make_error(base::Code::kInvalidArgument, allow.error().message);
    c.allow = std::move(allow).value();
  }
  return base::ok_status();
}

}  // namespace

base::Result<CliOutcome> parse_cli(int argc, const char* const* argv, std::ostream& out) {
  CliOutcome r;
  auto& c = r.config;
  RawFlags f;
  po::options_description o("coordinator options (each also `name = value` in --config FILE)");
  add_transport_options(o, c, f);
  add_round_options(o, c, f);
  add_plan_options(o, c);
  auto help = read_options(argc, argv, o, out, c.log_level);
  if (!help) return help.error();
  if (help.value()) {
    r.help = true;
    return r;
  }
  if (f.run_dir.empty()) return make_error(base::Code::kInvalidArgument, "--run-dir is required");
  c.run_dir = f.run_dir;
  c.initial_adapter = f.initial_adapter;
  c.log_file = f.log_file;
  if (auto st = apply_times(f, c); !st) return st.error();
  if (c.plan.participant_dp && !(c.plan.participant_clip > 0 && c.plan.participant_sigma > 0)) {
    return make_error(base::Code::kInvalidArgument,
                      "--participant-dp needs --participant-clip > 0 and --participant-sigma > 0");
  }
  if (auto st = apply_security(f, c); !st) return st.error();
  return r;
}

}  // namespace coordinator
