// participant: one site of a federation (see participant/agent.h). Thin: parses flags, runs the
// agent until the coordinator shuts the run down or SIGINT/SIGTERM.
//   participant --config configs/participant.ini --site-id st-mary
#include <signal.h>

#include <cstdio>
#include <exception>
#include <iostream>
#include <thread>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "participant/agent.h"
#include "participant/cli.h"
#include "protocol/log_format.h"

int main(int argc, char** argv) {
  participant::CliOutcome parsed;
  try {
    parsed = participant::parse_cli(argc, argv, std::cout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "participant: %s (see --help)\n", e.what());
    return 2;
  }
  if (parsed.help) return 0;

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto log = std::make_shared<spdlog::logger>(
      parsed.config.site_id, std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  protocol::use_log_format(*log);
  log->set_level(spdlog::level::from_str(parsed.log_level));
  parsed.config.log = log;
  std::unique_ptr<participant::Agent> agent;
  try {
    agent = std::make_unique<participant::Agent>(std::move(parsed.config));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "participant: %s\n", e.what());
    return 2;
  }
  std::stop_source stop;
  std::thread waiter([&signals, &stop] {
    int sig = 0;
    sigwait(&signals, &sig);
    stop.request_stop();
  });
  const int rc = agent->run(stop.get_token());
  if (!stop.stop_requested()) pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  return rc;
}
