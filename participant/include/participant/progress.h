// A site's training progress as the agent publishes it while it trains (AgentConfig::
// progress_file; off by default): one small JSON object, replaced atomically after every step
// and when the round moves on to its upload and ends, so that a reader (fedsim's progress line)
// never sees a torn file:
//
//   {"round": 3, "step": 7, "steps": 10, "tokens": 7168, "tokens_per_s": 1210.5,
//    "eta_s": 5.9, "phase": "training"}
//
// `tokens`: the tokens of this round's steps so far; `eta_s`: the seconds the round's remaining
// steps should take at the pace so far; `phase`: "training", "uploading" (all steps taken, the
// delta being sent) or "idle" (the round's upload sent; round, step and steps stay those of the
// last round trained).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace participant {

struct TrainingProgress {
  uint32_t round = 0;
  int64_t step = 0;
  int64_t steps = 0;
  int64_t tokens = 0;
  double tokens_per_s = 0;
  double eta_s = 0;
  std::string phase = "idle";  // "training", "uploading" or "idle"
};

// The JSON object above (one line, no newline).
std::string progress_json(const TrainingProgress& p);
// The progress of a JSON object as progress_json writes it; nullopt for anything else (not
// JSON, not an object, a field missing or of another type, an unknown phase).
std::optional<TrainingProgress> parse_progress(std::string_view text);
// parse_progress of the file's contents; nullopt when it cannot be read either. Never throws.
std::optional<TrainingProgress> read_progress(const std::filesystem::path& file);
// Replaces `file` atomically (base::write_file_atomic); throws base::IoError.
void write_progress(const std::filesystem::path& file, const TrainingProgress& p);

}  // namespace participant
