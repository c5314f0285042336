#include "protocol/coordinator_client.h"

#include <chrono>

namespace protocol::coord {

Result<CoordinatorClient> CoordinatorClient::connect(zmq::context_t& context,
                                                     const ClientConfig& config) {
  auto client = Client::connect(context, config);
  if (!client) return client.error();
  CoordinatorClient c(std::move(client).value());
  c.limits_ = config.options.limits;
  return c;
}

Status CoordinatorClient::send(Message&& message) {
  auto frames = coord::encode(std::move(message));
  if (!frames) return frames.error();
  for (const auto& f : frames.value()) bytes_sent_ += f.size();
  return client_.send_frames(std::move(frames).value());
}

Result<Message> CoordinatorClient::receive(std::chrono::milliseconds timeout) {
  auto frames = client_.receive_frames(timeout);
  if (!frames) return frames.error();
  for (const auto& f : frames.value()) bytes_received_ += f.size();
  return coord::decode(std::move(frames).value(), limits_);
}

Result<RegisterReply> CoordinatorClient::register_site(const Register& request,
                                                       std::chrono::milliseconds timeout) {
  if (auto s = send(Message{request, {}}); !s) return s.error();
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return make_error(ErrorCode::kTimeout, "no register reply");
    auto m = receive(left);
    if (!m) {
      if (m.error().code == ErrorCode::kTimeout) continue;
      return m.error();
    }
    if (auto* reply = std::get_if<RegisterReply>(&m.value().body)) return *reply;
    if (auto* err = std::get_if<ErrorReply>(&m.value().body)) return err->error;
  }
}

Result<StatusReply> CoordinatorClient::status(std::chrono::milliseconds timeout) {
  if (auto s = send(Message{StatusRequest{}, {}}); !s) return s.error();
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return make_error(ErrorCode::kTimeout, "no status reply");
    auto m = receive(left);
    if (!m) {
      if (m.error().code == ErrorCode::kTimeout) continue;
      return m.error();
    }
    if (auto* reply = std::get_if<StatusReply>(&m.value().body)) return std::move(*reply);
    if (auto* err = std::get_if<ErrorReply>(&m.value().body)) return err->error;
  }
}

Status CoordinatorClient::heartbeat(const std::string& site_id) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return send(Message{
      Heartbeat{site_id, std::chrono::duration_cast<std::chrono::nanoseconds>(now).count()}, {}});
}

Status CoordinatorClient::accept(const RoundInvitation& invitation, const std::string& site_id) {
  return send(Message{Accept{invitation.round, invitation.attempt, site_id}, {}});
}

Status CoordinatorClient::decline(const RoundInvitation& invitation, const std::string& site_id,
                                  DeclineReason reason, const std::string& detail) {
  return send(Message{Decline{invitation.round, invitation.attempt, site_id, reason, detail}, {}});
}

Status CoordinatorClient::upload(DeltaUpload upload, std::span<const float> values) {
  upload.delta.blob = 0;
  auto blob = float_blob(values);
  if (!blob) return blob.error();
  Message m{std::move(upload), {}};
  m.blobs.push_back(std::move(blob).value());
  return send(std::move(m));
}

Result<std::vector<float>> adapter_values(const AdapterTable& table, const Message& message) {
  if (table.blob >= message.blobs.size()) {
    return make_error(ErrorCode::kMalformedRequest, "adapter blob ", table.blob, " is missing");
  }
  return blob_floats(message.blobs[table.blob]);
}

}  // namespace protocol::coord
