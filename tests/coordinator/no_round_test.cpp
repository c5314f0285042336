// A run that ends before any round completed exports nothing: the global adapter is still the
// initial one, and the coordinator says so instead of naming an "exported" adapter.
#include <gtest/gtest.h>

#include <filesystem>

#include "test_support/run.h"
#include "test_util.h"

namespace {

TEST(CoordinatorBinary, NothingIsExportedAfterNoRound) {
  coordinator_test::TempDir dir;
  coordinator_test::write_peft(dir.path() / "init", coordinator_test::small_adapter());
  const auto run_dir = dir.path() / "run";
  const auto r = test_support::run(std::string(COORDINATOR_PATH) +
                                   " --insecure --bind 'tcp://127.0.0.1:*' --run-dir " +
                                   run_dir.string() + " --initial-adapter " +
                                   (dir.path() / "init").string() + " --wait-for-sites 0.3");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(std::filesystem::exists(run_dir / "adapter"));
  EXPECT_NE(r.err.find("nothing to export"), std::string::npos) << r.err;
  const auto events = coordinator_test::read_events(run_dir / "events.jsonl");
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["event"], "run_finished");
  EXPECT_EQ(events.back()["last_round"], 0);
  EXPECT_TRUE(events.back()["adapter"].is_null());
}

}  // namespace
