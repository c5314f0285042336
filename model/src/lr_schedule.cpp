#include "model/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "model/error.h"

namespace model {

LrScheduleKind parse_lr_schedule_kind(std::string_view name) {
  if (name == "constant") return LrScheduleKind::kConstant;
  if (name == "linear") return LrScheduleKind::kLinear;
  if (name == "cosine") return LrScheduleKind::kCosine;
  throw ModelError("learning-rate schedule must be constant, linear or cosine, got '" +
              std::string(name) + "'");
}

std::string_view lr_schedule_kind_name(LrScheduleKind kind) {
  switch (kind) {
    case LrScheduleKind::kConstant:
      return "constant";
    case LrScheduleKind::kLinear:
      return "linear";
    case LrScheduleKind::kCosine:
      return "cosine";
  }
  throw ModelError("unknown learning-rate schedule");
}

double LrSchedule::multiplier(int64_t step) const {
  if (warmup_steps < 0 || total_steps < 0 || !std::isfinite(num_cycles)) {
    throw ModelError("learning-rate schedule: invalid (warmup " + std::to_string(warmup_steps) +
                ", total " + std::to_string(total_steps) + ")");
  }
  if (step < 0) throw ModelError("learning-rate schedule: negative step " + std::to_string(step));
  const auto s = static_cast<double>(step);
  const auto w = static_cast<double>(warmup_steps);
  const auto t = static_cast<double>(total_steps);
  if (step < warmup_steps) return s / std::max(1.0, w);
  switch (kind) {
    case LrScheduleKind::kConstant:
      return 1.0;
    case LrScheduleKind::kLinear:
      return std::max(0.0, (t - s) / std::max(1.0, t - w));
    case LrScheduleKind::kCosine: {
      const double progress = (s - w) / std::max(1.0, t - w);
      return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * num_cycles * 2.0 * progress)));
    }
  }
  throw ModelError("unknown learning-rate schedule");
}

}  // namespace model
