// The run directory of a simulated federation, and what fedsim generates in it when missing.
//
//   RUN/model/             the tiny random Llama model (config.json, model.safetensors), unless
//                          --model names the user's own
//   RUN/data/              site{k}.jsonl, site{k}.heldout.jsonl: each site's synthetic notes;
//                          with --data, only the held-out splits of sites that bring none
//   RUN/initial_adapter/   the global adapter of round 1 (PEFT layout: A random, B = 0)
//   RUN/sites/ID/          each site's state directory (budget, RLWE key, DP seed, curves)
//   RUN/events.jsonl, RUN/checkpoints/, RUN/adapter/   written by the coordinator
//   RUN/report.html        the run's charts and tables (report.h)
//   RUN/keys/, RUN/logs/   --processes only: CURVE keys and allow-lists, one log per process
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "sim_config.h"
#include "site_data.h"

namespace fedsim {

struct SimLayout {
  std::filesystem::path run, model, data, initial_adapter, sites, keys, logs;
  std::vector<SiteFiles> site_files;  // site k's id and files

  uint32_t site_count() const { return static_cast<uint32_t>(site_files.size()); }
  const std::string& site_id(uint32_t k) const { return site_files.at(k).id; }
  const std::filesystem::path& train_file(uint32_t k) const { return site_files.at(k).train; }
  // Empty when the site has no held-out notes.
  const std::filesystem::path& heldout_file(uint32_t k) const { return site_files.at(k).heldout; }
  std::filesystem::path state_dir(uint32_t k) const { return sites / site_id(k); }
  // Where site k publishes its training progress (participant/progress.h), for the progress line.
  std::filesystem::path progress_file(uint32_t k) const { return state_dir(k) / "progress.json"; }
};

// Checks the user's --data and --model (site_data.h; SiteDataError before anything is written),
// then creates the run directory and generates the model, the data and the initial adapter where
// they are missing (an existing run keeps its own). Reports each user site's counts, windowed
// notes included, to `progress`. Throws with one line on failure.
SimLayout prepare_run(const SimConfig& config, std::ostream& progress);

// The last round of the run that RUN/events.jsonl says has finished (its last run_finished, when
// no run started after it); nullopt for a new or unfinished run directory.
std::optional<uint32_t> finished_rounds(const std::filesystem::path& run_dir);

// The DP seed of site k in a replayable simulation: SHA-256 of the sim seed and the site, as 64
// hex digits. (A real site makes its own secret seed; see participant/agent.h.)
std::string site_dp_seed_hex(uint64_t seed, uint32_t site);

// SHA-256 of `input` as 64 lowercase hex digits (the sites' and the baselines' DP seeds).
std::string sha256_hex(const std::string& input);

}  // namespace fedsim
