// libFuzzer target: feeds arbitrary bytes to the header and message decoders (see
// fuzz_one_input.h for how the bytes become frames). Built only with clang:
//   cmake -DCMAKE_CXX_COMPILER=clang++ ... && make protocol_fuzz_decode
//   build/bin/protocol_fuzz_decode -max_total_time=60
// A decoded message that does not survive a round trip, or a refusal without a typed one-line
// error, is a finding (abort).
#include <cstdint>
#include <cstdlib>

#include "fuzz_one_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto out = protocol_test::fuzz_one_input(data, size);
  if (!out.round_trip_ok || !out.errors_typed) std::abort();
  return 0;
}
