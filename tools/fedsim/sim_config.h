// fedsim's configuration: built-in defaults, then configs/sim.ini-style files (--config), then
// flags. Every key of the INI file is also a flag (`rounds = 5` <-> `--rounds 5`).
#pragma once

#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string>

namespace fedsim {

struct SimConfig {
  // The federation.
  uint32_t rounds = 5;
  uint32_t sites = 3;
  uint32_t workers = 2;
  std::filesystem::path run_dir;  // default: runs/fedsim-YYYYmmdd-HHMMSS
  uint64_t seed = 1;
  bool processes = false;  // processes over loopback TCP with CURVE, instead of threads

  // The user's own sites and model (site_data.h): one NAME.jsonl per site under data_dir (then
  // `sites` is their count), any Hugging Face Llama directory as model_dir. Empty: generated.
  std::filesystem::path data_dir;
  std::filesystem::path model_dir;

  // The base model generated when --model is not given: "pretrained" (a random Llama of the
  // shape below trained on every weight over the project's general-text corpus for
  // pretrain_steps, pretrained_base.h; made once per recipe and kept in base_cache, default
  // RUN/../.base-models) or "random" (the random model itself, which LoRA barely moves).
  std::string base = "pretrained";
  int64_t pretrain_steps = 600;
  std::filesystem::path base_cache;

  // The tiny model and the synthetic notes generated when missing.
  int64_t hidden = 64, layers = 2, heads = 4, kv_heads = 2, intermediate = 176, vocab = 512;
  int64_t records = 900;  // notes per site, held-out ones included
  double heldout_fraction = 0.1;
  int64_t seq_len = 64;

  // LoRA and the round plan.
  int64_t lora_rank = 8;
  double lora_alpha = 16;
  std::string targets = "q,k,v,o,gate,up,down";
  uint32_t local_steps = 10;
  double lr = 1e-2;
  uint32_t batch_size = 32;   // examples per micro-batch
  double sample_rate = 0.04;  // Poisson rate q of DP-SGD
  double noise_multiplier = 0.8;
  double clip_norm = 1.0;
  double delta = 1e-5;
  double epsilon_max = 8;  // every site's budget
  // Participant-level DP (off by default): sites clip their round delta to participant_clip and
  // add N(0, (participant_sigma * participant_clip)^2) per coordinate.
  bool participant_dp = false;
  double participant_clip = 0;
  double participant_sigma = 0;

  // Coordinator.
  std::string strategy = "fedavg";
  double server_lr = 1.0;
  double fraction = 1.0;
  uint32_t min_participants = 2;
  uint32_t round_timeout_s = 180;

  // Sites' backend: remote (encrypted on the workers), encrypted (in process) or float.
  std::string backend = "remote";
  // Of the sites and workers (the coordinator logs at info). With --processes their log files
  // get at least info, and the coordinator's goes to RUN/logs/coordinator.log (console: warn).
  std::string log_level = "warn";

  // After the federation: none, or local (every site also trains alone with the same steps and
  // DP, and the adapters are compared on the pooled held-out notes; baseline.h).
  std::string baseline = "none";

  // Seconds between two plain progress lines when stdout is not a terminal (progress_line.h);
  // the hidden flag --progress-every-s, for tests.
  double progress_every_s = 10;
};

// Parses flags and the --config file into `config`. Returns false after printing --help to
// `out`. Throws std::invalid_argument with one line for a bad flag or value.
bool parse_sim_config(int argc, const char* const* argv, std::ostream& out, SimConfig& config);

}  // namespace fedsim
