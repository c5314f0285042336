// Aggregation strategies behind one narrow interface, in the spirit of Flower's Strategy: the
// round engine accumulates the example-weighted mean of the sites' deltas (accumulator.h) and
// hands it to the strategy, which turns it into the next global adapter. A strategy that needs
// the individual deltas (robust aggregation: trimmed mean, median, norm bounds) says so with
// wants_site_deltas() and gets each accepted delta with its weight in aggregate()
// (aggregation.h keeps them); the others never cost more than the streaming sum.
//
//   FedAvg:     x <- x + eta * d                                  (eta = server_lr, usually 1)
//   FedOpt (Reddi et al., "Adaptive Federated Optimization", ICLR 2021, Algorithm 2), with
//   m, v starting at 0:
//     m <- beta1 * m + (1 - beta1) * d
//     FedAdagrad: v <- v + d^2
//     FedAdam:    v <- beta2 * v + (1 - beta2) * d^2
//     FedYogi:    v <- v - (1 - beta2) * d^2 * sign(v - d^2)
//     x <- x + eta * m / (sqrt(v) + tau)
// Each element is computed in double and stored as float32; the optimizer state (m, v, the step
// count) is exposed for checkpoints.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "protocol/result.h"

namespace coordinator {

struct StrategyConfig {
  std::string name = "fedavg";  // fedavg | fedadam | fedyogi | fedadagrad
  double server_lr = 1.0;
  double beta1 = 0.9;
  double beta2 = 0.99;
  double tau = 1e-3;
};

struct StrategyState {
  uint64_t steps = 0;
  std::vector<std::vector<float>> buffers;  // FedAvg: none; FedOpt: {m, v}
  bool operator==(const StrategyState&) const = default;
};

// One delta accepted in a round, as aggregate() sees it.
struct SiteDelta {
  std::string_view site;          // the site's id
  std::span<const float> values;  // the delta as uploaded (the adapter's size)
  uint64_t weight = 0;            // its FedAvg weight: examples, after max_example_weight's cap
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::string_view name() const = 0;
  // global <- the next global adapter, given the round's example-weighted mean delta.
  virtual void apply(std::span<float> global, std::span<const float> mean_delta) = 0;
  // false (FedAvg, FedOpt): the round engine keeps only the exact int128 streaming sum of the
  // deltas (memory independent of the number of sites) and `deltas` below is empty. true: it
  // also keeps every accepted delta of the attempt (one float per element per site).
  virtual bool wants_site_deltas() const { return false; }
  // global <- the next global adapter at the end of a round. `deltas`: every delta accepted in
  // the round, each exactly once, sorted by site id (empty unless wants_site_deltas());
  // `mean_delta`: their example-weighted mean, from the streaming sum (the same bits whatever
  // order they arrived in). The default applies the mean.
  virtual void aggregate(std::span<float> global, std::span<const SiteDelta> deltas,
                         std::span<const float> mean_delta) {
    (void)deltas;
    apply(global, mean_delta);
  }
  virtual StrategyState state() const = 0;
  // Refuses state of another shape (kInvalidArgument).
  virtual base::Status restore(StrategyState state) = 0;
};

// A strategy for an adapter of `size` elements; kInvalidArgument for an unknown name or a
// parameter out of range (server_lr > 0, beta in [0, 1), tau > 0).
base::Result<std::unique_ptr<Strategy>> make_strategy(const StrategyConfig& config, size_t size);

}  // namespace coordinator
