#include "scripted_site.h"

#include <chrono>
#include <cmath>

namespace coordinator_test {

namespace pc = protocol::coord;
using namespace std::chrono_literals;

ScriptedSite::ScriptedSite(zmq::context_t& context, std::string endpoint, SiteOptions options)
    : context_(context), endpoint_(std::move(endpoint)), options_(std::move(options)) {
  thread_ = std::thread([this] { run(); });
}

ScriptedSite::~ScriptedSite() {
  stop();
}

void ScriptedSite::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::vector<protocol::Error> ScriptedSite::errors() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return errors_;
}

std::vector<std::string> ScriptedSite::run_ids() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return run_ids_;
}

std::string ScriptedSite::refusal() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return refusal_;
}

std::vector<pc::WorkerEntry> ScriptedSite::workers() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return workers_;
}

void ScriptedSite::upload(pc::CoordinatorClient& c, const pc::RoundInvitation& inv) {
  std::vector<float> delta(inv.adapter.total(), options_.delta_value);
  pc::DeltaUpload u{
      inv.round,
      inv.attempt,
      options_.id,
      inv.adapter,
      options_.examples,
      options_.train_loss_override != 0 ? options_.train_loss_override : options_.loss / inv.round,
      options_.train_loss_override != 0 ? options_.train_loss_override
                                        : options_.loss / inv.round + 0.1,
      inv.plan.local_steps,
      0.5};
  (void)c.upload(u, delta);
}

void ScriptedSite::on_invitation(pc::CoordinatorClient& c, const pc::Message& m) {
  const auto& inv = std::get<pc::RoundInvitation>(m.body);
  const int n = ++invitations_;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    workers_ = inv.workers;
    run_ids_.push_back(inv.run_id);
  }
  auto values = pc::adapter_values(inv.adapter, m);
  if (!values || values.value().size() != inv.adapter.total()) return;
  switch (options_.script) {
    case Script::kSilent:
      return;
    case Script::kSilentFirst:
      if (n == 1) return;
      break;
    case Script::kDecline:
      (void)c.decline(inv, options_.id, pc::DeclineReason::kBudget, "scripted");
      return;
    case Script::kMisconfigured:
      (void)c.accept(inv, options_.id);
      ++accepts_;
      (void)c.decline(inv, options_.id, pc::DeclineReason::kMisconfigured,
                      "model mismatch (scripted)");
      return;
    case Script::kLateFirst: {
      if (n > 1) break;
      (void)c.accept(inv, options_.id);
      // Keep heartbeating until past the deadline, then upload.
      const auto until = inv.plan.deadline_unix_ms + 300;
      while (!stop_ && std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                               .count() < until) {
        (void)c.heartbeat(options_.id);
        std::this_thread::sleep_for(50ms);
      }
      break;
    }
    case Script::kMalformedFirst:
      if (n == 1) {
        // 1: frames that do not decode; 2: a delta with another tensor table; 3: a NaN delta.
        std::vector<zmq::message_t> junk;
        junk.emplace_back("not a capnp header", 18);
        (void)c.send_frames(std::move(junk));
        auto other = inv.adapter;
        other.tensors.pop_back();
        std::vector<float> short_delta(other.total(), 0.0f);
        (void)c.upload({inv.round, inv.attempt, options_.id, other, 5, 1, 1, 1, 0}, short_delta);
        std::vector<float> nan_delta(inv.adapter.total(), 0.0f);
        nan_delta[0] = NAN;
        (void)c.upload({inv.round, inv.attempt, options_.id, inv.adapter, 5, 1, 1, 1, 0},
                       nan_delta);
      }
      break;
    case Script::kNormal:
      break;
  }
  (void)c.accept(inv, options_.id);
  ++accepts_;
  upload(c, inv);
}

void ScriptedSite::run() {
  protocol::ClientConfig cc;
  cc.endpoint = endpoint_;
  cc.insecure = !options_.key.has_value();
  cc.key = options_.key;
  cc.server_key = options_.server;
  auto client = pc::CoordinatorClient::connect(context_, cc);
  if (!client) {
    std::lock_guard<std::mutex> lock(mutex_);
    errors_.push_back(client.error());
    return;
  }
  auto& c = client.value();
  const bool worker = options_.role == pc::Role::kWorker;
  const pc::Register reg{options_.role,
                         options_.id,
                         worker ? 0u : options_.dataset_size,
                         worker ? 0.0 : options_.epsilon_max,
                         worker ? 0.0 : options_.delta,
                         options_.compute_endpoint,
                         options_.public_key};
  while (!stop_ && !registered_) {
    auto r = c.register_site(reg, 500ms);
    if (r.ok() && r.value().accepted) {
      registered_ = true;
    } else if (r.ok() || r.error().code == protocol::ErrorCode::kUnauthorised) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        refusal_ = r.ok() ? r.value().reason : r.error().message;
      }
      refused_ = true;
      return;
    }
  }
  auto last_beat = std::chrono::steady_clock::now();
  while (!stop_) {
    if (std::chrono::steady_clock::now() - last_beat > 100ms) {
      (void)c.heartbeat(options_.id);
      last_beat = std::chrono::steady_clock::now();
    }
    auto m = c.receive(20ms);
    if (!m) continue;
    const auto& body = m.value().body;
    if (std::holds_alternative<pc::RoundInvitation>(body)) {
      on_invitation(c, m.value());
    } else if (const auto* ack = std::get_if<pc::UploadAck>(&body)) {
      if (ack->status == pc::UploadStatus::kAccepted) ++accepted_;
      if (ack->status == pc::UploadStatus::kLate) ++late_;
    } else if (const auto* e = std::get_if<pc::ErrorReply>(&body)) {
      std::lock_guard<std::mutex> lock(mutex_);
      errors_.push_back(e->error);
    } else if (std::holds_alternative<pc::Shutdown>(body)) {
      shutdown_ = true;
      return;
    }
  }
}

}  // namespace coordinator_test
