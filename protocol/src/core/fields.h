// Reading and writing the fields both schemas share (internal to the library): the protocol
// version every message struct starts with, checked enum values, bounded text, fixed-size data,
// the wire Error and the blob descriptions of an envelope (worker.capnp's Error and BlobDesc,
// which coordinator.capnp imports).
//
// The readers throw FieldError for a field out of range; Cap'n Proto's own structural errors
// arrive as kj::Exception. read_header_frame (codec_core.h) turns both into an Error.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/blob.h"
#include "protocol/limits.h"
#include "protocol/result.h"
#include "worker.capnp.h"

namespace protocol::core {

struct FieldError {
  Error error;
};

// Throws FieldError{e}.
[[noreturn]] void refuse(Error e);

// --- Reading -------------------------------------------------------------------------------------

// Refuses (kUnsupportedVersion) any version but kProtocolVersion; `what` names the message.
void check_version(uint16_t version, std::string_view what);

// An enum value in 1..max (0 is "unset" in every schema enum); kMalformedRequest otherwise.
template <typename Enum, typename WireEnum>
Enum read_enum(WireEnum v, uint16_t max, std::string_view what) {
  const auto raw = static_cast<uint16_t>(v);
  if (raw == 0 || raw > max)
    refuse(make_error(ErrorCode::kMalformedRequest, "unknown ", what, " ", raw));
  return static_cast<Enum>(raw);
}

// A text of at most `max` bytes, with its exact length (NUL bytes included).
std::string read_text(capnp::Text::Reader text, size_t max, std::string_view what);

// A data field of exactly N bytes.
template <size_t N>
std::array<uint8_t, N> read_fixed_data(capnp::Data::Reader data, std::string_view what) {
  if (data.size() != N) {
    refuse(make_error(ErrorCode::kMalformedRequest, what, " has ", data.size(), " bytes, expected ",
                      N));
  }
  std::array<uint8_t, N> out;
  std::memcpy(out.data(), data.begin(), N);
  return out;
}

// A wire error: a known code, a message of at most kMaxErrorBytes.
Error read_error(wire::Error::Reader r);

// An envelope's blob descriptions: at most limits.max_blobs, each a known dtype with
// 1..kMaxBlobRank dimensions (their consistency is BlobDesc::check()'s, run by validate()).
std::vector<BlobDesc> read_blobs(capnp::List<wire::BlobDesc>::Reader blobs, const Limits& limits);

// --- Writing -------------------------------------------------------------------------------------

// A message struct's builder with its version set to kProtocolVersion.
template <typename Builder>
Builder with_version(Builder b) {
  b.setVersion(kProtocolVersion);
  return b;
}

// Text with its exact length (a std::string converted implicitly would stop at a NUL byte).
capnp::Text::Reader text(const std::string& s);

void write_error(wire::Error::Builder b, const Error& e);

// Fills a list initialised with blobs.size() entries.
void write_blobs(capnp::List<wire::BlobDesc>::Builder list, std::span<const BlobDesc> blobs);

}  // namespace protocol::core
