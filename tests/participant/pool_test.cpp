// The worker pool and the remote encrypted backend against in-process test workers on loopback
// TCP (real sockets, real encrypted products): bit-exact results, failover from a hung or
// overloaded worker, a revived worker used again, clear errors when nobody can serve.
#include <gtest/gtest.h>

#include <chrono>

#include "fhe/encryptor.h"
#include "fhe/noise.h"
#include "fhe/secret_key.h"
#include "model/int8_backend.h"
#include "participant/remote_encrypted_backend.h"
#include "test_worker.h"
#include "training_test_util.h"

namespace {

using namespace std::chrono_literals;
using participant::RemoteEncryptedBackend;
using participant::WorkerHealth;
using participant::WorkerPool;
using participant_test::TestWorker;

const std::string kModelId = "tiny";

participant::PoolOptions fast_options() {
  participant::PoolOptions o;
  o.insecure = true;
  o.heartbeat_interval = 50ms;
  o.max_missed_heartbeats = 3;
  o.probe_interval = 100ms;
  o.request_timeout = 3000ms;
  return o;
}

std::shared_ptr<WorkerPool> make_pool(const std::vector<const TestWorker*>& workers,
                                      participant::PoolOptions options = fast_options()) {
  std::vector<participant::WorkerEndpoint> list;
  for (const auto* w : workers) list.push_back({w->endpoint(), std::nullopt});
  auto pool = WorkerPool::connect(participant::WorkerDirectory(list), std::move(options));
  EXPECT_TRUE(pool.ok()) << pool.error().to_string();
  return std::shared_ptr<WorkerPool>(std::move(pool).value());
}

model::Activations random_activations(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);  // test data only
  return training_test::random_matrix(rows, cols, 1.0f, rng);
}

class Pool : public ::testing::Test {
 protected:
  void SetUp() override {
    weights = training_test::random_weights(training_test::tiny_config(2), 7);
    a = std::make_unique<TestWorker>(weights, kModelId);
    b = std::make_unique<TestWorker>(weights, kModelId);
  }

  // One forward of layer 0's q projection; true when it equals the int8 product.
  bool forward_is_exact(RemoteEncryptedBackend& remote, uint64_t seed) {
    const model::ProjectionId id{model::ProjectionKind::kQ, 0};
    const auto x = random_activations(weights->config.hidden_size, 5, seed);
    model::Activations y, want;
    remote.forward(id, x, y);
    model::Int8Backend(*weights).forward(id, x, want);
    return y == want;
  }

  std::shared_ptr<const model::LlamaWeights> weights;
  std::unique_ptr<TestWorker> a, b;
};

TEST_F(Pool, RemoteBackendEqualsInt8ForEveryProjectionBothWays) {
  for (const bool switched : {false, true}) {
    auto pool = make_pool({a.get(), b.get()});
    RemoteEncryptedBackend remote(pool, weights->config, {kModelId, switched}, nullptr,
                                  weights.get());
    EXPECT_EQ(remote.name(), "remote-encrypted");
    model::Int8Backend int8(*weights);
    uint64_t seed = 100;
    for (const auto id : model::llama_projections(weights->config)) {
      const auto dims = model::projection_dims(weights->config, id.kind);
      const auto x = random_activations(dims.d_in, 9, ++seed);
      const auto g = random_activations(dims.d_out, 9, ++seed);
      model::Activations y, y_want, dx, dx_want;
      remote.forward(id, x, y);
      int8.forward(id, x, y_want);
      EXPECT_EQ(y, y_want) << model::projection_name(id) << " switched " << switched;
      remote.backward(id, g, dx);
      int8.backward(id, g, dx_want);
      EXPECT_EQ(dx, dx_want) << model::projection_name(id) << " switched " << switched;
    }
    const auto& products = remote.worker_products();
    // The last product was the LM head's backward: hidden_size rows of one block, c0 and c1 at
    // 48 bits, or fewer when switched.
    const uint64_t full = 2 * 6 * 2048 * static_cast<uint64_t>(weights->config.hidden_size);
    EXPECT_EQ(products.last_request_bytes(),
              6 * 2048 * static_cast<uint64_t>(weights->config.vocab_size));
    if (switched) {
      EXPECT_LT(products.last_reply_bytes(), full);
    } else {
      EXPECT_EQ(products.last_reply_bytes(), full);
    }
  }
  // Both workers took a share (least loaded, then least recently used).
  EXPECT_GT(a->served(), 4);
  EXPECT_GT(b->served(), 4);
}

// The LM head, listed by the workers, goes to them both ways (nothing is computed locally even
// with local weights at hand), bit for bit Int8Backend.
TEST_F(Pool, LmHeadGoesToTheWorkersWhenListed) {
  auto pool = make_pool({a.get(), b.get()});
  RemoteEncryptedBackend remote(pool, weights->config, {kModelId, false}, nullptr, weights.get());
  EXPECT_TRUE(remote.worker_products().workers_serve_lm_head());
  EXPECT_FALSE(remote.lm_head_local());  // a small vocabulary goes to the workers
  const auto id = model::ProjectionId::lm_head();
  const auto x = random_activations(weights->config.hidden_size, 4, 31);
  const auto g = random_activations(weights->config.vocab_size, 4, 32);
  model::Int8Backend int8(*weights);
  model::Activations y, y_want, dx, dx_want;
  remote.forward(id, x, y);
  int8.forward(id, x, y_want);
  EXPECT_EQ(y, y_want);
  remote.backward(id, g, dx);
  int8.backward(id, g, dx_want);
  EXPECT_EQ(dx, dx_want);
  EXPECT_EQ(a->lm_head_requests(false) + b->lm_head_requests(false), 1);
  EXPECT_EQ(a->lm_head_requests(true) + b->lm_head_requests(true), 1);
  EXPECT_EQ(remote.worker_products().local_products(), 0u);
}

// A large vocabulary: the LM head runs in this process as the plaintext int8 product of the
// participant's own weights (nothing is sent), still bit for bit Int8Backend; asked explicitly,
// it goes to the workers instead.
TEST_F(Pool, LargeVocabularyLmHeadRunsInProcessBitForBit) {
  model::LlamaConfig big = training_test::tiny_config(1);
  big.vocab_size = participant::kLocalLmHeadVocab;
  const auto large = training_test::random_weights(big, 17);
  TestWorker worker(large, kModelId);
  const auto id = model::ProjectionId::lm_head();
  const auto x = random_activations(big.hidden_size, 3, 41);
  const auto g = random_activations(big.vocab_size, 3, 42);
  model::Int8Backend int8(*large);
  model::Activations y_want, dx_want;
  int8.forward(id, x, y_want);
  int8.backward(id, g, dx_want);
  for (const auto placement :
       {participant::LmHeadPlacement::kAuto, participant::LmHeadPlacement::kRemote}) {
    participant::RemoteOptions options;
    options.model_id = kModelId;
    options.lm_head = placement;
    participant::PoolOptions patient = fast_options();  // a 32768-row product takes a while
    patient.heartbeat_interval = 500ms;
    patient.max_missed_heartbeats = 60;
    patient.request_timeout = 120000ms;
    RemoteEncryptedBackend remote(make_pool({&worker}, patient), big, options, nullptr,
                                  large.get());
    const bool local = placement == participant::LmHeadPlacement::kAuto;
    EXPECT_EQ(remote.lm_head_local(), local);
    const int before = worker.lm_head_requests(false) + worker.lm_head_requests(true);
    model::Activations y, dx;
    remote.forward(id, x, y);
    EXPECT_EQ(y, y_want);
    if (local) {
      remote.backward(id, g, dx);
      EXPECT_EQ(dx, dx_want);
    } else {
      // On the workers the transposed head's inner dimension is the vocabulary: too wide for
      // one encrypted product of these weights, which is why kAuto keeps it in process.
      EXPECT_THROW(remote.backward(id, g, dx), model::ModelError);
    }
    EXPECT_EQ(worker.lm_head_requests(false) + worker.lm_head_requests(true) - before,
              local ? 0 : 1);
  }
  // Without the weights at hand there is nothing to run in process.
  participant::RemoteOptions local_only;
  local_only.model_id = kModelId;
  local_only.lm_head = participant::LmHeadPlacement::kLocal;
  EXPECT_THROW(RemoteEncryptedBackend(make_pool({&worker}), big, local_only), model::ModelError);
}

// Workers that refuse the transposed LM head (its inner dimension is the vocabulary) with a typed
// error: the participant computes that product from its local weights, with the same result; a
// shape refusal is remembered, a noise-budget one asked again. Without local weights the
// refusal is the error.
TEST_F(Pool, RefusedTransposedLmHeadIsComputedLocallyBitForBit) {
  const auto id = model::ProjectionId::lm_head();
  model::Int8Backend int8(*weights);
  for (const auto code : {protocol::ErrorCode::kShapeMismatch, protocol::ErrorCode::kNoiseBudget}) {
    a->set_refuse_transposed_lm_head(code);
    b->set_refuse_transposed_lm_head(code);
    const int asked = a->lm_head_requests(true) + b->lm_head_requests(true);
    auto pool = make_pool({a.get(), b.get()});
    RemoteEncryptedBackend remote(pool, weights->config, {kModelId, false}, nullptr, weights.get());
    for (uint64_t seed = 40; seed < 42; ++seed) {
      const auto g = random_activations(weights->config.vocab_size, 3, seed);
      model::Activations dx, dx_want;
      remote.backward(id, g, dx);
      int8.backward(id, g, dx_want);
      EXPECT_EQ(dx, dx_want) << protocol::error_code_name(code);
    }
    EXPECT_EQ(remote.worker_products().local_products(), 2u);
    // A refusal is deterministic, so the pool does not try the other worker; a shape refusal is
    // not asked again.
    const int want = code == protocol::ErrorCode::kShapeMismatch ? 1 : 2;
    EXPECT_EQ(a->lm_head_requests(true) + b->lm_head_requests(true) - asked, want);
    // The forward LM head still goes to the workers.
    const auto x = random_activations(weights->config.hidden_size, 3, 43);
    model::Activations y, y_want;
    remote.forward(id, x, y);
    int8.forward(id, x, y_want);
    EXPECT_EQ(y, y_want);
    EXPECT_EQ(remote.worker_products().local_products(), 2u);

    RemoteEncryptedBackend no_local(pool, weights->config, {kModelId, false});
    model::Activations dx;
    try {
      no_local.backward(id, random_activations(weights->config.vocab_size, 3, 44), dx);
      ADD_FAILURE() << "no error";
    } catch (const model::ModelError& e) {
      EXPECT_NE(std::string(e.what()).find("vocabulary too large"), std::string::npos) << e.what();
    }
  }
}

// Workers that do not list the LM head (from before it was served): computed from local
// weights, or an error naming it without them.
TEST_F(Pool, WorkersWithoutLmHeadLeaveItToLocalWeights) {
  a->set_lists_lm_head(false);
  b->set_lists_lm_head(false);
  auto pool = make_pool({a.get(), b.get()});
  RemoteEncryptedBackend remote(pool, weights->config, {kModelId, false}, nullptr, weights.get());
  EXPECT_FALSE(remote.worker_products().workers_serve_lm_head());
  const auto id = model::ProjectionId::lm_head();
  const auto x = random_activations(weights->config.hidden_size, 4, 51);
  model::Activations y, want;
  remote.forward(id, x, y);
  model::Int8Backend(*weights).forward(id, x, want);
  EXPECT_EQ(y, want);
  EXPECT_EQ(remote.worker_products().local_products(), 1u);
  EXPECT_EQ(a->lm_head_requests(false) + b->lm_head_requests(false), 0);

  RemoteEncryptedBackend no_local(pool, weights->config, {kModelId, false});
  EXPECT_THROW(no_local.forward(id, x, y), model::ModelError);
}

TEST_F(Pool, HungWorkerIsMarkedDeadThenUsedAgainOnceItAnswers) {
  auto pool = make_pool({a.get(), b.get()});
  RemoteEncryptedBackend remote(pool, weights->config, {kModelId, false});
  a->set_silent(true);
  for (uint64_t i = 0; i < 6; ++i) EXPECT_TRUE(forward_is_exact(remote, i));
  auto status = pool->status();
  EXPECT_EQ(status[0].health, WorkerHealth::kDead);
  EXPECT_NE(status[0].last_error.find("heartbeats"), std::string::npos) << status[0].last_error;
  EXPECT_EQ(status[1].health, WorkerHealth::kLive);
  const int a_before = a->served();

  a->set_silent(false);
  pool->pump(400ms);  // a probe finds it again
  EXPECT_EQ(pool->status()[0].health, WorkerHealth::kLive);
  for (uint64_t i = 0; i < 4; ++i) EXPECT_TRUE(forward_is_exact(remote, 10 + i));
  EXPECT_GT(a->served(), a_before);
}

TEST_F(Pool, OverloadedWorkerIsRetriedElsewhere) {
  auto pool = make_pool({a.get(), b.get()});
  RemoteEncryptedBackend remote(pool, weights->config, {kModelId, false});
  a->set_overloaded(true);
  for (uint64_t i = 0; i < 4; ++i) EXPECT_TRUE(forward_is_exact(remote, i));
  EXPECT_EQ(a->served(), 0);
  EXPECT_GT(pool->status()[0].failures, 0u);
  EXPECT_NE(pool->status()[0].last_error.find("overloaded"), std::string::npos);
}

TEST_F(Pool, NoLiveWorkerIsAClearErrorNotAHang) {
  auto pool = make_pool({a.get(), b.get()});
  RemoteEncryptedBackend remote(pool, weights->config, {kModelId, false});
  a->set_silent(true);
  b->set_silent(true);
  const auto start = std::chrono::steady_clock::now();
  try {
    forward_is_exact(remote, 1);
    ADD_FAILURE() << "no error";
  } catch (const model::ModelError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("no fhe_worker could serve"), std::string::npos) << what;
    EXPECT_NE(what.find(a->endpoint()), std::string::npos) << what;
    EXPECT_NE(what.find(b->endpoint()), std::string::npos) << what;
    EXPECT_NE(what.find("layers.0.q_proj"), std::string::npos) << what;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST_F(Pool, ModelThatDoesNotFitTheLocalConfigIsRefused) {
  auto pool = make_pool({a.get()});
  auto other = training_test::tiny_config(3);
  EXPECT_THROW(RemoteEncryptedBackend(pool, other, {kModelId, false}), model::ModelError);
  try {
    RemoteEncryptedBackend(pool, weights->config, {"another-model", false});
    ADD_FAILURE() << "no error";
  } catch (const model::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("another-model"), std::string::npos) << e.what();
  }
  // Without local weights the LM head, which the test workers do serve, goes remote too.
  RemoteEncryptedBackend remote(pool, weights->config, {kModelId, false});
  const auto x = random_activations(weights->config.hidden_size, 3, 5);
  model::Activations y, want;
  remote.forward(model::ProjectionId::lm_head(), x, y);
  model::Int8Backend(*weights).forward(model::ProjectionId::lm_head(), x, want);
  EXPECT_EQ(y, want);
}

TEST_F(Pool, ClientKeyNotInTheAllowListIsRefusedQuickly) {
  const auto server = protocol::KeyPair::generate().value();
  const auto allowed = protocol::KeyPair::generate().value();
  const auto intruder = protocol::KeyPair::generate().value();
  protocol::AllowList allow;
  allow.add(allowed.public_key);
  TestWorker secure(weights, kModelId, server, allow);
  participant::PoolOptions o = fast_options();
  o.insecure = false;
  o.heartbeat_interval = 1000ms;  // the refusal must not wait for missed heartbeats
  const auto directory =
      participant::WorkerDirectory::parse_list(secure.endpoint(), {server.public_key}).value();
  o.client_key = intruder;
  const auto start = std::chrono::steady_clock::now();
  {
    auto pool = WorkerPool::connect(directory, o);
    ASSERT_TRUE(pool.ok());
    participant::Request request{protocol::ModelInfoRequest{kModelId}, {}, {}};
    auto reply = pool.value()->call(request);
    ASSERT_FALSE(reply.ok());
    EXPECT_EQ(reply.error().code, protocol::ErrorCode::kUnauthorised) << reply.error().to_string();
    EXPECT_NE(reply.error().message.find("allow-list"), std::string::npos)
        << reply.error().to_string();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  o.client_key = allowed;
  auto pool = WorkerPool::connect(directory, o);
  ASSERT_TRUE(pool.ok());
  RemoteEncryptedBackend remote(std::shared_ptr<WorkerPool>(std::move(pool).value()),
                                weights->config, {kModelId, false});
  EXPECT_TRUE(forward_is_exact(remote, 3));
}

// call_many: every request answered once, spread over both workers; split products stay exact
// when one worker hangs mid-call (its part goes to the other once it is marked dead); a
// deterministic refusal of one request ends the call with that error.
TEST_F(Pool, CallManyAnswersEveryRequestAndMovesAHungWorkersShare) {
  auto pool = make_pool({a.get(), b.get()});
  participant::Request info;
  info.body = protocol::ModelInfoRequest{kModelId};
  const std::vector<participant::Request> requests(3, info);
  std::vector<int> answered(3, 0);
  std::vector<bool> worker_used(2, false);
  auto s = pool->call_many(requests, {}, [&](size_t r, protocol::Message&& m, size_t w) {
    ++answered[r];
    worker_used[w] = true;
    EXPECT_TRUE(std::holds_alternative<protocol::ModelInfoReply>(m.body));
  });
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_EQ(answered, (std::vector<int>{1, 1, 1}));
  EXPECT_TRUE(worker_used[0] && worker_used[1]);

  participant::RemoteOptions options{kModelId, false};
  options.min_split_rows = 1;
  RemoteEncryptedBackend remote(pool, weights->config, options, nullptr, weights.get());
  const int a_before = a->served(), b_before = b->served();
  EXPECT_TRUE(forward_is_exact(remote, 1));
  EXPECT_EQ(a->served(), a_before + 1);  // one part each
  EXPECT_EQ(b->served(), b_before + 1);
  b->set_silent(true);
  EXPECT_TRUE(forward_is_exact(remote, 2));
  EXPECT_EQ(pool->status()[1].health, WorkerHealth::kDead) << pool->status()[1].last_error;
  EXPECT_GE(a->served(), a_before + 3);  // its own part, then the hung worker's
  b->set_silent(false);

  // A part refused deterministically (an input of the wrong shape) ends the call with the
  // worker's error; the whole request, asked for once more, is refused the same, and the
  // caller is not told to stop splitting (the refusal was not about the range).
  auto ctx = fhe::Context::create();
  const auto key = fhe::SecretKey::generate(ctx);
  fhe::Encryptor enc(key);
  const auto rows = static_cast<size_t>(weights->config.hidden_size) + 1;
  const std::vector<int8_t> x(rows * 3, 1);
  const auto ct = enc.encrypt(x.data(), rows, 3, fhe::worst_case_bounds(rows));
  bool split_refused = false;
  participant::RemoteProduct call{kModelId, 0, protocol::ProjectionKind::kQ, false, false};
  call.split = true;
  call.min_split_rows = 1;
  call.split_refused = &split_refused;
  try {
    participant::remote_product(*pool, *ctx, call, ct,
                                static_cast<uint64_t>(weights->config.q_dim()));
    ADD_FAILURE() << "a wrongly shaped input was served";
  } catch (const participant::RemoteProductError& e) {
    EXPECT_EQ(e.code(), protocol::ErrorCode::kShapeMismatch) << e.what();
  }
  EXPECT_FALSE(split_refused);
}

}  // namespace
