// The coordinator schema's codec (coordinator_codec.h): the shared core (core/codec_core.h)
// over its envelope.
#include "protocol/coordinator_codec.h"

#include "coordinator/envelope.h"
#include "core/codec_core.h"

namespace protocol::coord {

Result<std::vector<uint8_t>> encode_header(const Body& body, std::span<const BlobDesc> blobs) {
  return core::encode_header<CoordinatorSchema>(body, blobs);
}

Result<Header> decode_header(std::span<const uint8_t> frame, const Limits& limits) {
  return core::decode_header<CoordinatorSchema>(frame, limits);
}

Result<std::vector<zmq::message_t>> encode(Message&& message) {
  return core::encode<CoordinatorSchema>(std::move(message));
}

Result<Message> decode(std::vector<zmq::message_t>&& frames, const Limits& limits) {
  return core::decode<CoordinatorSchema>(std::move(frames), limits);
}

}  // namespace protocol::coord
