// Header frames (encode_header / decode_header, the Cap'n Proto side is in envelope_*.cpp) and
// the checks of the blob frames that follow them.
#include "protocol/codec.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <algorithm>
#include <cstring>
#include <exception>

#include "envelope_read.h"
#include "envelope_write.h"

namespace protocol {
namespace {

constexpr ErrorCode kMalformed = ErrorCode::kMalformedRequest;

// First line of a Cap'n Proto exception, bounded.
std::string one_line(std::string text) {
  text = text.substr(0, std::min(text.find('\n'), size_t{200}));
  return text;
}

}  // namespace

Result<std::vector<uint8_t>> encode_header(const Body& body, std::span<const BlobDesc> blobs) {
  if (auto s = validate(body, blobs); !s) return s.error();
  try {
    capnp::MallocMessageBuilder builder;
    write_envelope(builder.initRoot<wire::Envelope>(), body, blobs);
    auto words = capnp::messageToFlatArray(builder);
    auto bytes = words.asBytes();
    return std::vector<uint8_t>(bytes.begin(), bytes.end());
  } catch (const kj::Exception& e) {
    return make_error(ErrorCode::kInternal,
                      "cannot encode a header: ", one_line(e.getDescription().cStr()));
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kInternal, "cannot encode a header: ", e.what());
  }
}

Result<Header> decode_header(std::span<const uint8_t> frame, const Limits& limits) {
  if (frame.empty()) return make_error(kMalformed, "empty header frame");
  if (frame.size() > limits.max_header_bytes) {
    return make_error(kMalformed, "header frame has ", frame.size(), " bytes (limit ",
                      limits.max_header_bytes, ")");
  }
  if (frame.size() % sizeof(capnp::word) != 0) {
    return make_error(kMalformed, "header frame has ", frame.size(),
                      " bytes, not a whole number of 8-byte words");
  }
  Header header;
  try {
    // A copy: the frame need not be 8-byte aligned, and it is small.
    auto words = kj::heapArray<capnp::word>(frame.size() / sizeof(capnp::word));
    std::memcpy(words.begin(), frame.data(), frame.size());
    capnp::ReaderOptions options;
    options.traversalLimitInWords = limits.traversal_limit_words;
    options.nestingLimit = limits.nesting_limit;
    capnp::FlatArrayMessageReader reader(words, options);
    if (reader.getEnd() != words.end()) {
      return make_error(kMalformed, "header frame has bytes after its message");
    }
    header = read_envelope(reader.getRoot<wire::Envelope>(), limits);
  } catch (const FieldError& e) {
    return e.error;
  } catch (const kj::Exception& e) {
    return make_error(kMalformed, "header does not parse: ", one_line(e.getDescription().cStr()));
  } catch (const std::exception& e) {
    return make_error(kMalformed, "header does not parse: ", e.what());
  }
  if (auto s = validate(header.body, header.blobs); !s) return s.error();
  return header;
}

Status check_blob_frames(const Header& header, size_t header_bytes,
                         std::span<const uint64_t> frame_sizes, const Limits& limits) {
  if (frame_sizes.size() != header.blobs.size()) {
    return make_error(kMalformed, "header announces ", header.blobs.size(), " blob frames, ",
                      frame_sizes.size(), " arrived");
  }
  uint64_t total = header_bytes;
  for (size_t i = 0; i < frame_sizes.size(); ++i) {
    const BlobDesc& d = header.blobs[i];
    if (d.byte_length > limits.max_blob_bytes || frame_sizes[i] > limits.max_blob_bytes) {
      return make_error(kMalformed, "blob ", i, " has ",
                        std::max<uint64_t>(d.byte_length, frame_sizes[i]), " bytes (limit ",
                        limits.max_blob_bytes, ")");
    }
    if (frame_sizes[i] != d.byte_length) {
      return make_error(ErrorCode::kShapeMismatch, "blob ", i, " has ", frame_sizes[i],
                        " bytes, its header says ", d.byte_length);
    }
    if (!checked_add(total, frame_sizes[i], &total) || total > limits.max_total_bytes) {
      return make_error(kMalformed, "message exceeds ", limits.max_total_bytes, " bytes in total");
    }
  }
  return ok_status();
}

Result<std::vector<zmq::message_t>> encode(Message&& message) {
  std::vector<BlobDesc> descs;
  descs.reserve(message.blobs.size());
  for (size_t i = 0; i < message.blobs.size(); ++i) {
    const Blob& b = message.blobs[i];
    if (b.data.size() != b.desc.byte_length) {
      return make_error(ErrorCode::kShapeMismatch, "blob ", i, " holds ", b.data.size(),
                        " bytes, its description says ", b.desc.byte_length);
    }
    descs.push_back(b.desc);
  }
  auto header = encode_header(message.body, descs);
  if (!header) return header.error();
  try {
    std::vector<zmq::message_t> frames;
    frames.reserve(1 + message.blobs.size());
    frames.emplace_back(header.value().data(), header.value().size());
    for (auto& b : message.blobs) frames.push_back(std::move(b.data));
    return frames;
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kInternal, "cannot build frames: ", e.what());
  }
}

Result<Message> decode(std::vector<zmq::message_t>&& frames, const Limits& limits) {
  if (frames.empty()) return make_error(kMalformed, "message has no frames");
  const auto& head = frames.front();
  auto header = decode_header({static_cast<const uint8_t*>(head.data()), head.size()}, limits);
  if (!header) return header.error();
  std::vector<uint64_t> sizes;
  for (size_t i = 1; i < frames.size(); ++i) sizes.push_back(frames[i].size());
  if (auto s = check_blob_frames(header.value(), head.size(), sizes, limits); !s) {
    return s.error();
  }
  try {
    Message m{std::move(header.value().body), {}};
    m.blobs.reserve(frames.size() - 1);
    for (size_t i = 1; i < frames.size(); ++i) {
      m.blobs.push_back(Blob{std::move(header.value().blobs[i - 1]), std::move(frames[i])});
    }
    return m;
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kInternal, "cannot assemble a message: ", e.what());
  }
}

}  // namespace protocol
