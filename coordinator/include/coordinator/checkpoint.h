// The coordinator's checkpoint: everything a restarted coordinator needs to resume at the next
// round and reproduce an uninterrupted run bit for bit.
//
// File RUN_DIR/checkpoints/latest.ckpt, replaced atomically after every round (temporary file,
// fsync, rename, fsync of the directory). Layout: the 8 bytes "FLCKPT01", an 8-byte little-endian
// length L, L bytes of JSON metadata (round, run id, DRBG state, adapter tensor table, adapter
// config, strategy name and step count, buffer lengths, registry, optionally the participant-level
// DP accountant), the float32 data (global adapter, then each optimizer buffer), and the SHA-256 of
// everything before it. A file that is truncated, has trailing bytes, a bad digest or inconsistent
// metadata is refused.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "coordinator/adapter.h"
#include "coordinator/strategy.h"
#include "protocol/result.h"

namespace coordinator {

struct Checkpoint {
  uint32_t round = 0;  // the last completed round
  std::string drbg_state;
  Adapter global;
  std::string adapter_config;  // adapter_config.json, copied into the exported adapter
  std::string strategy;        // its name; a resumed run must use the same
  StrategyState strategy_state;
  std::string registry_json;  // Registry::to_json()
  // privacy::RdpAccountant::to_json() of the participant-level DP accountant; "" when none was
  // written (participant-level DP off, or a checkpoint older than the option: zero rounds spent).
  std::string participant_accountant_json;
  // The run id (protocol::coord::is_run_id) drawn when the run started; "" in a checkpoint older
  // than run ids (a resumed run then draws a new one).
  std::string run_id;
  // The attempt the next round starts with: 1 after a completed round, n + 1 after failed
  // attempt n of round `round + 1` (whose charges the registry holds).
  uint32_t next_attempt = 1;
  bool operator==(const Checkpoint&) const = default;
};

std::vector<uint8_t> serialize_checkpoint(const Checkpoint& checkpoint);
base::Result<Checkpoint> parse_checkpoint(std::span<const uint8_t> bytes);

base::Status write_checkpoint(const std::filesystem::path& file, const Checkpoint& checkpoint);
base::Result<Checkpoint> read_checkpoint(const std::filesystem::path& file);

}  // namespace coordinator
