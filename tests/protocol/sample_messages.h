// Valid example messages of every kind, with their blobs, and helpers to copy and compare them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/messages.h"

namespace protocol_test {

// Deterministic bytes for blob contents (test data only).
std::vector<uint8_t> pattern_bytes(size_t n, uint64_t seed);

// A matmul request for q, k, v of layer 3: a rows x cols input in packed 48-bit coefficients,
// ring degree n.
protocol::Message matmul_request(uint64_t request_id, uint64_t rows, uint64_t cols, uint64_t n);
// The same for projection o alone, output rows [1, 3) only.
protocol::Message matmul_ranged_request(uint64_t request_id, uint64_t rows, uint64_t cols,
                                        uint64_t n);
// The reply to it: per projection c0 and c1 planes (switched to 35 bits when `switched`).
protocol::Message matmul_reply(uint64_t request_id, uint64_t rows, uint64_t cols, uint64_t n,
                               bool switched);
protocol::Message matmul_error_reply(uint64_t request_id);
protocol::Message model_info_request();
protocol::Message model_info_reply();  // two projections, three layers, with scales blobs
protocol::Message model_info_error();
protocol::Message heartbeat();
protocol::Message error_reply();

// One of each kind above (small shapes).
std::vector<protocol::Message> all_samples();

// A deep copy (blob bytes copied).
protocol::Message clone(const protocol::Message& m);
// Same body, same blob descriptions, same blob bytes.
bool same(const protocol::Message& a, const protocol::Message& b);

}  // namespace protocol_test
