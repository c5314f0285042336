// fhe_worker: serves encrypted matmuls (W * Enc(X), W^T * Enc(G)) of one model over ZeroMQ.
// See docs/worker.md. SIGHUP reloads the --allow directory. Exit status: 0 after a clean stop
// (SIGTERM/SIGINT), 2 for bad options or a start-up failure.
#include <signal.h>

#include <cstdio>
#include <ctime>
#include <exception>
#include <iostream>
#include <memory>

#include "fhe_worker/error.h"
#include "fhe_worker/options.h"
#include "fhe_worker/registrar.h"
#include "fhe_worker/worker.h"
#include "fhe_worker/worker_model.h"
#include "protocol/keys.h"

int main(int argc, char** argv) {
  fhe_worker::CommandLine cl;
  try {
    cl = fhe_worker::parse_command_line(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fhe_worker: %s (see --help)\n", e.what());
    return 2;
  }
  if (cl.help) {
    std::cout << cl.help_text << "\n";
    return 0;
  }
  fhe_worker::WorkerOptions& o = cl.options;
  auto log = fhe_worker::make_console_logger(o.log_level);
  o.worker.log = log;

  // SIGTERM, SIGINT and SIGHUP are taken synchronously below; every thread started from here on
  // inherits the blocked mask, so no thread is interrupted by them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::unique_ptr<fhe_worker::Worker> worker;
  std::unique_ptr<fhe_worker::Registrar> registrar;
  try {
    log->info("loading {} on device {}", o.model_dir, o.model.device.name());
    std::shared_ptr<const fhe_worker::WorkerModel> model =
        fhe_worker::WorkerModel::load(o.model_dir, o.model);
    log->info("{}", model->summary());
    worker = fhe_worker::Worker::start(model, o.worker);
    if (!worker->public_key_z85().empty()) {
      log->info("server public key {}", worker->public_key_z85());
    }
    if (!o.port_file.empty()) fhe_worker::write_port_file(o.port_file, worker->endpoint());
    if (!o.coordinator.empty()) {
      fhe_worker::RegistrarConfig rc;
      rc.coordinator = o.coordinator;
      rc.insecure = o.worker.insecure;
      if (!rc.insecure) {
        auto pair = protocol::load_key_pair(o.worker.secret_key_file);
        if (!pair.ok()) throw fhe_worker::WorkerError(pair.error().message);
        rc.key = pair.value();
        auto server = protocol::load_public_key(o.coordinator_key);
        if (!server.ok()) throw fhe_worker::WorkerError(server.error().message);
        rc.coordinator_key = server.value();
      }
      rc.site_id = o.worker.sender_id.empty() ? fhe_worker::default_worker_id(worker->endpoint())
                                              : o.worker.sender_id;
      rc.compute_endpoint =
          o.advertise.empty() ? fhe_worker::advertised_endpoint(worker->endpoint()) : o.advertise;
      rc.public_key_z85 = worker->public_key_z85();
      rc.heartbeat_interval = std::chrono::milliseconds(500);
      rc.log = log;
      registrar = std::make_unique<fhe_worker::Registrar>(rc);
    }
  } catch (const std::exception& e) {
    log->error("{}", e.what());
    return 2;
  }

  int signal_number = 0;
  for (;;) {
    if (sigwait(&signals, &signal_number) != 0) continue;
    if (signal_number != SIGHUP) break;
    log->info("SIGHUP: reloading the allow-list");
    worker->reload_allow_list();
  }
  log->info("signal {} received", signal_number);
  registrar.reset();
  worker->request_stop();
  worker->wait();
  log->info("drained; exiting");
  return 0;
}
