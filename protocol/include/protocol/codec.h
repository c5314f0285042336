// Framing: a message is one header frame (a Cap'n Proto Envelope: the body and one BlobDesc per
// blob) followed by exactly one raw frame per blob.
//
// Decoding checks everything before it uses a byte: the header's size and alignment, the
// Cap'n Proto structure under low traversal and nesting limits, every enum value and field range
// (validate() in messages.h), the number of frames, each frame's exact length against its
// description, and the total size against Limits. Every failure is an Error value (code
// kMalformedRequest, kUnsupportedVersion for another protocol version, kShapeMismatch for
// inconsistent shapes) with one readable line; nothing throws and nothing aborts.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <span>
#include <vector>

#include "protocol/blob.h"
#include "protocol/limits.h"
#include "protocol/messages.h"
#include "protocol/result.h"

namespace protocol {

// What a header frame holds.
struct Header {
  Body body;
  std::vector<BlobDesc> blobs;
};

// The header frame of `body` with these blob descriptions (validated first).
Result<std::vector<uint8_t>> encode_header(const Body& body, std::span<const BlobDesc> blobs);

// Parses and validates a header frame. Does not look at any blob frame.
Result<Header> decode_header(std::span<const uint8_t> frame, const Limits& limits = {});

// Checks the blob frames that followed a header: their number, each exact length, the total
// (header_bytes included) against the limits.
Status check_blob_frames(const Header& header, size_t header_bytes,
                         std::span<const uint64_t> frame_sizes, const Limits& limits = {});

// The frames of a whole message, ready for a multipart send. The blobs' data is moved out of
// `message` without copying.
Result<std::vector<zmq::message_t>> encode(Message&& message);

// Decodes the frames of one multipart message (routing frames already removed). The blob frames
// are moved into the result without copying.
Result<Message> decode(std::vector<zmq::message_t>&& frames, const Limits& limits = {});

}  // namespace protocol
