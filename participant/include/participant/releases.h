// The DP releases of one site: how the random streams of each round are keyed, and the record in
// the state directory that lets every stream serve exactly one delta (docs/threat-model.md).
//
// A release is one round's delta. Its Poisson samples, its DP-SGD noise and its participant-
// level noise come from streams keyed by a KDF (privacy::derive_seed) of the site's secret seed
// and a digest of everything the release depends on:
//   the coordinator's run id, round and attempt; the whole training plan but its deadline; the
//   global adapter's tensor table and values; and the site's own setup (site id, the training
//   file's bytes, sequence length, LoRA configuration).
// A second federation, a new run directory, a changed plan or adapter, changed data: each is
// another release with independent streams, so no difference of two deltas cancels their noise.
// The very same release (a coordinator replaying an interrupted round) gets the same streams and
// therefore the identical delta, which reveals nothing new.
//
// The ledger (STATE/releases.json, written atomically) lists every release the site has paid
// for: its public id, run, round and attempt, and once trained, the SHA-256 of its delta. A
// release is charged to the budget once, when it is first accepted; a second, different delta
// for a used id is refused (the site sends nothing). The last delta sent is cached
// (STATE/last_delta.json + last_delta.f32) so that a restarted site re-sends it for a replayed
// round instead of training and paying again.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/lora_config.h"
#include "privacy/random_source.h"
#include "protocol/coordinator_messages.h"

namespace participant {

using Digest = std::array<uint8_t, 32>;

// The streams of one release, all keyed by Release::key.
inline constexpr uint64_t kSamplingStream = 0;    // Poisson sampling of every DP-SGD step
inline constexpr uint64_t kNoiseStream = 1;       // DP-SGD Gaussian noise
inline constexpr uint64_t kDeltaNoiseStream = 2;  // participant-level noise of the delta

// The site's own part of every release context: SHA-256 over the site id, the training file's
// bytes, the sequence length and the LoRA configuration. Throws std::runtime_error when the
// file cannot be read.
Digest site_digest(const std::string& site_id, const std::filesystem::path& train_file,
                   int64_t seq_len, const model::LoraConfig& lora);

struct Release {
  privacy::Seed key{};  // secret: keys the streams; wiped on destruction
  std::string id;       // public: 64 hex digits naming the release in the ledger and logs
  Release() = default;
  Release(const Release&) = default;
  Release& operator=(const Release&) = default;
  ~Release();
};

// The release an invitation asks for. `global_values` are the invitation's adapter values.
Release derive_release(const privacy::Seed& site_seed, const protocol::coord::RoundInvitation& inv,
                       std::span<const float> global_values, const Digest& site);

// SHA-256 of a delta's values, hex.
std::string delta_sha256(std::span<const float> values);

class ReleaseLedger {
 public:
  struct Entry {
    std::string id;
    std::string run_id;
    uint32_t round = 0, attempt = 0;
    std::string delta_sha256;  // empty until the release has been trained
  };

  // Loads STATE/releases.json (an empty ledger when absent). Throws std::runtime_error for a
  // file that is not a ledger.
  static ReleaseLedger open(const std::filesystem::path& state_dir);

  const Entry* find(const std::string& id) const;
  // Records that `entry` has been charged to the budget; saves the ledger.
  void add(Entry entry);
  // Binds the trained delta to its release and saves: false (nothing changes) when the release
  // already holds another delta, i.e. the same streams would serve two different deltas.
  bool bind_delta(const std::string& id, const std::string& sha256);
  size_t size() const { return entries_.size(); }

 private:
  void save() const;
  std::filesystem::path file_;
  std::vector<Entry> entries_;
};

// The last delta this site sent, with the release it answered.
struct CachedDelta {
  std::string release_id;
  protocol::coord::DeltaUpload upload;
  std::vector<float> values;
};
void save_cached_delta(const std::filesystem::path& state_dir, const CachedDelta& delta);
// The cached delta, or nullopt when there is none or it does not read back whole (a partial
// cache is ignored, never trusted: the site then trains the release again, free of charge).
std::optional<CachedDelta> load_cached_delta(const std::filesystem::path& state_dir);

}  // namespace participant
