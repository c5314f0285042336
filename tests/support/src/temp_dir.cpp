#include "test_support/temp_dir.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace test_support {

namespace {

// SUITE.TEST of the running test, in characters a file name may hold, at most 100 of them.
std::string test_name() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (info == nullptr) return "test";
  std::string name = std::string(info->test_suite_name()) + "." + info->name();
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  return name.substr(0, 100);
}

}  // namespace

TempDir::TempDir() {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / ("fedlora-" + test_name() + "-XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error("cannot make a temporary directory " + tmpl + ": " +
                             std::strerror(errno));
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace test_support
