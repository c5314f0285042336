// The coordinator's roster file (coordinator/roster.h): Roster::parse either returns a roster in
// which every listed key and id finds its own entry, or an error of one line naming the line.
#include "coordinator/roster.h"
#include "fuzz_target.h"

namespace {

int one_input(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto roster = coordinator::Roster::parse(text, "roster.txt");
  if (!roster.ok()) {
    fuzz::expect_one_line(roster.error().message);
    return 0;
  }
  const coordinator::Roster& r = roster.value();
  if (r.allow_list().size() != r.size()) fuzz::finding("roster keys and allow-list disagree");
  return 0;
}

}  // namespace

FEDLORA_FUZZ_TARGET(roster, one_input)
