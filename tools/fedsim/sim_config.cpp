#include "sim_config.h"

#include <boost/program_options.hpp>

#include <chrono>
#include <ctime>
#include <stdexcept>

#include "model/lora_config.h"
#include "protocol/cli.h"

namespace fedsim {
namespace po = boost::program_options;
namespace cli = protocol::cli;

bool parse_sim_config(int argc, const char* const* argv, std::ostream& out, SimConfig& c) {
  std::string config_file, run_dir, data_dir, model_dir, base_cache;
  po::options_description options(
      "fedsim: a whole federation on one machine: a coordinator, S participant sites and W "
      "fhe_workers, training a LoRA adapter with DP-SGD while every frozen projection runs "
      "encrypted on the workers.\n\nUsage: fedsim [--config FILE] [--rounds R] [--sites S] "
      "[--workers W] [--run-dir DIR] [--seed N] [--processes] [options]\n\nOptions");
  options.add_options()("help,h", "this text")("config", po::value(&config_file),
                                               "INI file with any of these options (flags win)")(
      "rounds", cli::value(&c.rounds), "federated rounds")(
      "sites", cli::value(&c.sites), "participant sites")("workers", cli::value(&c.workers),
                                                          "fhe_workers")(
      "run-dir", po::value(&run_dir),
      "where everything goes (default runs/fedsim-DATE-TIME); an existing run resumes")(
      "seed", cli::value(&c.seed),
      "seed of the model, the data, the selection and the sites' DP streams (replayable)")(
      "processes", po::bool_switch(&c.processes),
      "run every party as its own process over loopback TCP with CURVE keys (default: threads "
      "in this process, loopback TCP without CURVE)")(
      "data", po::value(&data_dir),
      "your own sites: a directory of NAME.jsonl files, one per site, a \"text\" field per line "
      "(optional NAME.heldout.jsonl, NAME.mcq.jsonl); overrides --sites and --records")(
      "model", po::value(&model_dir),
      "your own base model: a Hugging Face Llama directory (config.json, safetensors, "
      "tokenizer.model or tokenizer.json); overrides the generated model's shape flags")(
      "base", cli::value(&c.base),
      "the generated base model: pretrained (on a generated general-text corpus, made once and "
      "cached) or random")("pretrain-steps", cli::value(&c.pretrain_steps),
                           "optimizer steps of the pretrained base model")(
      "base-cache", po::value(&base_cache),
      "where pretrained base models are kept, one per recipe (default: .base-models next to "
      "the run directory)")("hidden", cli::value(&c.hidden), "model hidden size")(
      "layers", cli::value(&c.layers), "model layers")(
      "heads", cli::value(&c.heads), "attention heads")("kv-heads", cli::value(&c.kv_heads),
                                                        "key/value heads")(
      "intermediate", cli::value(&c.intermediate), "MLP intermediate size")(
      "vocab", cli::value(&c.vocab), "vocabulary (byte tokenizer)")(
      "records", cli::value(&c.records), "synthetic notes per site (held-out ones included)")(
      "heldout-fraction", po::value(&c.heldout_fraction)->default_value(c.heldout_fraction, "0.1"),
      "share of each site's notes held out")("seq-len", cli::value(&c.seq_len),
                                             "tokens per example")(
      "lora-rank", cli::value(&c.lora_rank), "LoRA rank")(
      "lora-alpha", cli::value(&c.lora_alpha), "LoRA alpha")("targets", cli::value(&c.targets),
                                                             "adapted projections")(
      "local-steps", cli::value(&c.local_steps), "DP-SGD steps per site and round")(
      "lr", po::value(&c.lr)->default_value(c.lr, "0.01"), "sites' AdamW learning rate")(
      "batch-size", cli::value(&c.batch_size), "examples per micro-batch")(
      "sample-rate", po::value(&c.sample_rate)->default_value(c.sample_rate, "0.04"),
      "Poisson sampling rate q")(
      "noise-multiplier", po::value(&c.noise_multiplier)->default_value(c.noise_multiplier, "0.8"),
      "DP-SGD sigma")("clip-norm", po::value(&c.clip_norm)->default_value(c.clip_norm, "1"),
                      "DP-SGD per-example clip C")(
      "delta", po::value(&c.delta)->default_value(c.delta, "1e-05"), "DP delta")(
      "epsilon-max", po::value(&c.epsilon_max)->default_value(c.epsilon_max, "8"),
      "every site's privacy budget")(
      "participant-dp", po::bool_switch(&c.participant_dp),
      "participant-level DP: sites clip and noise their whole round delta (off by default)")(
      "participant-clip", po::value(&c.participant_clip),
      "participant-level DP: L2 clip norm C_u of a site's round delta")(
      "participant-sigma", po::value(&c.participant_sigma),
      "participant-level DP: noise multiplier sigma_u")("strategy", cli::value(&c.strategy),
                                                        "fedavg, fedadam, fedyogi or fedadagrad")(
      "server-lr", po::value(&c.server_lr)->default_value(c.server_lr, "1"),
      "server learning rate (FedOpt)")("fraction",
                                       po::value(&c.fraction)->default_value(c.fraction, "1"),
                                       "share of the sites selected each round")(
      "min-participants", cli::value(&c.min_participants), "deltas a round needs")(
      "round-timeout", cli::value(&c.round_timeout_s), "seconds a round waits for deltas")(
      "backend", cli::value(&c.backend),
      "sites' backend: remote (encrypted on the workers), encrypted (in process) or float")(
      "log-level", cli::value(&c.log_level),
      "log level of the sites and workers (threads); with --processes every party's log file "
      "in RUN/logs gets at least info, the console the coordinator's warnings")(
      "baseline", cli::value(&c.baseline),
      "none, or local: after the federation, train each site alone (same steps, DP and epsilon, "
      "in float) and compare the adapters on the pooled held-out notes (RUN/baseline.json)");
  po::options_description hidden;  // not in --help
  hidden.add_options()("progress-every-s", po::value(&c.progress_every_s),
                       "seconds between plain progress lines");
  cli::Spec spec{&options};
  spec.hidden = &hidden;
  spec.ranges = cli::round_plan_ranges();
  for (cli::Range r :
       {cli::at_least("rounds", 1), cli::at_least("sites", 1), cli::at_least("workers", 1),
        cli::within("pretrain-steps", 1, 1000000), cli::at_least("hidden", 1),
        cli::at_least("layers", 1), cli::at_least("heads", 1), cli::at_least("kv-heads", 1),
        cli::at_least("intermediate", 1), cli::at_least("vocab", 1), cli::at_least("records", 1),
        cli::within("heldout-fraction", 0, 1, false, true), cli::at_least("seq-len", 2),
        cli::at_least("lora-rank", 1), cli::above("lora-alpha", 0), cli::above("epsilon-max", 0),
        cli::at_least("round-timeout", 1), cli::above("progress-every-s", 0)}) {
    spec.ranges.push_back(std::move(r));
  }
  const cli::Parsed parsed = cli::parse(argc, argv, spec, std::cerr);
  if (parsed.help) {
    cli::print_help(out, options);
    return false;
  }
  cli::check_log_level(c.log_level);
  if (c.min_participants > c.sites) {
    c.min_participants = c.sites;
  }
  if (c.participant_dp && !(c.participant_clip > 0 && c.participant_sigma > 0)) {
    throw std::invalid_argument(
        "--participant-dp needs --participant-clip > 0 and --participant-sigma > 0");
  }
  if (c.backend != "remote" && c.backend != "encrypted" && c.backend != "float") {
    throw std::invalid_argument("--backend must be remote, encrypted or float (got '" + c.backend +
                                "')");
  }
  if (c.baseline != "none" && c.baseline != "local") {
    throw std::invalid_argument("--baseline must be none or local (got '" + c.baseline + "')");
  }
  if (c.base != "pretrained" && c.base != "random") {
    throw std::invalid_argument("--base must be pretrained or random (got '" + c.base + "')");
  }
  if (c.strategy != "fedavg" && c.strategy != "fedadam" && c.strategy != "fedyogi" &&
      c.strategy != "fedadagrad") {
    throw std::invalid_argument("--strategy must be fedavg, fedadam, fedyogi or fedadagrad (got '" +
                                c.strategy + "')");
  }
  (void)model::parse_lora_targets(c.targets);  // throws a one-line message for a bad name
  if (model_dir.empty() && (c.kv_heads > c.heads || c.heads % c.kv_heads != 0)) {
    throw std::invalid_argument("--kv-heads must divide --heads (got " +
                                std::to_string(c.kv_heads) + " and " + std::to_string(c.heads) +
                                ")");
  }
  if (model_dir.empty() && c.hidden % c.heads != 0) {
    throw std::invalid_argument("--hidden must be a multiple of --heads (got " +
                                std::to_string(c.hidden) + " and " + std::to_string(c.heads) + ")");
  }
  c.data_dir = data_dir;
  c.model_dir = model_dir;
  if (!run_dir.empty()) {
    c.run_dir = run_dir;
  } else {
    const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "runs/fedsim-%Y%m%d-%H%M%S", &tm);
    c.run_dir = buf;
  }
  c.base_cache = base_cache.empty() ? c.run_dir.parent_path() / ".base-models"
                                    : std::filesystem::path(base_cache);
  return true;
}

}  // namespace fedsim
