#include "coordinator/cli.h"

#include <boost/program_options.hpp>

#include <fstream>

#include "protocol/config_file.h"
#include "protocol/option_error.h"

namespace coordinator {

namespace {

namespace po = boost::program_options;
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
    ("help", "print this help")
    ("config", po::value(&f.config_file), "INI file with any of these options")
    ("endpoint", po::value(&c.endpoint)->default_value(c.endpoint), "ZeroMQ endpoint to bind")
    ("insecure", po::bool_switch(&c.insecure), "no CurveZMQ (loopback endpoints only)")
    ("key", po::value(&f.key_file), "the coordinator's secret key file (fedctl keygen)")
    ("allow-dir", po::value(&f.allow_dir), "directory of *.pub keys of participants and workers")
    ("roster", po::value(&f.roster),
     "roster file binding each key to one site or worker id (docs/coordinator.md); reloaded on "
     "SIGHUP and when it changes")
    ("handshake-timeout", po::value(&f.handshake_timeout_s)->default_value(f.handshake_timeout_s),
     "seconds a connection may take to complete its CURVE handshake before it is closed")
    ("run-dir", po::value(&f.run_dir), "run directory: events.jsonl, checkpoints/, adapter/")
    ("initial-adapter", po::value(&f.initial_adapter),
     "PEFT dir (adapter_model.safetensors + adapter_config.json) of the initial global adapter")
    ("log-level", po::value(&c.log_level)->default_value(c.log_level),
     "lines shown on stderr: trace, debug, info, warn, error, critical, off")
    ("log-file", po::value(&f.log_file),
     "also append every line at info and above (or --log-level, when lower) to this file");
  // clang-format on
}

void add_round_options(po::options_description& o, CoordinatorConfig& c, RawFlags& f) {
  // clang-format off
  o.add_options()
    ("rounds", po::value(&c.rounds)->default_value(c.rounds), "rounds to run")
    ("fraction", po::value(&c.fraction)->default_value(c.fraction),
     "fraction of eligible sites selected per round")
    ("min-participants", po::value(&c.min_participants)->default_value(c.min_participants),
     "fewest deltas that complete a round")
    ("max-attempts", po::value(&c.max_attempts)->default_value(c.max_attempts),
     "selections per round before the run gives up")
    ("round-timeout", po::value(&f.round_timeout_s)->default_value(f.round_timeout_s),
     "seconds from invitation to the upload deadline")
    ("heartbeat-ms", po::value(&f.heartbeat_ms)->default_value(f.heartbeat_ms),
     "heartbeat interval asked of the sites")
    ("missed-heartbeats", po::value(&c.missed_heartbeats)->default_value(c.missed_heartbeats),
     "heartbeats missed before a site is dead")
    ("wait-for-sites", po::value(&f.wait_for_sites_s)->default_value(f.wait_for_sites_s),
     "seconds to wait for enough sites before ending the run")
    ("start-after", po::value(&c.start_after)->default_value(c.start_after),
     "participants to wait for before the first round (0: min-participants)")
    ("seed", po::value(&c.seed)->default_value(c.seed), "seed of the selection DRBG")
    ("run-id", po::value(&c.run_id),
     "32 hex digits: replay a run with this id (tests only; default: a fresh random id)")
    ("max-example-weight",
     po::value(&c.max_example_weight)->default_value(c.max_example_weight),
     "FedAvg weight cap: a delta counts with at most this many examples (0: no cap)");
  // clang-format on
}

void add_plan_options(po::options_description& o, CoordinatorConfig& c) {
  // clang-format off
  o.add_options()
    ("local-steps", po::value(&c.plan.local_steps)->default_value(c.plan.local_steps),
     "DP-SGD steps per round at each site")
    ("lr", po::value(&c.plan.learning_rate)->default_value(c.plan.learning_rate),
     "local learning rate")
    ("batch-size", po::value(&c.plan.batch_size)->default_value(c.plan.batch_size),
     "expected local batch size")
    ("sample-rate", po::value(&c.plan.sample_rate)->default_value(c.plan.sample_rate),
     "Poisson sampling rate q of each step")
    ("noise-multiplier",
     po::value(&c.plan.noise_multiplier)->default_value(c.plan.noise_multiplier),
     "DP noise multiplier sigma")
    ("clip-norm", po::value(&c.plan.clip_norm)->default_value(c.plan.clip_norm),
     "per-example clipping norm C")
    ("delta", po::value(&c.plan.delta)->default_value(c.plan.delta), "DP delta of the plan")
    ("participant-dp", po::bool_switch(&c.plan.participant_dp),
     "participant-level DP: sites clip and noise their whole round delta (off by default)")
    ("participant-clip", po::value(&c.plan.participant_clip),
     "participant-level DP: L2 clip norm C_u of a site's round delta")
    ("participant-sigma", po::value(&c.plan.participant_sigma),
     "participant-level DP: noise multiplier sigma_u (noise std sigma_u * C_u per coordinate)")
    ("participant-amplification", po::bool_switch(&c.participant_amplification),
     "participant-level DP: account with amplification by subsampling (q = selected/eligible); "
     "valid only against a party that does not learn the selection, never the coordinator")
    ("strategy", po::value(&c.strategy.name)->default_value(c.strategy.name),
     "fedavg | fedadam | fedyogi | fedadagrad")
    ("server-lr", po::value(&c.strategy.server_lr)->default_value(c.strategy.server_lr),
     "server learning rate eta")
    ("beta1", po::value(&c.strategy.beta1)->default_value(c.strategy.beta1), "FedOpt beta1")
    ("beta2", po::value(&c.strategy.beta2)->default_value(c.strategy.beta2), "FedOpt beta2")
    ("tau", po::value(&c.strategy.tau)->default_value(c.strategy.tau), "FedOpt tau");
  // clang-format on
}

// Parses argv, then the --config file; true when --help was given (the text went to `out`).
base::Result<bool> read_options(int argc, const char* const* argv, const po::options_description& o,
                                std::ostream& out) {
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, o), vm);
    if (vm.count("help")) {
      out << "usage: coordinator --run-dir DIR --initial-adapter DIR [options]\n" << o << "\n";
      return true;
    }
    if (vm.count("config")) {
      const auto file = vm["config"].as<std::string>();
      std::ifstream in(file);
      if (!in) return make_error(base::Code::kInvalidArgument, "cannot read config ", file);
      po::store(protocol::parse_config_file_relative(
                    in, file, o,
                    {"key", "allow-dir", "roster", "run-dir", "initial-adapter", "log-file"}),
                vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    return make_error(base::Code::kInvalidArgument, protocol::option_error_message(e));
  } catch (const std::exception& e) {
    return make_error(base::Code::kInvalidArgument, e.what());
  }
  return false;
}

base::Status apply_times(const RawFlags& f, CoordinatorConfig& c) {
  if (!(f.round_timeout_s > 0) || !(f.wait_for_sites_s > 0) || f.heartbeat_ms == 0 ||
      !(f.handshake_timeout_s > 0) || f.handshake_timeout_s > 3600) {
    return make_error(base::Code::kInvalidArgument,
                      "--round-timeout, --wait-for-sites and --heartbeat-ms must be > 0, "
                      "--handshake-timeout in (0, 3600]");
  }
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
  auto help = read_options(argc, argv, o, out);
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
