// Flag helpers shared by the fedctl commands that train or evaluate (train, eval): the
// --seq-len check against the model and the DP-SGD flags of `fedctl train`.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

#include "cli.h"
#include "model/llama_config.h"
#include "model/training_run.h"
#include "privacy/accountant.h"
#include "privacy/budget.h"
#include "privacy/random_source.h"

namespace fedctl {

// Throws std::invalid_argument unless 2 <= seq_len <= the model's max_position_embeddings.
inline void check_seq_len(int64_t seq_len, const model::LlamaConfig& config) {
  if (seq_len < 2) {
    throw std::invalid_argument("--seq-len must be at least 2 (BOS and EOS), got " +
                                std::to_string(seq_len));
  }
  if (seq_len > config.max_position_embeddings) {
    throw std::invalid_argument("--seq-len " + std::to_string(seq_len) +
                                " exceeds the model's max_position_embeddings " +
                                std::to_string(config.max_position_embeddings));
  }
}

// ---- DP-SGD (fedctl train --noise-multiplier, --dp-*) ----

// The ranges of the DP flags, checked while parsing (protocol/cli.h).
inline std::vector<protocol::cli::Range> dp_ranges() {
  namespace cli = protocol::cli;
  return {cli::above("noise-multiplier", 0), cli::above("dp-clip", 0),
          cli::within("dp-delta", 0, 1, true, true), cli::within("dp-sample-rate", 0, 1, true),
          cli::above("dp-epsilon-max", 0)};
}

// The --dp-* flags as parsed.
struct DpFlags {
  double sigma = 0;
  double clip = 0;
  double delta = 0;
  double sample_rate = 0;
  double epsilon_max = 0;
  std::string seed_hex;
};

inline void add_dp_options(po::options_description& options, DpFlags& f) {
  options.add_options()(
      "noise-multiplier", po::value(&f.sigma),
      "DP-SGD: noise multiplier sigma (noise std / clipping norm), > 0 (formerly --dp-sigma); "
      "this or any --dp-* flag turns on DP-SGD and then --noise-multiplier, --dp-clip and "
      "--dp-delta are required")("dp-clip", po::value(&f.clip),
                                 "DP-SGD: per-example gradient clipping norm C, > 0")(
      "dp-delta", po::value(&f.delta), "DP-SGD: delta of the reported (epsilon, delta), in (0, 1)")(
      "dp-sample-rate", po::value(&f.sample_rate),
      "DP-SGD: Poisson sampling rate q of each step, in (0, 1] (default: batch x grad-accum / "
      "training examples); a step's examples run in micro-batches of at most --batch-size")(
      "dp-epsilon-max", po::value(&f.epsilon_max),
      "DP-SGD: refuse to start (exit 2) if the planned steps would spend more than this epsilon")(
      "dp-seed", po::value(&f.seed_hex),
      "DP-SGD: 64 hex digits; draws the Poisson sampling and the noise from AES-256-CTR streams "
      "of this secret seed (replayable bit for bit) instead of the OS CSPRNG");
}

// True when any --dp-* flag was given.
inline bool dp_requested(const po::variables_map& vm) {
  for (const char* flag :
       {"noise-multiplier", "dp-clip", "dp-delta", "dp-sample-rate", "dp-epsilon-max", "dp-seed"}) {
    if (vm.count(flag)) return true;
  }
  return false;
}

// %g of v, for messages.
inline std::string dp_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// The checked DP-SGD parameters of one run.
struct DpPlan {
  double sigma = 0;
  double clip = 0;
  double delta = 0;
  double q = 0;               // Poisson sampling rate
  double expected_batch = 0;  // q * training examples
  int64_t steps = 0;
  double planned_epsilon = 0;  // after all `steps`, at delta
  std::optional<privacy::Seed> seed;
};

// Checks the flags and plans `steps` steps over `dataset_size` examples (default rate
// batch_per_step / dataset_size). Throws std::invalid_argument (exit 2) for a missing or
// out-of-range flag and, with --dp-epsilon-max, when the planned steps would exceed it.
inline DpPlan plan_dp(const po::variables_map& vm, const DpFlags& f, int64_t dataset_size,
                      int64_t batch_per_step, int64_t steps) {
  if (!vm.count("noise-multiplier") || !vm.count("dp-clip") || !vm.count("dp-delta")) {
    throw std::invalid_argument("DP-SGD needs all of --noise-multiplier, --dp-clip and --dp-delta");
  }
  if (!(f.sigma > 0) || !std::isfinite(f.sigma)) {
    throw std::invalid_argument("--noise-multiplier must be a finite number > 0");
  }
  if (!(f.clip > 0) || !std::isfinite(f.clip)) {
    throw std::invalid_argument("--dp-clip must be a finite number > 0");
  }
  if (!(f.delta > 0 && f.delta < 1)) throw std::invalid_argument("--dp-delta must be in (0, 1)");
  DpPlan plan;
  plan.sigma = f.sigma;
  plan.clip = f.clip;
  plan.delta = f.delta;
  plan.steps = steps;
  plan.q = vm.count("dp-sample-rate")
               ? f.sample_rate
               : static_cast<double>(batch_per_step) / static_cast<double>(dataset_size);
  if (!(plan.q > 0 && plan.q <= 1)) {
    throw std::invalid_argument("--dp-sample-rate must be in (0, 1]");
  }
  plan.expected_batch = plan.q * static_cast<double>(dataset_size);
  const privacy::Phase phase{.q = plan.q, .sigma = plan.sigma, .steps = steps};
  plan.planned_epsilon = privacy::epsilon_for(phase, plan.delta).epsilon;
  if (vm.count("dp-epsilon-max")) {
    if (!(f.epsilon_max > 0) || !std::isfinite(f.epsilon_max)) {
      throw std::invalid_argument("--dp-epsilon-max must be a finite number > 0");
    }
    std::string why;
    if (privacy::Budget(f.epsilon_max, plan.delta).would_exceed(phase, &why)) {
      throw std::invalid_argument(
          "refusing to train: --dp-epsilon-max " + dp_number(f.epsilon_max) + ": " + why +
          "; raise --noise-multiplier or lower --steps or --dp-sample-rate");
    }
  }
  if (vm.count("dp-seed")) plan.seed = privacy::parse_seed_hex(f.seed_hex);
  return plan;
}

// The run's DP-SGD (model::run_training; `plan` must outlive it). Streams of a --dp-seed:
// 0 sampling, 1 noise.
inline model::DpSgdSettings dp_settings(const DpPlan& plan) {
  return {.sigma = plan.sigma,
          .clip = plan.clip,
          .delta = plan.delta,
          .sample_rate = plan.q,
          .seed = plan.seed ? &*plan.seed : nullptr,
          .sampling_stream = 0,
          .noise_stream = 1};
}

// The summary's "dp" object: the plan and what the steps taken spent.
inline nlohmann::json dp_summary(const DpPlan& plan, const model::DpSgdSpent& spent) {
  return {{"sigma", plan.sigma},
          {"clip", plan.clip},
          {"delta", plan.delta},
          {"sample_rate", plan.q},
          {"expected_batch", plan.expected_batch},
          {"seeded", plan.seed.has_value()},
          {"planned_epsilon", plan.planned_epsilon},
          {"steps", spent.steps},
          {"epsilon", spent.epsilon},
          {"order", spent.order}};
}

}  // namespace fedctl
