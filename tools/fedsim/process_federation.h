// A federation of real processes on loopback: the coordinator, W fhe_workers and S participant
// sites, each its own executable (build/bin/coordinator, fhe_worker, participant) talking
// CurveZMQ with keys, allow-lists and the coordinator's roster made under RUN/keys. `fedsim
// --processes` runs one from start to end; the federation tests drive one to crash and restart its
// parties.
//
//   fedsim::ProcessFederation fed(config, layout, bin_dir);
//   fed.prepare_keys();
//   fed.start_coordinator();
//   fed.start_parties(std::chrono::minutes(2));   // workers, wait until registered, then sites
//   fed.kill("site-1");                            // SIGKILL
//   fed.restart("site-1");                         // same arguments, same state directory
//   std::optional<int> rc = fed.wait_coordinator(std::chrono::minutes(5));
//   // ~ProcessFederation: SIGTERM to every party still running, SIGKILL after the grace period
//
// The coordinator gets the simulation's settings (coordinator_config() of sim_run.h) with
// --start-after = sites: its first round waits for every site. Parties are named
// "coordinator", "worker-W" and "site-K"; each writes RUN/logs/NAME.log
// (appended across restarts) at info or more (sites and workers get --log-level info unless the
// config asks for debug or trace); with coordinator_on_console the coordinator's warnings and
// errors go to the console and its log file gets --log-file. The
// sites get the DP seed site_dp_seed_hex(config.seed, k), so runs with the same seed replay.
// Not thread-safe; use it from the thread that created it (see child_process.h).
#pragma once

#include <signal.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "child_process.h"
#include "sim_config.h"
#include "sim_setup.h"

namespace fedsim {

// Flags that replace the value of the same flag in a party's default arguments, or are
// appended: {{"--epsilon-max", "2"}, {"--start-after", "3"}}.
using FlagOverrides = std::vector<std::pair<std::string, std::string>>;

// `args` with every flag of `overrides` set to its value (replaced in place, else appended).
std::vector<std::string> with_flags(std::vector<std::string> args, const FlagOverrides& overrides);

struct ProcessFederationOptions {
  // fedsim: the coordinator's warnings go to the console, everything from info to its log file.
  bool coordinator_on_console = false;
  std::chrono::milliseconds heartbeat{500};
  std::chrono::milliseconds stop_grace{5000};  // SIGTERM -> SIGKILL
};

class ProcessFederation {
 public:
  // `bin_dir` must hold coordinator, fhe_worker and participant (std::runtime_error if not).
  ProcessFederation(SimConfig config, SimLayout layout, std::filesystem::path bin_dir,
                    ProcessFederationOptions options = {});
  ~ProcessFederation();  // stop_all()
  ProcessFederation(const ProcessFederation&) = delete;
  ProcessFederation& operator=(const ProcessFederation&) = delete;

  // Makes the CURVE key pairs of every party (kept when they exist: a resumed run keeps its
  // keys), the coordinator's allow-list (workers and sites) and the workers' (sites), picks a
  // free loopback port for the coordinator and one for each worker, and writes the
  // coordinator's roster RUN/keys/roster.txt (docs/coordinator.md): `site site-K KEY` and
  // `worker worker-W KEY ENDPOINT` for every party.
  void prepare_keys();
  // A key pair RUN/keys/NAME.{key,pub}, allowed by the coordinator when `allowed` (and by the
  // workers, and listed in the roster as site NAME): for a test's extra parties.
  std::filesystem::path make_key(const std::string& name, bool allowed);
  std::filesystem::path roster_file() const { return layout_.keys / "roster.txt"; }

  const std::string& endpoint() const { return endpoint_; }
  std::filesystem::path events_file() const { return layout_.run / "events.jsonl"; }
  std::filesystem::path log_file(const std::string& name) const;
  const SimConfig& config() const { return config_; }
  const SimLayout& layout() const { return layout_; }
  static std::string worker_name(uint32_t w) { return "worker-" + std::to_string(w); }

  // The default arguments of each party.
  std::vector<std::string> coordinator_args() const;
  std::vector<std::string> worker_args(uint32_t w) const;
  std::vector<std::string> site_args(uint32_t k) const;

  void start_coordinator(const FlagOverrides& overrides = {});
  void start_worker(uint32_t w, const FlagOverrides& overrides = {});
  void start_site(uint32_t k, const FlagOverrides& overrides = {});
  // Any party: build/bin/EXE with `args`, logging to log_file(name).
  void start(const std::string& name, const std::string& exe, std::vector<std::string> args);
  // Starts every worker and waits until the coordinator has logged each of them as a registered
  // worker (events.jsonl, since the coordinator was started). Throws std::runtime_error when they
  // are not registered within `timeout` or the coordinator ends first.
  void start_workers(std::chrono::milliseconds timeout);
  // start_workers(), then every site: the first round never sees an empty worker directory.
  void start_parties(std::chrono::milliseconds timeout);

  // True while the party runs.
  bool running(const std::string& name);
  // Sends `sig`; with SIGKILL also waits until the process is gone.
  void kill(const std::string& name, int sig = SIGKILL);
  // Starts the party again with the arguments of its last start (ending it first if it runs).
  void restart(const std::string& name);
  // Waits up to `timeout` for the party to end: its exit status (128 + signal), or nullopt.
  std::optional<int> wait(const std::string& name, std::chrono::milliseconds timeout);
  std::optional<int> wait_coordinator(std::chrono::milliseconds timeout) {
    return wait("coordinator", timeout);
  }
  // The events.jsonl offset when the coordinator was last started.
  uint64_t coordinator_started_at() const { return coordinator_offset_; }
  // SIGTERM to every party still running, then SIGKILL after the grace period; reaps all.
  void stop_all();

 private:
  struct Party {
    std::string exe;
    std::vector<std::string> args;
    ChildProcess process;
  };
  Party& party(const std::string& name);
  void spawn(const std::string& name, Party& p);

  SimConfig config_;
  SimLayout layout_;
  std::filesystem::path bin_;
  ProcessFederationOptions options_;
  void add_to_roster(const std::string& line);

  std::string endpoint_;
  std::vector<std::string> worker_endpoints_;  // chosen by prepare_keys(), listed in the roster
  uint64_t coordinator_offset_ = 0;
  std::map<std::string, Party> parties_;
};

}  // namespace fedsim
