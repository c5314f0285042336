// The sites the coordinator knows: participants (with their privacy budget) and workers (which
// form the worker directory), with liveness. Without a roster (roster.h) a site id is bound to
// the CURVE key that first registered it; another key claiming it is refused. Sites restored from a
// checkpoint are known but not alive until they register again.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "privacy/budget.h"
#include "protocol/coordinator_messages.h"
#include "protocol/result.h"

namespace coordinator {

using Clock = std::chrono::steady_clock;

struct SiteRecord {
  std::string id;
  protocol::coord::Role role = protocol::coord::Role::kParticipant;
  uint64_t dataset_size = 0;
  std::string compute_endpoint, public_key;  // workers
  std::string auth_key;                      // the CURVE key (Z85) bound to the id; "" insecure
  std::string peer;                          // ROUTER routing id; "" until it registers
  Clock::time_point last_seen{};
  bool alive = false;
  std::optional<privacy::Budget> budget;  // participants
  bool exhausted = false;                 // budget_exhausted has been logged
  // Declined `misconfigured` or sent a delta of the wrong layout: not eligible until it
  // registers again (not kept in checkpoints).
  bool misconfigured = false;
  // The budget cannot fund one round of the plan (and nothing was spent): never eligible, and
  // not a reason to end the run.
  bool unfundable() const { return exhausted && budget && budget->accountant().total_steps() == 0; }
};

class Registry {
 public:
  // Registers (or re-registers) a site from `peer` authenticated as `auth_key`. A participant
  // registering again keeps its spent budget (the limit it states now applies). Refuses
  // (kUnauthorised) an id bound to another key (unless `key_checked`: the caller has checked
  // the key against the roster, which may have rotated it) or a role change; kInvalidArgument
  // for a budget privacy::Budget refuses.
  protocol::Result<SiteRecord*> register_site(const protocol::coord::Register& request,
                                              const std::string& peer, const std::string& auth_key,
                                              Clock::time_point now, bool key_checked = false);

  SiteRecord* find(const std::string& id);
  SiteRecord* find_by_peer(const std::string& peer);

  // Marks sites not heard from within `timeout` dead; returns their ids.
  std::vector<std::string> sweep(Clock::time_point now, Clock::duration timeout);

  // Participants, sorted by id.
  std::vector<SiteRecord*> participants();
  // Alive workers, sorted by id.
  std::vector<protocol::coord::WorkerEntry> worker_directory() const;
  const std::map<std::string, SiteRecord>& sites() const { return sites_; }

  // Known sites and their budgets, for checkpoints (peers and liveness are not kept).
  std::string to_json() const;
  // Throws nothing: kInvalidArgument for malformed input.
  static base::Result<Registry> from_json(const std::string& json);

 private:
  std::map<std::string, SiteRecord> sites_;
};

}  // namespace coordinator
