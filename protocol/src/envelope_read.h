// Reading a header's Cap'n Proto Envelope into plain values (internal to the library).
#pragma once

#include "protocol/codec.h"
#include "worker.capnp.h"

namespace protocol {

// Thrown by read_envelope for a field out of range (a bad enum value, a text too long, another
// protocol version); Cap'n Proto's own structural errors arrive as kj::Exception. decode_header
// turns both into an Error.
struct FieldError {
  Error error;
};

// Every field of `env` as plain values, with enum values, text and data sizes and list lengths
// checked (cross-field rules are validate()'s). Throws FieldError or kj::Exception.
Header read_envelope(wire::Envelope::Reader env, const Limits& limits);

}  // namespace protocol
