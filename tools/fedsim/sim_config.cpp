#include "sim_config.h"

#include <boost/program_options.hpp>

#include <chrono>
#include <ctime>
#include <fstream>
#include <stdexcept>

#include "protocol/option_error.h"

namespace fedsim {
namespace po = boost::program_options;

bool parse_sim_config(int argc, const char* const* argv, std::ostream& out, SimConfig& c) {
  std::string config_file, run_dir, data_dir, model_dir, base_cache;
  po::options_description options(
      "fedsim: a whole federation on one machine: a coordinator, S participant sites and W "
      "fhe_workers, training a LoRA adapter with DP-SGD while every frozen projection runs "
      "encrypted on the workers.\n\nUsage: fedsim [--config FILE] [--rounds R] [--sites S] "
      "[--workers W] [--run-dir DIR] [--seed N] [--processes] [options]\n\nOptions");
  options.add_options()("help,h", "this text")("config", po::value(&config_file),
                                               "INI file with any of these options (flags win)")(
      "rounds", po::value(&c.rounds)->default_value(c.rounds), "federated rounds")(
      "sites", po::value(&c.sites)->default_value(c.sites), "participant sites")(
      "workers", po::value(&c.workers)->default_value(c.workers), "fhe_workers")(
      "run-dir", po::value(&run_dir),
      "where everything goes (default runs/fedsim-DATE-TIME); an existing run resumes")(
      "seed", po::value(&c.seed)->default_value(c.seed),
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
      "base", po::value(&c.base)->default_value(c.base),
      "the generated base model: pretrained (on a generated general-text corpus, made once and "
      "cached) or random")("pretrain-steps",
                           po::value(&c.pretrain_steps)->default_value(c.pretrain_steps),
                           "optimizer steps of the pretrained base model")(
      "base-cache", po::value(&base_cache),
      "where pretrained base models are kept, one per recipe (default: .base-models next to "
      "the run directory)")("hidden", po::value(&c.hidden)->default_value(c.hidden),
                            "model hidden size")(
      "layers", po::value(&c.layers)->default_value(c.layers), "model layers")(
      "heads", po::value(&c.heads)->default_value(c.heads), "attention heads")(
      "kv-heads", po::value(&c.kv_heads)->default_value(c.kv_heads), "key/value heads")(
      "intermediate", po::value(&c.intermediate)->default_value(c.intermediate),
      "MLP intermediate size")("vocab", po::value(&c.vocab)->default_value(c.vocab),
                               "vocabulary (byte tokenizer)")(
      "records", po::value(&c.records)->default_value(c.records),
      "synthetic notes per site (held-out ones included)")(
      "heldout-fraction", po::value(&c.heldout_fraction)->default_value(c.heldout_fraction, "0.1"),
      "share of each site's notes held out")(
      "seq-len", po::value(&c.seq_len)->default_value(c.seq_len), "tokens per example")(
      "lora-rank", po::value(&c.lora_rank)->default_value(c.lora_rank), "LoRA rank")(
      "lora-alpha", po::value(&c.lora_alpha)->default_value(c.lora_alpha), "LoRA alpha")(
      "targets", po::value(&c.targets)->default_value(c.targets), "adapted projections")(
      "local-steps", po::value(&c.local_steps)->default_value(c.local_steps),
      "DP-SGD steps per site and round")("lr", po::value(&c.lr)->default_value(c.lr, "0.01"),
                                         "sites' AdamW learning rate")(
      "batch-size", po::value(&c.batch_size)->default_value(c.batch_size),
      "examples per micro-batch")("sample-rate",
                                  po::value(&c.sample_rate)->default_value(c.sample_rate, "0.04"),
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
      "participant-level DP: noise multiplier sigma_u")(
      "strategy", po::value(&c.strategy)->default_value(c.strategy),
      "fedavg, fedadam, fedyogi or fedadagrad")(
      "server-lr", po::value(&c.server_lr)->default_value(c.server_lr, "1"),
      "server learning rate (FedOpt)")("fraction",
                                       po::value(&c.fraction)->default_value(c.fraction, "1"),
                                       "share of the sites selected each round")(
      "min-participants", po::value(&c.min_participants)->default_value(c.min_participants),
      "deltas a round needs")("round-timeout",
                              po::value(&c.round_timeout_s)->default_value(c.round_timeout_s),
                              "seconds a round waits for deltas")(
      "backend", po::value(&c.backend)->default_value(c.backend),
      "sites' backend: remote (encrypted on the workers), encrypted (in process) or float")(
      "log-level", po::value(&c.log_level)->default_value(c.log_level),
      "log level of the sites and workers (threads); with --processes every party's log file "
      "in RUN/logs gets at least info, the console the coordinator's warnings")(
      "baseline", po::value(&c.baseline)->default_value(c.baseline),
      "none, or local: after the federation, train each site alone (same steps, DP and epsilon, "
      "in float) and compare the adapters on the pooled held-out notes (RUN/baseline.json)");
  po::options_description hidden;  // not in --help
  hidden.add_options()("progress-every-s", po::value(&c.progress_every_s),
                       "seconds between plain progress lines");
  po::options_description all;
  all.add(options).add(hidden);
  po::variables_map vm;
  // Boost's own what() can loop forever on a name or value holding a %placeholder%.
  try {
    po::store(po::parse_command_line(argc, argv, all), vm);
    if (vm.count("help")) {
      out << options << "\n";
      return false;
    }
    if (vm.count("config")) {
      const std::string file = vm["config"].as<std::string>();
      std::ifstream in(file);
      if (!in) throw std::invalid_argument(file + ": cannot read the config file");
      po::store(po::parse_config_file(in, all), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw std::invalid_argument(protocol::option_error_message(e));
  }
  if (c.rounds < 1 || c.sites < 1 || c.workers < 1) {
    throw std::invalid_argument("--rounds, --sites and --workers must be at least 1");
  }
  if (c.min_participants > c.sites) {
    c.min_participants = c.sites;
  }
  if (c.participant_dp && !(c.participant_clip > 0 && c.participant_sigma > 0)) {
    throw std::invalid_argument(
        "--participant-dp needs --participant-clip > 0 and --participant-sigma > 0");
  }
  if (c.backend != "remote" && c.backend != "encrypted" && c.backend != "float") {
    throw std::invalid_argument("--backend must be remote, encrypted or float");
  }
  if (c.baseline != "none" && c.baseline != "local") {
    throw std::invalid_argument("--baseline must be none or local");
  }
  if (c.base != "pretrained" && c.base != "random") {
    throw std::invalid_argument("--base must be pretrained or random");
  }
  if (c.pretrain_steps < 1 || c.pretrain_steps > 1000000) {
    throw std::invalid_argument("--pretrain-steps must lie in [1, 1000000]");
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
