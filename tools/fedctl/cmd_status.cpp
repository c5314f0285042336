// fedctl status: ask a running coordinator what it knows of its run, read-only.
//
//   fedctl status --coordinator tcp://coord:5560 --coordinator-key keys/coordinator.pub
//                 --key keys/st-mary.key [--json] [--timeout 10]
//
// It connects like a site (CurveZMQ with a key the coordinator admits: its allow-list, or with a
// roster a key the roster lists; it need not register) and prints the run (id, base model), the
// round and its phase, every site (its seat in the round, last heartbeat, epsilon spent of its
// budget), the workers, and the coordinator's recent failures; `--json` prints one JSON object
// instead. Exit status: 0 answered, 1 no answer (refused key, unreachable coordinator, timeout),
// 2 bad options or key files.
#include <zmq.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

#include "cli.h"
#include "protocol/coordinator_codec.h"
#include "protocol/keys.h"
#include "protocol/socket.h"

namespace fedctl {
namespace {

namespace coord = protocol::coord;
using json = nlohmann::json;

double seconds(int64_t ms) {
  return static_cast<double>(ms) / 1000.0;
}

json to_json(const coord::StatusReply& r) {
  json sites = json::array(), workers = json::array(), failures = json::array();
  for (const auto& s : r.sites) {
    json e = {{"id", s.site_id},
              {"alive", s.alive},
              {"last_heartbeat_s",
               s.heartbeat_age_ms < 0 ? json(nullptr) : json(seconds(s.heartbeat_age_ms))}};
    if (s.role == coord::Role::kWorker) {
      e["endpoint"] = s.compute_endpoint;
      workers.push_back(std::move(e));
      continue;
    }
    e["state"] = std::string(coord::seat_status_name(s.seat));
    if (!s.drop_reason.empty()) e["drop_reason"] = s.drop_reason;
    e["epsilon"] = s.epsilon_spent;
    e["epsilon_budget"] = s.epsilon_budget;
    e["dataset_size"] = s.dataset_size;
    e["exhausted"] = s.exhausted;
    e["misconfigured"] = s.misconfigured;
    sites.push_back(std::move(e));
  }
  for (const auto& f : r.failures) {
    json e = {{"event", f.event}, {"round", f.round}, {"age_s", seconds(f.age_ms)}};
    if (!f.site_id.empty()) e["site"] = f.site_id;
    if (!f.detail.empty()) e["detail"] = f.detail;
    failures.push_back(std::move(e));
  }
  json out = {{"run_id", r.run_id},
              {"model", r.model},
              {"round", r.round},
              {"rounds", r.rounds},
              {"attempt", r.attempt},
              {"phase", std::string(coord::round_phase_name(r.phase))},
              {"strategy", r.strategy},
              {"min_participants", r.min_participants},
              {"sites", std::move(sites)},
              {"workers", std::move(workers)},
              {"failures", std::move(failures)}};
  if (r.phase == coord::RoundPhase::kCollecting) out["deadline_in_s"] = seconds(r.deadline_in_ms);
  if (r.sites_omitted > 0) out["sites_omitted"] = r.sites_omitted;
  return out;
}

std::string age_text(int64_t ms) {
  if (ms < 0) return "never heard from";
  char buf[64];
  std::snprintf(buf, sizeof buf, "heartbeat %.1f s ago", seconds(ms));
  return buf;
}

void print_text(const coord::StatusReply& r) {
  std::printf("run %s, model %s, strategy %s\n", r.run_id.c_str(),
              r.model.empty() ? "(unnamed)" : r.model.c_str(), r.strategy.c_str());
  std::printf("round %u of %u, attempt %u: %s", r.round, r.rounds, r.attempt,
              std::string(coord::round_phase_name(r.phase)).c_str());
  if (r.phase == coord::RoundPhase::kCollecting) {
    std::printf(" (upload deadline in %.0f s)", seconds(r.deadline_in_ms));
  }
  std::printf("\nsites:\n");
  bool any_worker = false;
  for (const auto& s : r.sites) {
    if (s.role == coord::Role::kWorker) {
      any_worker = true;
      continue;
    }
    std::string state(coord::seat_status_name(s.seat));
    if (!s.drop_reason.empty()) state += " (" + s.drop_reason + ")";
    std::printf("  %-16s %-8s %-22s %-24s epsilon %.3f of %g%s%s\n", s.site_id.c_str(),
                s.alive ? "alive" : "dead", state.c_str(), age_text(s.heartbeat_age_ms).c_str(),
                s.epsilon_spent, s.epsilon_budget, s.exhausted ? ", exhausted" : "",
                s.misconfigured ? ", misconfigured" : "");
  }
  if (r.sites_omitted > 0) std::printf("  (%u more not listed)\n", r.sites_omitted);
  if (any_worker) {
    std::printf("workers (their load is known to the sites, not the coordinator):\n");
    for (const auto& s : r.sites) {
      if (s.role != coord::Role::kWorker) continue;
      std::printf("  %-16s %-8s %-24s %s\n", s.site_id.c_str(), s.alive ? "alive" : "dead",
                  age_text(s.heartbeat_age_ms).c_str(), s.compute_endpoint.c_str());
    }
  }
  if (r.failures.empty()) {
    std::printf("no recent failures\n");
    return;
  }
  std::printf("recent failures (oldest first):\n");
  for (const auto& f : r.failures) {
    std::printf("  %7.1f s ago  round %u  %s%s%s%s%s\n", seconds(f.age_ms), f.round,
                f.event.c_str(), f.site_id.empty() ? "" : " ", f.site_id.c_str(),
                f.detail.empty() ? "" : ": ", f.detail.c_str());
  }
}

// Watches the client's CURVE handshakes: a coordinator that refuses this key (not in its
// allow-list or roster) answers the handshake with an error, which arrives here as an event.
class HandshakeWatch {
 public:
  HandshakeWatch(zmq::context_t& ctx, zmq::socket_ref socket)
      : monitor_(ctx, zmq::socket_type::pair) {
    const std::string address =
        "inproc://fedctl-status-monitor-" + std::to_string(reinterpret_cast<uintptr_t>(this));
    const int events = ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                       ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    if (zmq_socket_monitor(socket.handle(), address.c_str(), events) != 0) {
      throw std::runtime_error("cannot monitor the connection");
    }
    monitor_.set(zmq::sockopt::linger, 0);
    monitor_.connect(address);
  }

  // The first handshake failure seen so far, as one line; nullopt when none.
  std::optional<std::string> failure() {
    zmq::message_t event, address;
    while (monitor_.recv(event, zmq::recv_flags::dontwait)) {
      if (!monitor_.get(zmq::sockopt::rcvmore) || !monitor_.recv(address)) break;
      uint16_t id = 0;
      uint32_t value = 0;
      if (event.size() >= 6) {
        std::memcpy(&id, event.data(), 2);
        std::memcpy(&value, static_cast<const char*>(event.data()) + 2, 4);
      }
      if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        return "the coordinator refused this key (CURVE handshake, status " +
               std::to_string(value) + "): it is not in the coordinator's allow-list or roster";
      }
      return std::string(
          "the CURVE handshake with the coordinator failed: is --coordinator-key the "
          "coordinator's public key?");
    }
    return std::nullopt;
  }

 private:
  zmq::socket_t monitor_;
};

int run_status(const po::variables_map& vm) {
  const auto endpoint = vm["coordinator"].as<std::string>();
  const double timeout_s = vm["timeout"].as<double>();
  if (!(timeout_s > 0) || timeout_s > 3600)
    throw std::invalid_argument("--timeout must be in (0, 3600]");
  protocol::ClientConfig cc;
  cc.endpoint = endpoint;
  cc.insecure = vm.count("insecure") > 0;
  if (!cc.insecure) {
    if (!vm.count("coordinator-key") || !vm.count("key")) {
      throw std::invalid_argument(
          "--coordinator-key and --key are required (or --insecure on loopback)");
    }
    auto key = protocol::load_key_pair(vm["key"].as<std::string>());
    if (!key) throw std::invalid_argument(key.error().message);
    auto server = protocol::load_public_key(vm["coordinator-key"].as<std::string>());
    if (!server) throw std::invalid_argument(server.error().message);
    cc.key = std::move(key).value();
    cc.server_key = std::move(server).value();
  }
  zmq::context_t ctx;
  auto connected = protocol::Client::connect(ctx, cc);
  if (!connected) throw std::invalid_argument(connected.error().message);
  protocol::Client client = std::move(connected).value();
  std::optional<HandshakeWatch> watch;
  if (!cc.insecure) watch.emplace(ctx, client.socket());

  // Wait in slices, so that a refused handshake is reported at once rather than at the timeout.
  const auto until = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  auto request = coord::encode(coord::Message{coord::StatusRequest{}, {}});
  if (!request) throw std::logic_error(request.error().message);
  if (auto s = client.send_frames(std::move(request).value()); !s) {
    std::fprintf(stderr, "fedctl status: %s: %s\n", endpoint.c_str(), s.error().message.c_str());
    return 1;
  }
  for (;;) {
    if (watch) {
      if (auto why = watch->failure()) {
        std::fprintf(stderr, "fedctl status: %s: %s\n", endpoint.c_str(), why->c_str());
        return 1;
      }
    }
    if (std::chrono::steady_clock::now() >= until) {
      std::fprintf(stderr,
                   "fedctl status: no answer from %s within %g s (is the coordinator running, "
                   "and is this key in its allow-list?)\n",
                   endpoint.c_str(), timeout_s);
      return 1;
    }
    auto frames = client.receive_frames(std::chrono::milliseconds(100));
    if (!frames && frames.error().code == protocol::ErrorCode::kTimeout) continue;
    auto m = frames ? coord::decode(std::move(frames).value(), cc.options.limits)
                    : protocol::Result<coord::Message>(frames.error());
    if (!m) {
      if (m.error().code == protocol::ErrorCode::kTimeout) continue;
      std::fprintf(stderr, "fedctl status: %s: %s\n", endpoint.c_str(), m.error().message.c_str());
      return 1;
    }
    if (const auto* err = std::get_if<coord::ErrorReply>(&m.value().body)) {
      std::fprintf(stderr, "fedctl status: the coordinator refused: %s\n",
                   err->error.message.c_str());
      return 1;
    }
    const auto* reply = std::get_if<coord::StatusReply>(&m.value().body);
    if (reply == nullptr) continue;  // e.g. a heartbeat meant for another connection
    if (vm.count("json")) {
      std::printf("%s\n",
                  to_json(*reply).dump(-1, ' ', false, json::error_handler_t::replace).c_str());
    } else {
      print_text(*reply);
    }
    return 0;
  }
}

}  // namespace

int cmd_status(int argc, char** argv) {
  po::options_description o("options");
  // clang-format off
  o.add_options()
    ("coordinator", po::value<std::string>()->required(), "the coordinator's endpoint, e.g. tcp://host:5560")
    ("coordinator-key", po::value<std::string>(), "the coordinator's public key file (.pub)")
    ("key", po::value<std::string>(), "a secret key file (.key) the coordinator admits (a site's)")
    ("insecure", "no CurveZMQ (a loopback coordinator started with --insecure)")
    ("json", "print one JSON object")
    ("timeout", po::value<double>()->default_value(10), "seconds to wait for the answer");
  // clang-format on
  return run_command("status", "--coordinator ENDPOINT --coordinator-key FILE --key FILE [--json]",
                     o, argc, argv, run_status);
}

}  // namespace fedctl
