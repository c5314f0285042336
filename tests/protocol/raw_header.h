// Rewrites header frames with Cap'n Proto directly, so tests can produce what the encoder refuses
// to write (wrong versions, unknown enum values, absurd shapes, inconsistent lengths).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "worker.capnp.h"

namespace protocol_test {

using EnvelopeTweak = std::function<void(protocol::wire::Envelope::Builder)>;

// Decodes the header frame `header` (a valid one), applies `tweak` to it and encodes it again.
std::vector<uint8_t> tweak_header(const std::vector<uint8_t>& header, const EnvelopeTweak& tweak);

}  // namespace protocol_test
