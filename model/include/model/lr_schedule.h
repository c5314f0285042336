// Learning-rate schedules with linear warmup, with exactly the formulas of Hugging Face
// transformers (`get_constant_schedule_with_warmup`, `get_linear_schedule_with_warmup`,
// `get_cosine_schedule_with_warmup`). With W warmup steps and T training steps, the multiplier
// of the base learning rate at step s (0-based: the lr used by the (s+1)-th optimizer step, as
// torch's LambdaLR applies it) is
//
//   s < W:     s / max(1, W)                                             (every kind)
//   constant:  1
//   linear:    max(0, (T - s) / max(1, T - W))
//   cosine:    max(0, 0.5 * (1 + cos(pi * num_cycles * 2 * p))),  p = (s - W) / max(1, T - W)
//
// so with warmup the very first step runs at lr 0, as in transformers.
//
//   model::LrSchedule schedule{model::LrScheduleKind::kCosine, /*warmup=*/10, /*total=*/100};
//   optimizer.set_lr(schedule.lr(2e-4, step));
#pragma once

#include <cstdint>
#include <string_view>

namespace model {

enum class LrScheduleKind { kConstant, kLinear, kCosine };

// "constant", "linear", "cosine" (transformers' `lr_scheduler_type` spellings). Throws
// model::ModelError for anything else.
LrScheduleKind parse_lr_schedule_kind(std::string_view name);
std::string_view lr_schedule_kind_name(LrScheduleKind kind);

struct LrSchedule {
  LrScheduleKind kind = LrScheduleKind::kConstant;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;  // T; unused by the constant schedule
  double num_cycles = 0.5;  // cosine only; 0.5 decays once from 1 to 0

  // The multiplier at `step` (see above). Throws model::ModelError for a negative step or an
  // invalid schedule (negative warmup or total, non-finite num_cycles).
  double multiplier(int64_t step) const;
  // base_lr * multiplier(step).
  double lr(double base_lr, int64_t step) const { return base_lr * multiplier(step); }
};

}  // namespace model
