// The two ways fedsim runs a federation: every party as a thread of this process (loopback TCP,
// no CURVE), or every party as its own process (loopback TCP, CURVE keys and allow-lists made in
// RUN/keys). Both return the coordinator's exit status: 0 when the run ended cleanly.
#pragma once

#include <filesystem>

#include "coordinator/coordinator.h"
#include "sim_config.h"
#include "sim_setup.h"

namespace fedsim {

// The coordinator's configuration for this simulation (endpoint and keys left to the runner).
coordinator::CoordinatorConfig coordinator_config(const SimConfig& config, const SimLayout& layout);

int run_threads(const SimConfig& config, const SimLayout& layout);
int run_processes(const SimConfig& config, const SimLayout& layout,
                  const std::filesystem::path& bin_dir);

}  // namespace fedsim
