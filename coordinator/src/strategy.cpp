#include "coordinator/strategy.h"

#include <cmath>

namespace coordinator {
namespace {

using base::make_error;

class FedAvg final : public Strategy {
 public:
  explicit FedAvg(double lr) : lr_(lr) {}
  std::string_view name() const override { return "fedavg"; }
  void apply(std::span<float> global, std::span<const float> d) override {
    for (size_t i = 0; i < global.size(); ++i) {
      global[i] = static_cast<float>(static_cast<double>(global[i]) + lr_ * d[i]);
    }
    ++steps_;
  }
  StrategyState state() const override { return {steps_, {}}; }
  base::Status restore(StrategyState s) override {
    if (!s.buffers.empty()) {
      return make_error(base::Code::kInvalidArgument, "fedavg keeps no optimizer buffers");
    }
    steps_ = s.steps;
    return base::ok_status();
  }

 private:
  double lr_;
  uint64_t steps_ = 0;
};

enum class Variant { kAdam, kYogi, kAdagrad };

class FedOpt final : public Strategy {
 public:
  FedOpt(Variant v, const StrategyConfig& c, size_t size)
      : variant_(v), c_(c), m_(size, 0.0f), v_(size, 0.0f) {}

  std::string_view name() const override {
    return variant_ == Variant::kAdam   ? "fedadam"
           : variant_ == Variant::kYogi ? "fedyogi"
                                        : "fedadagrad";
  }

  void apply(std::span<float> global, std::span<const float> d) override {
    for (size_t i = 0; i < global.size(); ++i) {
      const double di = d[i], d2 = di * di;
      const double m = c_.beta1 * m_[i] + (1 - c_.beta1) * di;
      double v = v_[i];
      switch (variant_) {
        case Variant::kAdagrad:
          v = v + d2;
          break;
        case Variant::kAdam:
          v = c_.beta2 * v + (1 - c_.beta2) * d2;
          break;
        case Variant::kYogi: {
          const double diff = v - d2;
          const double sign = diff > 0 ? 1.0 : diff < 0 ? -1.0 : 0.0;
          v = v - (1 - c_.beta2) * d2 * sign;
          break;
        }
      }
      m_[i] = static_cast<float>(m);
      v_[i] = static_cast<float>(v);
      global[i] = static_cast<float>(static_cast<double>(global[i]) +
                                     c_.server_lr * m / (std::sqrt(v) + c_.tau));
    }
    ++steps_;
  }

  StrategyState state() const override { return {steps_, {m_, v_}}; }

  base::Status restore(StrategyState s) override {
    if (s.buffers.size() != 2 || s.buffers[0].size() != m_.size() ||
        s.buffers[1].size() != v_.size()) {
      return make_error(base::Code::kInvalidArgument, name(),
                        " state must be two buffers of the adapter's size");
    }
    steps_ = s.steps;
    m_ = std::move(s.buffers[0]);
    v_ = std::move(s.buffers[1]);
    return base::ok_status();
  }

 private:
  Variant variant_;
  StrategyConfig c_;
  std::vector<float> m_, v_;
  uint64_t steps_ = 0;
};

}  // namespace

base::Result<std::unique_ptr<Strategy>> make_strategy(const StrategyConfig& c, size_t size) {
  if (!(c.server_lr > 0) || !std::isfinite(c.server_lr)) {
    return make_error(base::Code::kInvalidArgument, "server_lr must be finite and > 0");
  }
  if (c.name == "fedavg") return std::unique_ptr<Strategy>(new FedAvg(c.server_lr));
  if (!(c.beta1 >= 0 && c.beta1 < 1) || !(c.beta2 >= 0 && c.beta2 < 1)) {
    return make_error(base::Code::kInvalidArgument, "beta1 and beta2 must be in [0, 1)");
  }
  if (!(c.tau > 0) || !std::isfinite(c.tau)) {
    return make_error(base::Code::kInvalidArgument, "tau must be finite and > 0");
  }
  if (c.name == "fedadam") return std::unique_ptr<Strategy>(new FedOpt(Variant::kAdam, c, size));
  if (c.name == "fedyogi") return std::unique_ptr<Strategy>(new FedOpt(Variant::kYogi, c, size));
  if (c.name == "fedadagrad") {
    return std::unique_ptr<Strategy>(new FedOpt(Variant::kAdagrad, c, size));
  }
  return make_error(base::Code::kInvalidArgument, "unknown strategy '", c.name,
                    "' (fedavg, fedadam, fedyogi, fedadagrad)");
}

}  // namespace coordinator
