#include "fhe_worker/registrar.h"

#include <unistd.h>

#include <variant>

#include "fhe_worker/error.h"
#include "protocol/coordinator_client.h"
#include "protocol/endpoint.h"

namespace fhe_worker {
namespace coord = protocol::coord;
namespace {

using Clock = std::chrono::steady_clock;

coord::CoordinatorClient connect(zmq::context_t& ctx, const RegistrarConfig& c) {
  protocol::ClientConfig cc;
  cc.endpoint = c.coordinator;
  cc.insecure = c.insecure;
  cc.key = c.key;
  cc.server_key = c.coordinator_key;
  cc.watch = protocol::HandshakeWords{"the coordinator", "this worker",
                                      "is --coordinator-key the coordinator's public key?"};
  auto client = coord::CoordinatorClient::connect(ctx, cc);
  if (!client.ok())
    throw WorkerError("coordinator " + c.coordinator + ": " + client.error().message);
  return std::move(client.value());
}

}  // namespace

std::string advertised_endpoint(const std::string& bound) {
  for (const std::string wildcard : {"tcp://0.0.0.0:", "tcp://*:"}) {
    if (bound.rfind(wildcard, 0) == 0) {
      char host[256] = {};
      if (::gethostname(host, sizeof host - 1) != 0) return bound;
      return "tcp://" + std::string(host) + ":" + bound.substr(wildcard.size());
    }
  }
  return bound;
}

Registrar::Registrar(RegistrarConfig config) : config_(std::move(config)) {
  if (!config_.log) throw WorkerError("registrar: a logger is required");
  if (config_.compute_endpoint.empty())
    throw WorkerError("registrar: no compute endpoint to announce");
  {
    // Fail at start-up, not in the thread, for a configuration that can never connect.
    zmq::context_t probe(1);
    (void)connect(probe, config_);
  }
  thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

Registrar::~Registrar() {
  thread_.request_stop();
  if (thread_.joinable()) thread_.join();
}

void Registrar::run(std::stop_token stop) {
  zmq::context_t ctx(1);
  std::optional<coord::CoordinatorClient> client;
  const auto slice = std::chrono::milliseconds(100);
  bool registered = false;
  Clock::time_point last_heard = Clock::now(), last_beat = Clock::now();
  std::string last_refusal;  // the last failed handshake logged, and when
  Clock::time_point refusal_logged{};
  coord::Register reg;
  reg.role = coord::Role::kWorker;
  reg.site_id = config_.site_id;
  reg.compute_endpoint = config_.compute_endpoint;
  reg.public_key = config_.public_key_z85;
  try {
    client.emplace(connect(ctx, config_));
    while (!stop.stop_requested()) {
      if (!registered) {
        auto reply = client->register_site(reg, config_.heartbeat_interval * 2);
        if (!reply.ok() && reply.error().code == protocol::ErrorCode::kHandshake) {
          // Logged when it changes and once a minute; tried again every other heartbeat.
          if (reply.error().message != last_refusal ||
              Clock::now() - refusal_logged >= std::chrono::minutes(1)) {
            config_.log->error("{} (trying again every {} ms)", reply.error().message,
                               (config_.heartbeat_interval * 2).count());
            last_refusal = reply.error().message;
            refusal_logged = Clock::now();
          }
          for (auto until = Clock::now() + config_.heartbeat_interval * 2;
               Clock::now() < until && !stop.stop_requested();) {
            std::this_thread::sleep_for(slice);
          }
          client.reset();
          client.emplace(connect(ctx, config_));
          continue;
        }
        if (!reply.ok() || !reply.value().accepted) {
          if (reply.ok()) {
            config_.log->warn("coordinator refused the registration: {}", reply.value().reason);
          } else if (reply.error().code != protocol::ErrorCode::kTimeout) {
            config_.log->warn("registration with {} failed: {}", config_.coordinator,
                              reply.error().message);
          }
          client.reset();  // a fresh socket drops whatever queued for a vanished peer
          client.emplace(connect(ctx, config_));
          continue;
        }
        registered = true;
        last_refusal.clear();
        last_heard = last_beat = Clock::now();
        config_.log->info("registered with coordinator {} as {}", config_.coordinator,
                          config_.site_id);
      }
      if (Clock::now() - last_beat >= config_.heartbeat_interval) {
        (void)client->heartbeat(config_.site_id);
        last_beat = Clock::now();
      }
      auto m = client->receive(slice);
      if (m.ok()) {
        last_heard = Clock::now();
        if (const auto* err = std::get_if<coord::ErrorReply>(&m.value().body)) {
          config_.log->warn("coordinator: {}; registering again", err->error.message);
          registered = false;
        } else if (std::holds_alternative<coord::Shutdown>(m.value().body)) {
          config_.log->info("the coordinator ended its run");
        }
      } else if (Clock::now() - last_heard > config_.reconnect_after) {
        config_.log->warn("coordinator {} silent for {} ms; registering again", config_.coordinator,
                          config_.reconnect_after.count());
        registered = false;
        last_heard = Clock::now();
      }
    }
  } catch (const std::exception& e) {
    config_.log->error("registrar stopped: {}", e.what());
  }
}

}  // namespace fhe_worker
