// An in-process worker on tcp loopback: model info agrees with local quantization (the LM head
// included, as layer 0), and encrypted products decrypt bit-exactly to the plaintext int8
// products (forward, transposed, the LM head both ways, several projections in one request,
// switched modulus, concurrent requests batched into one GEMM); a transposed LM head whose
// vocabulary is too large for the noise bound gets a typed error.
#include <openssl/evp.h>

#include <cstring>

#include "fhe/noise.h"
#include "fhe/plane_gemm.h"
#include "fhe_worker/error.h"
#include "fhe_worker/matmul.h"
#include "model/projection.h"
#include "model/quantize.h"
#include "protocol/coordinator_messages.h"
#include "worker_test_util.h"

namespace {

using namespace worker_test;
using protocol::ProjectionKind;

model::QuantizedWeight local_weight(const model::LlamaWeights& weights, uint32_t layer,
                                    ProjectionKind kind) {
  return model::quantize_weight_rows(
      model::projection_weight(weights, {fhe_worker::to_model_kind(kind), layer}));
}

// The largest row L1 and squared L2 norms of W (transpose = false) or of W^T.
protocol::LayerNorms expected_norms(const model::QuantizedWeight& w, uint32_t layer) {
  protocol::LayerNorms n;
  n.layer = layer;
  for (int64_t i = 0; i < w.rows; ++i) {
    uint64_t a = 0, b = 0;
    for (int64_t j = 0; j < w.cols; ++j) {
      const int64_t v = w.values[i * w.cols + j];
      a += std::abs(v);
      b += v * v;
    }
    n.forward_l1 = std::max(n.forward_l1, a);
    n.forward_l2_squared = std::max(n.forward_l2_squared, b);
  }
  for (int64_t j = 0; j < w.cols; ++j) {
    uint64_t a = 0, b = 0;
    for (int64_t i = 0; i < w.rows; ++i) {
      const int64_t v = w.values[i * w.cols + j];
      a += std::abs(v);
      b += v * v;
    }
    n.transpose_l1 = std::max(n.transpose_l1, a);
    n.transpose_l2_squared = std::max(n.transpose_l2_squared, b);
  }
  return n;
}

class WorkerMatmul : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = write_tiny_model(tmp.path());
    weights = model::load_llama_weights(dir);
    f.start(dir);
  }
  model::QuantizedWeight local(uint32_t layer, ProjectionKind kind) const {
    return local_weight(weights, layer, kind);
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
  ASSERT_EQ(info.projections.size(), 8u);  // q .. down, then lm_head

  // The documented hash: per layer, per projection q..down, int8 weights then float32 scales;
  // then the LM head the same way.
  EVP_MD_CTX* sha = EVP_MD_CTX_new();
  ASSERT_EQ(EVP_DigestInit_ex(sha, EVP_sha256(), nullptr), 1);
  const auto hash = [&](const model::QuantizedWeight& w) {
    EVP_DigestUpdate(sha, w.values.data(), w.values.size());
    EVP_DigestUpdate(sha, w.scales.data(), w.scales.size() * sizeof(float));
  };
  for (uint32_t layer = 0; layer < 2; ++layer) {
    for (const auto kind : fhe_worker::kLayerProjections) hash(local(layer, kind));
  }
  hash(local(0, ProjectionKind::kLmHead));
  protocol::Hash want{};
  unsigned len = 0;
  EVP_DigestFinal_ex(sha, want.data(), &len);
  EVP_MD_CTX_free(sha);
  EXPECT_EQ(info.model_hash, want);
  EXPECT_EQ(info.model_hash, f.model->hash());

  for (size_t k = 0; k < info.projections.size(); ++k) {
    const auto& p = info.projections[k];
    EXPECT_EQ(p.kind, fhe_worker::kServedProjections[k]);
    const uint32_t layers = p.kind == ProjectionKind::kLmHead ? 1 : 2;
    ASSERT_LT(p.scales_blob, reply.blobs.size());
    const auto& blob = reply.blobs[p.scales_blob];
    ASSERT_EQ(blob.desc.shape, (std::vector<uint64_t>{layers, p.rows}));
    ASSERT_EQ(p.norms.size(), layers);
    for (uint32_t layer = 0; layer < layers; ++layer) {
      const auto w = local(layer, p.kind);
      EXPECT_EQ(p.rows, static_cast<uint64_t>(w.rows));
      EXPECT_EQ(p.cols, static_cast<uint64_t>(w.cols));
      std::vector<float> scales(p.rows);
      std::memcpy(scales.data(), blob.bytes().data() + layer * p.rows * sizeof(float),
                  p.rows * sizeof(float));
      EXPECT_EQ(scales, w.scales);
      EXPECT_EQ(p.norms[layer], expected_norms(w, layer));  // rows of W and of W^T
    }
  }
  // The LM head is the [vocab, hidden] lm_head.weight (this model does not tie it).
  const auto& head = info.projections.back();
  EXPECT_EQ(head.rows, 50u);
  EXPECT_EQ(head.cols, 64u);
  EXPECT_EQ(local(0, ProjectionKind::kLmHead).values,
            model::quantize_weight_rows(weights.lm_head_weight).values);
}

TEST_F(WorkerMatmul, ForwardProductIsExact) {
  check_exact(0, {ProjectionKind::kQ}, false, false, 5);
  check_exact(1, {ProjectionKind::kDown}, false, false, 3);
}

TEST_F(WorkerMatmul, TransposedProductIsExact) {
  check_exact(1, {ProjectionKind::kGate}, true, false, 4);
  check_exact(0, {ProjectionKind::kK}, true, false, 2);
}

TEST_F(WorkerMatmul, LmHeadProductsAreExactBothWays) {
  check_exact(0, {ProjectionKind::kLmHead}, false, false, 5);
  check_exact(0, {ProjectionKind::kLmHead}, true, false, 3);
  check_exact(0, {ProjectionKind::kLmHead}, true, true, 4, true);
  const auto stats = f.worker->stats();
  EXPECT_EQ(stats.products[static_cast<size_t>(ProjectionKind::kLmHead)], 3u);
  EXPECT_EQ(stats.products[static_cast<size_t>(ProjectionKind::kQ)], 0u);
}

TEST_F(WorkerMatmul, LmHeadIsLayerZeroOnly) {
  const auto x = test_matrix(64, 2, 1);
  auto request = fhe_worker::make_matmul_request(
      *f.fhe_ctx, {7, "tiny", 1, {ProjectionKind::kLmHead}, false, false}, f.encrypt(x, 64, 2));
  ASSERT_TRUE(request.ok()) << request.error().to_string();
  auto client = f.client();
  protocol::Message reply = round_trip(client, std::move(request).value());
  auto products = fhe_worker::read_matmul_reply(*f.fhe_ctx, reply);
  ASSERT_FALSE(products.ok());
  EXPECT_EQ(products.error().code, protocol::ErrorCode::kUnknownLayer);
  EXPECT_NE(products.error().message.find("lm_head"), std::string::npos)
      << products.error().message;
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

// A stacked request (transposed, the input the projections' d_out rows stacked) gets ONE result:
// sum_j W_j^T X_j, X_j the rows of projection j, checked against the plaintext int8 products.
class WorkerStacked : public WorkerMatmul {
 protected:
  // Sends the stacked request and returns its reply.
  protocol::Message send_stacked(uint32_t layer, const std::vector<ProjectionKind>& kinds,
                                 size_t rows, size_t tokens, bool transpose, bool switch_modulus,
                                 uint64_t id) {
    const auto x = test_matrix(rows, tokens, static_cast<uint32_t>(layer * 11 + tokens));
    fhe_worker::MatmulCall call{id, "tiny", layer, kinds, transpose, switch_modulus};
    call.stacked = true;
    auto request = fhe_worker::make_matmul_request(*f.fhe_ctx, call, f.encrypt(x, rows, tokens));
    EXPECT_TRUE(request.ok()) << request.error().to_string();
    auto client = f.client();
    return round_trip(client, std::move(request).value());
  }

  void check_stacked(uint32_t layer, const std::vector<ProjectionKind>& kinds, size_t tokens,
                     bool switch_modulus) {
    size_t rows = 0;
    for (const ProjectionKind kind : kinds) rows += static_cast<size_t>(local(layer, kind).rows);
    const auto x = test_matrix(rows, tokens, static_cast<uint32_t>(layer * 11 + tokens));
    const protocol::Message reply =
        send_stacked(layer, kinds, rows, tokens, /*transpose=*/true, switch_modulus, 9);
    auto products = fhe_worker::read_matmul_reply(*f.fhe_ctx, reply);
    ASSERT_TRUE(products.ok()) << products.error().to_string();
    ASSERT_EQ(products.value().size(), 1u);
    const auto& y = products.value()[0];
    EXPECT_EQ(std::get<std::vector<protocol::ResultPlanes>>(
                  std::get<protocol::MatmulReply>(reply.body).outcome)[0]
                  .projection,
              kinds.front());
    EXPECT_EQ(y.kind, switch_modulus ? fhe::CtKind::kSwitched : fhe::CtKind::kProduct);
    const auto got = fhe::Decryptor(f.key).decrypt(y);
    // The plaintext: each part's rows of x by its W^T, summed in int64.
    std::vector<int64_t> want;
    size_t at = 0;
    for (const ProjectionKind kind : kinds) {
      const model::QuantizedWeight w = local(layer, kind);
      const std::vector<int8_t> part(
          x.begin() + static_cast<std::ptrdiff_t>(at * tokens),
          x.begin() + static_cast<std::ptrdiff_t>((at + w.rows) * tokens));
      const auto p = plain_product(w, part, tokens, /*transpose=*/true);
      if (want.empty()) {
        want = p;
      } else {
        for (size_t i = 0; i < want.size(); ++i) want[i] += p[i];
      }
      at += static_cast<size_t>(w.rows);
    }
    EXPECT_EQ(got, want) << kinds.size() << " stacked projections of layer " << layer;
  }

  // The typed refusal of a stacked request (and that the worker still answers the next one).
  protocol::Error refusal(uint32_t layer, const std::vector<ProjectionKind>& kinds, size_t rows,
                          bool transpose) {
    const protocol::Message reply = send_stacked(layer, kinds, rows, 3, transpose, false, 5);
    auto products = fhe_worker::read_matmul_reply(*f.fhe_ctx, reply);
    EXPECT_FALSE(products.ok());
    if (products.ok()) return {};
    EXPECT_EQ(std::get<protocol::MatmulReply>(reply.body).request_id, 5u);
    return products.error();
  }
};

TEST_F(WorkerStacked, QkvAndGateUpSumToTheStackedInt8Product) {
  check_stacked(1, {ProjectionKind::kQ, ProjectionKind::kK, ProjectionKind::kV}, 6, false);
  check_stacked(0, {ProjectionKind::kGate, ProjectionKind::kUp}, 4, true);
  check_stacked(0, {ProjectionKind::kK}, 3, false);  // a stack of one is the plain W^T X
}

TEST_F(WorkerStacked, MoreTokensThanOneBlock) {
  // Past one block every part's mask rows sit at (block * all rows + offset): a wrong offset
  // would not decrypt.
  check_stacked(1, {ProjectionKind::kV, ProjectionKind::kQ}, 2048 + 5, false);
}

TEST_F(WorkerStacked, MalformedRequestsGetTypedErrorsAndTheWorkerKeepsServing) {
  const std::vector<ProjectionKind> qkv{ProjectionKind::kQ, ProjectionKind::kK, ProjectionKind::kV};
  const size_t sum =
      static_cast<size_t>(local(0, ProjectionKind::kQ).rows + local(0, ProjectionKind::kK).rows +
                          local(0, ProjectionKind::kV).rows);
  protocol::Error e = refusal(0, qkv, sum - 1, /*transpose=*/true);
  EXPECT_EQ(e.code, protocol::ErrorCode::kShapeMismatch);
  EXPECT_NE(e.message.find("sum of their d_out"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find(std::to_string(sum)), std::string::npos) << e.message;
  // The rows of one projection are not the stack of three.
  e = refusal(0, qkv, static_cast<size_t>(local(0, ProjectionKind::kQ).rows), true);
  EXPECT_EQ(e.code, protocol::ErrorCode::kShapeMismatch);
  e = refusal(0, qkv, 64, /*transpose=*/false);
  EXPECT_EQ(e.code, protocol::ErrorCode::kMalformedRequest);
  EXPECT_NE(e.message.find("transposed"), std::string::npos) << e.message;
  // Projections of different inputs (q takes the hidden state, down the MLP activations).
  e = refusal(
      0, {ProjectionKind::kQ, ProjectionKind::kDown},
      static_cast<size_t>(local(0, ProjectionKind::kQ).rows + local(0, ProjectionKind::kDown).rows),
      true);
  EXPECT_EQ(e.code, protocol::ErrorCode::kShapeMismatch);
  EXPECT_NE(e.message.find("one input"), std::string::npos) << e.message;
  // And the next request is served.
  check_stacked(0, qkv, 2, false);
  check_exact(0, {ProjectionKind::kQ}, false, false, 3);
}

// The default id is one the coordinator accepts (it refuses any other character set or length).
TEST(WorkerId, TheDefaultIsASafeId) {
  EXPECT_EQ(fhe_worker::default_worker_id("tcp://10.0.0.5:5555"), "worker-tcp---10.0.0.5-5555");
  const std::string long_id = fhe_worker::default_worker_id("ipc:///" + std::string(200, 'x'));
  EXPECT_EQ(long_id.size(), 64u);
  EXPECT_TRUE(protocol::coord::is_site_id(long_id));
}

TEST_F(WorkerMatmul, HeartbeatReportsLoad) {
  auto client = f.client();
  protocol::Heartbeat ping;
  ping.sender_id = "test";
  protocol::Message reply = round_trip(client, protocol::Message{ping, {}});
  const auto* h = std::get_if<protocol::Heartbeat>(&reply.body);
  ASSERT_NE(h, nullptr) << protocol::body_name(reply.body);
  EXPECT_EQ(h->sender_id, fhe_worker::default_worker_id(f.worker->endpoint()));
  EXPECT_TRUE(protocol::coord::is_site_id(h->sender_id)) << h->sender_id;
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
    // Each answer reports where the worker's time went; the GEMM phases are the batch's.
    const auto& reply = std::get<protocol::MatmulReply>(replies[i].body);
    ASSERT_TRUE(reply.has_timings) << i;
    const auto& first = std::get<protocol::MatmulReply>(replies[0].body).timings;
    EXPECT_EQ(reply.timings.gemm_ns, first.gemm_ns) << i;
    EXPECT_EQ(reply.timings.seed_expansion_ns, first.seed_expansion_ns) << i;
    if (i != 2) {
      EXPECT_EQ(reply.timings.switch_ns, 0u) << i;  // only request 2 asked to switch
    }
  }
  EXPECT_FALSE(std::get<protocol::MatmulReply>(replies[3].body).has_timings);
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

// A tied model serves embed_tokens as its LM head.
TEST(WorkerModel, TiedModelServesTheEmbeddingsAsLmHead) {
  TempDir tmp;
  model::LlamaConfig c = tiny_config();
  c.tie_word_embeddings = true;
  model::write_random_llama(tmp.path() / "tied", c,
                            model::RandomModelOptions{3, model::DType::kF32});
  const auto weights = model::load_llama_weights(tmp.path() / "tied");
  fhe_worker::WorkerModelOptions mo;
  mo.model_id = "tied";
  mo.device = fhe_worker::parse_device("cpu");
  mo.threads = 1;
  const fhe_worker::WorkerModel m(weights, mo);
  EXPECT_EQ(m.weight(0, ProjectionKind::kLmHead).values,
            model::quantize_weight_rows(weights.embed_tokens).values);
  EXPECT_EQ(m.layers_of(ProjectionKind::kLmHead), 1u);
  EXPECT_THROW(m.weight(1, ProjectionKind::kLmHead), fhe_worker::WorkerError);
}

// A vocabulary whose columns are all +-127 after quantization: the transposed LM head's inner
// dimension (16384) leaves no scale that meets both the message and the noise bound, so every
// such request is refused with kNoiseBudget before its input is even looked at (the request
// itself would be 16384 x 2048 coefficients, 200 MB, hence check_request directly). The forward
// LM head and the layers are unaffected.
TEST(WorkerModel, VocabularyTooLargeForTheTransposedNoiseBoundIsATypedError) {
  TempDir tmp;
  model::LlamaConfig c;
  c.hidden_size = 8;
  c.intermediate_size = 8;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 4;
  c.vocab_size = 16384;
  model::write_random_llama(tmp.path() / "big", c,
                            model::RandomModelOptions{5, model::DType::kF32});
  auto weights = model::load_llama_weights(tmp.path() / "big");
  const auto signs = test_matrix(static_cast<size_t>(c.vocab_size), 8, 77);
  for (int64_t i = 0; i < c.vocab_size; ++i) {
    for (int64_t j = 0; j < 8; ++j) {
      weights.lm_head_weight(i, j) = signs[static_cast<size_t>(i * 8 + j)] < 0 ? -0.5f : 0.5f;
    }
  }
  fhe_worker::WorkerModelOptions mo;
  mo.model_id = "big";
  mo.device = fhe_worker::parse_device("cpu");
  mo.threads = 1;
  const fhe_worker::WorkerModel m(weights, mo);
  const fhe::WeightBounds b = m.bounds(0, ProjectionKind::kLmHead, true);
  EXPECT_EQ(b.max_row_l1, 127u * 16384u);
  EXPECT_EQ(b.inner_dim, 16384u);
  // The participant could not choose a scale for it either.
  EXPECT_THROW(fhe::choose_log2_delta(m.context().params(), b, 8), fhe::FheError);

  const fhe::Params& p = m.context().params();
  const auto request = [&](bool transpose, uint32_t log2_delta) {
    protocol::MatmulRequest r;
    r.request_id = 1;
    r.model_id = "big";
    r.projections = {ProjectionKind::kLmHead};
    r.transpose = transpose;
    r.params_id = p.id;
    r.log2_delta = log2_delta;
    r.rows = transpose ? 16384 : 8;
    r.cols = 1;
    return r;
  };
  // Only the description is read: no 200 MB of coefficients.
  const protocol::Blob input{protocol::BlobDesc::planes(1, 16384, p.n, p.log2_q).value(), {}};
  for (uint32_t d = 1; d < p.log2_q; ++d) {
    const auto s = fhe_worker::check_request(m, request(true, d), input);
    ASSERT_FALSE(s.ok()) << "log2 delta " << d;
    EXPECT_EQ(s.error().code, protocol::ErrorCode::kNoiseBudget) << s.error().to_string();
  }
  const auto s = fhe_worker::check_request(m, request(true, 20), input);
  EXPECT_NE(s.error().message.find("vocabulary"), std::string::npos) << s.error().message;

  const protocol::Blob forward_input{protocol::BlobDesc::planes(1, 8, p.n, p.log2_q).value(), {}};
  const uint32_t d = fhe::choose_log2_delta(p, m.bounds(0, ProjectionKind::kLmHead, false), 16384);
  EXPECT_TRUE(fhe_worker::check_request(m, request(false, d), forward_input).ok());
}

}  // namespace

namespace {

// Rows [begin, end) of every block of a product ciphertext.
fhe::CiphertextMatrix rows_of(const fhe::CiphertextMatrix& y, size_t n, uint64_t begin,
                              uint64_t end) {
  fhe::CiphertextMatrix part = y;
  part.rows = end - begin;
  const size_t blocks = y.blocks(n), count = static_cast<size_t>(part.rows) * n;
  part.c0.assign(blocks * count, 0);
  part.c1.assign(blocks * count, 0);
  for (size_t b = 0; b < blocks; ++b) {
    const size_t from = (b * y.rows + begin) * n;
    std::copy_n(y.c0.data() + from, count, part.c0.data() + b * count);
    std::copy_n(y.c1.data() + from, count, part.c1.data() + b * count);
  }
  return part;
}

}  // namespace

// A ranged request (row_begin/row_end) answers exactly the asked rows of the whole request's
// products, bit for bit, switched to the same modulus: single products both ways, a forward
// group (the range over the projections' results concatenated, those it misses left out) and a
// stacked product; two ciphertext blocks of tokens. Ranges past the output rows are refused.
TEST_F(WorkerMatmul, RangedRequestsAreTheWholeProductsRowsBitForBit) {
  const size_t n = f.fhe_ctx->n();
  struct Case {
    std::vector<ProjectionKind> kinds;
    bool transpose, stacked;
  };
  const Case cases[] = {
      {{ProjectionKind::kUp}, false, false},
      {{ProjectionKind::kUp}, true, false},
      {{ProjectionKind::kQ, ProjectionKind::kK, ProjectionKind::kV}, false, false},
      {{ProjectionKind::kQ, ProjectionKind::kK, ProjectionKind::kV}, true, true}};
  uint64_t id = 100;
  for (const Case& c : cases) {
    for (const bool switched : {false, true}) {
      SCOPED_TRACE(std::string(protocol::projection_name(c.kinds[0])) + (c.transpose ? "^T" : "") +
                   (c.stacked ? " stacked" : "") + (switched ? " switched" : ""));
      uint64_t in_rows = 0;
      std::vector<uint64_t> out_rows;
      for (const ProjectionKind k : c.kinds) {
        const auto w = local(1, k);
        in_rows = c.stacked ? in_rows + static_cast<uint64_t>(w.rows)
                            : static_cast<uint64_t>(c.transpose ? w.rows : w.cols);
        if (!c.stacked || out_rows.empty()) {
          out_rows.push_back(static_cast<uint64_t>(c.transpose ? w.cols : w.rows));
        }
      }
      uint64_t total = 0;
      for (const uint64_t r : out_rows) total += r;
      const size_t tokens = n + 3;
      const auto x = test_matrix(static_cast<size_t>(in_rows), tokens, id);
      const fhe::CiphertextMatrix ct = f.encrypt(x, static_cast<size_t>(in_rows), tokens);
      const auto job = [&](uint64_t begin, uint64_t end) {
        auto m = fhe_worker::make_matmul_request(
            *f.fhe_ctx, {++id, "tiny", 1, c.kinds, c.transpose, switched, c.stacked}, ct);
        EXPECT_TRUE(m.ok());
        auto& msg = m.value();
        auto r = std::get<protocol::MatmulRequest>(msg.body);
        r.row_begin = begin;
        r.row_end = end;
        return fhe_worker::MatmulJob{"peer", r, std::move(msg.blobs[0])};
      };
      const auto compute = [&](const fhe_worker::MatmulJob& j) {
        const auto s = fhe_worker::check_request(*f.model, j.request, j.input);
        EXPECT_TRUE(s.ok()) << s.error().to_string();
        const fhe_worker::MatmulJob* p = &j;
        auto replies = fhe_worker::compute_batch(*f.model, std::span(&p, 1));
        auto y = fhe_worker::read_matmul_reply(*f.fhe_ctx, replies[0]);
        EXPECT_TRUE(y.ok()) << y.error().to_string();
        return y.ok() ? std::move(y).value() : std::vector<fhe::CiphertextMatrix>{};
      };
      const auto whole = compute(job(0, 0));
      ASSERT_EQ(whole.size(), out_rows.size());
      // Three parts whose bounds fall inside the projections (and on one's edge).
      const uint64_t bounds[] = {0, total / 3, out_rows[0], total};
      for (size_t p = 0; p + 1 < std::size(bounds); ++p) {
        const uint64_t begin = bounds[p], end = bounds[p + 1];
        if (begin >= end) continue;
        const auto part = compute(job(begin, end));
        size_t k = 0;
        uint64_t at = 0;
        for (size_t j = 0; j < out_rows.size(); ++j) {
          const uint64_t b = std::max(at, begin), e = std::min(at + out_rows[j], end);
          if (b < e) {
            ASSERT_LT(k, part.size());
            const auto want = rows_of(whole[j], n, b - at, e - at);
            EXPECT_EQ(part[k].rows, e - b);
            EXPECT_EQ(part[k].kind, want.kind);
            EXPECT_EQ(part[k].log2_modulus, want.log2_modulus);
            EXPECT_TRUE(part[k].c0 == want.c0) << "rows [" << begin << ", " << end << ")";
            EXPECT_TRUE(part[k].c1 == want.c1) << "rows [" << begin << ", " << end << ")";
            ++k;
          }
          at += out_rows[j];
        }
        EXPECT_EQ(k, part.size());
      }
      const auto past = job(1, total + 1);
      const auto s = fhe_worker::check_request(*f.model, past.request, past.input);
      ASSERT_FALSE(s.ok());
      EXPECT_EQ(s.error().code, protocol::ErrorCode::kShapeMismatch);
      EXPECT_NE(s.error().message.find("output rows"), std::string::npos) << s.error().message;
    }
  }
}

// Over the wire: a range past the output rows is a shape mismatch with a clear message, and the
// worker goes on serving ranged requests (empty ranges: WorkerRobustness).
TEST_F(WorkerMatmul, RangePastTheOutputRowsIsRefusedAndTheWorkerKeepsServing) {
  const auto x = test_matrix(64, 5, 3);
  const fhe::CiphertextMatrix ct = f.encrypt(x, 64, 5);
  auto client = f.client();
  const auto send = [&](uint64_t begin, uint64_t end) {
    auto m = fhe_worker::make_matmul_request(*f.fhe_ctx, {7, "tiny", 0, {ProjectionKind::kQ}}, ct);
    EXPECT_TRUE(m.ok());
    auto& r = std::get<protocol::MatmulRequest>(m.value().body);
    r.row_begin = begin;
    r.row_end = end;
    return round_trip(client, std::move(m).value());
  };
  const auto error_of = [](const protocol::Message& reply) -> std::optional<protocol::Error> {
    if (const auto* r = std::get_if<protocol::MatmulReply>(&reply.body)) {
      if (const auto* e = std::get_if<protocol::Error>(&r->outcome)) return *e;
      return std::nullopt;
    }
    if (const auto* e = std::get_if<protocol::ErrorReply>(&reply.body)) return e->error;
    return protocol::Error{protocol::ErrorCode::kInternal, "unexpected reply"};
  };
  const auto past = error_of(send(60, 65));  // q has 64 output rows
  ASSERT_TRUE(past.has_value());
  EXPECT_EQ(past->code, protocol::ErrorCode::kShapeMismatch) << past->message;
  EXPECT_NE(past->message.find("64 output rows"), std::string::npos) << past->message;
  const protocol::Message ok = send(60, 64);
  ASSERT_FALSE(error_of(ok).has_value()) << error_of(ok)->message;
  auto y = fhe_worker::read_matmul_reply(*f.fhe_ctx, ok);
  ASSERT_TRUE(y.ok()) << y.error().to_string();
  ASSERT_EQ(y.value().size(), 1u);
  ASSERT_EQ(y.value()[0].rows, 4u);
  fhe::Decryptor dec(f.key);
  const auto want = plain_product(local(0, ProjectionKind::kQ), x, 5, false);
  const std::vector<int64_t> last(want.end() - 4 * 5, want.end());
  EXPECT_EQ(dec.decrypt(y.value()[0]), last);
}
