// A participant's budget at its limit refuses the next phase, and keeps refusing after a
// save/load "restart" (budget_test.cpp covers the file format and partial budgets).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "privacy/budget.h"
#include "privacy/error.h"

namespace {

namespace fs = std::filesystem;

TEST(BudgetRestart, ABudgetAtItsLimitStillRefusesAfterReload) {
  const fs::path dir =
      fs::temp_directory_path() / ("privacy_budget_restart_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path file = dir / "budget.json";
  const privacy::Phase round{.q = 0.02, .sigma = 1.2, .steps = 100};

  // Spend rounds until the next one would exceed the limit, saving after every commit as a
  // participant does.
  privacy::Budget budget(2.0, 1e-5);
  int rounds = 0;
  while (!budget.would_exceed(round)) {
    budget.commit(round);
    budget.save(file);
    ++rounds;
    ASSERT_LT(rounds, 1000);
  }
  ASSERT_GT(rounds, 1);
  std::string why_before;
  ASSERT_TRUE(budget.would_exceed(round, &why_before));

  // "Restart": a fresh process would only have the file.
  const privacy::Budget restarted = privacy::Budget::load(file);
  EXPECT_EQ(restarted.spent(), budget.spent());
  EXPECT_EQ(restarted.accountant().total_steps(), rounds * round.steps);
  std::string why_after;
  EXPECT_TRUE(restarted.would_exceed(round, &why_after));
  EXPECT_EQ(why_after, why_before);
  privacy::Budget copy = restarted;
  EXPECT_THROW(copy.commit(round), privacy::PrivacyError);
  EXPECT_EQ(copy.spent(), budget.spent());
  // A fresh budget of the same limit would have accepted the round: the file is what refuses.
  EXPECT_FALSE(privacy::Budget(2.0, 1e-5).would_exceed(round));
  fs::remove_all(dir);
}

}  // namespace
