// base::write_file_atomic: the file is replaced whole or not at all, with the mode asked for; a
// writer killed before its rename leaves the old file intact.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "base/atomic_file.h"
#include "base/error.h"

namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("fedlora_base_" + name + "_" +
                                                   std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string slurp(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(AtomicFile, WritesAndReplacesWholeFiles) {
  const fs::path dir = temp_dir("write");
  const fs::path file = dir / "state.json";
  base::write_file_atomic(file, std::string_view("first"));
  EXPECT_EQ(slurp(file), "first");
  base::write_file_atomic(file, std::string_view("second, longer"));
  EXPECT_EQ(slurp(file), "second, longer");
  base::write_file_atomic(file, std::string_view(""));
  EXPECT_EQ(slurp(file), "");
  EXPECT_FALSE(fs::exists(dir / "state.json.tmp"));
  fs::remove_all(dir);
}

TEST(AtomicFile, AppliesTheModeEvenOverAStaleTemporary) {
  const fs::path dir = temp_dir("mode");
  const fs::path file = dir / "secret.key";
  { std::ofstream(dir / "secret.key.tmp") << "stale"; }
  fs::permissions(dir / "secret.key.tmp", fs::perms::all);
  base::write_file_atomic(file, std::string_view("k"), 0600);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  fs::remove_all(dir);
}

TEST(AtomicFile, AFailedWriteNamesTheFileAndLeavesNothing) {
  const fs::path dir = temp_dir("fail");
  const fs::path file = dir / "missing-dir" / "x.json";
  try {
    base::write_file_atomic(file, std::string_view("x"));
    FAIL() << "expected base::IoError";
  } catch (const base::IoError& e) {
    EXPECT_NE(std::string(e.what()).find("x.json.tmp"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "missing-dir"));
  fs::remove_all(dir);
}

// A child process rewrites a file with 64 MiB and is killed with SIGKILL while its temporary
// file is still growing, i.e. between write and rename: the old file must be untouched.
TEST(AtomicFile, AWriterKilledBeforeItsRenameLeavesTheOldFile) {
  const fs::path dir = temp_dir("kill");
  const fs::path file = dir / "checkpoint.bin";
  const fs::path tmp = dir / "checkpoint.bin.tmp";
  base::write_file_atomic(file, std::string_view("old checkpoint"));
  constexpr size_t kBytes = size_t{64} << 20;
  bool killed_mid_write = false;
  for (int attempt = 0; attempt < 5 && !killed_mid_write; ++attempt) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      std::vector<uint8_t> big(kBytes, 0xab);
      base::write_file_atomic(file, big);
      ::_exit(0);
    }
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < give_up) {
      std::error_code ec;
      const auto size = fs::file_size(tmp, ec);
      if (!ec && size > 0 && size < kBytes) {
        ::kill(pid, SIGKILL);
        killed_mid_write = true;
        break;
      }
      if (ec && fs::file_size(file) == kBytes) break;  // too fast: renamed already
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!killed_mid_write) base::write_file_atomic(file, std::string_view("old checkpoint"));
  }
  ASSERT_TRUE(killed_mid_write) << "the writer was never caught between write and rename";
  EXPECT_EQ(slurp(file), "old checkpoint");
  fs::remove_all(dir);
}

}  // namespace
