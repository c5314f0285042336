// The coordinator's peers: sending, the message handlers, the roster, liveness; and the public
// Coordinator class. The round engine is round_engine.cpp, setup setup.cpp (coordinator_impl.h).
#include "coordinator/coordinator.h"

#include <algorithm>

#include "coordinator_impl.h"
#include "protocol/coordinator_codec.h"
#include "protocol/messages.h"

namespace coordinator {
namespace {

using protocol::ErrorCode;
using protocol::make_error;
using json = nlohmann::json;
namespace pc = protocol::coord;

constexpr std::chrono::milliseconds kPollSlice{50};

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

bool Coordinator::Impl::should_log(const std::string& key) {
  const std::string& k = refusals.size() >= 4096 && !refusals.count(key) ? kOverflow : key;
  const uint64_t n = ++refusals[k];
  return n <= 10 || n % 1000 == 0;
}

protocol::Status Coordinator::Impl::send(std::string peer, pc::Message&& m) {
  auto frames = pc::encode(std::move(m));
  if (!frames) return frames.error();
  uint64_t n = 0;
  for (const auto& f : frames.value()) n += f.size();
  auto st = server->send_frames(peer, std::move(frames).value());
  if (st) {
    bytes_down += n;
    return st;
  }
  // The peer's queue is full (it does not read) or it is gone: sends never wait, so the other
  // peers are not delayed; a registered site is dropped until it registers again.
  if (SiteRecord* site = registry.find_by_peer(peer); site != nullptr) {
    log->warn("{} is not reading or is gone ({}): dropped until it registers again", site->id,
              st.error().message);
    events->write("peer_dropped", {{"site", site->id}, {"reason", st.error().message}});
    site->alive = false;
    site->peer.clear();
    if (collecting) drop(site->id, DropReason::kUnreachable, st.error().message);
  } else if (should_log("send:" + peer)) {
    log->warn("cannot send to an unregistered peer: {}", st.error().message);
  }
  return st;
}

void Coordinator::Impl::reply_error(const std::string& peer, const protocol::Error& e) {
  (void)send(peer, pc::Message{pc::ErrorReply{protocol::to_wire(e)}, {}});
}

void Coordinator::Impl::drop(const std::string& id, DropReason reason, const std::string& detail) {
  auto it = seats.find(id);
  if (it == seats.end() || !it->second.pending()) return;
  it->second.state = SeatState::kDropped;
  it->second.drop_reason = reason;
  const std::string_view why = drop_reason_name(reason);
  json f = {{"round", round}, {"attempt", attempt}, {"site", id}, {"reason", why}};
  if (!detail.empty()) f["detail"] = detail;
  events->write("participant_dropped", f);
  log->warn("round {} attempt {}: {} dropped ({}{}{})", round, attempt, id, why,
            detail.empty() ? "" : ": ", detail);
}

// --- The roster ----------------------------------------------------------------------------------

base::Status Coordinator::Impl::load_roster(bool initial) {
  std::error_code ec;
  const auto mtime = std::filesystem::last_write_time(cfg.roster_file, ec);
  const auto size = ec ? 0 : std::filesystem::file_size(cfg.roster_file, ec);
  auto loaded = Roster::load(cfg.roster_file);
  if (!loaded) {
    if (initial) return loaded.error();
    // Keep what we have; do not retry the same file until it changes again.
    if (!ec) roster_mtime = mtime, roster_size = size;
    log->error("roster {} refused, keeping the previous one: {}", cfg.roster_file.string(),
               loaded.error().message);
    events->write("roster_refused",
                  {{"path", cfg.roster_file.string()}, {"error", loaded.error().message}});
    return base::ok_status();
  }
  if (!ec) roster_mtime = mtime, roster_size = size;
  roster = std::move(loaded).value();
  unlisted_logged.clear();
  if (own_zap)
    own_zap->set_allow_list(roster->allow_list(cfg.allow.value_or(protocol::AllowList{})));
  events->write("roster_loaded", {{"path", cfg.roster_file.string()}, {"entries", roster->size()}});
  log->info("roster {}: {} entries", cfg.roster_file.string(), roster->size());
  if (!initial) revoke_disallowed();
  return base::ok_status();
}

// Sites whose key, id, role or endpoint the new roster no longer allows are cut off: they must
// register again (and will be refused if still not allowed).
void Coordinator::Impl::revoke_disallowed() {
  for (const auto& [id, site] : registry.sites()) {
    if (site.peer.empty()) continue;
    const RosterEntry* e = roster->find_key(site.auth_key);
    std::string why;
    if (e == nullptr) {
      why = "its key is no longer in the roster";
    } else if (e->id != id || e->role != site.role) {
      why = "its key is now " + std::string(pc::role_name(e->role)) + " '" + e->id + "'";
    } else if (site.role == pc::Role::kWorker &&
               (e->endpoint != site.compute_endpoint || e->key != site.public_key)) {
      why = "its roster endpoint or key changed";
    }
    if (why.empty()) continue;
    SiteRecord* s = registry.find(id);
    s->alive = false;
    s->peer.clear();
    log->warn("{} revoked by the roster: {}", id, why);
    events->write("site_revoked", {{"site", id}, {"reason", why}});
    if (collecting) drop(id, DropReason::kRevoked, why);
  }
}

void Coordinator::Impl::poll_roster() {
  if (cfg.roster_file.empty()) return;
  const bool asked = roster_reload.exchange(false);
  if (!asked && Clock::now() - roster_polled < std::chrono::seconds(1)) return;
  roster_polled = Clock::now();
  std::error_code ec;
  const auto mtime = std::filesystem::last_write_time(cfg.roster_file, ec);
  const auto size = ec ? 0 : std::filesystem::file_size(cfg.roster_file, ec);
  if (!asked && !ec && mtime == roster_mtime && size == roster_size) return;
  if (ec && !asked) return;  // gone for a moment (an editor replacing it): keep the roster
  (void)load_roster(/*initial=*/false);
}

// --- Messages ------------------------------------------------------------------------------------

void Coordinator::Impl::pump(Clock::time_point until) {
  poll_roster();
  for (int i = 0; i < 256; ++i) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    const auto wait = i == 0 ? std::clamp(left, std::chrono::milliseconds(0), kPollSlice)
                             : std::chrono::milliseconds(0);
    auto in = server->receive_frames(wait);
    if (!in) {
      if (in.error().code != ErrorCode::kTimeout) {
        log->warn("receive failed: {}", in.error().to_string());
      }
      break;
    }
    handle(std::move(in).value());
  }
  const auto timeout = cfg.heartbeat_interval * cfg.missed_heartbeats;
  for (const auto& id : registry.sweep(Clock::now(), timeout)) {
    log->warn("{} missed {} heartbeats: marked dead", id, cfg.missed_heartbeats);
    events->write("site_dead", {{"site", id}});
    if (collecting) drop(id, DropReason::kDead);
  }
}

void Coordinator::Impl::handle(protocol::RawIncoming&& in) {
  const auto now = Clock::now();
  if (roster && roster->find_key(in.user_id) == nullptr) {
    // Admitted by the allow-list but not in the roster: refused before decoding anything.
    if (unlisted_logged.size() < 1024 && unlisted_logged.insert(in.user_id).second) {
      log->warn("refused a message from key {}: not in the roster", in.user_id);
      events->write("message_refused", {{"key", in.user_id}, {"error", "key not in the roster"}});
    }
    return reply_error(in.peer,
                       make_error(ErrorCode::kUnauthorised, "this key is not in the roster"));
  }
  if (!in.frames) {
    log->warn("malformed message: {}", in.frames.error().to_string());
    return reply_error(in.peer, in.frames.error());
  }
  uint64_t bytes = 0;
  for (const auto& f : in.frames.value()) bytes += f.size();
  pc::Message m;
  SiteRecord* site = admit(in, bytes, &m);
  if (site == nullptr) return;
  site->last_seen = now;
  if (!site->alive) {
    site->alive = true;
    log->info("{} is alive again", site->id);
  }
  handle_site_message(*site, in.peer, std::move(m), bytes);
}

SiteRecord* Coordinator::Impl::admit(protocol::RawIncoming& in, uint64_t bytes, pc::Message* m) {
  SiteRecord* site = registry.find_by_peer(in.peer);
  if (site == nullptr && in.frames.value().size() > 1) {
    // Only an invited site uploads: a blob from a peer that has not registered is not read.
    if (should_log(in.user_id))
      log->warn("refused a {}-byte upload from an unregistered peer", bytes);
    reply_error(in.peer, make_error(ErrorCode::kUnauthorised, "register first"));
    return nullptr;
  }
  auto decoded = pc::decode(std::move(in.frames).value(), limits);
  if (!decoded) {
    if (should_log(in.user_id)) {
      log->warn("malformed message from {}: {}",
                site ? site->id : std::string("an unregistered peer"), decoded.error().to_string());
      if (site != nullptr) {
        events->write("message_refused", {{"site", site->id}, {"error", decoded.error().message}});
      }
    }
    reply_error(in.peer, decoded.error());
    return nullptr;
  }
  if (const auto* r = std::get_if<pc::Register>(&decoded.value().body)) {
    handle_register(*r, in);
    return nullptr;
  }
  if (std::holds_alternative<pc::StatusRequest>(decoded.value().body)) {
    // fedctl status: any admitted key, on any connection; read-only (status.cpp).
    answer_status(in.peer);
    return nullptr;
  }
  if (site == nullptr) {
    reply_error(in.peer, make_error(ErrorCode::kUnauthorised, "register first"));
    return nullptr;
  }
  if (site->auth_key != in.user_id) {
    // A connection that took over a routing id: it is not the key this site registered with.
    log->warn("refused a message on {}'s connection from another key", site->id);
    reply_error(in.peer,
                make_error(ErrorCode::kUnauthorised, "this connection's key is not the one '",
                           site->id, "' registered with; register first"));
    return nullptr;
  }
  *m = std::move(decoded).value();
  return site;
}

void Coordinator::Impl::handle_site_message(SiteRecord& site, const std::string& peer,
                                            pc::Message&& m, uint64_t bytes) {
  auto wrong_id = [&](const std::string& id) {
    if (id == site.id) return false;
    reply_error(peer, make_error(ErrorCode::kUnauthorised, "this connection is site '", site.id,
                                 "', not '", id, "'"));
    return true;
  };
  auto current = [&](uint32_t r, uint32_t a) { return collecting && r == round && a == attempt; };
  if (const auto* h = std::get_if<pc::Heartbeat>(&m.body)) {
    if (wrong_id(h->site_id)) return;
    (void)send(peer, pc::Message{pc::Heartbeat{"coordinator", unix_ms() * 1000000}, {}});
  } else if (const auto* a = std::get_if<pc::Accept>(&m.body)) {
    if (wrong_id(a->site_id)) return;
    auto it = seats.find(site.id);
    if (!current(a->round, a->attempt) || it == seats.end()) return;
    it->second.accepted = true;
    if (it->second.state == SeatState::kInvited) {
      it->second.state = SeatState::kAccepted;
      log->info("round {} attempt {}: {} accepted, training", round, attempt, site.id);
    }
  } else if (const auto* d = std::get_if<pc::Decline>(&m.body)) {
    if (wrong_id(d->site_id)) return;
    if (current(d->round, d->attempt)) handle_decline(site, *d);
    if (d->reason == pc::DeclineReason::kMisconfigured && !site.misconfigured) {
      // It would fail every attempt the same way: out until it registers again.
      site.misconfigured = true;
      log->warn("{} is misconfigured ({}): not selected until it registers again", site.id,
                d->detail);
      events->write("site_misconfigured", {{"site", site.id}, {"detail", d->detail}});
    }
  } else if (std::holds_alternative<pc::DeltaUpload>(m.body)) {
    handle_upload(site, std::move(m), bytes);
  } else {
    reply_error(peer, make_error(ErrorCode::kMalformedRequest, "unexpected ", pc::body_name(m.body),
                                 " from a site"));
  }
}

void Coordinator::Impl::handle_decline(SiteRecord& site, const pc::Decline& d) {
  drop(site.id, DropReason::kDeclined,
       std::string(pc::decline_reason_name(d.reason)) + (d.detail.empty() ? "" : ": " + d.detail));
}

void Coordinator::Impl::handle_register(const pc::Register& r, const protocol::RawIncoming& in) {
  auto refuse = [&](const protocol::Error& e) {
    if (should_log(in.user_id)) {
      log->warn("registration of {} '{}' refused: {}", pc::role_name(r.role), r.site_id, e.message);
      events->write("registration_refused",
                    {{"site", r.site_id}, {"role", pc::role_name(r.role)}, {"error", e.message}});
    }
    (void)send(in.peer,
               pc::Message{pc::RegisterReply{false, protocol::to_wire(e).message, 0, round}, {}});
  };
  if (roster) {
    if (auto st = check_register(*roster, in.user_id, r); !st) return refuse(st.error());
  }
  if (r.role == pc::Role::kWorker && r.public_key.empty() && !cfg.insecure) {
    return refuse(make_error(ErrorCode::kUnauthorised,
                             "a worker must announce its CURVE key (an empty key is allowed only "
                             "when the coordinator is insecure on loopback)"));
  }
  auto s = registry.register_site(r, in.peer, in.user_id, Clock::now(), roster.has_value());
  if (!s) return refuse(s.error());
  events->write(
      "site_registered",
      {{"site", r.site_id}, {"role", pc::role_name(r.role)}, {"dataset_size", r.dataset_size}});
  log->info("{} registered as a {}", r.site_id, pc::role_name(r.role));
  (void)send(
      in.peer,
      pc::Message{
          pc::RegisterReply{true, "", static_cast<uint32_t>(cfg.heartbeat_interval.count()), round},
          {}});
}

// --- Uploads -------------------------------------------------------------------------------------

void Coordinator::Impl::handle_upload(SiteRecord& s, pc::Message&& m, uint64_t bytes) {
  const auto& u = std::get<pc::DeltaUpload>(m.body);
  bytes_up += bytes;
  if (u.site_id != s.id) {
    return reply_error(s.peer, make_error(ErrorCode::kUnauthorised, "this connection is site '",
                                          s.id, "', not '", u.site_id, "'"));
  }
  Seat* seat = upload_seat(s, u);
  if (seat == nullptr || upload_refused(s, u)) return;
  const uint64_t weight = cfg.max_example_weight > 0
                              ? std::min(u.example_count, cfg.max_example_weight)
                              : u.example_count;
  auto values = pc::blob_floats(m.blobs[u.delta.blob]);
  if (!values) return reply_error(s.peer, values.error());
  if (auto st = deltas->add(s.id, values.value(), weight); !st) {
    log->warn("delta from {} refused: {}", s.id, st.error().message);
    return reply_error(s.peer, st.error());
  }
  record_upload(s, *seat, u, weight, bytes);
  (void)send(s.peer,
             pc::Message{pc::UploadAck{u.round, u.attempt, pc::UploadStatus::kAccepted}, {}});
}

Seat* Coordinator::Impl::upload_seat(SiteRecord& s, const pc::DeltaUpload& u) {
  auto ack = [&](pc::UploadStatus st) {
    (void)send(s.peer, pc::Message{pc::UploadAck{u.round, u.attempt, st}, {}});
    return nullptr;
  };
  const bool past = u.round < round || (u.round == round && u.attempt < attempt) ||
                    (u.round == round && u.attempt == attempt && !collecting);
  const bool is_current = collecting && u.round == round && u.attempt == attempt;
  if (past || (is_current && Clock::now() > deadline)) {
    events->write("delta_late", {{"round", u.round},
                                 {"attempt", u.attempt},
                                 {"site", s.id},
                                 {"current_round", round},
                                 {"current_attempt", attempt}});
    log->warn("late delta from {} for round {} attempt {}: dropped", s.id, u.round, u.attempt);
    return ack(pc::UploadStatus::kLate);
  }
  if (!is_current) {
    reply_error(s.peer, make_error(ErrorCode::kMalformedRequest, "upload for round ", u.round,
                                   " attempt ", u.attempt, ", which has not started"));
    return nullptr;
  }
  auto it = seats.find(s.id);
  if (it == seats.end() || it->second.declined()) return ack(pc::UploadStatus::kNotSelected);
  if (it->second.state == SeatState::kUploaded) return ack(pc::UploadStatus::kDuplicate);
  return &it->second;
}

bool Coordinator::Impl::upload_refused(SiteRecord& s, const pc::DeltaUpload& u) {
  if (!global.adapter.same_layout(u.delta)) {
    log->warn("delta from {} refused: tensor table differs from the global adapter", s.id);
    if (!s.misconfigured) {
      s.misconfigured = true;  // it trains another model: every attempt would fail the same way
      events->write("site_misconfigured",
                    {{"site", s.id}, {"detail", "delta tensor table differs from the adapter's"}});
    }
    reply_error(s.peer, make_error(ErrorCode::kShapeMismatch,
                                   "the delta's tensor table differs from the global "
                                   "adapter's"));
    return true;
  }
  if (u.example_count > s.dataset_size) {
    log->warn("delta from {} refused: {} examples, {} registered", s.id, u.example_count,
              s.dataset_size);
    reply_error(s.peer, make_error(ErrorCode::kMalformedRequest, "example count ", u.example_count,
                                   " exceeds the registered dataset size ", s.dataset_size));
    return true;
  }
  return false;
}

void Coordinator::Impl::record_upload(SiteRecord& s, Seat& seat, const pc::DeltaUpload& u,
                                      uint64_t weight, uint64_t bytes) {
  seat.state = SeatState::kUploaded;
  seat.examples = u.example_count;
  seat.weight = weight;
  seat.train_loss = u.train_loss;
  seat.heldout_loss = u.heldout_loss;
  seat.steps = u.steps;
  seat.epsilon_reported = u.epsilon_spent;
  json received = {{"round", round},
                   {"attempt", attempt},
                   {"site", s.id},
                   {"examples", u.example_count},
                   {"weight", weight},
                   {"steps", u.steps},
                   {"epsilon_reported", u.epsilon_spent},
                   {"bytes", bytes}};
  // Losses are optional (NaN: not reported); only reported ones are logged.
  if (pc::loss_reported(u.train_loss)) received["train_loss"] = u.train_loss;
  if (pc::loss_reported(u.heldout_loss)) received["heldout_loss"] = u.heldout_loss;
  events->write("delta_received", received);
  if (pc::loss_reported(u.heldout_loss)) {
    log->info(
        "round {} attempt {}: {} uploaded its delta ({} examples, train loss {:.4f}, held-out "
        "{:.4f})",
        round, attempt, s.id, u.example_count, u.train_loss, u.heldout_loss);
  } else {
    log->info(
        "round {} attempt {}: {} uploaded its delta ({} examples; its losses stay at the site)",
        round, attempt, s.id, u.example_count);
  }
}

// --- Coordinator ---------------------------------------------------------------------------------

Coordinator::Coordinator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Coordinator::~Coordinator() = default;

base::Result<std::unique_ptr<Coordinator>> Coordinator::create(zmq::context_t& context,
                                                               CoordinatorConfig config) {
  auto impl = std::make_unique<Impl>(context, std::move(config));
  auto init = base::capture([&] { return impl->init(); });
  if (!init)
    return base::Error{init.error().code, "coordinator setup failed: " + init.error().message};
  if (!init.value()) return init.value().error();
  return std::unique_ptr<Coordinator>(new Coordinator(std::move(impl)));
}

const std::string& Coordinator::endpoint() const {
  return impl_->server->endpoint();
}

void Coordinator::reload_roster() {
  impl_->roster_reload.store(true);
}

uint32_t Coordinator::next_round() const {
  return impl_->round;
}

base::Result<RunSummary> Coordinator::run(std::stop_token stop) {
  auto run = base::capture([&] { return impl_->run(stop); });
  if (!run) return base::Error{run.error().code, "coordinator failed: " + run.error().message};
  return std::move(run).value();
}

}  // namespace coordinator
