// The participant's (or worker's) end of the coordinator conversation, without the coordinator
// library: a DEALER connection that speaks coordinator_codec.h.
//
//   auto c = protocol::coord::CoordinatorClient::connect(ctx, client_config).value();
//   c.register_site({.role = Role::kParticipant, .site_id = "site1", .dataset_size = 500,
//                    .epsilon_max = 8, .delta = 1e-5}, 5s);
//   for (;;) {
//     auto m = c.receive(1s);                         // kTimeout: send a heartbeat, loop
//     if (auto* inv = std::get_if<RoundInvitation>(&m.value().body)) {
//       auto global = adapter_values(*inv, m.value());  // float32 values of the global adapter
//       c.accept(*inv, "site1");
//       ... train ...
//       c.upload(upload_meta, delta_values);          // delta.tensors = inv->adapter.tensors
//     }
//   }
//
// Like every socket of the library it is not thread-safe: use it from one thread.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <span>
#include <string>
#include <vector>

#include "protocol/coordinator_codec.h"
#include "protocol/coordinator_messages.h"
#include "protocol/result.h"
#include "protocol/socket.h"

namespace protocol::coord {

class CoordinatorClient {
 public:
  static Result<CoordinatorClient> connect(zmq::context_t& context, const ClientConfig& config);

  // Sends Register and waits up to `timeout` for the RegisterReply (other messages arriving
  // first are dropped). A refusal is returned as the reply (accepted == false); an ErrorReply
  // from the coordinator becomes that error.
  Result<RegisterReply> register_site(const Register& request, std::chrono::milliseconds timeout);

  // Sends StatusRequest and waits up to `timeout` for the StatusReply (a read-only snapshot; no
  // registration needed; other messages arriving first are dropped). An ErrorReply from the
  // coordinator becomes that error; kTimeout when nothing came.
  Result<StatusReply> status(std::chrono::milliseconds timeout);

  Status heartbeat(const std::string& site_id);
  Status accept(const RoundInvitation& invitation, const std::string& site_id);
  Status decline(const RoundInvitation& invitation, const std::string& site_id,
                 DeclineReason reason, const std::string& detail);
  // Sends a DeltaUpload whose delta blob holds `values` (delta.blob is set to 0).
  Status upload(DeltaUpload upload, std::span<const float> values);

  // The next message from the coordinator (RoundInvitation, UploadAck, RoundResult, Shutdown,
  // Heartbeat, ErrorReply), or kTimeout.
  Result<Message> receive(std::chrono::milliseconds timeout);
  Status send(Message&& message);
  // Raw frames (tests use it to send malformed messages).
  Status send_frames(std::vector<zmq::message_t>&& frames) {
    return client_.send_frames(std::move(frames));
  }

  uint64_t bytes_sent() const { return bytes_sent_; }
  uint64_t bytes_received() const { return bytes_received_; }

 private:
  explicit CoordinatorClient(Client client) : client_(std::move(client)) {}
  Client client_;
  Limits limits_;
  uint64_t bytes_sent_ = 0, bytes_received_ = 0;
};

// The float32 values of an adapter table carried by `message` (its blob `table.blob`).
Result<std::vector<float>> adapter_values(const AdapterTable& table, const Message& message);

}  // namespace protocol::coord
