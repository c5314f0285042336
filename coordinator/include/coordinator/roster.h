// The roster: the operator's binding of CURVE public keys to identities. With a roster, a key
// may speak only as the one (id, role) it lists, and a worker may announce only the compute
// endpoint and key it lists; without one (loopback / --insecure, fedsim's threads) an id is bound
// to the key that registers it first.
//
// File format (docs/coordinator.md): one entry a line, fields separated by blanks; blank lines
// and lines starting with '#' are ignored.
//
//   site    st-mary   <40-character Z85 public key>
//   worker  gpu-a     <40-character Z85 public key>  tcp://gpu-a.example:6000
//
// Ids are protocol::coord::is_site_id (1..64 of [A-Za-z0-9._-]); an endpoint is 1..1024
// printable characters without blanks. Every key and every id appears at most once; a file
// with any bad line is refused whole (the coordinator then keeps the roster it had), and its
// error names the line.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "base/result.h"
#include "protocol/coordinator_messages.h"
#include "protocol/result.h"
#include "protocol/zap.h"

namespace coordinator {

struct RosterEntry {
  std::string id;
  protocol::coord::Role role = protocol::coord::Role::kParticipant;
  std::string key;       // Z85, 40 characters
  std::string endpoint;  // workers: the only compute endpoint they may announce
  int line = 0;          // where it was read, for log lines
  bool operator==(const RosterEntry&) const = default;
};

class Roster {
 public:
  // `source` names the text in errors ("roster.txt:3: ...").
  static base::Result<Roster> parse(std::string_view text, std::string_view source);
  // Reads and parses a file of at most 16 MiB.
  static base::Result<Roster> load(const std::filesystem::path& file);

  const RosterEntry* find_key(std::string_view key_z85) const;
  const RosterEntry* find_id(std::string_view id) const;
  size_t size() const { return by_key_.size(); }
  // `base` with every key of the roster added, for the ZAP handler.
  protocol::AllowList allow_list(protocol::AllowList base = {}) const;
  bool operator==(const Roster&) const = default;

 private:
  std::map<std::string, RosterEntry, std::less<>> by_key_;
  std::map<std::string, std::string, std::less<>> key_of_id_;
};

// Why `request`, sent by the peer whose CURVE key is `key_z85`, may not register under `roster`;
// ok when it may. kUnauthorised, naming the roster entry when the key has one.
protocol::Status check_register(const Roster& roster, std::string_view key_z85,
                                const protocol::coord::Register& request);

}  // namespace coordinator
