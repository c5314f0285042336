// Durable, atomic replacement of a file: the one way the project writes state that must survive
// a crash (models, adapters, keys, budgets, checkpoints, a site's release ledger).
//
//   base::write_file_atomic(dir / "budget.json", text);           // mode 0644
//   base::write_file_atomic(dir / "dp.seed", secret, 0600);
//
//   base::AtomicFile out(dir / "model.safetensors");              // a file too large to buffer
//   out.append(header);
//   for (...) out.append(chunk);
//   out.commit();                   // without it, the destructor removes the temporary file
//
// Writes FILE.tmp in the same directory (a stale FILE.tmp, or a link put there, is removed and
// the file created anew with `mode`, so the data never goes through a link and the file never
// has other permissions than `mode`), fsyncs it, renames it over FILE and fsyncs the directory.
// A crash at any point leaves either the old file or the new one, never a torn one; on failure
// the old file is intact and FILE.tmp is removed. Throws base::IoError naming the file and the
// reason. Two writers of one FILE at once are not supported (they share FILE.tmp): writers of
// a state directory hold its base::DirLock.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>

namespace base {

// A new version of a file, written piece by piece and put in place whole by commit().
class AtomicFile {
 public:
  // Creates `file`.tmp with exactly `mode`. Throws IoError when it cannot be created.
  explicit AtomicFile(std::filesystem::path file, mode_t mode = 0644);
  // Without commit(): closes and removes the temporary file; `file` stays as it was.
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Writes `bytes` after those appended so far (write_at() does not move that position).
  void append(std::span<const uint8_t> bytes);
  void append(std::string_view text);
  // Writes `bytes` at `offset`, for a writer that fills a laid-out file in any order.
  void write_at(uint64_t offset, std::span<const uint8_t> bytes);
  // Sets the temporary file's size: the final size up front makes a full disk show at once.
  void resize(uint64_t size);

  // fsync, rename over `file`, fsync of the directory. After a throw before the rename the
  // temporary file is removed and `file` untouched. The object is spent either way.
  void commit();
  // Like commit(), but never replaces an existing `file` (or a link at its place): returns
  // false, and removes the temporary file, when `file` exists (link(2), so the check and the
  // placing are one step).
  bool commit_if_absent();

  const std::filesystem::path& file() const { return file_; }
  const std::filesystem::path& temp_file() const { return tmp_; }

 private:
  enum class Place { kReplace, kIfAbsent };
  bool finish(Place place);
  void write_bytes(std::span<const uint8_t> bytes, int64_t offset);  // offset < 0: append
  [[noreturn]] void abandon(const char* what, const std::filesystem::path& path);

  std::filesystem::path file_, tmp_;
  int fd_ = -1;
};

// One AtomicFile holding `bytes`, committed.
void write_file_atomic(const std::filesystem::path& file, std::span<const uint8_t> bytes,
                       mode_t mode = 0644);
void write_file_atomic(const std::filesystem::path& file, std::string_view text,
                       mode_t mode = 0644);

}  // namespace base
