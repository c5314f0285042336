// One attempt's deltas on their way to the strategy (strategy.h): every accepted delta goes into
// the exact streaming sum (accumulator.h); for a strategy that wants_site_deltas() it is also
// kept, by site id, and the strategy's aggregate() gets them all, sorted by site id, each once.
//
//   RoundAggregator agg(adapter_size, strategy->wants_site_deltas());
//   agg.add("site-a", delta_a, weight_a);   // a refused delta changes nothing
//   agg.aggregate(*strategy, global);       // strategy->aggregate(global, deltas, mean)
//   agg.reset();                            // the next attempt
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "coordinator/accumulator.h"
#include "coordinator/strategy.h"
#include "protocol/result.h"

namespace coordinator {

class RoundAggregator {
 public:
  // For deltas of `size` elements; `keep_site_deltas`: also keep each delta (wants_site_deltas).
  RoundAggregator(size_t size, bool keep_site_deltas);

  // Adds `site`'s delta with its FedAvg weight. Refuses (nothing added) what
  // DeltaAccumulator::add refuses, and a second delta from the same site (kInvalidArgument).
  protocol::Status add(const std::string& site, std::span<const float> delta, uint64_t weight);

  uint64_t contributions() const { return sum_.contributions(); }
  uint64_t total_examples() const { return sum_.total_examples(); }
  // The example-weighted mean of the deltas added (zeros when none was).
  std::vector<float> mean() const { return sum_.mean(); }
  // Forgets every delta (a new attempt).
  void reset();

  // global <- strategy.aggregate(global, the kept deltas sorted by site id, mean()).
  void aggregate(Strategy& strategy, std::span<float> global) const;

 private:
  struct Kept {
    uint64_t weight = 0;
    std::vector<float> values;  // empty unless keep_
  };
  DeltaAccumulator sum_;
  bool keep_;
  std::map<std::string, Kept> sites_;  // every site added this attempt
};

}  // namespace coordinator
