#include "coordinator/registry.h"

#include <nlohmann/json.hpp>

namespace coordinator {

using protocol::ErrorCode;
using protocol::make_error;
using protocol::coord::Role;

protocol::Result<SiteRecord*> Registry::register_site(const protocol::coord::Register& r,
                                                      const std::string& peer,
                                                      const std::string& auth_key,
                                                      Clock::time_point now, bool key_checked) {
  auto it = sites_.find(r.site_id);
  if (it != sites_.end()) {
    SiteRecord& s = it->second;
    if (!key_checked && !s.auth_key.empty() && s.auth_key != auth_key) {
      return make_error(ErrorCode::kUnauthorised, "site '", r.site_id, "' is bound to another key");
    }
    if (s.role != r.role) {
      return make_error(ErrorCode::kUnauthorised, "site '", r.site_id, "' registered as a ",
                        protocol::coord::role_name(s.role));
    }
  }
  std::optional<privacy::Budget> budget;
  if (r.role == Role::kParticipant) {
    try {
      if (it != sites_.end() && it->second.budget) {
        budget.emplace(r.epsilon_max, r.delta, it->second.budget->accountant());
      } else {
        budget.emplace(r.epsilon_max, r.delta);
      }
    } catch (const std::exception& e) {
      return make_error(ErrorCode::kInvalidArgument, "site '", r.site_id, "': ", e.what());
    }
  }
  // A peer id that belonged to another site (a reconnect reusing it) no longer does.
  for (auto& [id, s] : sites_) {
    if (s.peer == peer && id != r.site_id) s.peer.clear();
  }
  SiteRecord& s = sites_[r.site_id];
  const bool keep_exhausted =
      s.exhausted && budget && s.budget && budget->epsilon_max() == s.budget->epsilon_max();
  s.id = r.site_id;
  s.role = r.role;
  s.dataset_size = r.dataset_size;
  s.compute_endpoint = r.compute_endpoint;
  s.public_key = r.public_key;
  s.auth_key = auth_key;
  s.peer = peer;
  s.last_seen = now;
  s.alive = true;
  s.budget = std::move(budget);
  s.exhausted = keep_exhausted;
  s.misconfigured = false;
  return &s;
}

SiteRecord* Registry::find(const std::string& id) {
  auto it = sites_.find(id);
  return it == sites_.end() ? nullptr : &it->second;
}

SiteRecord* Registry::find_by_peer(const std::string& peer) {
  if (peer.empty()) return nullptr;
  for (auto& [id, s] : sites_) {
    if (s.peer == peer) return &s;
  }
  return nullptr;
}

std::vector<std::string> Registry::sweep(Clock::time_point now, Clock::duration timeout) {
  std::vector<std::string> dead;
  for (auto& [id, s] : sites_) {
    if (s.alive && now - s.last_seen > timeout) {
      s.alive = false;
      dead.push_back(id);
    }
  }
  return dead;
}

std::vector<SiteRecord*> Registry::participants() {
  std::vector<SiteRecord*> out;
  for (auto& [id, s] : sites_) {
    if (s.role == Role::kParticipant) out.push_back(&s);
  }
  return out;
}

std::vector<protocol::coord::WorkerEntry> Registry::worker_directory() const {
  std::vector<protocol::coord::WorkerEntry> out;
  for (const auto& [id, s] : sites_) {
    if (s.role == Role::kWorker && s.alive) out.push_back({s.compute_endpoint, s.public_key});
  }
  return out;
}

std::string Registry::to_json() const {
  nlohmann::json sites = nlohmann::json::array();
  for (const auto& [id, s] : sites_) {
    nlohmann::json j = {{"id", id},
                        {"role", protocol::coord::role_name(s.role)},
                        {"dataset_size", s.dataset_size},
                        {"compute_endpoint", s.compute_endpoint},
                        {"public_key", s.public_key},
                        {"auth_key", s.auth_key},
                        {"exhausted", s.exhausted}};
    if (s.budget) j["budget"] = nlohmann::json::parse(s.budget->to_json());
    sites.push_back(std::move(j));
  }
  // Ids are a safe character set and endpoints printable ASCII (coordinator_messages.h); replace
  // rather than throw all the same, so no peer text can stop a checkpoint.
  return nlohmann::json{{"sites", sites}}.dump(-1, ' ', false,
                                               nlohmann::json::error_handler_t::replace);
}

base::Result<Registry> Registry::from_json(const std::string& text) {
  try {
    Registry r;
    const auto j = nlohmann::json::parse(text);
    for (const auto& e : j.at("sites")) {
      SiteRecord s;
      s.id = e.at("id").get<std::string>();
      const auto role = e.at("role").get<std::string>();
      if (role == "participant") {
        s.role = Role::kParticipant;
      } else if (role == "worker") {
        s.role = Role::kWorker;
      } else {
        return base::make_error(base::Code::kInvalidArgument, "registry: unknown role '", role,
                                "'");
      }
      s.dataset_size = e.at("dataset_size").get<uint64_t>();
      s.compute_endpoint = e.at("compute_endpoint").get<std::string>();
      s.public_key = e.at("public_key").get<std::string>();
      s.auth_key = e.at("auth_key").get<std::string>();
      s.exhausted = e.at("exhausted").get<bool>();
      if (e.contains("budget")) s.budget = privacy::Budget::from_json(e.at("budget").dump());
      if (s.id.empty() || !r.sites_.emplace(s.id, s).second) {
        return base::make_error(base::Code::kInvalidArgument, "registry: bad or repeated site id");
      }
    }
    return r;
  } catch (const std::exception& e) {
    return base::make_error(base::Code::kInvalidArgument, "registry: ", e.what());
  }
}

}  // namespace coordinator
