// An in-process worker on tcp loopback: model info agrees with local quantization, and encrypted
// products decrypt bit-exactly to the plaintext int8 products (forward, transposed, several
// projections in one request, switched modulus, concurrent requests batched into one GEMM).
#include <openssl/evp.h>

#include <cstring>

#include "fhe/plane_gemm.h"
#include "fhe_worker/matmul.h"
#include "model/projection.h"
#include "model/quantize.h"
#include "worker_test_util.h"

namespace {

using namespace worker_test;
using protocol::ProjectionKind;

class WorkerMatmul : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = write_tiny_model(tmp.path());
    weights = model::load_llama_weights(dir);
    f.start(dir);
  }
  model::QuantizedWeight local(uint32_t layer, ProjectionKind kind) const {
    return model::quantize_weight_rows(
        model::projection_weight(weights, {fhe_worker::to_model_kind(kind), layer}));
  }
  // Sends one request and returns the decrypted products, checking each against the plaintext.
  void check_exact(uint32_t layer, std::vector<ProjectionKind> kinds, bool transpose,
                   bool switch_modulus, size_t tokens, bool expect_switched = false) {
    const model::QuantizedWeight w0 = local(layer, kinds.front());
    const size_t rows = static_cast<size_t>(transpose ? w0.rows : w0.cols);
    const auto x = test_matrix(rows, tokens, layer * 7 + tokens);
    const fhe::CiphertextMatrix ct = f.encrypt(x, rows, tokens);
    fhe_worker::MatmulCall call{42, "tiny", layer, kinds, transpose, switch_modulus};
    auto request = fhe_worker::make_matmul_request(*f.fhe_ctx, call, ct);
    ASSERT_TRUE(request.ok()) << request.error().to_string();
    auto client = f.client();
    protocol::Message reply = round_trip(client, std::move(request).value());
    const auto* m = std::get_if<protocol::MatmulReply>(&reply.body);
    ASSERT_NE(m, nullptr) << protocol::body_name(reply.body);
    EXPECT_EQ(m->request_id, 42u);
    auto products = fhe_worker::read_matmul_reply(*f.fhe_ctx, reply);
    ASSERT_TRUE(products.ok()) << products.error().to_string();
    ASSERT_EQ(products.value().size(), kinds.size());
    fhe::Decryptor dec(f.key);
    for (size_t k = 0; k < kinds.size(); ++k) {
      const auto& y = products.value()[k];
      EXPECT_EQ(y.kind, expect_switched ? fhe::CtKind::kSwitched : fhe::CtKind::kProduct);
      const auto got = dec.decrypt(y);
      const auto want = plain_product(local(layer, kinds[k]), x, tokens, transpose);
      EXPECT_EQ(got, want) << protocol::projection_name(kinds[k]) << " layer " << layer
                           << (transpose ? " transposed" : "");
    }
  }

  TempDir tmp;
  std::filesystem::path dir;
  model::LlamaWeights weights;
  Fixture f;
};

TEST_F(WorkerMatmul, ModelInfoAgreesWithLocalQuantization) {
  auto client = f.client();
  protocol::Message reply =
      round_trip(client, protocol::Message{protocol::ModelInfoRequest{"tiny"}, {}});
  const auto* r = std::get_if<protocol::ModelInfoReply>(&reply.body);
  ASSERT_NE(r, nullptr) << protocol::body_name(reply.body);
  ASSERT_TRUE(std::holds_alternative<protocol::ModelInfo>(r->outcome));
  const auto& info = std::get<protocol::ModelInfo>(r->outcome);
  EXPECT_EQ(info.model_id, "tiny");  // the directory's name
  EXPECT_EQ(info.layer_count, 2u);
  ASSERT_EQ(info.projections.size(), 7u);

  // The documented hash: per layer, per projection q..down, int8 weights then float32 scales.
  EVP_MD_CTX* sha = EVP_MD_CTX_new();
  ASSERT_EQ(EVP_DigestInit_ex(sha, EVP_sha256(), nullptr), 1);
  for (uint32_t layer = 0; layer < 2; ++layer) {
    for (const auto kind : fhe_worker::kServedProjections) {
      const auto w = local(layer, kind);
      EVP_DigestUpdate(sha, w.values.data(), w.values.size());
      EVP_DigestUpdate(sha, w.scales.data(), w.scales.size() * sizeof(float));
    }
  }
  protocol::Hash want{};
  unsigned len = 0;
  EVP_DigestFinal_ex(sha, want.data(), &len);
  EVP_MD_CTX_free(sha);
  EXPECT_EQ(info.model_hash, want);

  for (size_t k = 0; k < info.projections.size(); ++k) {
    const auto& p = info.projections[k];
    EXPECT_EQ(p.kind, fhe_worker::kServedProjections[k]);
    ASSERT_LT(p.scales_blob, reply.blobs.size());
    const auto& blob = reply.blobs[p.scales_blob];
    ASSERT_EQ(blob.desc.shape, (std::vector<uint64_t>{2, p.rows}));
    for (uint32_t layer = 0; layer < 2; ++layer) {
      const auto w = local(layer, p.kind);
      EXPECT_EQ(p.rows, static_cast<uint64_t>(w.rows));
      EXPECT_EQ(p.cols, static_cast<uint64_t>(w.cols));
      std::vector<float> scales(p.rows);
      std::memcpy(scales.data(), blob.bytes().data() + layer * p.rows * sizeof(float),
                  p.rows * sizeof(float));
      EXPECT_EQ(scales, w.scales);
      // Norms: rows of W and rows of W^T.
      uint64_t f1 = 0, f2 = 0, t1 = 0, t2 = 0;
      for (int64_t i = 0; i < w.rows; ++i) {
        uint64_t a = 0, b = 0;
        for (int64_t j = 0; j < w.cols; ++j) {
          const int64_t v = w.values[i * w.cols + j];
          a += std::abs(v);
          b += v * v;
        }
        f1 = std::max(f1, a);
        f2 = std::max(f2, b);
      }
      for (int64_t j = 0; j < w.cols; ++j) {
        uint64_t a = 0, b = 0;
        for (int64_t i = 0; i < w.rows; ++i) {
          const int64_t v = w.values[i * w.cols + j];
          a += std::abs(v);
          b += v * v;
        }
        t1 = std::max(t1, a);
        t2 = std::max(t2, b);
      }
      const auto& n = p.norms[layer];
      EXPECT_EQ(n.layer, layer);
      EXPECT_EQ(n.forward_l1, f1);
      EXPECT_EQ(n.forward_l2_squared, f2);
      EXPECT_EQ(n.transpose_l1, t1);
      EXPECT_EQ(n.transpose_l2_squared, t2);
    }
  }
}

TEST_F(WorkerMatmul, ForwardProductIsExact) {
  check_exact(0, {ProjectionKind::kQ}, false, false, 5);
  check_exact(1, {ProjectionKind::kDown}, false, false, 3);
}

TEST_F(WorkerMatmul, TransposedProductIsExact) {
  check_exact(1, {ProjectionKind::kGate}, true, false, 4);
  check_exact(0, {ProjectionKind::kK}, true, false, 2);
}

TEST_F(WorkerMatmul, SeveralProjectionsShareOneInput) {
  check_exact(1, {ProjectionKind::kQ, ProjectionKind::kK, ProjectionKind::kV}, false, false, 6);
  check_exact(0, {ProjectionKind::kGate, ProjectionKind::kUp}, false, false, 2);
}

TEST_F(WorkerMatmul, SwitchedModulusIsExact) {
  check_exact(0, {ProjectionKind::kO, ProjectionKind::kQ}, false, true, 7, true);
  check_exact(1, {ProjectionKind::kUp}, true, true, 3, true);
}

TEST_F(WorkerMatmul, MoreTokensThanOneBlock) {
  check_exact(0, {ProjectionKind::kV}, false, true, 2048 + 9, true);
}

TEST_F(WorkerMatmul, HeartbeatReportsLoad) {
  auto client = f.client();
  protocol::Heartbeat ping;
  ping.sender_id = "test";
  protocol::Message reply = round_trip(client, protocol::Message{ping, {}});
  const auto* h = std::get_if<protocol::Heartbeat>(&reply.body);
  ASSERT_NE(h, nullptr) << protocol::body_name(reply.body);
  EXPECT_EQ(h->sender_id, "fhe_worker@" + f.worker->endpoint());
  EXPECT_EQ(h->capacity, 1u);
  EXPECT_EQ(h->queued, 0u);
  EXPECT_GT(h->timestamp_nanos, 0);
}

// compute_batch over several requests for the same projection runs one GEMM over all their
// blocks and still answers each exactly.
TEST_F(WorkerMatmul, BatchedRequestsAreExact) {
  const auto w = local(1, ProjectionKind::kUp);
  std::vector<fhe_worker::MatmulJob> jobs;
  std::vector<std::vector<int8_t>> xs;
  const size_t tokens[] = {3, 2048 + 1, 11};
  for (size_t i = 0; i < 3; ++i) {
    xs.push_back(test_matrix(64, tokens[i], 100 + i));
    auto m = fhe_worker::make_matmul_request(
        *f.fhe_ctx, {i + 1, "tiny", 1, {ProjectionKind::kUp}, false, i == 2},
        f.encrypt(xs[i], 64, tokens[i]));
    ASSERT_TRUE(m.ok());
    auto& msg = m.value();
    jobs.push_back({"peer", std::get<protocol::MatmulRequest>(msg.body), std::move(msg.blobs[0])});
    ASSERT_TRUE(fhe_worker::check_request(*f.model, jobs.back().request, jobs.back().input).ok());
  }
  // A corrupted input fails alone.
  auto bad = fhe_worker::make_matmul_request(*f.fhe_ctx, {9, "tiny", 1, {ProjectionKind::kUp}},
                                             f.encrypt(xs[0], 64, 3));
  ASSERT_TRUE(bad.ok());
  auto& bad_msg = bad.value();
  std::vector<uint8_t> ones(bad_msg.blobs[0].bytes().size(), 0xff);  // coefficients >= q
  auto bad_blob = protocol::Blob::copy_of(bad_msg.blobs[0].desc, ones);
  ASSERT_TRUE(bad_blob.ok());
  jobs.push_back(
      {"peer", std::get<protocol::MatmulRequest>(bad_msg.body), std::move(bad_blob).value()});

  std::vector<const fhe_worker::MatmulJob*> ptrs;
  for (const auto& j : jobs) ptrs.push_back(&j);
  auto replies = fhe_worker::compute_batch(*f.model, ptrs);
  ASSERT_EQ(replies.size(), 4u);
  fhe::Decryptor dec(f.key);
  for (size_t i = 0; i < 3; ++i) {
    auto y = fhe_worker::read_matmul_reply(*f.fhe_ctx, replies[i]);
    ASSERT_TRUE(y.ok()) << y.error().to_string();
    EXPECT_EQ(dec.decrypt(y.value()[0]), plain_product(w, xs[i], tokens[i], false)) << i;
  }
  auto y = fhe_worker::read_matmul_reply(*f.fhe_ctx, replies[3]);
  ASSERT_FALSE(y.ok());
  EXPECT_EQ(y.error().code, protocol::ErrorCode::kMalformedRequest);
}

// Many concurrent requests from several clients: every one answered exactly, and requests for
// the same projection that queue up share GEMMs.
TEST_F(WorkerMatmul, ConcurrentClientsAreAllAnswered) {
  constexpr int kClients = 4, kEach = 3;
  std::vector<protocol::Client> clients;
  for (int c = 0; c < kClients; ++c) clients.push_back(f.client());
  const auto w = local(0, ProjectionKind::kQ);
  std::vector<std::vector<int8_t>> xs;
  for (int c = 0; c < kClients; ++c) {
    for (int i = 0; i < kEach; ++i) {
      xs.push_back(test_matrix(64, 4, c * 10 + i));
      auto m = fhe_worker::make_matmul_request(
          *f.fhe_ctx, {static_cast<uint64_t>(c * 10 + i), "tiny", 0, {ProjectionKind::kQ}},
          f.encrypt(xs.back(), 64, 4));
      ASSERT_TRUE(m.ok());
      ASSERT_TRUE(clients[c].send(std::move(m).value()).ok());
    }
  }
  fhe::Decryptor dec(f.key);
  for (int c = 0; c < kClients; ++c) {
    for (int i = 0; i < kEach; ++i) {
      auto r = clients[c].receive(20s);
      ASSERT_TRUE(r.ok()) << r.error().to_string();
      const auto id = std::get<protocol::MatmulReply>(r.value().body).request_id;
      ASSERT_EQ(id / 10, static_cast<uint64_t>(c));
      auto y = fhe_worker::read_matmul_reply(*f.fhe_ctx, r.value());
      ASSERT_TRUE(y.ok()) << y.error().to_string();
      EXPECT_EQ(dec.decrypt(y.value()[0]), plain_product(w, xs[c * kEach + id % 10], 4, false));
    }
  }
  const auto stats = f.worker->stats();
  EXPECT_EQ(stats.matmul_replies, static_cast<uint64_t>(kClients * kEach));
  EXPECT_LE(stats.batches, static_cast<uint64_t>(kClients * kEach));
}

}  // namespace
