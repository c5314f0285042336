// Writing plain values into a header's Cap'n Proto Envelope (internal to the library).
#pragma once

#include <span>

#include "protocol/codec.h"
#include "worker.capnp.h"

namespace protocol {

// Fills `env` with `body` (version kProtocolVersion) and the blob descriptions. The caller has
// validated them.
void write_envelope(wire::Envelope::Builder env, const Body& body, std::span<const BlobDesc> blobs);

}  // namespace protocol
