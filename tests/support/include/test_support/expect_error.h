// Expecting an exception of one type whose message is one line naming what is at fault.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace test_support {

// Runs `f`; fails the test unless it throws an `E` whose what() contains `needle` and no newline.
template <class E, class F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error, expected one containing: " << needle;
  } catch (const E& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(needle), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

}  // namespace test_support
