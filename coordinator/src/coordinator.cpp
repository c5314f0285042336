// The round engine (see coordinator.h for the state machine).
#include "base/dir_lock.h"
#include "base/error.h"
#include "coordinator/coordinator.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <set>

#include "coordinator/accumulator.h"
#include "coordinator/checkpoint.h"
#include "coordinator/drbg.h"
#include "coordinator/event_log.h"
#include "coordinator/files.h"
#include "coordinator/peft.h"
#include "coordinator/registry.h"
#include "coordinator/roster.h"
#include "privacy/accountant.h"
#include "protocol/coordinator_codec.h"
#include "protocol/messages.h"
#include "protocol/socket.h"

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

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

protocol::Status check_config(const CoordinatorConfig& c) {
  auto bad = [](auto... parts) { return make_error(ErrorCode::kInvalidArgument, parts...); };
  if (c.run_dir.empty()) return bad("run_dir is required");
  if (c.rounds == 0) return bad("rounds must be >= 1");
  if (!(c.fraction > 0 && c.fraction <= 1)) return bad("fraction must be in (0, 1]");
  if (c.min_participants == 0) return bad("min_participants must be >= 1");
  if (c.max_attempts == 0) return bad("max_attempts must be >= 1");
  if (c.round_timeout.count() <= 0 || c.heartbeat_interval.count() <= 0 ||
      c.wait_for_sites.count() <= 0) {
    return bad("round_timeout, heartbeat_interval and wait_for_sites must be > 0");
  }
  if (c.missed_heartbeats == 0) return bad("missed_heartbeats must be >= 1");
  if (c.handshake_timeout.count() <= 0) return bad("handshake_timeout must be > 0");
  const auto& p = c.plan;
  if (p.local_steps == 0) return bad("local_steps must be >= 1");
  if (!(p.learning_rate > 0) || !std::isfinite(p.learning_rate)) return bad("lr must be > 0");
  if (!(p.sample_rate > 0 && p.sample_rate <= 1)) return bad("sample_rate must be in (0, 1]");
  if (!(p.noise_multiplier > 0) || !std::isfinite(p.noise_multiplier)) {
    return bad("noise_multiplier must be > 0");
  }
  if (!(p.clip_norm > 0) || !std::isfinite(p.clip_norm)) return bad("clip_norm must be > 0");
  if (!(p.delta > 0 && p.delta < 1)) return bad("delta must be in (0, 1)");
  if (p.participant_dp) {
    if (!(p.participant_clip > 0) || !std::isfinite(p.participant_clip)) {
      return bad("participant_clip must be > 0 with participant-level DP");
    }
    if (!(p.participant_sigma > 0) || !std::isfinite(p.participant_sigma)) {
      return bad("participant_sigma must be > 0 with participant-level DP");
    }
  } else if (!std::isfinite(p.participant_clip) || !std::isfinite(p.participant_sigma)) {
    return bad("participant_clip and participant_sigma must be finite");
  }
  if (!c.insecure && !c.key) return bad("CURVE needs the coordinator's key (or --insecure)");
  if (!c.insecure && !c.allow && c.zap == nullptr && c.roster_file.empty()) {
    return bad("CURVE needs a roster or an allow-list of participant and worker keys");
  }
  if (c.insecure && !c.roster_file.empty()) {
    return bad("a roster binds CURVE keys: it needs CURVE (not --insecure)");
  }
  return protocol::ok_status();
}

}  // namespace

struct Coordinator::Impl {
  struct Seat {  // a selected site in the current attempt
    bool accepted = false, uploaded = false, dropped = false;
    std::string drop_reason;
    uint64_t examples = 0, weight = 0;
    double train_loss = 0, heldout_loss = 0, epsilon_reported = 0;
    uint32_t steps = 0;
  };

  Impl(zmq::context_t& context, CoordinatorConfig config)
      : ctx(context), cfg(std::move(config)), drbg(cfg.seed) {}

  zmq::context_t& ctx;
  CoordinatorConfig cfg;
  std::shared_ptr<spdlog::logger> log;
  std::unique_ptr<protocol::ZapHandler> own_zap;  // destroyed after the server
  // The roster (empty optional: none) and what the file looked like when it was read.
  std::optional<Roster> roster;
  std::filesystem::file_time_type roster_mtime{};
  uintmax_t roster_size = 0;
  Clock::time_point roster_polled{};
  std::atomic<bool> roster_reload{false};
  std::set<std::string> unlisted_logged;     // keys refused as not in the roster, logged once
  std::map<std::string, uint64_t> refusals;  // per key: refusals so far (to bound log lines)

  // True for the first 10 refusals of a key and every 1000th after (one key cannot flood the
  // log or events.jsonl); at most 4096 keys are tracked, the rest share one count.
  bool should_log(const std::string& key) {
    const std::string& k = refusals.size() >= 4096 && !refusals.count(key) ? kOverflow : key;
    const uint64_t n = ++refusals[k];
    return n <= 10 || n % 1000 == 0;
  }
  inline static const std::string kOverflow = "(more keys)";
  std::optional<base::DirLock> run_lock;  // RUN/.lock, held while this coordinator lives
  protocol::Limits limits;          // of the server socket and the decoder
  std::optional<protocol::Server> server;
  std::optional<EventLog> events;
  Registry registry;
  Drbg drbg;
  PeftAdapter global;
  std::unique_ptr<Strategy> strategy;
  uint32_t round = 1;
  std::string run_id;  // drawn when the run starts, kept in the checkpoint
  privacy::Phase phase;
  // Participant-level DP over the federation: one step per attempt that received deltas.
  privacy::RdpAccountant participant_accountant;

  // The current attempt.
  bool collecting = false;
  uint32_t attempt = 1;
  std::map<std::string, Seat> seats;
  Clock::time_point deadline{};
  std::optional<DeltaAccumulator> acc;
  uint64_t bytes_up = 0, bytes_down = 0;

  std::filesystem::path checkpoint_path() const {
    return cfg.run_dir / "checkpoints" / "latest.ckpt";
  }

  protocol::Status init();
  protocol::Result<RunSummary> run(std::stop_token stop);

  // One selection of the current round: true when it completed, false when it must be retried.
  protocol::Result<bool> run_attempt(std::vector<SiteRecord*> eligible, std::stop_token stop);
  void mark_exhausted();
  void pump(Clock::time_point until);
  void handle(protocol::RawIncoming&& in);
  void handle_register(const pc::Register& r, const protocol::RawIncoming& in);
  protocol::Status load_roster(bool initial);
  void poll_roster();
  void handle_upload(SiteRecord& s, pc::Message&& m, uint64_t bytes);
  void drop(const std::string& id, const std::string& reason, const std::string& detail = "");
  protocol::Status send(std::string peer, pc::Message&& m);
  void reply_error(const std::string& peer, const protocol::Error& e);
  // The checkpoint after round `completed`, the next round to start with `next_attempt`.
  protocol::Status write_checkpoint_now(uint32_t completed, uint32_t next_attempt);
  // Writes it, retrying with backoff (serving peers meanwhile) until it succeeds or `stop` is
  // requested; failures are logged and written as checkpoint_failed (a bounded number per
  // streak), the recovery as checkpoint_recovered.
  protocol::Status checkpoint_with_retry(uint32_t completed, uint32_t next_attempt,
                                         std::stop_token stop);
  // Charges one phase to every site that accepted or uploaded in the current attempt.
  void charge_attempt();
  json epsilon_map();
  double participant_epsilon() const;
};

protocol::Status Coordinator::Impl::init() {
  if (auto s = check_config(cfg); !s) return s;
  log = std::make_shared<spdlog::logger>("coordinator",
                                         std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  log->set_pattern("%H:%M:%S.%e coordinator %^%l%$ %v");
  std::error_code ec;
  std::filesystem::create_directories(cfg.run_dir / "checkpoints", ec);
  if (ec) {
    return make_error(ErrorCode::kIo, "cannot create ", cfg.run_dir.string(), ": ", ec.message());
  }
  try {
    run_lock.emplace(base::DirLock::acquire(cfg.run_dir, "coordinator"));
  } catch (const base::IoError& e) {
    return make_error(ErrorCode::kInvalidArgument, "run directory ", e.what());
  }
  auto ev = EventLog::open(cfg.run_dir / "events.jsonl");
  if (!ev) return ev.error();
  events.emplace(std::move(ev).value());

  StrategyState restored;
  bool resumed = false;
  if (std::filesystem::exists(checkpoint_path())) {
    auto c = read_checkpoint(checkpoint_path());
    if (!c) return c.error();
    if (c.value().strategy != cfg.strategy.name) {
      return make_error(ErrorCode::kInvalidArgument, "the checkpoint was written by strategy ",
                        c.value().strategy, ", this run is configured for ", cfg.strategy.name);
    }
    auto d = Drbg::from_state(c.value().drbg_state);
    if (!d) return d.error();
    auto r = Registry::from_json(c.value().registry_json);
    if (!r) return r.error();
    drbg = d.value();
    registry = std::move(r).value();
    global = {std::move(c.value().global), std::move(c.value().adapter_config)};
    restored = std::move(c.value().strategy_state);
    round = c.value().round + 1;
    attempt = c.value().next_attempt;
    run_id = c.value().run_id;
    if (!c.value().participant_accountant_json.empty()) {
      try {
        participant_accountant =
            privacy::RdpAccountant::from_json(c.value().participant_accountant_json);
      } catch (const std::exception& e) {
        return make_error(ErrorCode::kInvalidArgument, checkpoint_path().string(),
                          ": participant-level DP accountant: ", e.what());
      }
    }
    resumed = true;
  } else {
    auto p = load_peft(cfg.initial_adapter);
    if (!p) return p.error();
    global = std::move(p).value();
  }
  // The run id: the checkpoint's; else RUN/run_id (a run stopped before its first checkpoint
  // is the same run); else the configured one (replays); else drawn now and written there.
  const auto id_file = cfg.run_dir / "run_id";
  if (run_id.empty() && std::filesystem::exists(id_file)) {
    auto bytes = read_file(id_file, 64);
    if (!bytes) return bytes.error();
    std::string text(bytes.value().begin(), bytes.value().end());
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (!pc::is_run_id(text)) {
      return make_error(ErrorCode::kInvalidArgument, id_file.string(),
                        " does not hold a run id (32 lowercase hex characters)");
    }
    run_id = text;
  }
  if (run_id.empty() && !cfg.run_id.empty()) {  // a new run replaying a given id
    if (!pc::is_run_id(cfg.run_id)) {
      return make_error(ErrorCode::kInvalidArgument, "run id '", cfg.run_id,
                        "' is not 32 lowercase hex digits");
    }
    run_id = cfg.run_id;
  }
  if (run_id.empty()) {  // a new run (or a checkpoint older than run ids)
    auto id = new_run_id();
    if (!id) return id.error();
    run_id = std::move(id).value();
  }
  if (!std::filesystem::exists(id_file)) {
    if (auto s = write_file_atomic(id_file, run_id + "\n"); !s) return s;
  }
  auto st = make_strategy(cfg.strategy, global.adapter.values.size());
  if (!st) return st.error();
  strategy = std::move(st).value();
  if (resumed) {
    if (auto s = strategy->restore(std::move(restored)); !s) return s;
    log->info("resuming run {} from {} at round {}", run_id, checkpoint_path().string(), round);
  }
  phase = {cfg.plan.sample_rate, cfg.plan.noise_multiplier,
           static_cast<int64_t>(cfg.plan.local_steps)};

  if (!cfg.roster_file.empty()) {
    if (auto s = load_roster(/*initial=*/true); !s) return s;
  }
  const protocol::ZapHandler* zap = cfg.zap;
  if (!cfg.insecure && zap == nullptr) {
    auto logger = log;
    const protocol::AllowList base = cfg.allow.value_or(protocol::AllowList{});
    const protocol::AllowList allow = roster ? roster->allow_list(base) : base;
    auto z = protocol::ZapHandler::start(
        ctx, allow, [logger](std::string_view line) { logger->warn("refused: {}", line); });
    if (!z) return z.error();
    own_zap = std::move(z).value();
    zap = own_zap.get();
  }
  // Bounded memory and no blocking per peer: frames no larger than the adapter (or a header),
  // one blob a message, few messages queued each way, sends that never wait (a peer that does
  // not read is dropped, see send()), unauthenticated connections closed after the handshake
  // timeout.
  const uint64_t adapter_bytes = global.adapter.values.size() * sizeof(float);
  limits.max_blobs = 1;
  limits.max_blob_bytes = std::max<uint64_t>(adapter_bytes, 1);
  limits.max_total_bytes = limits.max_header_bytes + limits.max_blob_bytes;
  protocol::SocketOptions so;
  so.limits = limits;
  so.high_water_mark = 16;
  so.receive_high_water_mark = 8;
  so.send_timeout = std::chrono::milliseconds(0);
  so.handshake_interval = cfg.handshake_timeout;
  protocol::ServerConfig sc{cfg.endpoint, cfg.insecure, cfg.key, zap, so};
  auto srv = protocol::Server::bind(ctx, sc);
  if (!srv) return srv.error();
  server.emplace(std::move(srv).value());
  log->info("listening on {} ({}), {} tensors / {} values, strategy {}", server->endpoint(),
            cfg.insecure ? "insecure" : "CURVE", global.adapter.tensors.size(),
            global.adapter.values.size(), strategy->name());
  return protocol::ok_status();
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
    if (collecting) drop(site->id, "unreachable", st.error().message);
  } else if (should_log("send:" + peer)) {
    log->warn("cannot send to an unregistered peer: {}", st.error().message);
  }
  return st;
}

void Coordinator::Impl::reply_error(const std::string& peer, const protocol::Error& e) {
  (void)send(peer, pc::Message{pc::ErrorReply{protocol::to_wire(e)}, {}});
}

double Coordinator::Impl::participant_epsilon() const {
  return participant_accountant.spent(cfg.plan.delta).epsilon;
}

json Coordinator::Impl::epsilon_map() {
  json eps = json::object();
  for (auto* p : registry.participants()) {
    if (p->budget) eps[p->id] = p->budget->spent();
  }
  return eps;
}

void Coordinator::Impl::drop(const std::string& id, const std::string& reason,
                             const std::string& detail) {
  auto it = seats.find(id);
  if (it == seats.end() || it->second.uploaded || it->second.dropped) return;
  it->second.dropped = true;
  it->second.drop_reason = reason;
  json f = {{"round", round}, {"attempt", attempt}, {"site", id}, {"reason", reason}};
  if (!detail.empty()) f["detail"] = detail;
  events->write("participant_dropped", f);
  log->warn("round {} attempt {}: {} dropped ({}{}{})", round, attempt, id, reason,
            detail.empty() ? "" : ": ", detail);
}

void Coordinator::Impl::mark_exhausted() {
  for (auto* p : registry.participants()) {
    if (!p->budget || p->exhausted) continue;
    std::string why;
    if (p->budget->would_exceed(phase, &why)) {
      p->exhausted = true;
      if (p->unfundable()) {
        events->write("budget_insufficient", {{"site", p->id},
                                              {"epsilon_max", p->budget->epsilon_max()},
                                              {"delta", p->budget->delta()},
                                              {"detail", why}});
        log->warn("{}: its privacy budget cannot fund one round ({}); never selected", p->id, why);
        continue;
      }
      events->write("budget_exhausted", {{"site", p->id},
                                         {"epsilon", p->budget->spent()},
                                         {"epsilon_max", p->budget->epsilon_max()},
                                         {"delta", p->budget->delta()},
                                         {"detail", why}});
      log->warn("{}: privacy budget exhausted ({}); never selected again", p->id, why);
    }
  }
}

protocol::Status Coordinator::Impl::load_roster(bool initial) {
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
    return protocol::ok_status();
  }
  if (!ec) roster_mtime = mtime, roster_size = size;
  roster = std::move(loaded).value();
  unlisted_logged.clear();
  if (own_zap)
    own_zap->set_allow_list(roster->allow_list(cfg.allow.value_or(protocol::AllowList{})));
  events->write("roster_loaded", {{"path", cfg.roster_file.string()}, {"entries", roster->size()}});
  log->info("roster {}: {} entries", cfg.roster_file.string(), roster->size());
  if (initial) return protocol::ok_status();
  // Sites whose key, id, role or endpoint the new roster no longer allows are cut off: they must
  // register again (and will be refused if still not allowed).
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
    if (collecting) drop(id, "revoked", why);
  }
  return protocol::ok_status();
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
    if (collecting) drop(id, "dead");
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
  SiteRecord* site = registry.find_by_peer(in.peer);
  if (site == nullptr && in.frames.value().size() > 1) {
    // Only an invited site uploads: a blob from a peer that has not registered is not read.
    if (should_log(in.user_id))
      log->warn("refused a {}-byte upload from an unregistered peer", bytes);
    return reply_error(in.peer, make_error(ErrorCode::kUnauthorised, "register first"));
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
    return reply_error(in.peer, decoded.error());
  }
  auto& m = decoded.value();
  if (const auto* r = std::get_if<pc::Register>(&m.body)) return handle_register(*r, in);
  if (site == nullptr) {
    return reply_error(in.peer, make_error(ErrorCode::kUnauthorised, "register first"));
  }
  if (site->auth_key != in.user_id) {
    // A connection that took over a routing id: it is not the key this site registered with.
    log->warn("refused a message on {}'s connection from another key", site->id);
    return reply_error(
        in.peer, make_error(ErrorCode::kUnauthorised, "this connection's key is not the one '",
                            site->id, "' registered with; register first"));
  }
  site->last_seen = now;
  if (!site->alive) {
    site->alive = true;
    log->info("{} is alive again", site->id);
  }
  auto wrong_id = [&](const std::string& id) {
    if (id == site->id) return false;
    reply_error(in.peer, make_error(ErrorCode::kUnauthorised, "this connection is site '", site->id,
                                    "', not '", id, "'"));
    return true;
  };
  auto current = [&](uint32_t r, uint32_t a) { return collecting && r == round && a == attempt; };
  if (const auto* h = std::get_if<pc::Heartbeat>(&m.body)) {
    if (wrong_id(h->site_id)) return;
    (void)send(in.peer, pc::Message{pc::Heartbeat{"coordinator", unix_ms() * 1000000}, {}});
  } else if (const auto* a = std::get_if<pc::Accept>(&m.body)) {
    if (wrong_id(a->site_id)) return;
    if (current(a->round, a->attempt) && seats.count(site->id)) seats[site->id].accepted = true;
  } else if (const auto* d = std::get_if<pc::Decline>(&m.body)) {
    if (wrong_id(d->site_id)) return;
    if (current(d->round, d->attempt)) {
      drop(site->id, "declined",
           std::string(pc::decline_reason_name(d->reason)) +
               (d->detail.empty() ? "" : ": " + d->detail));
    }
    if (d->reason == pc::DeclineReason::kMisconfigured && !site->misconfigured) {
      // It would fail every attempt the same way: out until it registers again.
      site->misconfigured = true;
      log->warn("{} is misconfigured ({}): not selected until it registers again", site->id,
                d->detail);
      events->write("site_misconfigured", {{"site", site->id}, {"detail", d->detail}});
    }
  } else if (std::holds_alternative<pc::DeltaUpload>(m.body)) {
    handle_upload(*site, std::move(m), bytes);
  } else {
    reply_error(in.peer, make_error(ErrorCode::kMalformedRequest, "unexpected ",
                                    pc::body_name(m.body), " from a site"));
  }
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

void Coordinator::Impl::handle_upload(SiteRecord& s, pc::Message&& m, uint64_t bytes) {
  const auto& u = std::get<pc::DeltaUpload>(m.body);
  bytes_up += bytes;
  if (u.site_id != s.id) {
    return reply_error(s.peer, make_error(ErrorCode::kUnauthorised, "this connection is site '",
                                          s.id, "', not '", u.site_id, "'"));
  }
  auto ack = [&](pc::UploadStatus st) {
    (void)send(s.peer, pc::Message{pc::UploadAck{u.round, u.attempt, st}, {}});
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
    return reply_error(
        s.peer, make_error(ErrorCode::kMalformedRequest, "upload for round ", u.round, " attempt ",
                           u.attempt, ", which has not started"));
  }
  auto it = seats.find(s.id);
  if (it == seats.end() || (it->second.dropped && it->second.drop_reason == "declined")) {
    return ack(pc::UploadStatus::kNotSelected);
  }
  Seat& seat = it->second;
  if (seat.uploaded) return ack(pc::UploadStatus::kDuplicate);
  if (!global.adapter.same_layout(u.delta)) {
    log->warn("delta from {} refused: tensor table differs from the global adapter", s.id);
    if (!s.misconfigured) {
      s.misconfigured = true;  // it trains another model: every attempt would fail the same way
      events->write("site_misconfigured",
                    {{"site", s.id}, {"detail", "delta tensor table differs from the adapter's"}});
    }
    return reply_error(s.peer, make_error(ErrorCode::kShapeMismatch,
                                          "the delta's tensor table differs from the global "
                                          "adapter's"));
  }
  if (u.example_count > s.dataset_size) {
    log->warn("delta from {} refused: {} examples, {} registered", s.id, u.example_count,
              s.dataset_size);
    return reply_error(s.peer,
                       make_error(ErrorCode::kMalformedRequest, "example count ", u.example_count,
                                  " exceeds the registered dataset size ", s.dataset_size));
  }
  const uint64_t weight = cfg.max_example_weight > 0
                              ? std::min(u.example_count, cfg.max_example_weight)
                              : u.example_count;
  auto values = pc::blob_floats(m.blobs[u.delta.blob]);
  if (!values) return reply_error(s.peer, values.error());
  if (auto st = acc->add(values.value(), weight); !st) {
    log->warn("delta from {} refused: {}", s.id, st.error().message);
    return reply_error(s.peer, st.error());
  }
  seat.uploaded = true;
  seat.dropped = false;
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
    log->info("round {}: delta from {} ({} examples, train loss {:.4f}, held-out {:.4f})", round,
              s.id, u.example_count, u.train_loss, u.heldout_loss);
  } else {
    log->info("round {}: delta from {} ({} examples; its losses stay at the site)", round, s.id,
              u.example_count);
  }
  ack(pc::UploadStatus::kAccepted);
}

protocol::Status Coordinator::Impl::write_checkpoint_now(uint32_t completed,
                                                         uint32_t next_attempt) {
  Checkpoint c{completed,
               drbg.state(),
               global.adapter,
               global.config_json,
               cfg.strategy.name,
               strategy->state(),
               registry.to_json(),
               /*participant_accountant_json=*/{},
               run_id,
               next_attempt};
  // Written once the option has been used (a resumed run keeps what an earlier one spent).
  if (cfg.plan.participant_dp || participant_accountant.total_steps() > 0) {
    c.participant_accountant_json = participant_accountant.to_json();
  }
  return write_checkpoint(checkpoint_path(), c);
}

protocol::Status Coordinator::Impl::checkpoint_with_retry(uint32_t completed, uint32_t next_attempt,
                                                          std::stop_token stop) {
  uint32_t failures = 0;
  std::chrono::milliseconds backoff{100};
  for (;;) {
    auto st = write_checkpoint_now(completed, next_attempt);
    if (st) {
      if (failures > 0) {
        log->info("checkpoint written after {} failed tries", failures);
        events->write("checkpoint_recovered", {{"round", round}, {"failures", failures}});
      }
      return st;
    }
    ++failures;
    if (failures <= 3 || failures % 50 == 0) {
      log->error("cannot write the checkpoint (try {}), retrying in {} ms: {}", failures,
                 backoff.count(), st.error().message);
      events->write("checkpoint_failed", {{"round", round},
                                          {"failures", failures},
                                          {"error", st.error().message},
                                          {"retry_in_s", backoff.count() / 1000.0}});
    }
    if (stop.stop_requested()) return st;
    const auto until = Clock::now() + backoff;
    while (!stop.stop_requested() && Clock::now() < until) pump(until);
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(10));
  }
}

void Coordinator::Impl::charge_attempt() {
  for (auto& [id, seat] : seats) {
    if (!seat.uploaded && !seat.accepted) continue;
    SiteRecord* s = registry.find(id);
    if (s == nullptr || !s->budget) continue;
    try {
      s->budget->commit(phase);
    } catch (const std::exception& e) {
      // The site trained although the figures say it could not: record the phase anyway.
      log->error("{}: {}", id, e.what());
      auto acc2 = s->budget->accountant();
      acc2.add(phase);
      s->budget.emplace(s->budget->epsilon_max(), s->budget->delta(), std::move(acc2));
    }
  }
}

protocol::Result<bool> Coordinator::Impl::run_attempt(std::vector<SiteRecord*> eligible,
                                                      std::stop_token stop) {
  const auto t0 = Clock::now();
  const uint64_t up0 = bytes_up, down0 = bytes_down;
  // select: a uniform random subset (partial Fisher-Yates over the ids in sorted order).
  const size_t n = eligible.size();
  size_t k = static_cast<size_t>(std::ceil(cfg.fraction * static_cast<double>(n) - 1e-9));
  k = std::min(n, std::max<size_t>(k, cfg.min_participants));
  for (size_t i = 0; i < k; ++i) std::swap(eligible[i], eligible[i + drbg.uniform(n - i)]);
  eligible.resize(k);
  std::sort(eligible.begin(), eligible.end(),
            [](const SiteRecord* a, const SiteRecord* b) { return a->id < b->id; });
  seats.clear();
  json ids = json::array();
  for (auto* s : eligible) {
    seats[s->id] = Seat{};
    ids.push_back(s->id);
  }
  if (!acc) acc.emplace(global.adapter.values.size());
  acc->reset();
  deadline = Clock::now() + cfg.round_timeout;
  const int64_t deadline_ms = unix_ms() + cfg.round_timeout.count();
  events->write("round_started", {{"round", round},
                                  {"attempt", attempt},
                                  {"eligible", n},
                                  {"selected", ids},
                                  {"deadline_unix_ms", deadline_ms}});
  log->info("round {} attempt {}: {} of {} eligible sites selected", round, attempt, k, n);

  // configure
  const auto workers = registry.worker_directory();
  collecting = true;
  for (auto* s : eligible) {
    pc::TrainingPlan plan = cfg.plan;
    plan.deadline_unix_ms = deadline_ms;
    plan.seed = drbg.next_u64();
    events->write("participant_selected", {{"round", round},
                                           {"attempt", attempt},
                                           {"site", s->id},
                                           {"dataset_size", s->dataset_size}});
    auto blob = pc::float_blob(global.adapter.values);
    if (!blob) return blob.error();
    pc::Message m{
        pc::RoundInvitation{round, attempt, plan, workers, global.adapter.table(), run_id}, {}};
    m.blobs.push_back(std::move(blob).value());
    if (auto st = send(s->peer, std::move(m)); !st) drop(s->id, "unreachable", st.error().message);
  }

  // train + collect
  const auto t_collect = Clock::now();
  auto pending = [&] {
    return std::any_of(seats.begin(), seats.end(),
                       [](const auto& kv) { return !kv.second.uploaded && !kv.second.dropped; });
  };
  while (!stop.stop_requested() && Clock::now() < deadline && pending()) pump(deadline);
  for (auto& [id, seat] : seats) {
    if (!seat.uploaded && !seat.dropped) {
      drop(id, stop.stop_requested() ? "stopped" : "deadline");
    }
  }
  collecting = false;
  if (stop.stop_requested()) {
    // Stopped mid-attempt: nothing of it is kept. A restarted coordinator replays this very
    // attempt from the last checkpoint (same run, round, attempt, plan and adapter), which every
    // site recognises as the same release: it re-sends the delta it made, or trains it again,
    // without paying twice; the coordinator charges it when it accepts the replay.
    return false;
  }
  const uint64_t received = acc->contributions();
  // account: every site that accepted or uploaded may have trained, and charged its own budget
  // for this attempt; so does the coordinator, whatever happens to the attempt next.
  charge_attempt();
  if (cfg.plan.participant_dp && received > 0) {
    // Every attempt whose (noised) deltas reached the coordinator is a release, even one that is
    // then retried: one step of the Gaussian mechanism. Without amplification by
    // subsampling (q = 1): the coordinator chose the sample and sees each delta.
    const double q =
        cfg.participant_amplification ? static_cast<double>(k) / static_cast<double>(n) : 1.0;
    participant_accountant.add({.q = q, .sigma = cfg.plan.participant_sigma, .steps = 1});
  }
  const double collect_s = seconds_since(t_collect);
  if (received < cfg.min_participants) {
    events->write("round_failed", {{"round", round},
                                   {"attempt", attempt},
                                   {"received", received},
                                   {"needed", cfg.min_participants},
                                   {"epsilon", epsilon_map()}});
    log->warn("round {} attempt {}: {} deltas, {} needed; retrying with a new selection", round,
              attempt, received, cfg.min_participants);
    // The attempt's charges and the DRBG state reach disk before the next selection.
    if (auto st = checkpoint_with_retry(round - 1, attempt + 1, stop); !st) return st.error();
    return false;
  }

  // aggregate
  const auto t_agg = Clock::now();
  const auto mean = acc->mean();
  strategy->apply(global.adapter.values, mean);
  const double aggregate_s = seconds_since(t_agg);

  json sites = json::array();
  // Example-weighted means over the sites that reported a loss (NaN when none did).
  double train = 0, heldout = 0, train_w = 0, heldout_w = 0;
  uint64_t examples = 0;
  for (auto& [id, seat] : seats) {
    if (seat.uploaded) {
      sites.push_back(id);
      const auto w = static_cast<double>(seat.examples);
      if (pc::loss_reported(seat.train_loss)) {
        train += seat.train_loss * w;
        train_w += w;
      }
      if (pc::loss_reported(seat.heldout_loss)) {
        heldout += seat.heldout_loss * w;
        heldout_w += w;
      }
      examples += seat.examples;
    }
  }
  train = train_w > 0 ? train / train_w : std::nan("");
  heldout = heldout_w > 0 ? heldout / heldout_w : std::nan("");

  // checkpoint
  const auto t_ckpt = Clock::now();
  if (auto st = checkpoint_with_retry(round, 1, stop); !st) return st.error();
  const double checkpoint_s = seconds_since(t_ckpt);
  events->write(
      "checkpoint_written",
      {{"round", round}, {"path", checkpoint_path().string()}, {"seconds", checkpoint_s}});

  // log
  json finished = {{"round", round},
                   {"attempt", attempt},
                   {"sites", sites},
                   {"examples", examples},
                   {"epsilon", epsilon_map()},
                   {"bytes_up", bytes_up - up0},
                   {"bytes_down", bytes_down - down0},
                   {"duration_s", seconds_since(t0)},
                   {"collect_s", collect_s},
                   {"aggregate_s", aggregate_s},
                   {"checkpoint_s", checkpoint_s}};
  if (pc::loss_reported(train)) finished["train_loss"] = train;
  if (pc::loss_reported(heldout)) finished["heldout_loss"] = heldout;
  if (cfg.plan.participant_dp) finished["participant_epsilon"] = participant_epsilon();
  events->write("round_finished", finished);
  if (pc::loss_reported(heldout)) {
    log->info("round {} finished: {} sites, train loss {:.4f}, held-out loss {:.4f}, {:.2f} s",
              round, sites.size(), train, heldout, seconds_since(t0));
  } else {
    log->info("round {} finished: {} sites, {:.2f} s", round, sites.size(), seconds_since(t0));
  }
  if (cfg.plan.participant_dp) {
    log->info("round {}: participant-level epsilon {:.4f} at delta {} ({} releases)", round,
              participant_epsilon(), cfg.plan.delta, participant_accountant.total_steps());
  }
  for (auto& [id, seat] : seats) {
    if (!seat.uploaded) continue;
    if (SiteRecord* s = registry.find(id); s != nullptr && !s->peer.empty()) {
      (void)send(s->peer, pc::Message{pc::RoundResult{round, static_cast<uint32_t>(sites.size()),
                                                      train, heldout},
                                      {}});
    }
  }
  return true;
}

protocol::Result<RunSummary> Coordinator::Impl::run(std::stop_token stop) {
  events->write("run_started", {{"round", round},
                                {"run_id", run_id},
                                {"rounds", cfg.rounds},
                                {"strategy", strategy->name()},
                                {"endpoint", server->endpoint()},
                                {"min_participants", cfg.min_participants},
                                {"fraction", cfg.fraction}});
  if (cfg.plan.participant_dp) {
    events->write("participant_dp", {{"clip", cfg.plan.participant_clip},
                                     {"sigma", cfg.plan.participant_sigma},
                                     {"delta", cfg.plan.delta},
                                     {"epsilon", participant_epsilon()},
                                     {"releases", participant_accountant.total_steps()}});
  }
  std::string reason;
  bool started = false;
  auto waiting_since = Clock::now();
  for (;;) {
    if (stop.stop_requested()) {
      reason = "stopped";
      break;
    }
    if (round > cfg.rounds) {
      reason = "completed";
      break;
    }
    mark_exhausted();
    std::vector<SiteRecord*> eligible;
    size_t can_train = 0, exhausted = 0;
    for (auto* p : registry.participants()) {
      if (p->exhausted) {
        // A site that could never fund a round (a tiny stated budget) does not end the run.
        if (!p->unfundable()) ++exhausted;
        continue;
      }
      ++can_train;
      if (p->alive && !p->peer.empty() && !p->misconfigured) eligible.push_back(p);
    }
    if (exhausted > 0 && can_train < cfg.min_participants) {
      reason = "budget_exhausted";
      log->warn("{} sites can still train, {} needed: ending the run", can_train,
                cfg.min_participants);
      break;
    }
    // Before the first round of this process, also wait for a worker when the registry knows
    // some but none is back yet (a run resumed from its checkpoint): with an empty worker
    // directory every site would decline (no_workers) and the round be retried.
    size_t workers_known = 0, workers_alive = 0;
    for (const auto& [id, s] : registry.sites()) {
      if (s.role != pc::Role::kWorker) continue;
      ++workers_known;
      if (s.alive) ++workers_alive;
    }
    const bool gathering = !started && (eligible.size() < cfg.start_after ||
                                        (workers_known > 0 && workers_alive == 0));
    if (eligible.size() < cfg.min_participants || gathering) {
      if (gathering && eligible.size() >= cfg.min_participants &&
          Clock::now() - waiting_since > cfg.wait_for_sites) {
        started = true;  // start with the sites that came
        continue;
      }
      if (Clock::now() - waiting_since > cfg.wait_for_sites) {
        reason = "no_participants";
        break;
      }
      pump(Clock::now() + kPollSlice);
      continue;
    }
    started = true;
    auto done = run_attempt(std::move(eligible), stop);
    if (!done) return done.error();
    waiting_since = Clock::now();
    if (done.value()) {
      ++round;
      attempt = 1;
    } else if (!stop.stop_requested() && ++attempt > cfg.max_attempts) {
      reason = "round_failed";
      break;
    }
  }
  const uint32_t last = round - 1;
  if (auto s = export_peft(cfg.run_dir / "adapter", global); !s) return s.error();
  json finished = {{"reason", reason},
                   {"last_round", last},
                   {"epsilon", epsilon_map()},
                   {"adapter", (cfg.run_dir / "adapter").string()}};
  if (cfg.plan.participant_dp) finished["participant_epsilon"] = participant_epsilon();
  events->write("run_finished", finished);
  log->info("run finished after round {}: {}", last, reason);
  for (const auto& [id, s] : registry.sites()) {
    if (s.alive && !s.peer.empty()) (void)send(s.peer, pc::Message{pc::Shutdown{reason}, {}});
  }
  return RunSummary{last, reason};
}

// --- Coordinator ---------------------------------------------------------------------------------

Coordinator::Coordinator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Coordinator::~Coordinator() = default;

protocol::Result<std::unique_ptr<Coordinator>> Coordinator::create(zmq::context_t& context,
                                                                   CoordinatorConfig config) {
  auto impl = std::make_unique<Impl>(context, std::move(config));
  try {
    if (auto s = impl->init(); !s) return s.error();
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kInternal, "coordinator setup failed: ", e.what());
  }
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

protocol::Result<RunSummary> Coordinator::run(std::stop_token stop) {
  try {
    return impl_->run(stop);
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kInternal, "coordinator failed: ", e.what());
  }
}

}  // namespace coordinator
