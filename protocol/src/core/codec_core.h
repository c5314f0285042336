// The codec both schemas share (internal to the library): a message is one header frame (a
// Cap'n Proto envelope: the body and one BlobDesc per blob) followed by exactly one raw frame per
// blob. The worker codec (worker/, schema/worker.capnp) and the coordinator codec (coordinator/,
// schema/coordinator.capnp) differ only in their envelope, their bodies and their validate();
// each names them in a Schema and instantiates the templates below:
//
//   struct Schema {
//     using Envelope = ...;  // the Cap'n Proto struct: a `body` union and `blobs :List(BlobDesc)`
//     using Body = ...;      // the std::variant of the message structs
//     using Header = ...;    // { Body body; std::vector<BlobDesc> blobs; }
//     using Message = ...;   // { Body body; std::vector<Blob> blobs; }
//     static Status validate(const Body&, std::span<const BlobDesc>);
//     static Body read_body(Envelope::Body::Reader);       // throws FieldError or kj::Exception
//     static void write_body(Envelope::Body::Builder, const Body&);  // input already validated
//   };
//
// Decoding checks everything before it uses a byte: the header's size and alignment, the
// Cap'n Proto structure under the traversal and nesting limits, every field (fields.h), the
// schema's validate(), the number of blob frames, each frame's exact length and the total size
// against Limits. Every failure is an Error value with one readable line.
#pragma once

#include <capnp/message.h>
#include <kj/function.h>
#include <zmq.hpp>

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "core/fields.h"
#include "protocol/blob.h"
#include "protocol/limits.h"
#include "protocol/result.h"

namespace protocol::core {

// --- The pieces ----------------------------------------------------------------------------------

// The flat bytes of the message `fill` builds; an exception becomes kInternal.
Result<std::vector<uint8_t>> write_header_frame(
    kj::FunctionParam<void(capnp::MessageBuilder&)> fill);

// Checks a header frame's size (1..max_header_bytes) and alignment, reads it under the traversal
// and nesting limits, refuses trailing bytes, then runs `read` on it. A FieldError thrown by
// `read` is returned as is, a Cap'n Proto error as kMalformedRequest.
Status read_header_frame(std::span<const uint8_t> frame, const Limits& limits,
                         kj::FunctionParam<void(capnp::MessageReader&)> read);

// The blob frames that followed a header against its descriptions: their number, each exact
// length, each and the total (header_bytes included) against the limits.
Status check_blob_frames(std::span<const BlobDesc> descs, size_t header_bytes,
                         std::span<const uint64_t> frame_sizes, const Limits& limits);

// The descriptions of `blobs`, each checked against its data's length (kShapeMismatch).
Result<std::vector<BlobDesc>> blob_descs(std::span<const Blob> blobs);

// The header frame followed by the blobs' data (moved, not copied).
Result<std::vector<zmq::message_t>> to_frames(std::span<const uint8_t> header,
                                              std::vector<Blob>& blobs);

// The blobs of a decoded header: `frames` is the whole message (its first frame is the header);
// the blob frames are checked (check_blob_frames) and moved into the result without copying.
Result<std::vector<Blob>> take_blobs(std::vector<BlobDesc>&& descs,
                                     std::vector<zmq::message_t>&& frames, const Limits& limits);

inline std::span<const uint8_t> frame_bytes(const zmq::message_t& frame) {
  return {static_cast<const uint8_t*>(frame.data()), frame.size()};
}

// --- One schema's codec --------------------------------------------------------------------------

template <typename Schema>
Result<std::vector<uint8_t>> encode_header(const typename Schema::Body& body,
                                           std::span<const BlobDesc> blobs) {
  if (auto s = Schema::validate(body, blobs); !s) return s.error();
  return write_header_frame([&](capnp::MessageBuilder& builder) {
    auto env = builder.initRoot<typename Schema::Envelope>();
    Schema::write_body(env.initBody(), body);
    write_blobs(env.initBlobs(blobs.size()), blobs);
  });
}

template <typename Schema>
Result<typename Schema::Header> decode_header(std::span<const uint8_t> frame,
                                              const Limits& limits) {
  typename Schema::Header header;
  auto parsed = read_header_frame(frame, limits, [&](capnp::MessageReader& reader) {
    auto env = reader.getRoot<typename Schema::Envelope>();
    header.blobs = read_blobs(env.getBlobs(), limits);
    header.body = Schema::read_body(env.getBody());
  });
  if (!parsed) return parsed.error();
  if (auto s = Schema::validate(header.body, header.blobs); !s) return s.error();
  return header;
}

template <typename Schema>
Result<std::vector<zmq::message_t>> encode(typename Schema::Message&& message) {
  auto descs = blob_descs(message.blobs);
  if (!descs) return descs.error();
  auto header = encode_header<Schema>(message.body, descs.value());
  if (!header) return header.error();
  return to_frames(header.value(), message.blobs);
}

template <typename Schema>
Result<typename Schema::Message> decode(std::vector<zmq::message_t>&& frames,
                                        const Limits& limits) {
  if (frames.empty()) return make_error(ErrorCode::kMalformedRequest, "message has no frames");
  auto header = decode_header<Schema>(frame_bytes(frames.front()), limits);
  if (!header) return header.error();
  auto blobs = take_blobs(std::move(header.value().blobs), std::move(frames), limits);
  if (!blobs) return blobs.error();
  return typename Schema::Message{std::move(header.value().body), std::move(blobs).value()};
}

}  // namespace protocol::core
