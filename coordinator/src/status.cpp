// fedctl status: the coordinator's answer to a StatusRequest, read from its state (registry,
// round engine, accountant) without changing any of it, and the recent failures it keeps for it
// (coordinator_impl.h, FailureRecord).
#include <algorithm>

#include "coordinator_impl.h"
#include "protocol/coordinator_codec.h"

namespace coordinator {
namespace {

namespace pc = protocol::coord;
using json = nlohmann::json;

int64_t ms_since(Clock::time_point t, Clock::time_point now) {
  return std::max<int64_t>(0,
                           std::chrono::duration_cast<std::chrono::milliseconds>(now - t).count());
}

// `text` cut to `max` bytes with control characters replaced by blanks (what travels in a
// StatusReply must pass check_text).
std::string clean_text(std::string text, size_t max) {
  if (text.size() > max) text.resize(max);
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return text;
}

pc::SeatStatus seat_status(const Seat& seat) {
  switch (seat.state) {
    case SeatState::kInvited:
      return pc::SeatStatus::kInvited;
    case SeatState::kAccepted:
      return pc::SeatStatus::kTraining;
    case SeatState::kUploaded:
      return pc::SeatStatus::kUploaded;
    case SeatState::kDropped:
      return pc::SeatStatus::kDropped;
  }
  return pc::SeatStatus::kNone;
}

// The base model adapter_config.json names ("" when it names none or the name cannot travel).
std::string adapter_base_model(const std::string& config_json) {
  const json j = json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return "";
  const auto it = j.find("base_model_name_or_path");
  if (it == j.end() || !it->is_string()) return "";
  const std::string name = it->get<std::string>();
  if (name.size() > protocol::kMaxIdBytes) return "";
  return clean_text(name, protocol::kMaxIdBytes);
}

}  // namespace

bool status_failure_event(std::string_view event) {
  for (const char* name :
       {"participant_dropped", "round_failed", "delta_late", "message_refused",
        "registration_refused", "site_dead", "site_misconfigured", "site_revoked", "peer_dropped",
        "budget_exhausted", "budget_insufficient", "checkpoint_failed", "roster_refused"}) {
    if (event == name) return true;
  }
  return false;
}

void Coordinator::Impl::note_event(std::string_view event, const json& fields) {
  if (!status_failure_event(event)) return;
  FailureRecord f;
  f.event = std::string(event);
  f.at = Clock::now();
  f.round = round;
  if (fields.is_object()) {
    if (const auto it = fields.find("round"); it != fields.end() && it->is_number_unsigned()) {
      f.round = it->get<uint32_t>();
    }
    if (const auto it = fields.find("site");
        it != fields.end() && it->is_string() && pc::is_site_id(it->get<std::string>())) {
      f.site = it->get<std::string>();
    }
    for (const char* key : {"reason", "detail", "error"}) {
      const auto it = fields.find(key);
      if (it == fields.end() || !it->is_string()) continue;
      if (!f.detail.empty()) f.detail += ": ";
      f.detail += it->get<std::string>();
    }
  }
  f.detail = clean_text(std::move(f.detail), protocol::kMaxErrorBytes);
  recent_failures.push_back(std::move(f));
  while (recent_failures.size() > pc::kMaxStatusFailures) recent_failures.pop_front();
}

pc::StatusReply Coordinator::Impl::status_reply() {
  const auto now = Clock::now();
  if (!model_name) model_name = adapter_base_model(global.config_json);
  pc::StatusReply r;
  r.run_id = run_id;
  r.model = *model_name;
  r.round = round;
  r.rounds = cfg.rounds;
  r.attempt = attempt;
  r.phase = collecting     ? pc::RoundPhase::kCollecting
            : attempt_open ? pc::RoundPhase::kAggregating
                           : pc::RoundPhase::kWaiting;
  r.deadline_in_ms =
      collecting
          ? std::max<int64_t>(
                0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count())
          : 0;
  r.strategy = strategy ? clean_text(std::string(strategy->name()), pc::kMaxStatusNameBytes) : "";
  r.min_participants = cfg.min_participants;
  for (const auto& [id, site] : registry.sites()) {
    if (r.sites.size() == pc::kMaxStatusSites) {
      ++r.sites_omitted;
      continue;
    }
    pc::SiteStatus s;
    s.site_id = id;
    s.role = site.role;
    s.alive = site.alive;
    s.heartbeat_age_ms = site.last_seen == Clock::time_point{} ? -1 : ms_since(site.last_seen, now);
    s.dataset_size = site.dataset_size;
    if (site.budget) {
      s.epsilon_spent = site.budget->spent();
      s.epsilon_budget = site.budget->epsilon_max();
    }
    s.exhausted = site.exhausted;
    s.misconfigured = site.misconfigured;
    if (const auto it = seats.find(id); attempt_open && it != seats.end()) {
      s.seat = seat_status(it->second);
      if (it->second.state == SeatState::kDropped) {
        s.drop_reason = std::string(drop_reason_name(it->second.drop_reason));
      }
    }
    if (site.role == pc::Role::kWorker) {
      s.compute_endpoint = clean_text(site.compute_endpoint, pc::kMaxEndpointBytes);
    }
    r.sites.push_back(std::move(s));
  }
  for (const auto& f : recent_failures) {
    r.failures.push_back({f.event, ms_since(f.at, now), f.round, f.site, f.detail});
  }
  return r;
}

void Coordinator::Impl::answer_status(const std::string& peer) {
  pc::StatusReply reply = status_reply();
  if (auto st = pc::validate(pc::Body{reply}, {}); !st) {
    // Something of the state does not fit the message (it should not happen): say so.
    log->warn("status request: {}", st.error().message);
    return reply_error(peer, st.error());
  }
  (void)send(peer, pc::Message{std::move(reply), {}});
}

}  // namespace coordinator
