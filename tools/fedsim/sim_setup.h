// The run directory of a simulated federation, and what fedsim generates in it when missing.
//
//   RUN/model/             the tiny random Llama model (config.json, model.safetensors)
//   RUN/data/              site{k}.jsonl, site{k}.heldout.jsonl: each site's synthetic notes
//   RUN/initial_adapter/   the global adapter of round 1 (PEFT layout: A random, B = 0)
//   RUN/sites/site-k/      each site's state directory (budget, RLWE key, DP seed)
//   RUN/events.jsonl, RUN/checkpoints/, RUN/adapter/   written by the coordinator
//   RUN/keys/, RUN/logs/   --processes only: CURVE keys and allow-lists, one log per process
#pragma once

#include <filesystem>
#include <ostream>
#include <string>

#include "sim_config.h"

namespace fedsim {

struct SimLayout {
  std::filesystem::path run, model, data, initial_adapter, sites, keys, logs;

  std::string site_id(uint32_t k) const { return "site-" + std::to_string(k); }
  std::filesystem::path train_file(uint32_t k) const {
    return data / ("site" + std::to_string(k) + ".jsonl");
  }
  std::filesystem::path heldout_file(uint32_t k) const {
    return data / ("site" + std::to_string(k) + ".heldout.jsonl");
  }
  std::filesystem::path state_dir(uint32_t k) const { return sites / site_id(k); }
};

// Creates the run directory and generates the model, the data and the initial adapter where
// they are missing (an existing run keeps its own). Throws with one line on failure.
SimLayout prepare_run(const SimConfig& config, std::ostream& progress);

// The DP seed of site k in a replayable simulation: SHA-256 of the sim seed and the site, as 64
// hex digits. (A real site makes its own secret seed; see participant/agent.h.)
std::string site_dp_seed_hex(uint64_t seed, uint32_t site);

}  // namespace fedsim
