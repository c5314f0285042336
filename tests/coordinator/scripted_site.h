// A scripted participant for end-to-end tests: a thread that speaks the coordinator protocol
// through protocol::coord::CoordinatorClient over a real ZeroMQ socket (registers, heartbeats,
// accepts invitations, uploads a deterministic delta), with scripted misbehaviour.
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "protocol/coordinator_client.h"
#include "protocol/keys.h"

namespace coordinator_test {

enum class Script {
  kNormal,          // accept and upload at once
  kSilent,          // heartbeat, but never answer an invitation
  kSilentFirst,     // ignore the first invitation, then behave normally
  kLateFirst,       // upload after the deadline of the first invitation, then normally
  kMalformedFirst,  // on the first invitation send broken uploads, then a good one
  kDecline,         // decline every invitation (budget)
  kMisconfigured,   // accept every invitation, then decline it `misconfigured`
};

struct SiteOptions {
  std::string id;
  Script script = Script::kNormal;
  double epsilon_max = 1000;
  double delta = 1e-5;
  uint64_t examples = 10;
  float delta_value = 0.01f;  // every element of the uploaded delta
  double loss = 2.0;
  std::optional<protocol::KeyPair> key;       // CURVE
  std::optional<protocol::PublicKey> server;  // CURVE
  protocol::coord::Role role = protocol::coord::Role::kParticipant;
  std::string compute_endpoint;    // workers
  std::string public_key;          // workers: the key they announce
  uint64_t dataset_size = 100;     // registered (participants)
  double train_loss_override = 0;  // != 0: upload this train loss (NaN: not reported)
};

class ScriptedSite {
 public:
  ScriptedSite(zmq::context_t& context, std::string endpoint, SiteOptions options);
  ~ScriptedSite();  // stops and joins

  void stop();
  int invitations() const { return invitations_.load(); }
  int accepts() const { return accepts_.load(); }  // attempts this site accepted (and charged)
  std::vector<std::string> run_ids() const;       // of every invitation
  int uploads_accepted() const { return accepted_.load(); }
  int late_acks() const { return late_.load(); }
  bool registered() const { return registered_.load(); }
  bool refused() const { return refused_.load(); }
  // The coordinator's reason when it refused the registration.
  std::string refusal() const;
  bool shut_down() const { return shutdown_.load(); }
  // The worker directory of the last invitation.
  std::vector<protocol::coord::WorkerEntry> workers() const;
  std::vector<protocol::Error> errors() const;

 private:
  void run();
  void on_invitation(protocol::coord::CoordinatorClient& c, const protocol::coord::Message& m);
  void upload(protocol::coord::CoordinatorClient& c, const protocol::coord::RoundInvitation& inv);

  zmq::context_t& context_;
  std::string endpoint_;
  SiteOptions options_;
  std::atomic<bool> stop_{false}, registered_{false}, refused_{false}, shutdown_{false};
  std::atomic<int> invitations_{0}, accepted_{0}, late_{0}, accepts_{0};
  std::vector<std::string> run_ids_;
  mutable std::mutex mutex_;
  std::vector<protocol::Error> errors_;
  std::string refusal_;
  std::vector<protocol::coord::WorkerEntry> workers_;
  std::thread thread_;
};

}  // namespace coordinator_test
