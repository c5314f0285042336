// Framing of coordinator traffic: one header frame (a Cap'n Proto CoordEnvelope: the body and
// one BlobDesc per blob) followed by exactly one raw frame per blob, as for worker traffic
// (codec.h), with the same checks and the same Limits: header size and alignment, Cap'n Proto
// traversal and nesting limits, every enum and field range (coord::validate), the frame count,
// each frame's exact length against its description, the total size. Every failure is an Error
// value with one readable line; nothing throws and nothing aborts.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <span>
#include <vector>

#include "protocol/blob.h"
#include "protocol/coordinator_messages.h"
#include "protocol/limits.h"
#include "protocol/result.h"

namespace protocol::coord {

struct Header {
  Body body;
  std::vector<BlobDesc> blobs;
};

// The header frame of `body` with these blob descriptions (validated first).
Result<std::vector<uint8_t>> encode_header(const Body& body, std::span<const BlobDesc> blobs);

// Parses and validates a header frame. Does not look at any blob frame.
Result<Header> decode_header(std::span<const uint8_t> frame, const Limits& limits = {});

// The frames of a whole message, ready for a multipart send (blob data moved, not copied).
Result<std::vector<zmq::message_t>> encode(Message&& message);

// Decodes the frames of one multipart message (routing frames already removed).
Result<Message> decode(std::vector<zmq::message_t>&& frames, const Limits& limits = {});

}  // namespace protocol::coord
