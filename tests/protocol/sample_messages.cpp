#include "sample_messages.h"

#include <cstring>
#include <random>
#include <stdexcept>

namespace protocol_test {

using protocol::Blob;
using protocol::BlobDesc;
using protocol::Message;

namespace {

template <typename T>
T must(protocol::Result<T> r) {
  if (!r) throw std::runtime_error("test data: " + r.error().to_string());
  return std::move(r).value();
}

Blob pattern_blob(BlobDesc desc, uint64_t seed) {
  auto bytes = pattern_bytes(desc.byte_length, seed);
  return must(Blob::adopt(std::move(desc), std::move(bytes)));
}

Blob scales_blob(uint64_t layers, uint64_t rows, float base) {
  std::vector<float> v(layers * rows);
  for (size_t i = 0; i < v.size(); ++i) v[i] = base + 0.001f * static_cast<float>(i);
  auto desc = must(BlobDesc::make(protocol::DType::kFloat32, 32, {layers, rows}));
  return must(Blob::copy_of(desc, {reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4}));
}

}  // namespace

std::vector<uint8_t> pattern_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);  // test data only
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(g());
  return v;
}

Message matmul_request(uint64_t request_id, uint64_t rows, uint64_t cols, uint64_t n) {
  protocol::MatmulRequest r;
  r.request_id = request_id;
  r.model_id = "llama-3.2-1b";
  r.layer = 3;
  r.projections = {protocol::ProjectionKind::kQ, protocol::ProjectionKind::kK,
                   protocol::ProjectionKind::kV};
  r.transpose = false;
  r.params_id = 1;
  for (size_t i = 0; i < r.seed.size(); ++i) r.seed[i] = static_cast<uint8_t>(i * 7 + 1);
  r.log2_delta = 20;
  r.rows = rows;
  r.cols = cols;
  r.switch_modulus = true;
  r.input_blob = 0;
  const uint64_t blocks = (cols + n - 1) / n;
  Message m{r, {}};
  m.blobs.push_back(pattern_blob(must(BlobDesc::planes(blocks, rows, n, 48)), request_id));
  return m;
}

Message matmul_ranged_request(uint64_t request_id, uint64_t rows, uint64_t cols, uint64_t n) {
  Message m = matmul_request(request_id, rows, cols, n);
  auto& r = std::get<protocol::MatmulRequest>(m.body);
  r.projections = {protocol::ProjectionKind::kO};
  r.row_begin = 1;
  r.row_end = 3;
  return m;
}

Message matmul_reply(uint64_t request_id, uint64_t rows, uint64_t cols, uint64_t n, bool switched) {
  protocol::MatmulReply reply;
  reply.request_id = request_id;
  std::vector<protocol::ResultPlanes> results;
  Message m;
  const uint64_t blocks = (cols + n - 1) / n;
  const uint32_t bits = switched ? 35 : 48;
  const protocol::ProjectionKind kinds[] = {protocol::ProjectionKind::kQ,
                                            protocol::ProjectionKind::kK};
  for (const auto kind : kinds) {
    protocol::ResultPlanes p;
    p.projection = kind;
    p.rows = rows;
    p.cols = cols;
    p.kind = switched ? protocol::PlaneKind::kSwitched : protocol::PlaneKind::kProduct;
    p.bits = bits;
    p.log2_delta = 20;
    p.log2_modulus = switched ? bits : 0;
    p.c0_blob = static_cast<uint32_t>(m.blobs.size());
    m.blobs.push_back(pattern_blob(must(BlobDesc::planes(blocks, rows, n, bits)), 100 + p.c0_blob));
    p.c1_blob = static_cast<uint32_t>(m.blobs.size());
    m.blobs.push_back(pattern_blob(must(BlobDesc::planes(blocks, rows, n, bits)), 100 + p.c1_blob));
    results.push_back(p);
  }
  reply.outcome = std::move(results);
  m.body = std::move(reply);
  return m;
}

Message matmul_error_reply(uint64_t request_id) {
  protocol::MatmulReply reply;
  reply.request_id = request_id;
  reply.outcome = protocol::Error{protocol::ErrorCode::kNoiseBudget,
                                  "inner dimension 9000 is too large for P48 at this scale"};
  return Message{reply, {}};
}

Message model_info_request() {
  return Message{protocol::ModelInfoRequest{"llama-3.2-1b"}, {}};
}

Message model_info_reply() {
  protocol::ModelInfo info;
  info.model_id = "llama-3.2-1b";
  for (size_t i = 0; i < info.model_hash.size(); ++i) info.model_hash[i] = static_cast<uint8_t>(i);
  info.layer_count = 3;
  Message m;
  const struct {
    protocol::ProjectionKind kind;
    uint64_t rows, cols;
  } shapes[] = {{protocol::ProjectionKind::kQ, 8, 6}, {protocol::ProjectionKind::kDown, 6, 16}};
  for (const auto& s : shapes) {
    protocol::ProjectionInfo p;
    p.kind = s.kind;
    p.rows = s.rows;
    p.cols = s.cols;
    p.scales_blob = static_cast<uint32_t>(m.blobs.size());
    m.blobs.push_back(scales_blob(info.layer_count, s.rows, 0.01f * (1 + m.blobs.size())));
    for (uint32_t l = 0; l < info.layer_count; ++l) {
      p.norms.push_back({l, 700 + l, 60000 + l, 900 + l, 80000 + l});
    }
    info.projections.push_back(std::move(p));
  }
  m.body = protocol::ModelInfoReply{std::move(info)};
  return m;
}

Message model_info_error() {
  return Message{protocol::ModelInfoReply{protocol::Error{protocol::ErrorCode::kUnknownModel,
                                                          "no model 'gpt-5' on this worker"}},
                 {}};
}

Message heartbeat() {
  return Message{protocol::Heartbeat{"worker-2", 4, 2, 8, 1700000000123456789}, {}};
}

Message error_reply() {
  return Message{protocol::ErrorReply{
                     0, {protocol::ErrorCode::kMalformedRequest, "header frame has 13 bytes"}},
                 {}};
}

std::vector<Message> all_samples() {
  std::vector<Message> v;
  v.push_back(model_info_request());
  v.push_back(model_info_reply());
  v.push_back(model_info_error());
  v.push_back(matmul_request(41, 3, 70, 64));
  v.push_back(matmul_ranged_request(44, 3, 70, 64));
  v.push_back(matmul_reply(41, 2, 70, 64, false));
  v.push_back(matmul_reply(42, 2, 70, 64, true));
  v.push_back(matmul_error_reply(43));
  v.push_back(heartbeat());
  v.push_back(error_reply());
  return v;
}

Message clone(const Message& m) {
  Message c{m.body, {}};
  for (const auto& b : m.blobs) c.blobs.push_back(must(Blob::copy_of(b.desc, b.bytes())));
  return c;
}

bool same(const Message& a, const Message& b) {
  if (!(a.body == b.body) || a.blobs.size() != b.blobs.size()) return false;
  for (size_t i = 0; i < a.blobs.size(); ++i) {
    const auto x = a.blobs[i].bytes(), y = b.blobs[i].bytes();
    if (!(a.blobs[i].desc == b.blobs[i].desc) || x.size() != y.size() ||
        std::memcmp(x.data(), y.data(), x.size()) != 0) {
      return false;
    }
  }
  return true;
}

}  // namespace protocol_test
