// Start-up kits of a federation (`fedctl provision`): from a small description, one directory per
// party with its own CurveZMQ key pair, the public keys it must know, the roster or allow-list it
// checks, a config file for its executable's --config whose paths are relative to the kit, and a
// README saying how to start it.
//
//   OUT/federation.ini         the description (kept for --add-site)
//   OUT/coordinator/           coordinator.key/.pub, roster.txt, coordinator.ini, initial-adapter/
//   OUT/sites/NAME/            NAME.key/.pub, coordinator.pub, participant.ini, data/
//   OUT/workers/NAME/          NAME.key/.pub, coordinator.pub, allowed/SITE.pub, worker.ini
//
// The description is INI (as the executables' config files):
//
//   federation  = demo                              # required: a name (1..64 of [A-Za-z0-9._-])
//   coordinator = tcp://coord.example.org:5560      # required: the coordinator's endpoint
//   site   = st-mary                                # one line per site: NAME [DATA [EVAL]]
//   site   = st-john /data/st-john.jsonl
//   worker = gpu-a tcp://gpu-a.example.org:5555     # one line per worker: NAME ENDPOINT
//   model  = /srv/models/base                       # the base model dir on every machine
//   lora-rank = 8                                   # the adapter (initial adapter and sites)
//   lora-alpha = 16
//   targets = q,v
//   [coordinator]                                   # optional: keys copied into coordinator.ini
//   rounds = 20
//   [site]                                          # ... into every participant.ini
//   [worker]                                        # ... into every worker.ini
//
// Paths in the description (model, DATA, EVAL, values of the sections) are written as they are:
// absolute, or relative to each kit's directory (where the executables resolve them). A site's
// data defaults to data/train.jsonl in its kit. Functions throw std::invalid_argument with a
// one-line message (the description's line at fault) for bad input, before anything is written,
// and base::IoError or std::runtime_error when writing fails; a failed provision leaves no OUT.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace tools {

struct ProvisionSite {
  std::string name, data, eval;  // data empty: data/train.jsonl of the kit
};

struct ProvisionWorker {
  std::string name, endpoint;
};

struct FederationDescription {
  std::string federation, coordinator, model = "model", targets = "q,v";
  int lora_rank = 8;
  double lora_alpha = 16;
  std::vector<ProvisionSite> sites;
  std::vector<ProvisionWorker> workers;
  // Extra keys of each party's config file: section ("coordinator", "site", "worker") -> key ->
  // value, in the description's order of keys.
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> sections;
};

// Parses and checks description text (`source` names it in messages): required keys, names
// unique and valid, endpoints tcp://HOST:PORT, unknown keys and sections refused.
FederationDescription parse_description(const std::string& text, const std::string& source);

struct ProvisionOptions {
  // A base model directory readable here: written (absolute) into every kit instead of the
  // description's model, and used to write the coordinator's initial adapter. Empty: the
  // description's model; the initial adapter is written when that directory is readable here.
  std::filesystem::path model;
};

// Writes every kit under `out` (which must not exist, or be an empty directory). Returns lines
// for the user (what was written).
std::vector<std::string> provision(const std::string& description_text, const std::string& source,
                                   const std::filesystem::path& out,
                                   const ProvisionOptions& options);

// Adds a site to the kits under `kits` (a provision's OUT): writes OUT/sites/NAME, adds its
// public key to OUT/workers/*/allowed/ and a line to OUT/coordinator/roster.txt, each replaced
// atomically, and records it in OUT/federation.ini. `data` as a description's DATA.
std::vector<std::string> add_site(const std::filesystem::path& kits, const std::string& name,
                                  const std::string& data, const std::string& eval);

}  // namespace tools
