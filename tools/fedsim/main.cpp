// fedsim: the whole federation on one machine (see sim_config.h, sim_setup.h, sim_run.h). The
// README's main job:  build/bin/fedsim  (3 sites, 2 workers, 5 rounds, encrypted, DP on).
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <iostream>

#include "baseline.h"
#include "progress_line.h"
#include "report.h"
#include "round_table.h"
#include "sim_config.h"
#include "sim_eval.h"
#include "sim_run.h"
#include "sim_setup.h"

namespace {

// "held-out loss 5.1234 (perplexity 168.0), MCQ accuracy 0.400 (4 of 10)" of a pooled record.
std::string describe(const nlohmann::json& pooled) {
  char buf[256];
  std::string out;
  if (pooled.contains("heldout_loss")) {
    std::snprintf(buf, sizeof buf, "held-out loss %.4f (perplexity %.1f)",
                  pooled["heldout_loss"].get<double>(), pooled.value("perplexity", 0.0));
    out += buf;
  }
  if (pooled.contains("mcq_accuracy")) {
    std::snprintf(buf, sizeof buf, "%sMCQ accuracy %.3f (%lld of %lld)", out.empty() ? "" : ", ",
                  pooled["mcq_accuracy"].get<double>(),
                  static_cast<long long>(pooled.value("correct", int64_t{0})),
                  static_cast<long long>(pooled.value("questions", int64_t{0})));
    out += buf;
  }
  return out.empty() ? "nothing to evaluate (no held-out notes or questions)" : out;
}

int run_federation(const fedsim::SimConfig& config, const fedsim::SimLayout& layout) {
  if (!config.processes) return fedsim::run_threads(config, layout);
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) throw std::runtime_error("cannot locate the fedsim executable");
  self[n] = '\0';
  return fedsim::run_processes(config, layout, std::filesystem::path(self).parent_path());
}

// The global model's first and last evaluation, and how much the federation changed it.
void print_evaluation_summary(const std::filesystem::path& run_dir) {
  const auto evals = fedsim::pooled_evaluations(run_dir);
  if (evals.size() < 2) return;
  const auto& first = evals.front();
  const auto& last = evals.back();
  std::printf("global model, pooled over the sites: round %u: %s\n", first.value("round", 0u),
              describe(first).c_str());
  std::printf("global model, pooled over the sites: round %u: %s\n", last.value("round", 0u),
              describe(last).c_str());
  if (first.contains("heldout_loss") && last.contains("heldout_loss")) {
    const double a = first["heldout_loss"].get<double>(), b = last["heldout_loss"].get<double>();
    std::printf("held-out loss of the global model changed by %+.1f %% from round %u to round %u\n",
                100.0 * (b - a) / a, first.value("round", 0u), last.value("round", 0u));
  }
}

int run_and_report(const fedsim::SimConfig& config, const fedsim::SimLayout& layout,
                   bool finished) {
  fedsim::GlobalEvaluator evaluator(config, layout);
  if (!evaluator.has_round(0)) {
    std::printf("global model before any round (round 0): %s\n",
                describe(evaluator.evaluate_initial()).c_str());
  }
  // The round table and the sites' progress line share stdout (progress_line.h).
  fedsim::Console console(stdout, ::isatty(STDOUT_FILENO) != 0);
  fedsim::EventWatcher watcher(layout.run / "events.jsonl", layout.sites, console,
                               [&](const nlohmann::json& row) -> std::optional<std::string> {
                                 const uint32_t round = row.value("round", 0u);
                                 const auto pooled = evaluator.evaluate_checkpoint(round);
                                 if (!pooled)
                                   return "       global model after round " +
                                          std::to_string(round) +
                                          ": not evaluated (the checkpoint holds a later round)";
                                 return "       global model after round " + std::to_string(round) +
                                        ": " + describe(*pooled);
                               });
  fedsim::ProgressWatcher progress(fedsim::progress_sites(layout), console,
                                   config.progress_every_s);
  const int rc = finished ? 0 : run_federation(config, layout);
  progress.finish();
  watcher.finish();
  const auto rounds = watcher.rounds();
  if (rounds.size() >= 2) {
    std::printf("sites' own held-out loss after local training %.4f -> %.4f over rounds %s..%s\n",
                rounds.front().value("heldout_loss", 0.0), rounds.back().value("heldout_loss", 0.0),
                rounds.front()["round"].dump().c_str(), rounds.back()["round"].dump().c_str());
  }
  print_evaluation_summary(layout.run);
  if (config.baseline == "local") fedsim::run_local_baseline(config, layout, evaluator, stdout);
  const auto report = fedsim::write_report(layout.run);
  std::printf("dashboard log: %s\n", (layout.run / "events.jsonl").c_str());
  if (std::filesystem::exists(layout.run / "adapter" / "adapter_config.json")) {
    std::printf("adapter (PEFT): %s\n", (layout.run / "adapter").c_str());
  } else {
    std::printf("adapter: none exported (no round completed)\n");
  }
  std::printf("report: %s\n", report.c_str());
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  fedsim::SimConfig config;
  try {
    if (!fedsim::parse_sim_config(argc, argv, std::cout, config)) return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fedsim: %s (see --help)\n", e.what());
    return 2;
  }
  try {
    // A run directory whose run already did every round: say so, and report it again without
    // starting a federation that would end at once.
    const auto finished = fedsim::finished_rounds(config.run_dir);
    const bool done = finished && *finished >= config.rounds;
    if (done) {
      std::fprintf(stderr,
                   "fedsim: run directory %s holds a finished run of %u rounds; use --rounds M > "
                   "%u to extend it or a new --run-dir (reporting the finished run)\n",
                   config.run_dir.c_str(), *finished, *finished);
    }
    const fedsim::SimLayout layout = fedsim::prepare_run(config, std::cerr);
    std::fprintf(stderr,
                 "fedsim: %u rounds, %u sites, %u workers, %s, backend %s, DP sigma %g, clip %g, "
                 "q %g, %u local steps; run directory %s\n",
                 config.rounds, layout.site_count(), config.workers,
                 config.processes ? "processes (CURVE)" : "threads", config.backend.c_str(),
                 config.noise_multiplier, config.clip_norm, config.sample_rate, config.local_steps,
                 layout.run.c_str());
    return run_and_report(config, layout, done);
  } catch (const std::invalid_argument& e) {         // the user's flags, --data or --model: nothing
    std::fprintf(stderr, "fedsim: %s\n", e.what());  // left behind (prepare_run)
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fedsim: %s\n", e.what());
    return 1;
  }
}
