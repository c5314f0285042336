#include "coordinator/aggregation.h"

namespace coordinator {

RoundAggregator::RoundAggregator(size_t size, bool keep_site_deltas)
    : sum_(size), keep_(keep_site_deltas) {}

protocol::Status RoundAggregator::add(const std::string& site, std::span<const float> delta,
                                      uint64_t weight) {
  if (sites_.count(site) != 0) {
    return protocol::make_error(protocol::ErrorCode::kInvalidArgument, "site '", site,
                                "' already contributed a delta to this attempt");
  }
  if (auto st = sum_.add(delta, weight); !st) return st;
  Kept& k = sites_[site];
  k.weight = weight;
  if (keep_) k.values.assign(delta.begin(), delta.end());
  return protocol::ok_status();
}

void RoundAggregator::reset() {
  sum_.reset();
  sites_.clear();
}

void RoundAggregator::aggregate(Strategy& strategy, std::span<float> global) const {
  std::vector<SiteDelta> kept;
  if (keep_) {
    kept.reserve(sites_.size());
    for (const auto& [site, k] : sites_) kept.push_back({site, k.values, k.weight});
  }
  const auto mean_delta = sum_.mean();
  strategy.aggregate(global, kept, mean_delta);
}

}  // namespace coordinator
