// The worker schema's codec (codec.h): the shared core (core/codec_core.h) over its envelope.
#include "protocol/codec.h"

#include "core/codec_core.h"
#include "worker/envelope.h"

namespace protocol {

Result<std::vector<uint8_t>> encode_header(const Body& body, std::span<const BlobDesc> blobs) {
  return core::encode_header<WorkerSchema>(body, blobs);
}

Result<Header> decode_header(std::span<const uint8_t> frame, const Limits& limits) {
  return core::decode_header<WorkerSchema>(frame, limits);
}

Status check_blob_frames(const Header& header, size_t header_bytes,
                         std::span<const uint64_t> frame_sizes, const Limits& limits) {
  return core::check_blob_frames(header.blobs, header_bytes, frame_sizes, limits);
}

Result<std::vector<zmq::message_t>> encode(Message&& message) {
  return core::encode<WorkerSchema>(std::move(message));
}

Result<Message> decode(std::vector<zmq::message_t>&& frames, const Limits& limits) {
  return core::decode<WorkerSchema>(std::move(frames), limits);
}

}  // namespace protocol
