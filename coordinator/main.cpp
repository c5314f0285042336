// coordinator: the federation's round scheduler (see coordinator/coordinator.h and
// docs/coordinator.md). Thin: parses flags, runs the library until done or SIGINT/SIGTERM;
// SIGHUP reloads the roster.
//   coordinator --config configs/coordinator.ini --run-dir runs/r1 --initial-adapter adapter0
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <thread>

#include "coordinator/cli.h"
#include "coordinator/coordinator.h"

int main(int argc, char** argv) {
  auto parsed = coordinator::parse_cli(argc, argv, std::cout);
  if (!parsed) {
    std::fprintf(stderr, "coordinator: %s\n", parsed.error().message.c_str());
    return 2;
  }
  if (parsed.value().help) return 0;

  // SIGINT/SIGTERM/SIGHUP are taken by a waiting thread (no handler state): SIGHUP asks for a
  // roster reload, the others request the stop.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  zmq::context_t context;
  auto c = coordinator::Coordinator::create(context, std::move(parsed.value().config));
  if (!c) {
    std::fprintf(stderr, "coordinator: %s\n", c.error().to_string().c_str());
    return 2;
  }
  std::stop_source stop;
  coordinator::Coordinator* running = c.value().get();
  std::thread waiter([&signals, &stop, running] {
    for (;;) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0) continue;
      if (sig == SIGHUP) {
        running->reload_roster();
        continue;
      }
      stop.request_stop();
      return;
    }
  });
  auto summary = c.value()->run(stop.get_token());
  // Release the waiter: send ourselves a signal it is waiting for (blocked in this thread).
  if (!stop.stop_requested()) pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  if (!summary) {
    std::fprintf(stderr, "coordinator: %s\n", summary.error().to_string().c_str());
    return 1;
  }
  return 0;
}
