// A strategy for tests that asks for per-site deltas (Strategy::wants_site_deltas) and records
// every aggregate() call, then defers to an inner strategy (FedAvg by default) for the update.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/strategy.h"

namespace coordinator_test {

struct RecordedDelta {
  std::string site;
  uint64_t weight = 0;
  std::vector<float> values;
};

struct RecordedRound {
  std::vector<RecordedDelta> deltas;  // in the order aggregate() received them
  std::vector<float> mean;
};

class RecordingStrategy final : public coordinator::Strategy {
 public:
  // `rounds` outlives the strategy's use (the coordinator owns the strategy).
  RecordingStrategy(std::unique_ptr<coordinator::Strategy> inner,
                    std::vector<RecordedRound>* rounds)
      : inner_(std::move(inner)), rounds_(rounds) {}

  std::string_view name() const override { return inner_->name(); }
  void apply(std::span<float> global, std::span<const float> mean_delta) override {
    inner_->apply(global, mean_delta);
  }
  bool wants_site_deltas() const override { return true; }
  void aggregate(std::span<float> global, std::span<const coordinator::SiteDelta> deltas,
                 std::span<const float> mean_delta) override {
    RecordedRound r;
    for (const auto& d : deltas) {
      r.deltas.push_back({std::string(d.site), d.weight, {d.values.begin(), d.values.end()}});
    }
    r.mean.assign(mean_delta.begin(), mean_delta.end());
    rounds_->push_back(std::move(r));
    inner_->aggregate(global, {}, mean_delta);
  }
  coordinator::StrategyState state() const override { return inner_->state(); }
  base::Status restore(coordinator::StrategyState s) override {
    return inner_->restore(std::move(s));
  }

 private:
  std::unique_ptr<coordinator::Strategy> inner_;
  std::vector<RecordedRound>* rounds_;
};

}  // namespace coordinator_test
