#include "participant/cli.h"

#include <boost/program_options.hpp>

#include <stdexcept>

#include "model/lora_config.h"
#include "privacy/random_source.h"
#include "protocol/cli.h"
#include "protocol/keys.h"

namespace participant {
namespace po = boost::program_options;
namespace cli = protocol::cli;

CliOutcome parse_cli(int argc, const char* const* argv, std::ostream& out) {
  CliOutcome outcome;
  AgentConfig& c = outcome.config;
  std::string config_file, key_file, coordinator_key, model_dir, data, eval, state_dir, targets,
      dp_seed, progress_file;
  int64_t rank = 8, heartbeat_ms = 1000, reconnect_ms = 5000, timeout_ms = 60000;
  double alpha = 16;
  po::options_description options(
      "participant: one site of a federation (registers with the coordinator, trains the global "
      "LoRA adapter on its own records with DP-SGD, every frozen projection encrypted on the "
      "fhe_workers, and uploads the delta)\n\nOptions");
  options.add_options()("help,h", "this text")("config", po::value(&config_file),
                                               "INI file with any of these options (flags win)")(
      "site-id", po::value(&c.site_id)->required(), "this site's name in the federation")(
      "coordinator", cli::value(&c.coordinator), "the coordinator's endpoint")(
      "coordinator-key", po::value(&coordinator_key),
      "the coordinator's public key file (.pub), for CURVE")(
      "key", po::value(&key_file),
      "this site's CURVE secret key file (PREFIX.key of `fedctl keygen`), used towards the "
      "coordinator and the workers")("insecure", po::bool_switch(&c.insecure),
                                     "no CURVE (loopback endpoints only; for local experiments)")(
      "model", po::value(&model_dir)->required(), "model directory (config.json + safetensors)")(
      "model-id", po::value(&c.model_id),
      "model id the workers serve (default: the model directory's name)")(
      "data", po::value(&data)->required(), "this site's training records (JSON lines, \"text\")")(
      "eval", po::value(&eval), "held-out records in the same format")(
      "state-dir", po::value(&state_dir)->required(),
      "where the site keeps its privacy budget, RLWE key and DP seed (a restart resumes)")(
      "seq-len", cli::value(&c.seq_len), "tokens per example")(
      "eval-batch", cli::value(&c.eval_batch), "examples per evaluation batch")(
      "lora-rank", cli::value(&rank), "LoRA rank (must match the federation's adapter)")(
      "lora-alpha", cli::value(&alpha), "LoRA alpha")(
      "targets", po::value(&targets)->default_value("q,v"), "adapted projections")(
      "epsilon-max", cli::value(&c.epsilon_max), "this site's privacy budget epsilon")(
      "delta", cli::value(&c.delta), "this site's delta")(
      "dp-seed", po::value(&dp_seed),
      "64 hex digits: replayable DP noise and sampling (default: a secret seed made on first "
      "start and kept in the state directory)")(
      "backend", cli::value(&c.backend),
      "remote (encrypted on the workers), encrypted (in process) or float (plaintext, "
      "debugging only)")("switch-modulus", po::bool_switch(&c.switch_modulus),
                         "ask workers for modulus-switched (smaller) replies")(
      "recompute-activations", po::bool_switch(&c.recompute_activations),
      "keep one decoder layer's activations at a time: each layer's forward runs again in the "
      "backward pass (the same gradients; one more forward pass per step)")(
      "report-losses", po::bool_switch(&c.report_losses),
      "send this site's train and held-out loss (not DP-noised) to the coordinator with every "
      "delta; by default they stay in STATE/curves.jsonl")(
      "progress-file", po::value(&progress_file),
      "publish the training progress (round, step, tokens per second, ETA) to this JSON file "
      "after every step, replaced atomically (default: not published)")(
      "heartbeat-ms", cli::value(&heartbeat_ms), "heartbeat interval")(
      "reconnect-ms", cli::value(&reconnect_ms),
      "register again after this long without a word from the coordinator")(
      "request-timeout-ms", cli::value(&timeout_ms),
      "time a worker gets for one product before it is retried elsewhere")(
      "connect-attempts", cli::value(&c.connect_attempts),
      "failed CURVE handshakes in a row (this site's key refused, or a wrong --coordinator-key; "
      "or every worker of a round refusing it) before the participant exits with status 1, one "
      "a heartbeat; 0: keep trying, with a warning each time")(
      "log-level", cli::value(&outcome.log_level), cli::log_level_help().c_str());
  cli::Spec spec{&options};
  spec.path_keys = {"coordinator-key", "key",          "model", "data", "eval",
                    "state-dir",       "progress-file"};
  spec.ranges = {cli::at_least("seq-len", 2),
                 cli::at_least("eval-batch", 1),
                 cli::at_least("lora-rank", 1),
                 cli::above("lora-alpha", 0),
                 cli::above("epsilon-max", 0),
                 cli::within("delta", 0, 1, true, true),
                 cli::at_least("heartbeat-ms", 10),
                 cli::at_least("reconnect-ms", 10),
                 cli::at_least("request-timeout-ms", 100),
                 cli::at_least("connect-attempts", 0)};
  const cli::Parsed parsed = cli::parse(argc, argv, spec, std::cerr);
  if (parsed.help) {
    cli::print_help(out, options);
    outcome.help = true;
    return outcome;
  }
  cli::check_log_level(outcome.log_level);
  c.model_dir = model_dir;
  c.train_file = data;
  c.heldout_file = eval;
  c.state_dir = state_dir;
  c.progress_file = progress_file;
  c.lora.rank = rank;
  c.lora.alpha = alpha;
  c.lora.targets = model::parse_lora_targets(targets);
  if (reconnect_ms < heartbeat_ms) {
    throw std::invalid_argument("--reconnect-ms must be at least --heartbeat-ms (" +
                                std::to_string(heartbeat_ms) + ", got " +
                                std::to_string(reconnect_ms) + ")");
  }
  c.heartbeat_interval = std::chrono::milliseconds(heartbeat_ms);
  c.reconnect_after = std::chrono::milliseconds(reconnect_ms);
  c.request_timeout = std::chrono::milliseconds(timeout_ms);
  if (!dp_seed.empty()) c.dp_seed = privacy::parse_seed_hex(dp_seed);
  if (!c.insecure) {
    if (key_file.empty() || coordinator_key.empty()) {
      throw std::invalid_argument(
          "CURVE needs --key and --coordinator-key (or --insecure on loopback)");
    }
    auto pair = protocol::load_key_pair(key_file);
    if (!pair.ok()) throw std::invalid_argument(pair.error().message);
    c.key = pair.value();
    auto server = protocol::load_public_key(coordinator_key);
    if (!server.ok()) throw std::invalid_argument(server.error().message);
    c.coordinator_key = server.value();
  }
  return outcome;
}

}  // namespace participant
