// The coordinator schema (schema/coordinator.capnp) for the shared codec core
// (core/codec_core.h): its CoordEnvelope's body <-> plain values (internal to the library).
#pragma once

#include <span>

#include "coordinator.capnp.h"
#include "protocol/coordinator_codec.h"

namespace protocol::coord {

struct CoordinatorSchema {
  using Envelope = coordwire::CoordEnvelope;
  using Body = coord::Body;
  using Header = coord::Header;
  using Message = coord::Message;

  static Status validate(const Body& body, std::span<const BlobDesc> blobs) {
    return coord::validate(body, blobs);
  }
  // Every field of the body as plain values, with enum values, text sizes and list lengths
  // checked (cross-field rules are validate()'s). Throws core::FieldError or kj::Exception
  // (envelope_read.cpp).
  static Body read_body(Envelope::Body::Reader body);
  // Fills the body (version kProtocolVersion); the caller has validated it (envelope_write.cpp).
  static void write_body(Envelope::Body::Builder b, const Body& body);
};

}  // namespace protocol::coord
