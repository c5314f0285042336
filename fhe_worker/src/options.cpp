// Command line and INI parsing of the fhe_worker executable.
#include "fhe_worker/options.h"

#include <spdlog/common.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <sstream>

#include "base/atomic_file.h"
#include "base/error.h"
#include "fhe_worker/error.h"
#include "protocol/cli.h"

namespace fhe_worker {

namespace po = boost::program_options;
namespace cli = protocol::cli;

CommandLine parse_command_line(int argc, const char* const* argv) {
  CommandLine cl;
  WorkerOptions& o = cl.options;
  std::string device = "auto";
  int threads = 0;
  unsigned compute_threads = 1;
  size_t max_queue = 64;
  const WorkerConfig defaults;
  uint64_t max_input_values = defaults.max_input_values;
  uint64_t max_output_values = defaults.max_output_values;
  uint64_t max_queued_bytes = defaults.max_queued_bytes;
  std::string layers;
  bool lm_head = false;
  po::options_description file_options("fhe_worker options (also as INI keys in --config)");
  file_options.add_options()("model", po::value(&o.model_dir), "model directory (required)")(
      "model-id", po::value(&o.model.model_id), "model id (default: the directory's name)")(
      "layers", po::value(&layers),
      "serve only these decoder layers: A-B (0-based, both included) or one layer; the pool "
      "of a participant must cover every layer (default: all)")(
      "packed-weights", po::bool_switch(&o.model.packed_weights),
      "keep oneDNN-packed copies of the weights: faster CPU products, up to 3x the memory of "
      "the int8 weights (default: one int8 copy read in place)")(
      "lm-head", po::value(&lm_head),
      "serve the LM head: true | false (default: true without --layers, false with it)")(
      "bind", po::value(&o.worker.bind)->default_value("tcp://*:5555"),
      "address to listen on: tcp://*:PORT; port 0 or * picks a free port")(
      "device", po::value(&device)->default_value("auto"), "auto | cpu | cuda[:N]")(
      "threads", po::value(&threads)->default_value(0), "threads per product (0: all cores)")(
      "compute-threads", po::value(&compute_threads)->default_value(1),
      "requests computed at once")("key", po::value(&o.worker.secret_key_file),
                                   "this worker's CURVE secret key file (PREFIX.key of fedctl "
                                   "keygen)")("allow-dir", po::value(&o.worker.allow_dir),
                                              "directory of allowed client .pub files")(
      "insecure", po::bool_switch(&o.worker.insecure), "no CURVE (loopback endpoints only)")(
      "max-queue", po::value(&max_queue)->default_value(64),
      "queued requests before overloaded replies")(
      "max-input-values", po::value(&max_input_values)->default_value(max_input_values),
      "per request: rows x token slots of the input (slots = tokens rounded up to the ring "
      "degree); larger requests get a too-large error")(
      "max-output-values", po::value(&max_output_values)->default_value(max_output_values),
      "per request: output rows x token slots x 2 planes, over its projections (8 bytes each in "
      "memory); larger requests get a too-large error")(
      "max-queued-bytes", po::value(&max_queued_bytes)->default_value(max_queued_bytes),
      "estimated bytes of all queued and in-flight requests; past it, overloaded replies")(
      "id", po::value(&o.worker.sender_id), "heartbeat sender id")(
      "log-level", cli::value(&o.log_level), cli::log_level_help().c_str())(
      "port-file", po::value(&o.port_file), "write the bound endpoint to FILE once listening")(
      "coordinator", po::value(&o.coordinator),
      "register with this coordinator endpoint so that its rounds list this worker")(
      "coordinator-key", po::value(&o.coordinator_key),
      "the coordinator's public key file (.pub), for CURVE")(
      "advertise", po::value(&o.advertise),
      "endpoint announced to participants (default: the bound one; a wildcard host becomes "
      "this machine's host name)");
  po::options_description all("usage: fhe_worker --model DIR [options]");
  all.add_options()("help,h", "show this help")("config", po::value(&o.config_file),
                                                "INI file with the options below");
  all.add(file_options);
  cli::Spec spec{&all};
  spec.file = &file_options;
  spec.path_keys = {"model", "key", "allow-dir", "port-file", "coordinator-key"};
  spec.ranges = {cli::at_least("threads", 0),           cli::within("compute-threads", 1, 256),
                 cli::at_least("max-queue", 1),         cli::at_least("max-input-values", 1),
                 cli::at_least("max-output-values", 1), cli::at_least("max-queued-bytes", 1)};
  try {
    const cli::Parsed parsed = cli::parse(argc, argv, spec, std::cerr);
    if (parsed.help) {
      std::ostringstream text;
      cli::print_help(text, all);
      cl.help = true;
      cl.help_text = text.str();
      return cl;
    }
    if (parsed.vm.count("lm-head")) o.model.lm_head = lm_head;
    cli::check_log_level(o.log_level);
  } catch (const std::invalid_argument& e) {
    throw WorkerError(e.what());
  }
  if (o.model_dir.empty()) throw WorkerError("--model is required");
  if (!layers.empty()) o.model.layers = parse_layer_range(layers);
  o.model.device = parse_device(device);
  if (threads < 0) throw WorkerError("--threads must be 0 or positive");
  o.model.threads = threads;
  if (compute_threads == 0 || compute_threads > 256)
    throw WorkerError("--compute-threads must be 1..256");
  o.worker.compute_threads = compute_threads;
  if (max_queue == 0) throw WorkerError("--max-queue must be at least 1");
  o.worker.max_queue = max_queue;
  if (max_input_values == 0 || max_output_values == 0 || max_queued_bytes == 0) {
    throw WorkerError(
        "--max-input-values, --max-output-values and --max-queued-bytes must be positive");
  }
  o.worker.max_input_values = max_input_values;
  o.worker.max_output_values = max_output_values;
  o.worker.max_queued_bytes = max_queued_bytes;
  if (!o.worker.insecure && (o.worker.secret_key_file.empty() || o.worker.allow_dir.empty())) {
    throw WorkerError(
        "CURVE needs --key and --allow-dir (formerly --secret-key and --allow), or --insecure on "
        "a loopback endpoint");
  }
  if (!o.coordinator.empty() && !o.worker.insecure && o.coordinator_key.empty()) {
    throw WorkerError("--coordinator under CURVE needs --coordinator-key (the coordinator's .pub)");
  }
  return cl;
}

void write_port_file(const std::string& path, const std::string& endpoint) {
  try {
    base::write_file_atomic(path, endpoint + "\n");
  } catch (const base::IoError& e) {
    throw WorkerError(std::string("cannot write port file: ") + e.what());
  }
}

}  // namespace fhe_worker
