// fedsim: the whole federation on one machine (see sim_config.h, sim_setup.h, sim_run.h). The
// README's main job:  build/bin/fedsim  (3 sites, 2 workers, 5 rounds, encrypted, DP on).
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <iostream>

#include "report.h"
#include "round_table.h"
#include "sim_config.h"
#include "sim_run.h"
#include "sim_setup.h"

int main(int argc, char** argv) {
  fedsim::SimConfig config;
  try {
    if (!fedsim::parse_sim_config(argc, argv, std::cout, config)) return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fedsim: %s (see --help)\n", e.what());
    return 2;
  }
  try {
    const fedsim::SimLayout layout = fedsim::prepare_run(config, std::cerr);
    std::fprintf(stderr,
                 "fedsim: %u rounds, %u sites, %u workers, %s, backend %s, DP sigma %g, clip %g, "
                 "q %g, %u local steps; run directory %s\n",
                 config.rounds, layout.site_count(), config.workers,
                 config.processes ? "processes (CURVE)" : "threads", config.backend.c_str(),
                 config.noise_multiplier, config.clip_norm, config.sample_rate, config.local_steps,
                 layout.run.c_str());
    fedsim::EventWatcher watcher(layout.run / "events.jsonl", layout.sites, stdout);
    int rc = 0;
    if (config.processes) {
      char self[4096];
      const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
      if (n <= 0) throw std::runtime_error("cannot locate the fedsim executable");
      self[n] = '\0';
      rc = fedsim::run_processes(config, layout, std::filesystem::path(self).parent_path());
    } else {
      rc = fedsim::run_threads(config, layout);
    }
    watcher.finish();
    const auto rounds = watcher.rounds();
    if (rounds.size() >= 2) {
      std::printf("held-out loss %.4f -> %.4f over rounds %s..%s\n",
                  rounds.front().value("heldout_loss", 0.0),
                  rounds.back().value("heldout_loss", 0.0), rounds.front()["round"].dump().c_str(),
                  rounds.back()["round"].dump().c_str());
    }
    const auto report = fedsim::write_report(layout.run);
    std::printf("dashboard log: %s\nadapter (PEFT): %s\nreport: %s\n",
                (layout.run / "events.jsonl").c_str(), (layout.run / "adapter").c_str(),
                report.c_str());
    return rc;
  } catch (const fedsim::SiteDataError& e) {  // the user's --data or --model: nothing written
    std::fprintf(stderr, "fedsim: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fedsim: %s\n", e.what());
    return 1;
  }
}
