// The worker schema (schema/worker.capnp) for the shared codec core (core/codec_core.h):
// its Envelope's body <-> plain values (internal to the library).
#pragma once

#include <span>

#include "protocol/codec.h"
#include "worker.capnp.h"

namespace protocol {

struct WorkerSchema {
  using Envelope = wire::Envelope;
  using Body = protocol::Body;
  using Header = protocol::Header;
  using Message = protocol::Message;

  static Status validate(const Body& body, std::span<const BlobDesc> blobs) {
    return protocol::validate(body, blobs);
  }
  // Every field of the body as plain values, with enum values, text and data sizes and list
  // lengths checked (cross-field rules are validate()'s). Throws core::FieldError or
  // kj::Exception (envelope_read.cpp).
  static Body read_body(Envelope::Body::Reader body);
  // Fills the body (version kProtocolVersion); the caller has validated it (envelope_write.cpp).
  static void write_body(Envelope::Body::Builder b, const Body& body);
};

}  // namespace protocol
