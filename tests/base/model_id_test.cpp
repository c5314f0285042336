#include "base/model_id.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace {

namespace fs = std::filesystem;

class ModelId : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("model_id_test_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "llama-small");
    old_ = fs::current_path();
  }
  void TearDown() override {
    fs::current_path(old_);
    fs::remove_all(root_);
  }
  fs::path root_, old_;
};

TEST_F(ModelId, EverySpellingOfOneFolderGivesItsName) {
  fs::current_path(root_ / "llama-small");
  EXPECT_EQ(base::default_model_id("."), "llama-small");
  EXPECT_EQ(base::default_model_id("./"), "llama-small");
  EXPECT_EQ(base::default_model_id(".//"), "llama-small");
  EXPECT_EQ(base::default_model_id("../llama-small"), "llama-small");
  EXPECT_EQ(base::default_model_id("../llama-small/"), "llama-small");
  EXPECT_EQ(base::default_model_id(root_ / "llama-small" / "."), "llama-small");
  fs::current_path(root_);
  EXPECT_EQ(base::default_model_id("llama-small"), "llama-small");
  EXPECT_EQ(base::default_model_id("llama-small/"), "llama-small");
  EXPECT_EQ(base::default_model_id("./llama-small//"), "llama-small");
}

TEST_F(ModelId, ASymlinkIsNamedByTheFolderItPointsTo) {
  fs::create_directory_symlink(root_ / "llama-small", root_ / "current");
  EXPECT_EQ(base::default_model_id(root_ / "current"), "llama-small");
  EXPECT_EQ(base::default_model_id(root_ / "current/"), "llama-small");
}

TEST_F(ModelId, AMissingFolderAndTheRootStillGetAnId) {
  EXPECT_EQ(base::default_model_id(root_ / "not-yet" / ""), "not-yet");
  EXPECT_EQ(base::default_model_id("/"), "model");
}

}  // namespace
