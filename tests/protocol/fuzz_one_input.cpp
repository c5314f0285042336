#include "fuzz_one_input.h"

#include <algorithm>
#include <string_view>

#include "protocol/codec.h"
#include "protocol/coordinator_codec.h"
#include "protocol/endpoint.h"
#include "protocol/keys.h"

namespace protocol_test {
namespace {

bool typed(const protocol::Error& e) {
  return protocol::is_wire_code(e.code) && !e.message.empty() &&
         e.message.find('\n') == std::string::npos;
}

// Whatever decodes must survive a re-encoding unchanged.
bool round_trips(const protocol::Message& message, const protocol::Limits& limits) {
  protocol::Message copy{message.body, {}};
  for (const auto& b : message.blobs) {
    auto blob = protocol::Blob::copy_of(b.desc, b.bytes());
    if (!blob) return false;
    copy.blobs.push_back(std::move(blob).value());
  }
  auto encoded = protocol::encode(std::move(copy));
  if (!encoded) return false;
  auto again = protocol::decode(std::move(encoded).value(), limits);
  if (!again || !(again.value().body == message.body) ||
      again.value().blobs.size() != message.blobs.size()) {
    return false;
  }
  for (size_t i = 0; i < message.blobs.size(); ++i) {
    const auto x = message.blobs[i].bytes(), y = again.value().blobs[i].bytes();
    if (!(again.value().blobs[i].desc == message.blobs[i].desc) ||
        !std::equal(x.begin(), x.end(), y.begin(), y.end())) {
      return false;
    }
  }
  return true;
}

// The same for coordinator messages.
bool coord_round_trips(const protocol::coord::Message& message, const protocol::Limits& limits) {
  protocol::coord::Message copy{message.body, {}};
  for (const auto& b : message.blobs) {
    auto blob = protocol::Blob::copy_of(b.desc, b.bytes());
    if (!blob) return false;
    copy.blobs.push_back(std::move(blob).value());
  }
  auto encoded = protocol::coord::encode(std::move(copy));
  if (!encoded) return false;
  auto again = protocol::coord::decode(std::move(encoded).value(), limits);
  if (!again || !(again.value().body == message.body) ||
      again.value().blobs.size() != message.blobs.size()) {
    return false;
  }
  for (size_t i = 0; i < message.blobs.size(); ++i) {
    const auto x = message.blobs[i].bytes(), y = again.value().blobs[i].bytes();
    if (!(again.value().blobs[i].desc == message.blobs[i].desc) ||
        !std::equal(x.begin(), x.end(), y.begin(), y.end())) {
      return false;
    }
  }
  return true;
}

}  // namespace

protocol::Limits fuzz_limits() {
  protocol::Limits l;
  l.max_header_bytes = 16 * 1024;
  l.traversal_limit_words = 4096;
  l.max_blobs = 16;
  l.max_blob_bytes = 64 * 1024;
  l.max_total_bytes = 256 * 1024;
  return l;
}

FuzzOutcome fuzz_one_input(const uint8_t* data, size_t size) {
  FuzzOutcome out;
  const auto limits = fuzz_limits();

  auto header = protocol::decode_header({data, size}, limits);
  out.header_decoded = header.ok();
  if (!header.ok() && !typed(header.error())) out.errors_typed = false;

  std::vector<zmq::message_t> frames;
  if (size > 0) {
    const size_t count = 1 + data[0] % 6;
    size_t pos = 1;
    for (size_t f = 0; f < count; ++f) {
      size_t len = size - pos;
      if (f + 1 < count) {
        len = 0;
        if (pos + 2 <= size) len = data[pos] | (size_t{data[pos + 1]} << 8);
        pos = std::min(size, pos + 2);
        len = std::min(len, size - pos);
      }
      frames.emplace_back(data + pos, len);
      pos += len;
    }
  }
  // Coordinator traffic: the same frames through the coordinator decoder.
  auto coord_header = protocol::coord::decode_header({data, size}, limits);
  if (!coord_header.ok() && !typed(coord_header.error())) out.errors_typed = false;
  std::vector<zmq::message_t> coord_frames;
  for (const auto& f : frames) coord_frames.emplace_back(f.data(), f.size());
  auto coord_message = protocol::coord::decode(std::move(coord_frames), limits);
  out.coord_message_decoded = coord_message.ok();
  if (!coord_message.ok()) {
    if (!typed(coord_message.error())) out.errors_typed = false;
  } else if (!coord_round_trips(coord_message.value(), limits)) {
    out.round_trip_ok = false;
  }

  auto message = protocol::decode(std::move(frames), limits);
  out.message_decoded = message.ok();
  if (!message.ok()) {
    if (!typed(message.error())) out.errors_typed = false;
  } else {
    out.round_trip_ok = round_trips(message.value(), limits);
  }

  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)protocol::parse_public_key(text);
  (void)protocol::check_insecure_allowed(text);
  return out;
}

std::vector<uint8_t> join_frames(const std::vector<std::vector<uint8_t>>& frames) {
  std::vector<uint8_t> out;
  out.push_back(static_cast<uint8_t>(frames.size() - 1));
  for (size_t f = 0; f < frames.size(); ++f) {
    if (f + 1 < frames.size()) {
      out.push_back(static_cast<uint8_t>(frames[f].size()));
      out.push_back(static_cast<uint8_t>(frames[f].size() >> 8));
    }
    out.insert(out.end(), frames[f].begin(), frames[f].end());
  }
  return out;
}

}  // namespace protocol_test
