#include "provision.h"

#include <unistd.h>

#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>

#include "base/atomic_file.h"
#include "model/llama_config.h"
#include "model/lora_config.h"
#include "model/lora_params.h"
#include "model/lora_peft.h"
#include "model/peft_adapter.h"
#include "model/trainer.h"
#include "protocol/endpoint.h"
#include "protocol/keys.h"

namespace tools {
namespace {

namespace fs = std::filesystem;

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

std::vector<std::string> fields(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string f; in >> f;) out.push_back(f);
  return out;
}

bool is_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (const char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return s != "." && s != "..";
}

// tcp://HOST:PORT with a non-empty host and a port in 1..65535.
bool is_endpoint(const std::string& e) {
  if (!e.starts_with("tcp://")) return false;
  const std::string rest = e.substr(6);
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size()) return false;
  for (size_t i = 0; i < colon; ++i) {
    const char c = rest[i];
    if (static_cast<unsigned char>(c) <= 0x20 || c == '/' || c == '*') return false;
  }
  const std::string port = rest.substr(colon + 1);
  if (port.size() > 5) return false;
  for (const char c : port) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  const long p = std::stol(port);
  return p >= 1 && p <= 65535;
}

std::string num(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

std::string port_of(const std::string& endpoint) {
  return endpoint.substr(endpoint.rfind(':') + 1);
}

// Keys each section may not set: provision writes them (identities, keys, transport).
const std::map<std::string, std::set<std::string>> kReservedKeys = {
    {"coordinator", {"bind", "endpoint", "key", "roster", "allow-dir", "insecure", "config"}},
    {"site", {"site-id", "coordinator", "coordinator-key", "key", "insecure", "config"}},
    {"worker",
     {"id", "key", "secret-key", "allow-dir", "allow", "coordinator", "coordinator-key",
      "advertise", "insecure", "config"}},
};

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw std::invalid_argument(where + ": " + what);
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::invalid_argument("cannot read " + p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The description as text again (OUT/federation.ini), with `model` as written into the kits.
std::string description_text(const FederationDescription& d) {
  std::ostringstream o;
  o << "# The description these kits were made from (fedctl provision); `fedctl provision\n"
       "# --add-site NAME --kits DIR` adds sites to it. Paths are relative to each kit.\n"
    << "federation = " << d.federation << "\ncoordinator = " << d.coordinator
    << "\nmodel = " << d.model << "\nlora-rank = " << d.lora_rank
    << "\nlora-alpha = " << num(d.lora_alpha) << "\ntargets = " << d.targets << "\n";
  for (const auto& w : d.workers) o << "worker = " << w.name << " " << w.endpoint << "\n";
  for (const auto& s : d.sites) {
    o << "site = " << s.name;
    if (!s.data.empty()) o << " " << s.data;
    if (!s.eval.empty()) o << " " << s.eval;
    o << "\n";
  }
  for (const auto& [section, keys] : d.sections) {
    o << "[" << section << "]\n";
    for (const auto& [k, v] : keys) o << k << " = " << v << "\n";
  }
  return o.str();
}

// An INI file: `ours` first, each overridden by a key of the description's section.
std::string ini_text(const std::string& header,
                     std::vector<std::pair<std::string, std::string>> ours,
                     const std::vector<std::pair<std::string, std::string>>& extra) {
  for (const auto& [k, v] : extra) {
    bool replaced = false;
    for (auto& [ok, ov] : ours) {
      if (ok == k) ov = v, replaced = true;
    }
    if (!replaced) ours.emplace_back(k, v);
  }
  std::string out = header;
  for (const auto& [k, v] : ours) out += k + " = " + v + "\n";
  return out;
}

const std::vector<std::pair<std::string, std::string>>& section(const FederationDescription& d,
                                                                const std::string& name) {
  static const std::vector<std::pair<std::string, std::string>> kNone;
  const auto it = d.sections.find(name);
  return it == d.sections.end() ? kNone : it->second;
}

std::string make_keys(const fs::path& prefix) {
  auto pair = protocol::KeyPair::generate();
  if (!pair) throw std::runtime_error(pair.error().message);
  const auto s = protocol::write_key_pair(pair.value(), prefix.string(), false);
  if (!s) throw std::runtime_error(s.error().message);
  return pair.value().public_key.z85();
}

void copy_public(const fs::path& from, const fs::path& to) {
  base::write_file_atomic(to, read_text(from));
}

const char* kConfigNote =
    "# Relative paths in this file are relative to this file's directory (the kit).\n";

void write_site_kit(const FederationDescription& d, const ProvisionSite& s, const fs::path& kit,
                    const fs::path& coordinator_pub) {
  fs::create_directories(s.data.empty() ? kit / "data" : kit);
  make_keys(kit / s.name);
  copy_public(coordinator_pub, kit / "coordinator.pub");
  std::vector<std::pair<std::string, std::string>> ours = {
      {"site-id", s.name},
      {"coordinator", d.coordinator},
      {"coordinator-key", "coordinator.pub"},
      {"key", s.name + ".key"},
      {"model", d.model},
      {"data", s.data.empty() ? "data/train.jsonl" : s.data},
  };
  if (!s.eval.empty()) ours.emplace_back("eval", s.eval);
  ours.insert(ours.end(), {{"state-dir", "state"},
                           {"lora-rank", std::to_string(d.lora_rank)},
                           {"lora-alpha", num(d.lora_alpha)},
                           {"targets", d.targets}});
  base::write_file_atomic(kit / "participant.ini",
                          ini_text("# Site '" + s.name + "' of federation '" + d.federation +
                                       "' (fedctl provision).\n" + kConfigNote,
                                   ours, section(d, "site")));
  std::ostringstream r;
  r << "# Site kit: " << s.name << " (federation " << d.federation << ")\n\n"
    << "Start this site (the `participant` executable is in the build's bin directory, next to\n"
    << "`fedctl`):\n\n"
    << "```bash\nparticipant --config participant.ini    # in this directory\n```\n\n"
    << "From elsewhere give the file's path: `participant --config PATH/participant.ini` (the "
    << "paths in it are relative to it).\n\n"
    << "- `" << s.name << ".key`: this site's secret key (mode 0600); never copy it elsewhere.\n"
    << "- `" << s.name << ".pub`: its public key, already in the coordinator's roster and the "
    << "workers' allow-lists.\n"
    << "- `coordinator.pub`: the coordinator's public key.\n"
    << "- `participant.ini`: the configuration; the records to train on are `"
    << (s.data.empty() ? "data/train.jsonl" : s.data)
    << "` (JSON lines with a \"text\" field), the base model `" << d.model
    << "` (the one the workers serve).\n"
    << "- `state/` (made on first start): the privacy budget, RLWE key and DP seed; keep it.\n";
  base::write_file_atomic(kit / "README.md", r.str());
}

void write_worker_kit(const FederationDescription& d, const ProvisionWorker& w, const fs::path& kit,
                      const fs::path& coordinator_pub, const fs::path& sites_dir) {
  fs::create_directories(kit / "allowed");
  make_keys(kit / w.name);
  copy_public(coordinator_pub, kit / "coordinator.pub");
  for (const auto& s : d.sites) {
    copy_public(sites_dir / s.name / (s.name + ".pub"), kit / "allowed" / (s.name + ".pub"));
  }
  const std::string bind =
      protocol::is_loopback_endpoint(w.endpoint) ? w.endpoint : "tcp://*:" + port_of(w.endpoint);
  base::write_file_atomic(kit / "worker.ini",
                          ini_text("# Worker '" + w.name + "' of federation '" + d.federation +
                                       "' (fedctl provision).\n" + kConfigNote,
                                   {{"id", w.name},
                                    {"model", d.model},
                                    {"bind", bind},
                                    {"advertise", w.endpoint},
                                    {"key", w.name + ".key"},
                                    {"allow-dir", "allowed"},
                                    {"coordinator", d.coordinator},
                                    {"coordinator-key", "coordinator.pub"}},
                                   section(d, "worker")));
  std::ostringstream r;
  r << "# Worker kit: " << w.name << " (federation " << d.federation << ")\n\n"
    << "Start this worker (the `fhe_worker` executable is in the build's bin directory), for\n"
    << "example:\n\n"
    << "```bash\nfhe_worker --config worker.ini    # in this directory (or "
       "PATH/worker.ini)\n```\n\n"
    << "It serves the base model `" << d.model << "` on " << w.endpoint
    << " and registers with the coordinator at " << d.coordinator << ".\n\n"
    << "- `" << w.name << ".key`: this worker's secret key (mode 0600).\n"
    << "- `allowed/`: the sites' public keys it accepts. `kill -HUP` the worker after a change "
    << "(`fedctl provision --add-site` adds a file here): it reloads the directory and logs the "
    << "keys added and removed, without a restart.\n"
    << "- `coordinator.pub`: the coordinator's public key.\n";
  base::write_file_atomic(kit / "README.md", r.str());
}

std::string roster_text(const FederationDescription& d, const fs::path& out) {
  std::ostringstream o;
  o << "# Roster of federation '" << d.federation
    << "' (fedctl provision): each key speaks only as its id.\n";
  for (const auto& s : d.sites) {
    o << "site " << s.name << " "
      << protocol::load_public_key((out / "sites" / s.name / (s.name + ".pub")).string())
             .value()
             .z85()
      << "\n";
  }
  for (const auto& w : d.workers) {
    o << "worker " << w.name << " "
      << protocol::load_public_key((out / "workers" / w.name / (w.name + ".pub")).string())
             .value()
             .z85()
      << " " << w.endpoint << "\n";
  }
  return o.str();
}

// The initial global adapter (fresh LoRA: B = 0) when `model_dir` is a readable model.
bool write_initial_adapter(const FederationDescription& d, const fs::path& model_dir,
                           const fs::path& dir) {
  if (model_dir.empty() || !fs::exists(model_dir / "config.json")) return false;
  const model::LlamaConfig config = model::load_llama_config(model_dir);
  model::LoraConfig lora;
  lora.rank = d.lora_rank;
  lora.alpha = d.lora_alpha;
  lora.targets = model::parse_lora_targets(d.targets);
  std::mt19937_64 rng(model::lora_init_seed(1));  // LoRA init: training RNG, not a secret
  const model::LoraParams params = model::init_lora_params(config, lora, rng);
  model::write_peft_adapter(dir,
                            model::lora_to_peft(params, config, model_dir.filename().string()));
  return true;
}

void write_coordinator_kit(const FederationDescription& d, const fs::path& out,
                           const fs::path& model_here) {
  const fs::path kit = out / "coordinator";
  base::write_file_atomic(kit / "roster.txt", roster_text(d, out));
  const std::string bind = protocol::is_loopback_endpoint(d.coordinator)
                               ? d.coordinator
                               : "tcp://0.0.0.0:" + port_of(d.coordinator);
  base::write_file_atomic(kit / "coordinator.ini",
                          ini_text("# Coordinator of federation '" + d.federation +
                                       "' (fedctl provision).\n" + kConfigNote,
                                   {{"bind", bind},
                                    {"key", "coordinator.key"},
                                    {"roster", "roster.txt"},
                                    {"run-dir", "run"},
                                    {"initial-adapter", "initial-adapter"}},
                                   section(d, "coordinator")));
  const bool adapter = write_initial_adapter(d, model_here, kit / "initial-adapter");
  std::ostringstream r;
  r << "# Coordinator kit (federation " << d.federation << ")\n\n"
    << "Start the coordinator (the `coordinator` executable is in the build's bin directory):\n\n"
    << "```bash\ncoordinator --config coordinator.ini    # in this directory (or "
       "PATH/coordinator.ini)\n```\n\n"
    << "It listens on " << d.coordinator << ", writes the run (events.jsonl, checkpoints, the "
    << "final adapter in `run/adapter/`) under `run/`, and admits only the keys of "
    << "`roster.txt`. Start it first, then the workers, then the sites.\n\n";
  if (!adapter) {
    r << "First make the initial adapter (any LoRA adapter of the base model with the "
      << "federation's rank " << d.lora_rank << ", alpha " << d.lora_alpha << " and targets "
      << d.targets << "), e.g.\n\n```bash\nfedctl train --model " << d.model
      << " --data public.jsonl --steps 1 --lr 0 --lora-rank " << d.lora_rank << " --lora-alpha "
      << d.lora_alpha << " --targets " << d.targets
      << " --out initial-adapter    # in this directory\n```\n\n";
  }
  r << "- `coordinator.key`: its secret key (mode 0600); `coordinator.pub` is in every other "
       "kit.\n"
    << "- `roster.txt`: every site's and worker's key and id (and a worker's endpoint). "
       "Reloaded when it changes and on `kill -HUP`; `fedctl provision --add-site` adds lines.\n"
    << "- `initial-adapter/`: the global adapter of round 0.\n";
  base::write_file_atomic(kit / "README.md", r.str());
}

// A fresh directory next to `target` for writing before the rename into place.
fs::path staging_dir(const fs::path& target) {
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  fs::create_directories(parent);
  for (int i = 0;; ++i) {
    std::string name = ".";
    name += target.filename().string();
    name += ".provision-";
    name += std::to_string(::getpid());
    name += "-";
    name += std::to_string(i);
    fs::path p = parent / name;
    if (fs::create_directory(p)) return p;
  }
}

// Removes `dir` unless dismissed (after the rename).
struct Cleanup {
  fs::path dir;
  ~Cleanup() {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
};

}  // namespace

FederationDescription parse_description(const std::string& text, const std::string& source) {
  FederationDescription d;
  std::istringstream in(text);
  std::string line, current;  // current: the section ("" before any)
  std::set<std::string> seen_keys, names, endpoints;
  std::map<std::string, std::set<std::string>> section_keys;
  for (int n = 1; std::getline(in, line); ++n) {
    const std::string where = source + ":" + std::to_string(n);
    const auto hash = line.find('#');
    line = trim(hash == std::string::npos ? line : line.substr(0, hash));
    if (line.empty()) continue;
    if (line.front() == '[') {
      if (line.back() != ']') bad(where, "a section line is [coordinator], [site] or [worker]");
      current = trim(line.substr(1, line.size() - 2));
      if (!kReservedKeys.count(current)) {
        bad(where, "unknown section [" + current + "] (known: coordinator, site, worker)");
      }
      d.sections[current];
      continue;
    }
    const auto eq = line.find('=');
    if (eq == std::string::npos) bad(where, "expected `key = value`, got '" + line + "'");
    const std::string key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    if (key.empty()) bad(where, "a key is missing before '='");
    if (value.empty()) bad(where, "'" + key + "' has no value");
    if (!current.empty()) {
      if (kReservedKeys.at(current).count(key)) {
        bad(where, "'" + key + "' of [" + current + "] is written by fedctl provision");
      }
      if (!section_keys[current].insert(key).second) {
        bad(where, "'" + key + "' is given twice in [" + current + "]");
      }
      d.sections[current].emplace_back(key, value);
      continue;
    }
    if (key == "site" || key == "worker") {
      const auto f = fields(value);
      const std::string& name = f[0];
      if (!is_name(name)) {
        bad(where, "the " + key + " name '" + name + "' must be 1 to 64 of [A-Za-z0-9._-]");
      }
      if (!names.insert(name).second) bad(where, "the name '" + name + "' is used twice");
      if (key == "site") {
        if (f.size() > 3) bad(where, "expected `site = NAME [DATA [EVAL]]`");
        d.sites.push_back({name, f.size() > 1 ? f[1] : "", f.size() > 2 ? f[2] : ""});
      } else {
        if (f.size() != 2) bad(where, "expected `worker = NAME tcp://HOST:PORT`");
        if (!is_endpoint(f[1])) {
          bad(where, "worker '" + name + "': bad endpoint '" + f[1] +
                         "' (expected tcp://HOST:PORT, port 1 to 65535)");
        }
        if (!endpoints.insert(f[1]).second) {
          bad(where, "the endpoint " + f[1] + " is used twice");
        }
        d.workers.push_back({name, f[1]});
      }
      continue;
    }
    if (!seen_keys.insert(key).second) bad(where, "'" + key + "' is given twice");
    if (key == "federation") {
      if (!is_name(value)) bad(where, "the federation name must be 1 to 64 of [A-Za-z0-9._-]");
      d.federation = value;
    } else if (key == "coordinator") {
      if (!is_endpoint(value)) {
        bad(where,
            "bad coordinator endpoint '" + value + "' (expected tcp://HOST:PORT, port 1 to 65535)");
      }
      if (!endpoints.insert(value).second) bad(where, "the endpoint " + value + " is used twice");
      d.coordinator = value;
    } else if (key == "model") {
      d.model = value;
    } else if (key == "targets") {
      try {
        model::parse_lora_targets(value);
      } catch (const std::exception& e) {
        bad(where, std::string("targets: ") + e.what());
      }
      d.targets = value;
    } else if (key == "lora-rank") {
      try {
        size_t used = 0;
        d.lora_rank = std::stoi(value, &used);
        if (used != value.size()) throw std::invalid_argument("");
      } catch (const std::exception&) {
        bad(where, "lora-rank must be a whole number, got '" + value + "'");
      }
      if (d.lora_rank < 1 || d.lora_rank > 4096) bad(where, "lora-rank must be in 1..4096");
    } else if (key == "lora-alpha") {
      try {
        size_t used = 0;
        d.lora_alpha = std::stod(value, &used);
        if (used != value.size()) throw std::invalid_argument("");
      } catch (const std::exception&) {
        bad(where, "lora-alpha must be a number, got '" + value + "'");
      }
      if (!(d.lora_alpha > 0)) bad(where, "lora-alpha must be > 0");
    } else {
      bad(where, "unknown key '" + key +
                     "' (known: federation, coordinator, site, worker, model, lora-rank, "
                     "lora-alpha, targets; sections [coordinator], [site], [worker])");
    }
  }
  if (d.federation.empty()) bad(source, "'federation = NAME' is missing");
  if (d.coordinator.empty()) bad(source, "'coordinator = tcp://HOST:PORT' is missing");
  if (d.sites.empty()) bad(source, "no 'site = NAME' line: a federation needs sites");
  if (d.workers.empty()) {
    bad(source, "no 'worker = NAME tcp://HOST:PORT' line: the sites need a worker");
  }
  return d;
}

std::vector<std::string> provision(const std::string& description_text_in,
                                   const std::string& source, const fs::path& out,
                                   const ProvisionOptions& options) {
  FederationDescription d = parse_description(description_text_in, source);
  if (fs::exists(out) && !(fs::is_directory(out) && fs::is_empty(out))) {
    throw std::invalid_argument(out.string() +
                                " already exists and is not empty (a kit "
                                "directory is written once; --add-site adds a site to it)");
  }
  fs::path model_here;
  if (!options.model.empty()) {
    if (!fs::exists(options.model / "config.json")) {
      throw std::invalid_argument("--model " + options.model.string() +
                                  ": no config.json (a Hugging Face model directory)");
    }
    model_here = fs::absolute(options.model).lexically_normal();
    d.model = model_here.string();
  } else if (fs::path(d.model).is_absolute()) {
    model_here = d.model;
  }
  Cleanup staging{staging_dir(out)};
  const fs::path& tmp = staging.dir;
  fs::create_directories(tmp / "coordinator");
  make_keys(tmp / "coordinator" / "coordinator");
  const fs::path coordinator_pub = tmp / "coordinator" / "coordinator.pub";
  for (const auto& s : d.sites) write_site_kit(d, s, tmp / "sites" / s.name, coordinator_pub);
  for (const auto& w : d.workers) {
    write_worker_kit(d, w, tmp / "workers" / w.name, coordinator_pub, tmp / "sites");
  }
  write_coordinator_kit(d, tmp, model_here);
  base::write_file_atomic(tmp / "federation.ini", description_text(d));
  if (fs::exists(out)) fs::remove(out);  // empty (checked above)
  fs::rename(tmp, out);
  staging.dir.clear();
  std::vector<std::string> lines;
  lines.push_back("wrote " + (out / "coordinator").string());
  for (const auto& s : d.sites) lines.push_back("wrote " + (out / "sites" / s.name).string());
  for (const auto& w : d.workers) lines.push_back("wrote " + (out / "workers" / w.name).string());
  if (!fs::exists(out / "coordinator" / "initial-adapter")) {
    lines.push_back("make the initial adapter: see " +
                    (out / "coordinator" / "README.md").string());
  }
  return lines;
}

std::vector<std::string> add_site(const fs::path& kits, const std::string& name,
                                  const std::string& data, const std::string& eval) {
  const fs::path desc_file = kits / "federation.ini";
  if (!fs::exists(desc_file)) {
    throw std::invalid_argument(kits.string() +
                                " holds no federation.ini: not a directory of fedctl provision");
  }
  FederationDescription d = parse_description(read_text(desc_file), desc_file.string());
  if (!data.empty() && fields(data).size() != 1) {
    throw std::invalid_argument("--data must be one path without blanks");
  }
  if (!eval.empty() && (data.empty() || fields(eval).size() != 1)) {
    throw std::invalid_argument("--eval needs --data and must be one path without blanks");
  }
  // The same checks as a description line: the name valid and new.
  if (!is_name(name)) {
    throw std::invalid_argument("--add-site: the site name '" + name +
                                "' must be 1 to 64 of [A-Za-z0-9._-]");
  }
  for (const auto& s : d.sites) {
    if (s.name == name) throw std::invalid_argument("--add-site: site '" + name + "' exists");
  }
  for (const auto& w : d.workers) {
    if (w.name == name) {
      throw std::invalid_argument("--add-site: '" + name + "' is the name of a worker");
    }
  }
  FederationDescription added = d;
  added.sites.push_back({name, data, eval});
  const ProvisionSite site = added.sites.back();
  const fs::path kit = kits / "sites" / name;
  if (fs::exists(kit)) throw std::invalid_argument(kit.string() + " already exists");
  const fs::path coordinator_pub = kits / "coordinator" / "coordinator.pub";
  for (const auto& w : d.workers) {
    if (!fs::is_directory(kits / "workers" / w.name / "allowed")) {
      throw std::invalid_argument((kits / "workers" / w.name / "allowed").string() + " is missing");
    }
  }
  const fs::path roster = kits / "coordinator" / "roster.txt";
  const std::string roster_before = read_text(roster);

  // The kit first (staged, then renamed into place), then the workers' allow-lists, then the
  // roster: by the time the coordinator admits the site, the workers accept it.
  fs::create_directories(kits / "sites");
  Cleanup staging{staging_dir(kit)};
  write_site_kit(added, site, staging.dir, coordinator_pub);
  fs::rename(staging.dir, kit);
  staging.dir.clear();
  const fs::path pub = kit / (name + ".pub");
  std::vector<std::string> lines = {"wrote " + kit.string()};
  for (const auto& w : d.workers) {
    const fs::path to = kits / "workers" / w.name / "allowed" / (name + ".pub");
    copy_public(pub, to);
    lines.push_back("wrote " + to.string() + " (kill -HUP that worker to reload)");
  }
  std::string text = roster_before;
  if (!text.empty() && text.back() != '\n') text += '\n';
  text += "site " + name + " " + protocol::load_public_key(pub.string()).value().z85() + "\n";
  base::write_file_atomic(roster, text);
  lines.push_back("updated " + roster.string() +
                  " (the coordinator reloads it when it changes, or on kill -HUP)");
  base::write_file_atomic(desc_file, description_text(added));
  return lines;
}

}  // namespace tools
