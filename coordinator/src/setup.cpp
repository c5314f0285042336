// Coordinator::Impl::init(): the configuration check, the run directory (lock, events.jsonl),
// the state to start from (the checkpoint, or the initial adapter), the run id, the strategy
// and the bound socket.
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "coordinator/checkpoint.h"
#include "coordinator/files.h"
#include "coordinator_impl.h"
#include "protocol/coordinator_codec.h"
#include "protocol/log_format.h"

namespace coordinator {
namespace {

using base::make_error;
namespace pc = protocol::coord;

base::Status check_plan(const pc::TrainingPlan& p) {
  auto bad = [](auto... parts) { return make_error(base::Code::kInvalidArgument, parts...); };
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
  return base::ok_status();
}

bool is_log_level(const std::string& s) {
  for (const char* name : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
    if (s == name) return true;
  }
  return false;
}

// stderr at cfg.log_level; with cfg.log_file, that file too at info (or the console's level
// when it is lower).
base::Result<std::shared_ptr<spdlog::logger>> make_logger(const CoordinatorConfig& c) {
  const auto level = spdlog::level::from_str(c.log_level);
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  console->set_level(level);
  std::vector<spdlog::sink_ptr> sinks = {console};
  auto lowest = level;
  if (!c.log_file.empty()) {
    auto file = base::capture(
        [&] { return std::make_shared<spdlog::sinks::basic_file_sink_mt>(c.log_file.string()); },
        base::Code::kIo);
    if (!file) {
      return make_error(base::Code::kIo, "cannot open the log file ", c.log_file.string(), ": ",
                        file.error().message);
    }
    const auto file_level = std::min(level, spdlog::level::info);
    file.value()->set_level(file_level);
    sinks.push_back(file.value());
    lowest = std::min(lowest, file_level);
  }
  auto log = std::make_shared<spdlog::logger>("coordinator", sinks.begin(), sinks.end());
  protocol::use_log_format(*log);
  log->set_level(lowest);
  log->flush_on(spdlog::level::info);  // a log file is read while the run goes on
  return log;
}

base::Status check_config(const CoordinatorConfig& c) {
  auto bad = [](auto... parts) { return make_error(base::Code::kInvalidArgument, parts...); };
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
  if (!is_log_level(c.log_level)) {
    return bad("log level '", c.log_level,
               "' is not trace, debug, info, warn, error, critical or off");
  }
  if (c.handshake_timeout.count() <= 0) return bad("handshake_timeout must be > 0");
  if (auto s = check_plan(c.plan); !s) return s;
  if (!c.insecure && !c.key) return bad("CURVE needs the coordinator's key (or --insecure)");
  if (!c.insecure && !c.allow && c.zap == nullptr && c.roster_file.empty()) {
    return bad("CURVE needs a roster or an allow-list of participant and worker keys");
  }
  if (c.insecure && !c.roster_file.empty()) {
    return bad("a roster binds CURVE keys: it needs CURVE (not --insecure)");
  }
  return base::ok_status();
}

}  // namespace

base::Status Coordinator::Impl::init() {
  if (auto s = check_config(cfg); !s) return s;
  auto logger = make_logger(cfg);
  if (!logger) return logger.error();
  log = std::move(logger).value();
  if (auto s = open_run_dir(); !s) return s;
  StrategyState restored;
  bool resumed = false;
  if (auto s = load_state(&resumed, &restored); !s) return s;
  if (auto s = resolve_run_id(); !s) return s;
  if (auto s = make_run_strategy(resumed, std::move(restored)); !s) return s;
  phase = {cfg.plan.sample_rate, cfg.plan.noise_multiplier,
           static_cast<int64_t>(cfg.plan.local_steps)};
  if (!cfg.roster_file.empty()) {
    if (auto s = load_roster(/*initial=*/true); !s) return s;
  }
  return bind_server();
}

base::Status Coordinator::Impl::open_run_dir() {
  std::error_code ec;
  std::filesystem::create_directories(cfg.run_dir / "checkpoints", ec);
  if (ec) {
    return make_error(base::Code::kIo, "cannot create ", cfg.run_dir.string(), ": ", ec.message());
  }
  try {
    run_lock.emplace(base::DirLock::acquire(cfg.run_dir, "coordinator"));
  } catch (const base::IoError& e) {
    return make_error(base::Code::kInvalidArgument, "run directory ", e.what());
  }
  auto ev = EventLog::open(cfg.run_dir / "events.jsonl");
  if (!ev) return ev.error();
  events.emplace(std::move(ev).value());
  events->set_observer(
      [this](std::string_view event, const nlohmann::json& fields) { note_event(event, fields); });
  return base::ok_status();
}

base::Status Coordinator::Impl::load_state(bool* resumed, StrategyState* restored) {
  *resumed = std::filesystem::exists(checkpoint_path());
  if (*resumed) return restore_checkpoint(restored);
  auto p = load_peft(cfg.initial_adapter);
  if (!p) return p.error();
  global = std::move(p).value();
  return base::ok_status();
}

base::Status Coordinator::Impl::restore_checkpoint(StrategyState* restored) {
  auto c = read_checkpoint(checkpoint_path());
  if (!c) return c.error();
  if (c.value().strategy != cfg.strategy.name) {
    return make_error(base::Code::kInvalidArgument, "the checkpoint was written by strategy ",
                      c.value().strategy, ", this run is configured for ", cfg.strategy.name);
  }
  auto d = Drbg::from_state(c.value().drbg_state);
  if (!d) return d.error();
  auto r = Registry::from_json(c.value().registry_json);
  if (!r) return r.error();
  drbg = d.value();
  registry = std::move(r).value();
  global = {std::move(c.value().global), std::move(c.value().adapter_config)};
  *restored = std::move(c.value().strategy_state);
  round = c.value().round + 1;
  attempt = c.value().next_attempt;
  run_id = c.value().run_id;
  if (!c.value().participant_accountant_json.empty()) {
    try {
      participant_accountant =
          privacy::RdpAccountant::from_json(c.value().participant_accountant_json);
    } catch (const std::exception& e) {
      return make_error(base::Code::kInvalidArgument, checkpoint_path().string(),
                        ": participant-level DP accountant: ", e.what());
    }
  }
  return base::ok_status();
}

// The run id: the checkpoint's; else RUN/run_id (a run stopped before its first checkpoint is
// the same run); else the configured one (replays); else drawn now and written there.
base::Status Coordinator::Impl::resolve_run_id() {
  const auto id_file = cfg.run_dir / "run_id";
  if (run_id.empty() && std::filesystem::exists(id_file)) {
    auto bytes = read_file(id_file, 64);
    if (!bytes) return bytes.error();
    std::string text(bytes.value().begin(), bytes.value().end());
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (!pc::is_run_id(text)) {
      return make_error(base::Code::kInvalidArgument, id_file.string(),
                        " does not hold a run id (32 lowercase hex characters)");
    }
    run_id = text;
  }
  if (run_id.empty() && !cfg.run_id.empty()) {  // a new run replaying a given id
    if (!pc::is_run_id(cfg.run_id)) {
      return make_error(base::Code::kInvalidArgument, "run id '", cfg.run_id,
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
  return base::ok_status();
}

base::Status Coordinator::Impl::make_run_strategy(bool resumed, StrategyState restored) {
  const size_t size = global.adapter.values.size();
  auto st = cfg.strategy_factory ? cfg.strategy_factory(cfg.strategy, size)
                                 : make_strategy(cfg.strategy, size);
  if (!st) return st.error();
  strategy = std::move(st).value();
  if (resumed) {
    if (auto s = strategy->restore(std::move(restored)); !s) return s;
    log->info("resuming run {} from {} at round {}", run_id, checkpoint_path().string(), round);
  }
  return base::ok_status();
}

base::Status Coordinator::Impl::bind_server() {
  const protocol::ZapHandler* zap = cfg.zap;
  if (!cfg.insecure && zap == nullptr) {
    auto logger = log;
    const protocol::AllowList base = cfg.allow.value_or(protocol::AllowList{});
    const protocol::AllowList allow = roster ? roster->allow_list(base) : base;
    auto z = protocol::ZapHandler::start(
        ctx, allow, [logger](std::string_view line) { logger->warn("refused: {}", line); });
    if (!z) return protocol::to_base(z.error());
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
  if (!srv) return protocol::to_base(srv.error());
  server.emplace(std::move(srv).value());
  log->info("listening on {} ({}), {} tensors / {} values, strategy {}", server->endpoint(),
            cfg.insecure ? "insecure" : "CURVE", global.adapter.tensors.size(),
            global.adapter.values.size(), strategy->name());
  return base::ok_status();
}

}  // namespace coordinator
