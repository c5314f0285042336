#include "process_federation.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>

#include "event_file.h"
#include "protocol/keys.h"
#include "sim_run.h"

namespace fedsim {
namespace {

namespace fs = std::filesystem;

// A free TCP port on 127.0.0.1 (the kernel's choice; released again at once).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free loopback port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string loopback_endpoint() {
  return "tcp://127.0.0.1:" + std::to_string(free_port());
}

// PREFIX.key / PREFIX.pub, made once (a resumed run keeps its keys).
void ensure_keys(const fs::path& prefix) {
  if (fs::exists(prefix.string() + ".key")) return;
  auto pair = protocol::KeyPair::generate();
  if (!pair) throw std::runtime_error("key generation: " + pair.error().message);
  auto written = protocol::write_key_pair(pair.value(), prefix.string(), /*force=*/false);
  if (!written.ok()) throw std::runtime_error(written.error().message);
}

void allow(const fs::path& dir, const fs::path& prefix) {
  fs::create_directories(dir);
  fs::copy_file(prefix.string() + ".pub", dir / (prefix.filename().string() + ".pub"),
                fs::copy_options::overwrite_existing);
}

std::string public_key_of(const fs::path& prefix) {
  auto key = protocol::load_public_key(prefix.string() + ".pub");
  if (!key) throw std::runtime_error(key.error().message);
  return key.value().z85();
}

// The level of a party whose lines go to its log file: at least info (step progress, the
// coordinator's per-site states), whatever quieter level the console of a threads run uses.
std::string file_log_level(const std::string& level) {
  return level == "trace" || level == "debug" ? level : "info";
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

std::vector<std::string> with_flags(std::vector<std::string> args, const FlagOverrides& overrides) {
  for (const auto& [flag, value] : overrides) {
    bool replaced = false;
    for (size_t i = 0; i + 1 < args.size(); ++i) {
      if (args[i] == flag) {
        args[i + 1] = value;
        replaced = true;
        break;
      }
    }
    if (!replaced) {
      args.push_back(flag);
      args.push_back(value);
    }
  }
  return args;
}

ProcessFederation::ProcessFederation(SimConfig config, SimLayout layout, fs::path bin_dir,
                                     ProcessFederationOptions options)
    : config_(std::move(config)),
      layout_(std::move(layout)),
      bin_(std::move(bin_dir)),
      options_(options) {
  for (const char* name : {"coordinator", "fhe_worker", "participant"}) {
    if (!fs::exists(bin_ / name)) {
      throw std::runtime_error((bin_ / name).string() + " not found (build every target first)");
    }
  }
}

ProcessFederation::~ProcessFederation() {
  stop_all();
}

void ProcessFederation::prepare_keys() {
  fs::create_directories(layout_.keys);
  fs::create_directories(layout_.logs);
  ensure_keys(layout_.keys / "coordinator");
  std::ofstream(roster_file(), std::ios::trunc)
      << "# written by fedsim: the key of every party and the endpoint of every worker\n";
  worker_endpoints_.clear();
  for (uint32_t w = 0; w < config_.workers; ++w) {
    const fs::path p = layout_.keys / worker_name(w);
    ensure_keys(p);
    allow(layout_.keys / "allow-coordinator", p);
    worker_endpoints_.push_back(loopback_endpoint());
    add_to_roster("worker " + worker_name(w) + " " + public_key_of(p) + " " +
                  worker_endpoints_.back());
  }
  for (uint32_t k = 0; k < layout_.site_count(); ++k)
    make_key(layout_.site_id(k), /*allowed=*/true);
  endpoint_ = loopback_endpoint();
}

fs::path ProcessFederation::make_key(const std::string& name, bool allowed) {
  const fs::path p = layout_.keys / name;
  ensure_keys(p);
  if (allowed) {
    allow(layout_.keys / "allow-coordinator", p);
    allow(layout_.keys / "allow-workers", p);
    add_to_roster("site " + name + " " + public_key_of(p));
  }
  return p;
}

void ProcessFederation::add_to_roster(const std::string& line) {
  // Appended and flushed in one write; the coordinator reloads the file when it changes.
  std::ofstream out(roster_file(), std::ios::app);
  out << line << "\n";
  if (!out.flush()) throw std::runtime_error("cannot write " + roster_file().string());
}

fs::path ProcessFederation::log_file(const std::string& name) const {
  return layout_.logs / (name + ".log");
}

// The arguments are listed as flag-value pairs, one pair a line.
// clang-format off
std::vector<std::string> ProcessFederation::coordinator_args() const {
  const coordinator::CoordinatorConfig cc = coordinator_config(config_, layout_);
  std::vector<std::string> args = {"--bind", endpoint_,
          "--key", (layout_.keys / "coordinator.key").string(),
          "--allow-dir", (layout_.keys / "allow-coordinator").string(),
          "--roster", roster_file().string(),
          "--run-dir", layout_.run.string(),
          "--initial-adapter", layout_.initial_adapter.string(),
          "--rounds", std::to_string(cc.rounds),
          "--fraction", num(cc.fraction),
          "--min-participants", std::to_string(cc.min_participants),
          "--start-after", std::to_string(cc.start_after),
          "--round-timeout", std::to_string(config_.round_timeout_s),
          "--heartbeat-ms", std::to_string(options_.heartbeat.count()),
          "--seed", std::to_string(cc.seed),
          "--local-steps", std::to_string(cc.plan.local_steps),
          "--lr", num(cc.plan.learning_rate),
          "--batch-size", std::to_string(cc.plan.batch_size),
          "--sample-rate", num(cc.plan.sample_rate),
          "--noise-multiplier", num(cc.plan.noise_multiplier),
          "--clip-norm", num(cc.plan.clip_norm),
          "--delta", num(cc.plan.delta),
          "--strategy", cc.strategy.name,
          "--server-lr", num(cc.strategy.server_lr)};
  if (options_.coordinator_on_console) {
    // The console shows warnings and errors; RUN/logs/coordinator.log everything from info.
    args.insert(args.end(), {"--log-level", "warn", "--log-file", log_file("coordinator").string()});
  }
  if (cc.plan.participant_dp) {
    args.insert(args.end(), {"--participant-dp",
                             "--participant-clip", num(cc.plan.participant_clip),
                             "--participant-sigma", num(cc.plan.participant_sigma)});
  }
  return args;
}

std::vector<std::string> ProcessFederation::worker_args(uint32_t w) const {
  const std::string name = worker_name(w);
  return {"--model", layout_.model.string(),
          "--model-id", "model",
          "--bind", w < worker_endpoints_.size() ? worker_endpoints_[w] : loopback_endpoint(),
          "--key", (layout_.keys / (name + ".key")).string(),
          "--allow-dir", (layout_.keys / "allow-workers").string(),
          "--threads", "1",
          "--id", name,
          "--coordinator", endpoint_,
          "--coordinator-key", (layout_.keys / "coordinator.pub").string(),
          "--log-level", file_log_level(config_.log_level)};
}

std::vector<std::string> ProcessFederation::site_args(uint32_t k) const {
  const std::string id = layout_.site_id(k);
  std::vector<std::string> args = {"--site-id", id,
          "--coordinator", endpoint_,
          "--coordinator-key", (layout_.keys / "coordinator.pub").string(),
          "--key", (layout_.keys / (id + ".key")).string(),
          "--model", layout_.model.string(),
          "--model-id", "model",
          "--data", layout_.train_file(k).string(),
          "--state-dir", layout_.state_dir(k).string(),
          "--progress-file", layout_.progress_file(k).string(),
          "--seq-len", std::to_string(config_.seq_len),
          "--lora-rank", std::to_string(config_.lora_rank),
          "--lora-alpha", num(config_.lora_alpha),
          "--targets", config_.targets,
          "--epsilon-max", num(config_.epsilon_max),
          "--delta", num(config_.delta),
          "--dp-seed", site_dp_seed_hex(config_.seed, k),
          "--backend", config_.backend,
          "--heartbeat-ms", std::to_string(options_.heartbeat.count()),
          "--log-level", file_log_level(config_.log_level)};
  if (!layout_.heldout_file(k).empty()) {
    args.insert(args.end(), {"--eval", layout_.heldout_file(k).string()});
  }
  return args;
}
// clang-format on

void ProcessFederation::start_coordinator(const FlagOverrides& overrides) {
  if (endpoint_.empty()) throw std::logic_error("ProcessFederation: prepare_keys() first");
  start("coordinator", "coordinator", with_flags(coordinator_args(), overrides));
}

void ProcessFederation::start_worker(uint32_t w, const FlagOverrides& overrides) {
  start(worker_name(w), "fhe_worker", with_flags(worker_args(w), overrides));
}

void ProcessFederation::start_site(uint32_t k, const FlagOverrides& overrides) {
  start(layout_.site_id(k), "participant", with_flags(site_args(k), overrides));
}

void ProcessFederation::start(const std::string& name, const std::string& exe,
                              std::vector<std::string> args) {
  Party& p = parties_[name];
  p.exe = exe;
  p.args = std::move(args);
  spawn(name, p);
}

void ProcessFederation::spawn(const std::string& name, Party& p) {
  p.process.stop(options_.stop_grace);
  const bool console = name == "coordinator" && options_.coordinator_on_console;
  if (name == "coordinator") coordinator_offset_ = event_file_size(events_file());
  p.process = ChildProcess::start(bin_ / p.exe, p.args, console ? fs::path() : log_file(name));
}

void ProcessFederation::start_workers(std::chrono::milliseconds timeout) {
  for (uint32_t w = 0; w < config_.workers; ++w) start_worker(w);
  auto registered = [&](const std::vector<nlohmann::json>& events) {
    uint32_t n = 0;
    for (uint32_t w = 0; w < config_.workers; ++w) {
      for (const auto& e : events) {
        if (e.value("event", "") == "site_registered" && e.value("role", "") == "worker" &&
            e.value("site", "") == worker_name(w)) {
          ++n;
          break;
        }
      }
    }
    return n == config_.workers;
  };
  const bool ok = wait_for_events(events_file(), registered, timeout, coordinator_offset_, [&] {
                    return !running("coordinator");
                  }).has_value();
  if (!ok) {
    throw std::runtime_error(running("coordinator")
                                 ? "the workers did not register with the coordinator in time"
                                 : "the coordinator ended before the workers registered (see " +
                                       (layout_.logs / "coordinator.log").string() + ")");
  }
}

void ProcessFederation::start_parties(std::chrono::milliseconds timeout) {
  start_workers(timeout);
  for (uint32_t k = 0; k < layout_.site_count(); ++k) start_site(k);
}

ProcessFederation::Party& ProcessFederation::party(const std::string& name) {
  auto it = parties_.find(name);
  if (it == parties_.end()) throw std::invalid_argument("no party named " + name);
  return it->second;
}

bool ProcessFederation::running(const std::string& name) {
  auto it = parties_.find(name);
  return it != parties_.end() && it->second.process.running();
}

void ProcessFederation::kill(const std::string& name, int sig) {
  Party& p = party(name);
  p.process.signal(sig);
  if (sig == SIGKILL) (void)p.process.wait(std::chrono::seconds(30));
}

void ProcessFederation::restart(const std::string& name) {
  spawn(name, party(name));
}

std::optional<int> ProcessFederation::wait(const std::string& name,
                                           std::chrono::milliseconds timeout) {
  return party(name).process.wait(timeout);
}

void ProcessFederation::stop_all() {
  // Everyone gets SIGTERM at once, then shares one grace period.
  for (auto& [name, p] : parties_) p.process.signal(SIGTERM);
  const auto end = std::chrono::steady_clock::now() + options_.stop_grace;
  for (auto& [name, p] : parties_) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    (void)p.process.wait(std::max(left, std::chrono::milliseconds(0)));
    p.process.stop(std::chrono::milliseconds(0));  // SIGKILL what is left, reap
  }
}

}  // namespace fedsim
