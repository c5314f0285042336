#include "privacy/budget.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "base/testing/atomic_file_hook.h"
#include "privacy/accountant.h"
#include "privacy/error.h"

namespace {

namespace fs = std::filesystem;

// A fresh empty directory per test, removed afterwards.
class BudgetFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("privacy_budget_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  static void write(const fs::path& p, const std::string& s) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << s;
  }
  // Expects load(p) to throw an Error whose message contains `needle`.
  static void expect_load_error(const fs::path& p, const std::string& needle) {
    try {
      privacy::Budget::load(p);
      ADD_FAILURE() << "loading " << p << " did not fail";
    } catch (const privacy::PrivacyError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
  }

  fs::path dir_;
};

const privacy::Phase kRound{0.01, 1.0, 200};

TEST(Budget, StartsEmptyAndCommitsWithinLimit) {
  privacy::Budget b(3.0, 1e-5);
  EXPECT_EQ(b.spent(), 0.0);
  EXPECT_EQ(b.remaining(), 3.0);
  const double planned = b.epsilon_after(kRound);
  EXPECT_DOUBLE_EQ(planned, privacy::epsilon_for(kRound, 1e-5).epsilon);
  std::string why;
  EXPECT_FALSE(b.would_exceed(kRound, &why));
  EXPECT_NE(why.find("within the limit"), std::string::npos) << why;
  b.commit(kRound);
  EXPECT_DOUBLE_EQ(b.spent(), planned);
  EXPECT_DOUBLE_EQ(b.remaining(), 3.0 - planned);
}

TEST(Budget, RefusesAPhaseOverItsLimit) {
  privacy::Budget b(3.0, 1e-5);
  b.commit(kRound);
  const double spent = b.spent();
  ASSERT_LT(spent, 3.0);
  const privacy::Phase big{0.01, 1.0, 20000};
  ASSERT_GT(b.epsilon_after(big), 3.0);
  std::string why;
  EXPECT_TRUE(b.would_exceed(big, &why));
  EXPECT_NE(why.find("above the limit 3 "), std::string::npos) << why;
  EXPECT_NE(why.find("steps=20000"), std::string::npos) << why;
  EXPECT_THROW(b.commit(big), privacy::PrivacyError);
  EXPECT_EQ(b.spent(), spent);  // nothing recorded
  EXPECT_EQ(b.accountant().total_steps(), 200);
  // Rounds keep fitting until the budget runs out, and no further.
  int committed = 0;
  while (!b.would_exceed(kRound)) {
    b.commit(kRound);
    ++committed;
    ASSERT_LT(committed, 10000);
  }
  EXPECT_GT(committed, 0);
  EXPECT_LE(b.spent(), 3.0);
  EXPECT_GT(b.epsilon_after(kRound), 3.0);
  EXPECT_THROW(b.commit(kRound), privacy::PrivacyError);
}

TEST(Budget, RejectsBadLimits) {
  EXPECT_THROW(privacy::Budget(0.0, 1e-5), privacy::PrivacyError);
  EXPECT_THROW(privacy::Budget(-1.0, 1e-5), privacy::PrivacyError);
  EXPECT_THROW(privacy::Budget(1.0, 0.0), privacy::PrivacyError);
  EXPECT_THROW(privacy::Budget(1.0, 1.0), privacy::PrivacyError);
  privacy::Budget b(1.0, 1e-5);
  EXPECT_THROW(b.would_exceed({2.0, 1.0, 1}), privacy::PrivacyError);
}

TEST_F(BudgetFile, ReloadKeepsSpentBudget) {
  const fs::path file = dir_ / "budget.json";
  privacy::Budget b(4.0, 1e-6);
  b.commit(kRound);
  b.commit({0.02, 1.4, 150});
  b.save(file);
  const privacy::Budget back = privacy::Budget::load(file);
  EXPECT_EQ(back.epsilon_max(), 4.0);
  EXPECT_EQ(back.delta(), 1e-6);
  EXPECT_EQ(back.spent(), b.spent());  // bit for bit
  EXPECT_GT(back.spent(), 0.0);
  EXPECT_EQ(back.accountant().phases().size(), 2u);
  const privacy::Phase big{0.02, 1.4, 100000};
  EXPECT_EQ(back.would_exceed(big), b.would_exceed(big));
  EXPECT_TRUE(back.would_exceed(big));

  // Saving again replaces the file atomically and leaves no temporary file behind.
  privacy::Budget more = back;
  more.commit(kRound);
  more.save(file);
  EXPECT_EQ(privacy::Budget::load(file).spent(), more.spent());
  EXPECT_GT(more.spent(), back.spent());
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir_)) {
    ++entries;
    EXPECT_EQ(e.path().filename(), "budget.json");
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(BudgetFile, TruncatedFileIsAnError) {
  const fs::path file = dir_ / "budget.json";
  privacy::Budget b(4.0, 1e-5);
  b.commit(kRound);
  b.save(file);
  const std::string good = read(file);
  for (size_t keep : {good.size() / 4, good.size() / 2, good.size() - 3}) {
    write(file, good.substr(0, keep));
    expect_load_error(file, "truncated or corrupt");
  }
  write(file, "");
  expect_load_error(file, "empty");
}

TEST_F(BudgetFile, CorruptFileIsAnError) {
  const fs::path file = dir_ / "budget.json";
  privacy::Budget b(4.0, 1e-5);
  b.commit(kRound);
  b.save(file);
  const std::string good = read(file);
  // A changed digit still parses as JSON; the checksum catches it.
  std::string changed = good;
  const size_t pos = changed.find("\"steps\":200");
  ASSERT_NE(pos, std::string::npos) << good;
  changed[pos + 8] = '1';  // 200 -> 100 steps: less spent than really was
  write(file, changed);
  expect_load_error(file, "checksum mismatch");

  write(file, "this is not a budget\n");
  expect_load_error(file, "truncated or corrupt");
  write(file, "{\"format\": \"something else\"}\n");
  expect_load_error(file, "not a fedlora privacy budget");
  expect_load_error(dir_ / "missing.json", "cannot open");
}

// A site killed while saving, after the new ledger is written but before its rename, finds the
// budget it saved last, byte for byte, and loads it; the next save replaces the stale temporary.
TEST_F(BudgetFile, ASaveKilledBeforeItsRenameLeavesTheLastSavedBudget) {
  const fs::path file = dir_ / "budget.json";
  privacy::Budget b(4.0, 1e-5);
  b.commit(kRound);
  b.save(file);
  const std::string saved = read(file);
  privacy::Budget more = b;
  more.commit(kRound);
  ASSERT_GT(more.spent(), b.spent());
  const int status = base::testing::status_of_writer_killed_before_rename([&] { more.save(file); });
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  EXPECT_EQ(read(file), saved);
  EXPECT_EQ(privacy::Budget::load(file).spent(), b.spent());
  // The killed save had written its whole new version.
  EXPECT_EQ(read(dir_ / "budget.json.tmp"), more.to_json());
  more.save(file);
  EXPECT_EQ(privacy::Budget::load(file).spent(), more.spent());
  EXPECT_FALSE(fs::exists(dir_ / "budget.json.tmp"));
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(BudgetFile, SaveIntoMissingDirectoryFails) {
  privacy::Budget b(4.0, 1e-5);
  EXPECT_THROW(b.save(dir_ / "no" / "such" / "dir" / "budget.json"), privacy::PrivacyError);
}

}  // namespace
