// A layer-sharded worker (fhe_worker --layers A-B): it keeps only its layers (and the LM head
// when asked), still publishes the whole model's hash, lists only what it holds in ModelInfo,
// computes its layers exactly and refuses any other layer with unknownLayer while it keeps
// serving. Loading from the files equals loading from the float32 weights.
#include <gtest/gtest.h>

#include "fhe_worker/error.h"
#include "fhe_worker/options.h"
#include "model/quantize.h"
#include "worker_test_util.h"

namespace {

using protocol::ProjectionKind;
using worker_test::TempDir;

fhe_worker::WorkerModelOptions shard(std::optional<fhe_worker::LayerRange> layers,
                                     std::optional<bool> lm_head = std::nullopt) {
  fhe_worker::WorkerModelOptions o;
  o.device = fhe_worker::parse_device("cpu");
  o.threads = 1;
  o.layers = layers;
  o.lm_head = lm_head;
  return o;
}

bool same(const model::QuantizedWeight& a, const model::QuantizedWeight& b) {
  return a.rows == b.rows && a.cols == b.cols && a.values == b.values && a.scales == b.scales;
}

TEST(WorkerShards, AShardKeepsItsLayersAndPublishesTheWholeModelsHash) {
  TempDir tmp;
  const auto dir = worker_test::write_tiny_model(tmp.path());
  const auto full = fhe_worker::WorkerModel::load(dir, shard(std::nullopt));
  const auto one = fhe_worker::WorkerModel::load(dir, shard(fhe_worker::LayerRange{1, 1}));
  EXPECT_EQ(one->hash(), full->hash());
  EXPECT_EQ(one->layer_count(), 2u);
  // From the float32 weights in memory: the same int8 weights and hash as from the files.
  const model::LlamaWeights weights = model::load_llama_weights(dir);
  fhe_worker::WorkerModelOptions named = shard(std::nullopt);
  named.model_id = "tiny";
  const fhe_worker::WorkerModel in_memory(weights, named);
  EXPECT_EQ(in_memory.hash(), full->hash());
  for (const auto kind : fhe_worker::kLayerProjections) {
    EXPECT_TRUE(same(in_memory.weight(1, kind), full->weight(1, kind)));
    EXPECT_FALSE(one->holds(0, kind));
    ASSERT_TRUE(one->holds(1, kind));
    EXPECT_TRUE(same(one->weight(1, kind), full->weight(1, kind)));
    EXPECT_THROW(one->weight(0, kind), fhe_worker::WorkerError);
  }
  EXPECT_FALSE(one->holds(0, ProjectionKind::kLmHead));  // --layers without --lm-head
  EXPECT_TRUE(full->holds(0, ProjectionKind::kLmHead));
  EXPECT_NE(one->summary().find("layer 1, not the LM head"), std::string::npos) << one->summary();

  // ModelInfo lists the seven layer kinds, each with layer 1 only; its scales are layer 1's.
  const protocol::Message m = one->info_message();
  const auto& info =
      std::get<protocol::ModelInfo>(std::get<protocol::ModelInfoReply>(m.body).outcome);
  ASSERT_EQ(info.projections.size(), fhe_worker::kLayerProjections.size());
  std::vector<protocol::BlobDesc> descs;
  for (const auto& b : m.blobs) descs.push_back(b.desc);
  EXPECT_TRUE(protocol::validate(m.body, descs).ok());
  for (const protocol::ProjectionInfo& p : info.projections) {
    ASSERT_EQ(p.norms.size(), 1u);
    EXPECT_EQ(p.norms[0].layer, 1u);
    const auto& blob = m.blobs[p.scales_blob];
    ASSERT_EQ(blob.desc.shape, (std::vector<uint64_t>{1, p.rows}));
    const auto& want = full->weight(1, p.kind).scales;
    EXPECT_EQ(std::memcmp(blob.bytes().data(), want.data(), want.size() * sizeof(float)), 0);
  }

  // The LM head alone, on request.
  const auto head = fhe_worker::WorkerModel::load(dir, shard(fhe_worker::LayerRange{0, 0}, true));
  EXPECT_TRUE(head->holds(0, ProjectionKind::kLmHead));
  EXPECT_TRUE(
      same(head->weight(0, ProjectionKind::kLmHead), full->weight(0, ProjectionKind::kLmHead)));
}

TEST(WorkerShards, ALayerRangeOutsideTheModelOrMisspeltIsRefused) {
  TempDir tmp;
  const auto dir = worker_test::write_tiny_model(tmp.path());
  try {
    fhe_worker::WorkerModel::load(dir, shard(fhe_worker::LayerRange{0, 5}));
    ADD_FAILURE() << "a range past the model loaded";
  } catch (const fhe_worker::WorkerError& e) {
    EXPECT_NE(std::string(e.what()).find("has layers 0-1"), std::string::npos) << e.what();
  }
  EXPECT_EQ(fhe_worker::parse_layer_range("0-7"), (fhe_worker::LayerRange{0, 7}));
  EXPECT_EQ(fhe_worker::parse_layer_range("3"), (fhe_worker::LayerRange{3, 3}));
  for (const char* bad : {"", "7-3", "a", "-1", "1-", "1-2-3", "0x3", "99999999"}) {
    EXPECT_THROW(fhe_worker::parse_layer_range(bad), fhe_worker::WorkerError) << bad;
  }
  const char* argv[] = {"fhe_worker", "--model", "m", "--insecure", "--layers", "2-1"};
  EXPECT_THROW(fhe_worker::parse_command_line(6, argv), fhe_worker::WorkerError);
  const char* good[] = {"fhe_worker", "--model", "m",         "--insecure",
                        "--layers",   "1",       "--lm-head", "true"};
  const auto cl = fhe_worker::parse_command_line(8, good);
  EXPECT_EQ(cl.options.model.layers, (fhe_worker::LayerRange{1, 1}));
  EXPECT_EQ(cl.options.model.lm_head, std::optional<bool>(true));
}

TEST(WorkerShards, ARequestForALayerItDoesNotHoldIsRefusedAndTheWorkerKeepsServing) {
  TempDir tmp;
  const auto dir = worker_test::write_tiny_model(tmp.path());
  worker_test::Fixture f;
  fhe_worker::WorkerModelOptions mo = shard(fhe_worker::LayerRange{1, 1});
  f.model = fhe_worker::WorkerModel::load(dir, mo);
  fhe_worker::WorkerConfig config;
  config.bind = "tcp://127.0.0.1:0";
  config.insecure = true;
  config.log = fhe_worker::make_console_logger("warn");
  f.worker = fhe_worker::Worker::start(f.model, std::move(config));
  auto client = f.client();
  const auto x = worker_test::test_matrix(64, 5, 3);
  for (const uint32_t layer : {0u, 1u}) {
    auto request = fhe_worker::make_matmul_request(
        *f.fhe_ctx, {layer + 1, "tiny", layer, {ProjectionKind::kQ}}, f.encrypt(x, 64, 5));
    ASSERT_TRUE(request.ok()) << request.error().to_string();
    const protocol::Message reply = worker_test::round_trip(client, std::move(request).value());
    auto y = fhe_worker::read_matmul_reply(*f.fhe_ctx, reply);
    if (layer == 0) {
      ASSERT_FALSE(y.ok());
      EXPECT_EQ(y.error().code, protocol::ErrorCode::kUnknownLayer);
      EXPECT_NE(y.error().message.find("holds layer 1"), std::string::npos) << y.error().message;
      continue;
    }
    ASSERT_TRUE(y.ok()) << y.error().to_string();
    EXPECT_EQ(fhe::Decryptor(f.key).decrypt(y.value()[0]),
              worker_test::plain_product(f.model->weight(1, ProjectionKind::kQ), x, 5, false));
  }
}

}  // namespace
