#include "core/codec_core.h"

#include <capnp/serialize.h>
#include <kj/exception.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <string>

namespace protocol::core {
namespace {

constexpr ErrorCode kMalformed = ErrorCode::kMalformedRequest;

// First line of a Cap'n Proto exception, bounded.
std::string one_line(std::string text) {
  return text.substr(0, std::min(text.find('\n'), size_t{200}));
}

}  // namespace

Result<std::vector<uint8_t>> write_header_frame(
    kj::FunctionParam<void(capnp::MessageBuilder&)> fill) {
  try {
    capnp::MallocMessageBuilder builder;
    fill(builder);
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

Status read_header_frame(std::span<const uint8_t> frame, const Limits& limits,
                         kj::FunctionParam<void(capnp::MessageReader&)> read) {
  if (frame.empty()) return make_error(kMalformed, "empty header frame");
  if (frame.size() > limits.max_header_bytes) {
    return make_error(kMalformed, "header frame has ", frame.size(), " bytes (limit ",
                      limits.max_header_bytes, ")");
  }
  if (frame.size() % sizeof(capnp::word) != 0) {
    return make_error(kMalformed, "header frame has ", frame.size(),
                      " bytes, not a whole number of 8-byte words");
  }
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
    read(reader);
  } catch (const FieldError& e) {
    return e.error;
  } catch (const kj::Exception& e) {
    return make_error(kMalformed, "header does not parse: ", one_line(e.getDescription().cStr()));
  } catch (const std::exception& e) {
    return make_error(kMalformed, "header does not parse: ", e.what());
  }
  return ok_status();
}

Status check_blob_frames(std::span<const BlobDesc> descs, size_t header_bytes,
                         std::span<const uint64_t> frame_sizes, const Limits& limits) {
  if (frame_sizes.size() != descs.size()) {
    return make_error(kMalformed, "header announces ", descs.size(), " blob frames, ",
                      frame_sizes.size(), " arrived");
  }
  uint64_t total = header_bytes;
  for (size_t i = 0; i < frame_sizes.size(); ++i) {
    const BlobDesc& d = descs[i];
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

Result<std::vector<BlobDesc>> blob_descs(std::span<const Blob> blobs) {
  std::vector<BlobDesc> descs;
  descs.reserve(blobs.size());
  for (size_t i = 0; i < blobs.size(); ++i) {
    const Blob& b = blobs[i];
    if (b.data.size() != b.desc.byte_length) {
      return make_error(ErrorCode::kShapeMismatch, "blob ", i, " holds ", b.data.size(),
                        " bytes, its description says ", b.desc.byte_length);
    }
    descs.push_back(b.desc);
  }
  return descs;
}

Result<std::vector<zmq::message_t>> to_frames(std::span<const uint8_t> header,
                                              std::vector<Blob>& blobs) {
  return capture(ErrorCode::kInternal, "cannot build frames: ", [&] {
    std::vector<zmq::message_t> frames;
    frames.reserve(1 + blobs.size());
    frames.emplace_back(header.data(), header.size());
    for (auto& b : blobs) frames.push_back(std::move(b.data));
    return frames;
  });
}

Result<std::vector<Blob>> take_blobs(std::vector<BlobDesc>&& descs,
                                     std::vector<zmq::message_t>&& frames, const Limits& limits) {
  std::vector<uint64_t> sizes;
  for (size_t i = 1; i < frames.size(); ++i) sizes.push_back(frames[i].size());
  if (auto s = check_blob_frames(descs, frames.front().size(), sizes, limits); !s) {
    return s.error();
  }
  return capture(ErrorCode::kInternal, "cannot assemble a message: ", [&] {
    std::vector<Blob> blobs;
    blobs.reserve(frames.size() - 1);
    for (size_t i = 1; i < frames.size(); ++i) {
      blobs.push_back(Blob{std::move(descs[i - 1]), std::move(frames[i])});
    }
    return blobs;
  });
}

}  // namespace protocol::core
