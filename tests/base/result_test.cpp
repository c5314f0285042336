// base::Result, Status and capture: the one errors-as-values template.
#include "base/result.h"

#include <gtest/gtest.h>

#include <memory>
#include <new>
#include <stdexcept>
#include <string>

namespace {

struct LibraryError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

base::Result<int> parse_positive(int x) {
  if (x <= 0) return base::make_error(base::Code::kInvalidArgument, "x is ", x, ", not > 0");
  return x;
}

TEST(BaseResult, HoldsAValueOrAnError) {
  auto good = parse_positive(3);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good.value(), 3);
  auto bad = parse_positive(-2);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, base::Code::kInvalidArgument);
  EXPECT_EQ(bad.error().to_string(), "invalidArgument: x is -2, not > 0");
  EXPECT_THROW((void)bad.value(), std::bad_variant_access);
}

TEST(BaseResult, StatusIsOkByDefault) {
  base::Status ok = base::ok_status();
  EXPECT_TRUE(ok.ok());
  base::Status bad = base::make_error(base::Code::kIo, "disk full");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "disk full");
}

TEST(BaseResult, MoveOnlyValuesMoveOut) {
  base::Result<std::unique_ptr<int>> r(std::make_unique<int>(7));
  std::unique_ptr<int> p = std::move(r).value();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 7);
}

TEST(BaseCapture, ReturnsTheValueWhenNothingThrows) {
  auto r = base::capture([] { return std::string("fine"); });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), "fine");
  int calls = 0;
  base::Status st = base::capture([&] { ++calls; });
  EXPECT_TRUE(st.ok());
  EXPECT_EQ(calls, 1);
}

TEST(BaseCapture, MapsEachExceptionToItsCode) {
  auto io = base::capture([]() -> int { throw base::IoError("a.bin: No space left on device"); });
  ASSERT_FALSE(io.ok());
  EXPECT_EQ(io.error().code, base::Code::kIo);
  EXPECT_EQ(io.error().message, "a.bin: No space left on device");

  auto arg = base::capture([] { throw std::invalid_argument("rank must be > 0"); });
  EXPECT_EQ(arg.error().code, base::Code::kInvalidArgument);
  auto range = base::capture([] { (void)std::string("ab").at(5); });
  EXPECT_EQ(range.error().code, base::Code::kInvalidArgument);
  auto oom = base::capture([] { throw std::bad_alloc(); });
  EXPECT_EQ(oom.error().code, base::Code::kExhausted);

  // A library's own exception takes the code its caller gives.
  auto lib = base::capture([] { throw LibraryError("tensor 'x' is missing"); },
                           base::Code::kCorrupt);
  EXPECT_EQ(lib.error().code, base::Code::kCorrupt);
  EXPECT_EQ(lib.error().message, "tensor 'x' is missing");
  auto other = base::capture([] { throw 42; });
  EXPECT_EQ(other.error().code, base::Code::kInternal);
  EXPECT_EQ(other.error().message, "unknown exception");
}

TEST(BaseResult, EveryCodeHasAName) {
  for (int c = 1; c <= 9; ++c) {
    EXPECT_NE(base::code_name(static_cast<base::Code>(c)), "unknown") << c;
  }
  EXPECT_EQ(base::code_name(static_cast<base::Code>(200)), "unknown");
}

}  // namespace
