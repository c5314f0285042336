// fedsim --processes: the coordinator, the workers and the sites as separate processes on
// loopback TCP, every connection under CurveZMQ with keys, allow-lists and the coordinator's
// roster made in RUN/keys (process_federation.h). The workers are registered before the sites
// start, so that the first round never finds an empty worker directory.
#include <signal.h>

#include <csignal>
#include <cstdio>
#include <stdexcept>

#include "process_federation.h"
#include "sim_run.h"

namespace fedsim {
namespace {

// SIGINT / SIGTERM while the federation runs: fedsim must outlive its coordinator (its parties
// die with it, see child_process.h), so the signal is noted here and passed on to the
// coordinator, which stops cleanly (adapter exported, run_finished logged). The one piece of
// process-wide state in fedsim, as signal handlers require; restored on scope exit.
volatile std::sig_atomic_t g_stop_signal = 0;

class StopSignals {
 public:
  StopSignals() {
    g_stop_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = [](int sig) { g_stop_signal = sig; };
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  bool raised() const { return g_stop_signal != 0; }

 private:
  struct sigaction old_int_ {
  }, old_term_{};
};

}  // namespace

int run_processes(const SimConfig& c, const SimLayout& l, const std::filesystem::path& bin) {
  const StopSignals signals;
  ProcessFederationOptions options;
  options.coordinator_on_console = true;
  ProcessFederation federation(c, l, bin, options);
  federation.prepare_keys();
  federation.start_coordinator();
  federation.start_parties(std::chrono::minutes(5));
  std::fprintf(stderr, "fedsim: %u workers and %u sites started; logs in %s\n", c.workers,
               l.site_count(), l.logs.c_str());

  std::optional<int> status;
  bool forwarded = false;
  while (!(status = federation.wait_coordinator(std::chrono::milliseconds(200)))) {
    if (signals.raised() && !forwarded) {
      federation.kill("coordinator", SIGTERM);
      forwarded = true;
    }
  }
  federation.stop_all();
  if (*status >= 128 || *status < 0) {
    std::fprintf(stderr, "fedsim: the coordinator ended abnormally\n");
    return 1;
  }
  return *status;
}

}  // namespace fedsim
