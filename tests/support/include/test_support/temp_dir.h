// A fresh directory per test, removed with everything in it when the test ends.
#pragma once

#include <filesystem>
#include <string>

namespace test_support {

// A path inside a TempDir. It is a std::filesystem::path that also joins strings, so that a
// test can write `cmd + " --out " + dir / "x.npy"` as well as pass `dir / "x.npy"` to a function
// taking a path.
class TempPath : public std::filesystem::path {
 public:
  using std::filesystem::path::path;
  TempPath(std::filesystem::path p) : std::filesystem::path(std::move(p)) {}  // NOLINT

  friend std::string operator+(const std::string& a, const TempPath& b) { return a + b.string(); }
  friend std::string operator+(const TempPath& a, const std::string& b) { return a.string() + b; }
  friend std::string operator+(const char* a, const TempPath& b) { return a + b.string(); }
  friend std::string operator+(const TempPath& a, const char* b) { return a.string() + b; }
};

// TMP/fedlora-SUITE.TEST-XXXXXX, named after the running GoogleTest test (fedlora-test-XXXXXX
// outside one) and made by mkdtemp, so that concurrent tests and processes never share one.
// Throws std::runtime_error when the directory cannot be made.
class TempDir {
 public:
  TempDir();
  ~TempDir();  // removes the directory; errors are ignored
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  TempPath operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace test_support
