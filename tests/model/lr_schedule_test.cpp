// Learning-rate schedules at the steps where the transformers formulas change behaviour.
#include "model/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "model/error.h"

namespace {

using model::LrSchedule;
using model::LrScheduleKind;

constexpr double kPi = std::numbers::pi;

TEST(LrSchedule, WarmupIsLinearFromZeroForEveryKind) {
  for (auto kind : {LrScheduleKind::kConstant, LrScheduleKind::kLinear, LrScheduleKind::kCosine}) {
    const LrSchedule s{kind, 10, 100};
    EXPECT_EQ(s.multiplier(0), 0.0);
    EXPECT_EQ(s.multiplier(1), 0.1);
    EXPECT_EQ(s.multiplier(5), 0.5);
    EXPECT_EQ(s.multiplier(9), 0.9);
    EXPECT_EQ(s.multiplier(10), 1.0);  // warmup end: the peak
    EXPECT_DOUBLE_EQ(s.lr(2e-4, 5), 1e-4);
  }
}

TEST(LrSchedule, Constant) {
  const LrSchedule s{LrScheduleKind::kConstant, 10, 100};
  EXPECT_EQ(s.multiplier(55), 1.0);
  EXPECT_EQ(s.multiplier(100), 1.0);
  EXPECT_EQ(s.multiplier(1000), 1.0);
  EXPECT_EQ((LrSchedule{LrScheduleKind::kConstant, 0, 0}.multiplier(0)), 1.0);
}

TEST(LrSchedule, LinearDecaysToZeroAtTheEnd) {
  const LrSchedule s{LrScheduleKind::kLinear, 10, 100};
  EXPECT_DOUBLE_EQ(s.multiplier(55), 0.5);       // (100 - 55) / 90
  EXPECT_DOUBLE_EQ(s.multiplier(91), 1.0 / 10);  // (100 - 91) / 90
  EXPECT_DOUBLE_EQ(s.multiplier(99), 1.0 / 90);
  EXPECT_EQ(s.multiplier(100), 0.0);
  EXPECT_EQ(s.multiplier(150), 0.0);  // clamped
  const LrSchedule no_warmup{LrScheduleKind::kLinear, 0, 4};
  EXPECT_EQ(no_warmup.multiplier(0), 1.0);
  EXPECT_EQ(no_warmup.multiplier(1), 0.75);
}

TEST(LrSchedule, CosineHalfCycle) {
  const LrSchedule s{LrScheduleKind::kCosine, 10, 100};
  EXPECT_DOUBLE_EQ(s.multiplier(55), 0.5);  // cos(pi / 2) = 0
  EXPECT_NEAR(s.multiplier(100), 0.0, 1e-15);
  EXPECT_DOUBLE_EQ(s.multiplier(32), 0.5 * (1 + std::cos(kPi * 22.0 / 90.0)));
  // Past the end the transformers formula rises again (it is not clamped to the end).
  EXPECT_DOUBLE_EQ(s.multiplier(120), 0.5 * (1 + std::cos(kPi * 110.0 / 90.0)));
  // num_cycles = 1: a full cosine, back to 1 at the end.
  const LrSchedule full{LrScheduleKind::kCosine, 0, 10, 1.0};
  EXPECT_NEAR(full.multiplier(5), 0.0, 1e-15);
  EXPECT_DOUBLE_EQ(full.multiplier(10), 1.0);
}

TEST(LrSchedule, NamesAndErrors) {
  EXPECT_EQ(model::parse_lr_schedule_kind("cosine"), LrScheduleKind::kCosine);
  EXPECT_EQ(model::parse_lr_schedule_kind("linear"), LrScheduleKind::kLinear);
  EXPECT_EQ(model::parse_lr_schedule_kind("constant"), LrScheduleKind::kConstant);
  EXPECT_EQ(model::lr_schedule_kind_name(LrScheduleKind::kLinear), "linear");
  EXPECT_THROW(model::parse_lr_schedule_kind("polynomial"), model::ModelError);
  EXPECT_THROW((LrSchedule{LrScheduleKind::kLinear, 10, 100}.multiplier(-1)), model::ModelError);
  EXPECT_THROW((LrSchedule{LrScheduleKind::kLinear, -1, 100}.multiplier(0)), model::ModelError);
}

}  // namespace
