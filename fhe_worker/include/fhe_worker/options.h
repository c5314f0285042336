// The fhe_worker command line, also readable from an INI file (--config FILE: the same keys
// without the leading dashes, e.g. `model = /models/tiny`; the command line wins over the file).
//
//   --model DIR          the Hugging Face model directory (config.json + *.safetensors)
//   --model-id ID        the id clients ask for (default: the directory's name)
//   --layers A-B         serve only decoder layers A..B (a layer-sharded pool); default all
//   --lm-head BOOL       serve the LM head (default: true without --layers, false with it)
//   --packed-weights     keep oneDNN-packed weight copies (faster, up to 3x the int8 memory)
//   --bind ENDPOINT      tcp://*:PORT; tcp://127.0.0.1:0 or :* picks a free port
//   --device D           auto | cpu | cuda[:N]
//   --threads N          threads per product (0: all cores)
//   --compute-threads N  requests computed at once (default 1)
//   --key FILE           the worker's CURVE key (PREFIX.key of `fedctl keygen --out PREFIX`)
//   --allow-dir DIR      directory of the allowed clients' .pub files
//   --insecure           no CURVE; refused unless --bind is a loopback endpoint
//   --max-queue N        queued requests before `overloaded` replies
//   --max-input-values N   per request: input rows x token slots (default 2^26)
//   --max-output-values N  per request: output rows x token slots x 2 planes (default 2^27)
//   --max-queued-bytes N   estimated bytes of queued + in-flight requests (default 4 GiB)
//   --id NAME            sender id in heartbeats (default: worker-<bound endpoint>, unsafe
//   characters as -)
//   --log-level L        trace | debug | info | warn | error
//   --port-file FILE     written with the bound endpoint once listening
//   --coordinator EP     register with this coordinator (and heartbeat) so that it lists this
//                        worker in its round invitations; off when not given
//   --coordinator-key F  the coordinator's public key (.pub), for CURVE
//   --advertise EP       the endpoint participants should connect to (default: the bound one,
//                        with a wildcard host replaced by this machine's host name)
#pragma once

#include <string>

#include "fhe_worker/device.h"
#include "fhe_worker/worker.h"
#include "fhe_worker/worker_model.h"

namespace fhe_worker {

struct WorkerOptions {
  std::string model_dir;
  std::string config_file;
  std::string log_level = "info";
  std::string port_file;
  std::string coordinator;      // empty: do not register
  std::string coordinator_key;  // .pub file
  std::string advertise;        // empty: derived from the bound endpoint
  WorkerModelOptions model;
  WorkerConfig worker;
};

struct CommandLine {
  bool help = false;
  std::string help_text;  // filled when help is asked for
  WorkerOptions options;
};

// Parses argv (and the --config file). Throws fhe_worker::WorkerError with one readable line for
// unknown, missing or invalid options.
CommandLine parse_command_line(int argc, const char* const* argv);

// Writes `endpoint` and a newline to `path` atomically (base::write_file_atomic: a temporary file
// renamed into place), so a reader never sees a partial line. Throws fhe_worker::WorkerError.
void write_port_file(const std::string& path, const std::string& endpoint);

}  // namespace fhe_worker
