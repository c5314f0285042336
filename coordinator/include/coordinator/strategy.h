// Aggregation strategies behind one narrow interface, in the spirit of Flower's Strategy: the
// round engine accumulates the example-weighted mean of the sites' deltas (accumulator.h) and
// hands it to the strategy, which turns it into the next global adapter.
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

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::string_view name() const = 0;
  // global <- the next global adapter, given the round's example-weighted mean delta.
  virtual void apply(std::span<float> global, std::span<const float> mean_delta) = 0;
  virtual StrategyState state() const = 0;
  // Refuses state of another shape (kInvalidArgument).
  virtual protocol::Status restore(StrategyState state) = 0;
};

// A strategy for an adapter of `size` elements; kInvalidArgument for an unknown name or a
// parameter out of range (server_lr > 0, beta in [0, 1), tau > 0).
protocol::Result<std::unique_ptr<Strategy>> make_strategy(const StrategyConfig& config,
                                                          size_t size);

}  // namespace coordinator
