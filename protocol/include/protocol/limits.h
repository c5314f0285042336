// Bounds a receiver enforces before it trusts a message, and the protocol version it speaks.
//
// The header frame is small (a few KiB even for a model-info reply of a large model), so its
// Cap'n Proto limits are set low; the bulk data travels in blob frames, bounded one by one and
// in total. Socket options follow these numbers (ZMQ_MAXMSGSIZE = the larger of the header and
// blob limits), so ZeroMQ drops an oversized frame before it is buffered.
#pragma once

#include <cstddef>
#include <cstdint>

namespace protocol {

// The version every message of this build carries, and the only one it accepts.
constexpr uint16_t kProtocolVersion = 1;

struct Limits {
  size_t max_header_bytes = 256 * 1024;                // the Cap'n Proto frame
  uint64_t traversal_limit_words = uint64_t{1} << 16;  // Cap'n Proto reader: words read in total
  int nesting_limit = 8;                         // Cap'n Proto reader: pointer depth (ours is 5)
  size_t max_blobs = 64;                         // raw frames after the header
  uint64_t max_blob_bytes = uint64_t{1} << 30;   // one raw frame
  uint64_t max_total_bytes = uint64_t{3} << 30;  // header + every blob
};

// Largest values a message field may take, whatever the limits above (protocol-level sanity,
// not the fhe library's stricter checks, which the worker applies on top).
constexpr size_t kMaxBlobRank = 4;
constexpr size_t kMaxIdBytes = 256;      // model ids, sender ids
constexpr size_t kMaxErrorBytes = 1024;  // error messages
constexpr size_t kMaxProjections = 8;    // per matmul request or reply
constexpr uint64_t kMaxRows = uint64_t{1} << 20;
constexpr uint64_t kMaxCols = uint64_t{1} << 26;
constexpr uint64_t kMaxRingDegree = uint64_t{1} << 16;
constexpr uint32_t kMaxLayers = 1u << 12;
constexpr size_t kHashBytes = 32;
constexpr size_t kSeedBytes = 32;

}  // namespace protocol
