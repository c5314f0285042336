// base::write_file_atomic and base::AtomicFile: the file is replaced whole or not at all, with
// the mode asked for; a writer killed between write and rename leaves the old file intact.
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
#include "base/testing/atomic_file_hook.h"

namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("fedlora_base_" + name + "_" + std::to_string(::getpid()));
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

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 131 + (i >> 9));
  return v;
}

std::string as_string(const std::vector<uint8_t>& v) {
  return {v.begin(), v.end()};
}

bool killed_by_sigkill(int status) {
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

// The hook kills the child after the new version is complete and fsynced, before the rename:
// the old file is byte-identical and FILE.tmp holds the whole new version, and the next writer
// replaces that stale temporary file.
TEST(AtomicFile, AWriterKilledJustBeforeItsRenameLeavesTheOldFileByteIdentical) {
  const fs::path dir = temp_dir("hook");
  const fs::path file = dir / "ledger.json";
  const std::vector<uint8_t> old_bytes = pattern(4096 + 17, 3);
  base::write_file_atomic(file, old_bytes);
  const std::vector<uint8_t> new_bytes = pattern(9000, 101);
  const int status = base::testing::status_of_writer_killed_before_rename(
      [&] { base::write_file_atomic(file, new_bytes); });
  ASSERT_TRUE(killed_by_sigkill(status)) << "status " << status;
  EXPECT_EQ(slurp(file), as_string(old_bytes));
  EXPECT_EQ(slurp(dir / "ledger.json.tmp"), as_string(new_bytes));  // killed after the write
  base::write_file_atomic(file, std::string_view("third"));
  EXPECT_EQ(slurp(file), "third");
  EXPECT_FALSE(fs::exists(dir / "ledger.json.tmp"));
  fs::remove_all(dir);
}

// The same for a streamed file: appended in chunks, one range patched with write_at().
TEST(AtomicFile, AStreamingWriterKilledJustBeforeItsRenameLeavesTheOldFile) {
  const fs::path dir = temp_dir("hook_stream");
  const fs::path file = dir / "model.safetensors";
  const std::vector<uint8_t> old_bytes = pattern(100000, 7);
  base::write_file_atomic(file, old_bytes);
  const std::vector<uint8_t> chunk = pattern(65536, 11);
  const int status = base::testing::status_of_writer_killed_before_rename([&] {
    base::AtomicFile out(file);
    for (int i = 0; i < 8; ++i) out.append(chunk);
    out.write_at(8, std::span<const uint8_t>(chunk).first(100));
    out.commit();
  });
  ASSERT_TRUE(killed_by_sigkill(status)) << "status " << status;
  EXPECT_EQ(slurp(file), as_string(old_bytes));
  EXPECT_EQ(fs::file_size(dir / "model.safetensors.tmp"), 8 * chunk.size());
  fs::remove_all(dir);
}

TEST(AtomicFile, StreamsAppendsWritesAtOffsetsAndResizes) {
  const fs::path dir = temp_dir("stream");
  const fs::path file = dir / "shard.bin";
  const std::vector<uint8_t> a = pattern(1000, 1), b = pattern(300, 2);
  std::string expected = as_string(a) + as_string(b);
  expected.resize(5000, '\0');
  expected.replace(4000, b.size(), as_string(b));
  expected.replace(10, 3, "xyz");
  {
    base::AtomicFile out(file, 0640);
    EXPECT_EQ(out.temp_file(), dir / "shard.bin.tmp");
    out.resize(5000);
    out.append(a);
    out.write_at(4000, b);  // does not move the append position
    out.append(b);
    out.write_at(10, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("xyz"), 3));
    EXPECT_FALSE(fs::exists(file));  // nothing in place before commit()
    out.commit();
    EXPECT_THROW(out.append(a), base::IoError);
  }
  EXPECT_EQ(slurp(file), expected);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  EXPECT_FALSE(fs::exists(dir / "shard.bin.tmp"));
  fs::remove_all(dir);
}

TEST(AtomicFile, AWriterDestroyedWithoutCommitRemovesItsTemporaryFile) {
  const fs::path dir = temp_dir("abandon");
  const fs::path file = dir / "state.json";
  base::write_file_atomic(file, std::string_view("old"));
  {
    base::AtomicFile out(file);
    out.append(std::string_view("new, never committed"));
    EXPECT_TRUE(fs::exists(dir / "state.json.tmp"));
  }
  EXPECT_FALSE(fs::exists(dir / "state.json.tmp"));
  EXPECT_EQ(slurp(file), "old");
  fs::remove_all(dir);
}

TEST(AtomicFile, CommitIfAbsentNeverReplacesAFileOrALink) {
  const fs::path dir = temp_dir("absent");
  const fs::path file = dir / "k.key";
  {
    base::AtomicFile out(file, 0600);
    out.append(std::string_view("first"));
    EXPECT_TRUE(out.commit_if_absent());
  }
  EXPECT_EQ(slurp(file), "first");
  {
    base::AtomicFile out(file, 0600);
    out.append(std::string_view("second"));
    EXPECT_FALSE(out.commit_if_absent());
  }
  EXPECT_EQ(slurp(file), "first");
  EXPECT_FALSE(fs::exists(dir / "k.key.tmp"));
  const fs::path dangling = dir / "dangling.key";
  fs::create_symlink(dir / "nowhere", dangling);
  base::AtomicFile out(dangling);
  out.append(std::string_view("x"));
  EXPECT_FALSE(out.commit_if_absent());
  EXPECT_FALSE(fs::exists(dir / "nowhere"));
  fs::remove_all(dir);
}

// A link planted at FILE.tmp is removed, not written through.
TEST(AtomicFile, ALinkAtTheTemporaryPathIsNotFollowed) {
  const fs::path dir = temp_dir("link");
  const fs::path victim = dir / "victim";
  { std::ofstream(victim) << "untouched"; }
  fs::create_symlink(victim, dir / "secret.key.tmp");
  base::write_file_atomic(dir / "secret.key", std::string_view("secret"), 0600);
  EXPECT_EQ(slurp(victim), "untouched");
  EXPECT_EQ(slurp(dir / "secret.key"), "secret");
  EXPECT_FALSE(fs::is_symlink(dir / "secret.key"));
  fs::remove_all(dir);
}

}  // namespace
