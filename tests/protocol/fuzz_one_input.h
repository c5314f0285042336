// The body of the libFuzzer target (fuzz_decode.cpp), shared with a GoogleTest that runs it on a
// fixed corpus so that GCC builds exercise the same inputs.
//
// The input is cut into frames: byte 0 gives the number of frames (1 + byte0 % 6), then every
// frame but the last is preceded by a 16-bit little-endian length (clipped to what is left); the
// last frame takes the rest. The first frame is the header. The whole input is also fed to
// decode_header alone and, as text, to the key parser and check_insecure_allowed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "protocol/limits.h"

namespace protocol_test {

struct FuzzOutcome {
  bool header_decoded = false;   // the whole input decoded as a header frame
  bool message_decoded = false;  // the framed input decoded as a message
  bool coord_message_decoded = false;  // ... as a coordinator message (coordinator_codec.h)
  bool round_trip_ok = true;     // each decoded message re-encodes to one that decodes the same
  bool errors_typed = true;      // every refusal had a wire code and a one-line message
};

// Limits small enough that the fuzzer reaches them.
protocol::Limits fuzz_limits();

FuzzOutcome fuzz_one_input(const uint8_t* data, size_t size);

// Frames as fuzz_one_input reads them, joined into one input (the inverse of its splitting).
std::vector<uint8_t> join_frames(const std::vector<std::vector<uint8_t>>& frames);

}  // namespace protocol_test
