// The privacy budget file (privacy/budget.h, budget.json): Budget::from_json either returns a
// budget whose own to_json reads back to the same text, or throws privacy::PrivacyError with one line.
#include "fuzz_target.h"
#include "privacy/budget.h"
#include "privacy/error.h"

namespace {

int one_input(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  try {
    const auto budget = privacy::Budget::from_json(json);
    const std::string again = budget.to_json();
    if (privacy::Budget::from_json(again).to_json() != again) {
      fuzz::finding("a loaded budget does not round-trip through to_json");
    }
  } catch (const privacy::PrivacyError& e) {
    fuzz::expect_one_line(e.what());
  }
  return 0;
}

}  // namespace

FEDLORA_FUZZ_TARGET(budget, one_input)
