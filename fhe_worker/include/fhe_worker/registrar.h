// Registrar: keeps a worker registered with a coordinator, so that the coordinator can put it in
// the worker directory of its round invitations (docs/design.md §3 and §6).
//
// A thread of its own with its own DEALER (protocol::coord::CoordinatorClient): it sends
// Register (role worker, the compute endpoint participants should connect to and the worker's
// CURVE public key), then a Heartbeat every interval; it registers again when the coordinator
// answers with an error (a restarted coordinator that does not know it) or has been silent for
// `reconnect_after`. It never takes part in computing: a coordinator that is down only delays
// the worker's listing.
#pragma once

#include <spdlog/logger.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "protocol/keys.h"

namespace fhe_worker {

struct RegistrarConfig {
  std::string coordinator;               // endpoint, e.g. tcp://10.0.0.1:5560
  bool insecure = false;                 // loopback only
  std::optional<protocol::KeyPair> key;  // CURVE: the worker's own key pair
  std::optional<protocol::PublicKey> coordinator_key;
  std::string site_id;           // the worker's name in the registry
  std::string compute_endpoint;  // what participants connect to
  std::string public_key_z85;    // the worker's CURVE public key ("" when insecure)
  std::chrono::milliseconds heartbeat_interval{1000};
  std::chrono::milliseconds reconnect_after{5000};
  std::shared_ptr<spdlog::logger> log;  // required
};

// The endpoint to announce for a bound one: "tcp://0.0.0.0:5555" and "tcp://*:5555" become
// "tcp://HOSTNAME:5555"; any other endpoint is returned unchanged.
std::string advertised_endpoint(const std::string& bound);

class Registrar {
 public:
  // Starts the thread. Throws fhe_worker::WorkerError for a bad endpoint or key configuration.
  explicit Registrar(RegistrarConfig config);
  ~Registrar();  // stops and joins
  Registrar(const Registrar&) = delete;
  Registrar& operator=(const Registrar&) = delete;

 private:
  void run(std::stop_token stop);
  RegistrarConfig config_;
  std::jthread thread_;
};

}  // namespace fhe_worker
