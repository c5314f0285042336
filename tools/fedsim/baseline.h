// `fedsim --baseline local`: the value of federation, measured. After the federation, every site
// trains ALONE: model::run_training over its own training notes (tokenized as its participant
// does), from RUN/initial_adapter, with the federation's LoRA configuration, learning rate,
// batch and DP-SGD (sigma, clip, sampling rate, delta) and as many steps as the site took in the
// federation (its budget's record: rounds x local steps when it trained every round), so that it
// spends the same epsilon. Each local adapter and the federated one (RUN/checkpoints/latest.ckpt)
// are evaluated by the same code (GlobalEvaluator::evaluate_adapter) on the POOLED held-out
// notes and questions of every site.
//
// The local runs are float, in this process: the federated run's products were encrypted (with
// backend remote or encrypted), so the comparison only favours the baselines. Their DP streams
// come from a seed of their own per site ("fedsim local baseline dp seed", never the
// federation's streams).
//
// Prints a table (one row for the federated adapter, one per site alone: pooled held-out loss,
// perplexity, MCQ accuracy, epsilon) and whether the federated adapter beats every local-only
// one on the pooled held-out loss, and writes RUN/baseline.json atomically:
//   {"format": "fedsim-baseline", "version": 1, "round": R, "steps_per_round": 10,
//    "federated_backend": "remote", "baseline_backend": "float",
//    "rows": [{"name": "federated (round R)", "heldout_loss": ..., "perplexity": ...,
//              "mcq_accuracy": ..., "questions": ..., "correct": ..., "tokens": ...,
//              "epsilon": max over the sites, "site_epsilon": {"site-0": ...}},
//             {"name": "site-0 alone", "site": "site-0", "steps": 20, "epsilon": ...,
//              "federated_epsilon": ..., "heldout_loss": ..., ...}, ...],
//    "comparable": true (the federated row has a pooled held-out loss),
//    "federated_beats_every_local": true, "not_beaten_by": []}  (names of the rows it does not
//    beat)
// A resumed run whose baseline.json is of the same final round reuses it instead of training.
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "sim_config.h"
#include "sim_eval.h"
#include "sim_setup.h"

namespace fedsim {

// The seed of site k's local baseline DP streams: SHA-256 of a label distinct from
// site_dp_seed_hex's, the sim seed and the site, as 64 hex digits.
std::string baseline_dp_seed_hex(uint64_t seed, uint32_t site);

// Trains, evaluates, prints to `out` and writes RUN/baseline.json (above); returns its contents.
// Without a readable checkpoint (no round finished) it says so and returns null. Throws with one
// line when a site's notes, budget or the model cannot be read, and base::IoError when the file
// cannot be written.
nlohmann::json run_local_baseline(const SimConfig& config, const SimLayout& layout,
                                  GlobalEvaluator& evaluator, std::FILE* out);

// The table and verdict lines of a baseline.json (what run_local_baseline prints after training).
std::string baseline_table(const nlohmann::json& baseline);

}  // namespace fedsim
