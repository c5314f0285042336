// End to end against real fhe_worker processes on loopback TCP under CurveZMQ: results decrypt
// to the plaintext int8 product bit for bit; `kill -9` of one worker in the middle of a stream
// of requests loses none of them; the worker restarted on the same port is used again; a key
// that is not allowed gets a clear error; `fedctl train --workers` writes the in-process
// encrypted backend's adapter bit for bit; `fedctl fhe-matmul --remote` equals the local one.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "common/npy.h"
#include "fhe/encryptor.h"
#include "fhe/serialize.h"
#include "model/encrypted_backend.h"
#include "model/int8_backend.h"
#include "model/llama_model.h"
#include "model/llama_weights.h"
#include "model/lora_params.h"
#include "participant/pool_flags.h"
#include "participant/remote_encrypted_backend.h"
#include "test_support/files.h"
#include "test_support/run.h"
#include "test_support/temp_dir.h"
#include "training_test_util.h"

namespace {

using namespace std::chrono_literals;
using participant::WorkerHealth;
using participant::WorkerPool;
using test_support::run;
using test_support::slurp;

const std::string kFedctl = FEDCTL_PATH;
const std::string kWorker = FHE_WORKER_PATH;

// One fhe_worker process; killed (SIGKILL) when destroyed.
class WorkerProcess {
 public:
  WorkerProcess(const test_support::TempDir& dir, const std::string& name, const std::string& bind,
                const std::string& log_level = "warn", const std::vector<std::string>& extra = {}) {
    const std::string port_file = dir / (name + ".port");
    std::filesystem::remove(port_file);
    std::vector<std::string> args = {
        kWorker,       "--model",     dir / "tiny", "--model-id",   "tiny",        "--bind",
        bind,          "--port-file", port_file,    "--secret-key", dir / "w.key", "--allow",
        dir / "allow", "--threads",   "1",          "--log-level",  log_level};
    args.insert(args.end(), extra.begin(), extra.end());
    const std::string log = dir / (name + ".log");
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string text = slurp(port_file);
      if (!text.empty() && text.back() == '\n') {
        endpoint_ = text.substr(0, text.size() - 1);
        return;
      }
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "fhe_worker did not start: " << slurp(log);
  }
  ~WorkerProcess() { kill(); }

  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // SIGTERM: the worker drains, logs its totals and exits; returns its exit status (-1 if it
  // was not running or did not exit normally).
  int stop() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  const std::string& endpoint() const { return endpoint_; }

 private:
  pid_t pid_ = -1;
  std::string endpoint_;
};

class WorkerProcesses : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(run(kFedctl + " make-model --out " + dir / "tiny" +
                  " --hidden 32 --layers 2 --heads 4 --kv-heads 2 --intermediate 48"
                  " --vocab 300 --max-pos 64 --seed 5")
                  .status,
              0);
    for (const char* name : {"w", "site", "intruder"}) {
      ASSERT_TRUE(
          protocol::write_key_pair(protocol::KeyPair::generate().value(), dir / name, false).ok());
    }
    std::filesystem::create_directory(dir / "allow");
    std::filesystem::copy_file(dir / "site.pub", dir / "allow/site.pub");
    weights = std::make_shared<const model::LlamaWeights>(model::load_llama_weights(dir / "tiny"));
    a = std::make_unique<WorkerProcess>(dir, "a", "tcp://127.0.0.1:0");
    b = std::make_unique<WorkerProcess>(dir, "b", "tcp://127.0.0.1:0");
  }

  std::shared_ptr<WorkerPool> pool(const std::string& client = "site") {
    return pool_of(a->endpoint() + "," + b->endpoint(), client);
  }
  std::shared_ptr<WorkerPool> pool_of(const std::string& endpoints,
                                      const std::string& client = "site") {
    participant::PoolFlags flags;
    flags.workers = endpoints;
    flags.client_key = dir / (client + ".key");
    flags.server_key = dir / "w.pub";
    participant::PoolOptions o;
    o.heartbeat_interval = 100ms;
    o.max_missed_heartbeats = 3;
    o.probe_interval = 200ms;
    o.request_timeout = 5000ms;
    auto p = participant::connect_pool(flags, o);
    EXPECT_TRUE(p.ok()) << p.error().to_string();
    return std::shared_ptr<WorkerPool>(std::move(p).value());
  }

  test_support::TempDir dir;
  std::shared_ptr<const model::LlamaWeights> weights;
  std::unique_ptr<WorkerProcess> a, b;
};

std::vector<int8_t> random_int8(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);  // test data only
  std::vector<int8_t> v(n);
  for (auto& x : v) x = static_cast<int8_t>(static_cast<int>(g() % 255) - 127);
  return v;
}

TEST_F(WorkerProcesses, ProductsDecryptToThePlaintextInt8ProductBitForBit) {
  auto p = pool();
  auto ctx = fhe::Context::create();
  const auto key = fhe::SecretKey::generate(ctx);
  fhe::Encryptor enc(key);
  fhe::Decryptor dec(key);
  const model::Int8Backend int8(*weights);
  const size_t tokens = 2050;  // two ciphertext blocks
  for (const bool transpose : {false, true}) {
    for (const bool switched : {false, true}) {
      const model::ProjectionId id{model::ProjectionKind::kGate, 1};
      const model::QuantizedWeight& w = int8.weight(id);
      const size_t in = static_cast<size_t>(transpose ? w.rows : w.cols);
      const size_t out = static_cast<size_t>(transpose ? w.cols : w.rows);
      const auto x = random_int8(in * tokens, 1 + transpose);
      const auto ct = enc.encrypt(x.data(), in, tokens,
                                  fhe::measure_bounds(w.values.data(), static_cast<size_t>(w.rows),
                                                      static_cast<size_t>(w.cols), transpose),
                                  out * tokens);
      participant::RemoteProduct call{"tiny", 1, protocol::ProjectionKind::kGate, transpose,
                                      switched};
      const auto y = dec.decrypt(participant::remote_product(*p, *ctx, call, ct, out));
      size_t wrong = 0;
      for (size_t i = 0; i < out; ++i) {
        for (size_t t = 0; t < tokens; ++t) {
          int64_t acc = 0;
          for (size_t j = 0; j < in; ++j) {
            const int8_t wv = transpose ? w.values[j * static_cast<size_t>(w.cols) + i]
                                        : w.values[i * static_cast<size_t>(w.cols) + j];
            acc += int64_t{wv} * x[j * tokens + t];
          }
          wrong += acc != y[i * tokens + t];
        }
      }
      EXPECT_EQ(wrong, 0u) << "transpose " << transpose << " switched " << switched;
    }
  }
}

// Fused projections through real workers: q, k, v (and gate, up) forward as one request each,
// their backward as ONE stacked request whose one product is the sum: bit for bit the int8
// backend's groups, also past one ciphertext block and with switched replies.
TEST_F(WorkerProcesses, ProjectionGroupsEqualTheInt8GroupsBitForBit) {
  const auto served = [](WorkerPool& pool) {
    uint64_t n = 0;
    for (const auto& w : pool.status()) n += w.served;
    return n;
  };
  model::Int8Backend int8(*weights);
  const model::LlamaConfig& c = weights->config;
  for (const bool switched : {false, true}) {
    participant::RemoteOptions options{"tiny", switched};
    participant::RemoteEncryptedBackend remote(pool(), c, options, nullptr, weights.get());
    for (const int64_t tokens : {int64_t{7}, int64_t{2050}}) {
      model::Activations x(c.hidden_size, tokens);
      std::mt19937_64 g(static_cast<uint64_t>(tokens) + switched);
      std::normal_distribution<float> gauss(0, 1);
      for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = gauss(g);
      using K = model::ProjectionKind;
      for (const std::vector<model::ProjectionId>& ids :
           {std::vector<model::ProjectionId>{{K::kQ, 1}, {K::kK, 1}, {K::kV, 1}},
            std::vector<model::ProjectionId>{{K::kGate, 0}, {K::kUp, 0}}}) {
        const std::string what = model::projection_name(ids[0]) + " T=" + std::to_string(tokens) +
                                 (switched ? " switched" : "");
        std::vector<model::Activations> ya(ids.size()), yb(ids.size());
        std::vector<model::Activations*> pa, pb;
        std::vector<model::Activations> gs;
        std::vector<const model::Activations*> pg;
        for (size_t j = 0; j < ids.size(); ++j) {
          pa.push_back(&ya[j]);
          pb.push_back(&yb[j]);
          gs.emplace_back(model::projection_dims(c, ids[j].kind).d_out, tokens);
          for (int64_t i = 0; i < gs[j].size(); ++i) gs[j].data()[i] = 0.01f * gauss(g);
        }
        for (const auto& gj : gs) pg.push_back(&gj);
        int8.forward_group(ids, x, pa);
        const uint64_t before = served(remote.pool());
        remote.forward_group(ids, x, pb);
        EXPECT_EQ(served(remote.pool()), before + 1) << what;
        for (size_t j = 0; j < ids.size(); ++j) {
          ASSERT_EQ(ya[j].size(), yb[j].size());
          EXPECT_EQ(std::memcmp(ya[j].data(), yb[j].data(), sizeof(float) * ya[j].size()), 0)
              << what << " forward " << j;
        }
        model::Activations da, db;
        int8.backward_group(ids, pg, da);
        remote.backward_group(ids, pg, db);
        EXPECT_EQ(served(remote.pool()), before + 2) << what << ": one stacked request";
        ASSERT_EQ(da.size(), db.size());
        EXPECT_GT(da.cwiseAbs().maxCoeff(), 0);
        EXPECT_EQ(std::memcmp(da.data(), db.data(), sizeof(float) * da.size()), 0)
            << what << " backward";
      }
    }
  }
}

// A malformed stacked request reaches a real worker, gets a typed error, and the worker serves
// the next request.
TEST_F(WorkerProcesses, MalformedStackedRequestsGetClearErrors) {
  auto p = pool();
  auto ctx = fhe::Context::create();
  const auto key = fhe::SecretKey::generate(ctx);
  fhe::Encryptor enc(key);
  const model::LlamaConfig& c = weights->config;
  const auto rows = static_cast<size_t>(c.q_dim() + 2 * c.kv_dim());
  participant::RemoteProduct call{"tiny", 0, protocol::ProjectionKind::kQ, true, false};
  call.group = {protocol::ProjectionKind::kQ, protocol::ProjectionKind::kK,
                protocol::ProjectionKind::kV};
  call.stacked = true;
  const uint64_t out[] = {static_cast<uint64_t>(c.hidden_size)};
  const auto refused = [&](const participant::RemoteProduct& r, size_t in) {
    const auto x = random_int8(in * 3, 7);
    const auto ct = enc.encrypt(x.data(), in, 3, fhe::worst_case_bounds(in));
    try {
      participant::remote_products(*p, *ctx, r, ct, out);
    } catch (const participant::RemoteProductError& e) {
      return std::make_pair(e.code(), std::string(e.what()));
    }
    return std::make_pair(protocol::ErrorCode::kInternal, std::string("served, not refused"));
  };
  auto [code, message] = refused(call, rows - 1);
  EXPECT_EQ(code, protocol::ErrorCode::kShapeMismatch) << message;
  EXPECT_NE(message.find("sum of their d_out"), std::string::npos) << message;
  participant::RemoteProduct forward = call;
  forward.transpose = false;
  std::tie(code, message) = refused(forward, static_cast<size_t>(c.hidden_size));
  EXPECT_EQ(code, protocol::ErrorCode::kMalformedRequest) << message;
  EXPECT_NE(message.find("transposed"), std::string::npos) << message;
  // The workers still answer: the well-formed stacked request decrypts.
  const auto x = random_int8(rows * 3, 8);
  const auto ct = enc.encrypt(x.data(), rows, 3, fhe::worst_case_bounds(rows));
  const auto y = participant::remote_products(*p, *ctx, call, ct, out);
  ASSERT_EQ(y.size(), 1u);
  EXPECT_EQ(y[0].rows, static_cast<uint64_t>(c.hidden_size));
}

TEST_F(WorkerProcesses, KillNineMidStreamLosesNothingAndARestartedWorkerIsUsedAgain) {
  auto p = pool();
  participant::RemoteEncryptedBackend remote(p, weights->config, {"tiny", false}, nullptr,
                                             weights.get());
  model::Int8Backend int8(*weights);
  std::mt19937_64 rng(9);  // test data only
  std::normal_distribution<float> gauss(0, 1);
  int exact = 0, total = 0;
  const auto stream = [&](int count) {
    for (int i = 0; i < count; ++i) {
      const model::ProjectionId id{i % 2 ? model::ProjectionKind::kUp : model::ProjectionKind::kQ,
                                   i % 2};
      model::Activations x(weights->config.hidden_size, 300);
      for (int64_t k = 0; k < x.size(); ++k) x.data()[k] = gauss(rng);
      model::Activations y, want;
      remote.forward(id, x, y);
      int8.forward(id, x, want);
      exact += y == want;
      ++total;
    }
  };
  stream(6);
  EXPECT_GT(p->status()[0].served, 0u);
  EXPECT_GT(p->status()[1].served, 0u);
  const std::string a_endpoint = a->endpoint();
  std::atomic<bool> killed{false};
  std::thread killer([&] {
    std::this_thread::sleep_for(50ms);
    a->kill();
    killed = true;
  });
  stream(30);
  killer.join();
  ASSERT_TRUE(killed);
  stream(4);  // after the kill, for sure
  EXPECT_EQ(exact, total);
  const auto after_kill = p->status();
  EXPECT_EQ(after_kill[0].health, WorkerHealth::kDead) << after_kill[0].last_error;
  EXPECT_GE(after_kill[0].deaths, 1u);

  // Restarted on the same port: the pool's probes find it and requests go there again.
  a = std::make_unique<WorkerProcess>(dir, "a2", a_endpoint);
  ASSERT_EQ(a->endpoint(), a_endpoint);
  for (int i = 0; i < 30 && p->status()[0].health != WorkerHealth::kLive; ++i) p->pump(100ms);
  EXPECT_EQ(p->status()[0].health, WorkerHealth::kLive) << p->status()[0].last_error;
  stream(6);
  EXPECT_EQ(exact, total);
  EXPECT_GT(p->status()[0].served, after_kill[0].served);
}

TEST_F(WorkerProcesses, KeyNotInTheAllowListGetsAClearErrorNotAHang) {
  auto p = pool("intruder");
  const auto start = std::chrono::steady_clock::now();
  try {
    participant::RemoteEncryptedBackend remote(p, weights->config, {"tiny", false});
    ADD_FAILURE() << "no error";
  } catch (const model::ModelError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("unauthorised"), std::string::npos) << what;
    EXPECT_NE(what.find("allow-list"), std::string::npos) << what;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

// The count after "lm_head " in a worker's "stopped: ... products: q N, ..., lm_head N" line.
long lm_head_products(const std::string& log) {
  const std::string key = "lm_head ";
  const size_t at = log.rfind(key);
  if (at == std::string::npos || log.rfind("products:") == std::string::npos) return -1;
  return std::strtol(log.c_str() + at + key.size(), nullptr, 10);
}

TEST_F(WorkerProcesses, FedctlTrainWithWorkersWritesTheInProcessAdapterBitForBit) {
  // Workers that log their totals when stopped, to count the LM head products they served.
  a = std::make_unique<WorkerProcess>(dir, "ta", "tcp://127.0.0.1:0", "info");
  b = std::make_unique<WorkerProcess>(dir, "tb", "tcp://127.0.0.1:0", "info");
  ASSERT_EQ(run(kFedctl + " make-data --out " + dir / "data" +
                " --sites 1 --records 12 --heldout-fraction 0.1 --mcq 2 --seed 2")
                .status,
            0);
  const std::string common = kFedctl + " train --model " + dir / "tiny" + " --data " +
                             dir / "data/site0.jsonl" +
                             " --seq-len 16 --batch 2 --steps 2 --seed 3 --targets q,v,down";
  const auto local = run(common + " --backend encrypted --out " + dir / "a_local");
  ASSERT_EQ(local.status, 0) << local.err;
  const auto remote =
      run(common + " --workers " + a->endpoint() + "," + b->endpoint() + " --client-key " +
          dir / "site.key" + " --server-key " + dir / "w.pub" + " --out " + dir / "a_remote");
  ASSERT_EQ(remote.status, 0) << remote.err;
  EXPECT_NE(remote.out.find("\"backend\":\"encrypted\""), std::string::npos) << remote.out;
  const std::string file = "/adapter_model.safetensors";
  const std::string want = slurp(dir / "a_local" + file);
  ASSERT_FALSE(want.empty());
  EXPECT_TRUE(slurp(dir / "a_remote" + file) == want);
  // The LM head went to the workers (forward and backward of every step), not to local weights.
  const std::string a_endpoint = a->endpoint();
  EXPECT_EQ(a->stop(), 0);
  EXPECT_EQ(b->stop(), 0);
  const long served_a = lm_head_products(slurp(dir / "ta.log"));
  const long served_b = lm_head_products(slurp(dir / "tb.log"));
  EXPECT_GE(served_a, 0) << slurp(dir / "ta.log");
  EXPECT_GE(served_b, 0) << slurp(dir / "tb.log");
  EXPECT_GE(served_a + served_b, 4) << slurp(dir / "ta.log") << slurp(dir / "tb.log");
  a = std::make_unique<WorkerProcess>(dir, "ta2", a_endpoint);  // for the refused-key run

  // A refused key fails the run with one clear line, not a hang.
  const auto refused = run(common + " --workers " + a->endpoint() + " --client-key " +
                           dir / "intruder.key" + " --server-key " + dir / "w.pub");
  EXPECT_EQ(refused.status, 2);
  EXPECT_NE(refused.err.find("allow-list"), std::string::npos) << refused.err;
}

// A layer-sharded pool: no worker holds the whole model. Training through it writes the
// in-process adapter bit for bit; a pool that misses a layer is refused naming it; a worker
// asked for a layer it does not hold refuses with unknownLayer and keeps serving.
TEST_F(WorkerProcesses, ALayerShardedPoolTrainsTheSameAdapterBitForBit) {
  a = std::make_unique<WorkerProcess>(dir, "s0", "tcp://127.0.0.1:0", "warn",
                                      std::vector<std::string>{"--layers", "0"});
  b = std::make_unique<WorkerProcess>(
      dir, "s1", "tcp://127.0.0.1:0", "warn",
      std::vector<std::string>{"--layers", "1", "--lm-head", "true"});
  ASSERT_EQ(run(kFedctl + " make-data --out " + dir / "data" +
                " --sites 1 --records 12 --heldout-fraction 0.1 --mcq 2 --seed 2")
                .status,
            0);
  const std::string common = kFedctl + " train --model " + dir / "tiny" + " --data " +
                             dir / "data/site0.jsonl" +
                             " --seq-len 16 --batch 2 --steps 2 --seed 3 --targets q,v,down";
  const auto local = run(common + " --backend encrypted --out " + dir / "a_local");
  ASSERT_EQ(local.status, 0) << local.err;
  const std::string keys = " --client-key " + dir / "site.key" + " --server-key " + dir / "w.pub";
  const auto remote = run(common + " --workers " + a->endpoint() + "," + b->endpoint() + keys +
                          " --out " + dir / "a_sharded");
  ASSERT_EQ(remote.status, 0) << remote.err;
  const std::string file = "/adapter_model.safetensors";
  const std::string want = slurp(dir / "a_local" + file);
  ASSERT_FALSE(want.empty());
  EXPECT_TRUE(slurp(dir / "a_sharded" + file) == want);

  // Layer 1 missing: refused before any step, naming the layer and what the pool holds.
  const auto uncovered = run(common + " --workers " + a->endpoint() + keys);
  EXPECT_EQ(uncovered.status, 2);
  EXPECT_NE(uncovered.err.find("does not cover layers 1"), std::string::npos) << uncovered.err;
  EXPECT_NE(uncovered.err.find("holds layer 0"), std::string::npos) << uncovered.err;

  // Asked directly for a layer it does not hold, a worker refuses and keeps serving.
  auto p = pool_of(a->endpoint());
  auto ctx = fhe::Context::create();
  const auto key = fhe::SecretKey::generate(ctx);
  fhe::Encryptor enc(key);
  const auto x = random_int8(32 * 3, 8);
  const auto ct = enc.encrypt(x.data(), 32, 3, fhe::worst_case_bounds(32));
  try {
    participant::remote_product(*p, *ctx, {"tiny", 1, protocol::ProjectionKind::kQ, false, false},
                                ct, 0);
    ADD_FAILURE() << "a layer the worker does not hold was computed";
  } catch (const participant::RemoteProductError& e) {
    EXPECT_EQ(e.code(), protocol::ErrorCode::kUnknownLayer);
    EXPECT_NE(std::string(e.what()).find("holds layer 0"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(participant::remote_product(
      *p, *ctx, {"tiny", 0, protocol::ProjectionKind::kQ, false, false}, ct, 0));
}

TEST_F(WorkerProcesses, KillingOneOfTwoWorkersHoldingTheSameLayersStillFinishes) {
  // Layer 0 on one worker; layer 1 and the LM head on two, one of which dies mid-stream.
  a = std::make_unique<WorkerProcess>(dir, "k0", "tcp://127.0.0.1:0", "warn",
                                      std::vector<std::string>{"--layers", "0"});
  b = std::make_unique<WorkerProcess>(
      dir, "k1", "tcp://127.0.0.1:0", "warn",
      std::vector<std::string>{"--layers", "1", "--lm-head", "true"});
  auto c = std::make_unique<WorkerProcess>(
      dir, "k1b", "tcp://127.0.0.1:0", "warn",
      std::vector<std::string>{"--layers", "1", "--lm-head", "true"});
  auto p = pool_of(a->endpoint() + "," + b->endpoint() + "," + c->endpoint());
  participant::RemoteEncryptedBackend remote(p, weights->config, {"tiny", false}, nullptr,
                                             weights.get());
  model::Int8Backend int8(*weights);
  std::mt19937_64 rng(4);  // test data only
  std::normal_distribution<float> gauss(0, 1);
  int exact = 0, total = 0;
  const auto stream = [&](int count) {
    for (int i = 0; i < count; ++i) {
      const model::ProjectionId id{i % 2 ? model::ProjectionKind::kUp : model::ProjectionKind::kQ,
                                   i % 3 == 0 ? 0 : 1};
      model::Activations x(weights->config.hidden_size, 200);
      for (int64_t k = 0; k < x.size(); ++k) x.data()[k] = gauss(rng);
      model::Activations y, want;
      remote.forward(id, x, y);
      int8.forward(id, x, want);
      exact += y == want;
      ++total;
    }
  };
  stream(6);
  std::atomic<bool> killed{false};
  std::thread killer([&] {
    std::this_thread::sleep_for(50ms);
    b->kill();
    killed = true;
  });
  stream(24);
  killer.join();
  ASSERT_TRUE(killed);
  stream(4);
  EXPECT_EQ(exact, total);
  const auto status = p->status();
  EXPECT_EQ(status[1].health, WorkerHealth::kDead) << status[1].last_error;
  EXPECT_GT(status[0].served, 0u);  // layer 0 went to its only holder
  EXPECT_GT(status[2].served, 0u);  // layer 1 went on to the survivor
}

TEST_F(WorkerProcesses, FedctlFheMatmulRemoteEqualsLocal) {
  const model::Int8Backend int8(*weights);
  const model::QuantizedWeight& w = int8.weight({model::ProjectionKind::kO, 1});
  fedtools::write_npy(dir / "w.npy", fedtools::NpyType::kInt8, static_cast<size_t>(w.rows),
                      static_cast<size_t>(w.cols), w.values.data());
  const auto x = random_int8(static_cast<size_t>(w.cols) * 7, 4);
  fedtools::write_npy(dir / "x.npy", fedtools::NpyType::kInt8, static_cast<size_t>(w.cols), 7,
                      x.data());
  ASSERT_EQ(run(kFedctl + " fhe-keygen --out " + dir / "sk").status, 0);
  ASSERT_EQ(run(kFedctl + " fhe-encrypt --key " + dir / "sk" + " --in " + dir / "x.npy" +
                " --weights " + dir / "w.npy" + " --out " + dir / "x.ct")
                .status,
            0);
  const auto local = run(kFedctl + " fhe-matmul --weights " + dir / "w.npy" + " --in " +
                         dir / "x.ct" + " --out " + dir / "y_local.ct");
  ASSERT_EQ(local.status, 0) << local.err;
  const auto remote = run(kFedctl + " fhe-matmul --remote " + a->endpoint() + "," + b->endpoint() +
                          " --client-key " + dir / "site.key" + " --server-key " + dir / "w.pub" +
                          " --model-id tiny --layer 1 --proj o --in " + dir / "x.ct" + " --out " +
                          dir / "y_remote.ct");
  ASSERT_EQ(remote.status, 0) << remote.err;
  const std::string want = slurp(dir / "y_local.ct");
  ASSERT_FALSE(want.empty());
  EXPECT_TRUE(slurp(dir / "y_remote.ct") == want);  // the same ciphertext, byte for byte

  const auto bad =
      run(kFedctl + " fhe-matmul --remote " + a->endpoint() + " --client-key " + dir / "site.key" +
          " --server-key " + dir / "w.pub" + " --model-id tiny --layer 9 --proj o --in " +
          dir / "x.ct" + " --out " + dir / "y_bad.ct");
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("layer"), std::string::npos) << bad.err;
}

// ---- Split products: one product's output rows over several workers at once ------------------

uint64_t served_by(const WorkerPool& pool, size_t worker) {
  return pool.status()[worker].served;
}

bool same_ciphertexts(const fhe::CiphertextMatrix& a, const fhe::CiphertextMatrix& b) {
  return a.kind == b.kind && a.rows == b.rows && a.cols == b.cols && a.log2_delta == b.log2_delta &&
         a.log2_modulus == b.log2_modulus && a.seed == b.seed && a.c0 == b.c0 && a.c1 == b.c1;
}

bool bit_identical(const model::Matrix& a, const model::Matrix& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<size_t>(a.size())) == 0;
}

bool bit_identical(const model::LoraParams& a, const model::LoraParams& b) {
  if (a.ids() != b.ids()) return false;
  for (const model::ProjectionId id : a.ids()) {
    if (!bit_identical(a.at(id).a, b.at(id).a) || !bit_identical(a.at(id).b, b.at(id).b)) {
      return false;
    }
  }
  return true;
}

// Through two real workers, a product split into two ranged requests (one per worker, both in
// flight at once) is the unsplit product's ciphertext bit for bit: single products both ways,
// the LM head, a forward group (the split inside q) and a stacked backward, one and two
// ciphertext blocks of tokens, products and switched replies. The parts' request bytes count the
// input once per part.
TEST_F(WorkerProcesses, SplitProductsEqualUnsplitOnesBitForBit) {
  auto p = pool();
  auto ctx = fhe::Context::create();
  const auto key = fhe::SecretKey::generate(ctx);
  fhe::Encryptor enc(key);
  const model::LlamaConfig& c = weights->config;
  using K = protocol::ProjectionKind;
  const auto h = static_cast<uint64_t>(c.hidden_size),
             f = static_cast<uint64_t>(c.intermediate_size);
  const auto q = static_cast<uint64_t>(c.q_dim()), kv = static_cast<uint64_t>(c.kv_dim());
  struct Case {
    uint32_t layer;
    std::vector<K> kinds;
    bool transpose, stacked;
    uint64_t in;
    std::vector<uint64_t> out;
  };
  const Case cases[] = {
      {1, {K::kUp}, false, false, h, {f}},
      {1, {K::kDown}, true, false, h, {f}},
      {0, {K::kLmHead}, false, false, h, {static_cast<uint64_t>(c.vocab_size)}},
      {1, {K::kQ, K::kK, K::kV}, false, false, h, {q, kv, kv}},
      {1, {K::kQ, K::kK, K::kV}, true, true, q + 2 * kv, {h}},
  };
  for (const size_t tokens : {size_t{5}, size_t{2050}}) {
    for (const bool switched : {false, true}) {
      for (const Case& k : cases) {
        SCOPED_TRACE(std::string(protocol::projection_name(k.kinds[0])) +
                     (k.transpose ? "^T" : "") + " T=" + std::to_string(tokens) +
                     (switched ? " switched" : ""));
        uint64_t total = 0;
        for (const uint64_t r : k.out) total += r;
        const auto x = random_int8(k.in * tokens, tokens + switched);
        const auto ct =
            enc.encrypt(x.data(), k.in, tokens, fhe::worst_case_bounds(k.in), total * tokens);
        participant::RemoteProduct call{"tiny", k.layer, k.kinds[0], k.transpose, switched};
        if (k.kinds.size() > 1) call.group = k.kinds;
        call.stacked = k.stacked;
        participant::WireBytes whole_bytes, split_bytes;
        const auto whole = participant::remote_products(*p, *ctx, call, ct, k.out, &whole_bytes);
        call.split = true;
        call.min_split_rows = 4;
        const uint64_t before[] = {served_by(*p, 0), served_by(*p, 1)};
        const auto split = participant::remote_products(*p, *ctx, call, ct, k.out, &split_bytes);
        EXPECT_EQ(served_by(*p, 0), before[0] + 1);  // one part each
        EXPECT_EQ(served_by(*p, 1), before[1] + 1);
        ASSERT_EQ(split.size(), whole.size());
        for (size_t j = 0; j < whole.size(); ++j) {
          EXPECT_EQ(whole[j].rows, k.out[j]);
          EXPECT_EQ(whole[j].kind, switched ? fhe::CtKind::kSwitched : fhe::CtKind::kProduct);
          EXPECT_TRUE(same_ciphertexts(split[j], whole[j])) << "result " << j;
        }
        EXPECT_EQ(split_bytes.request, 2 * whole_bytes.request);
        EXPECT_GE(split_bytes.reply, whole_bytes.reply);  // each part's planes rounded up to bytes
        EXPECT_LE(split_bytes.reply, whole_bytes.reply + 4 * whole.size());
      }
    }
  }
  EXPECT_EQ(participant::split_parts(511, 2), 1u);  // parts keep kMinSplitRows = 256 rows
  EXPECT_EQ(participant::split_parts(512, 2), 2u);
  EXPECT_EQ(participant::split_parts(8192, 3), 3u);
  EXPECT_EQ(participant::split_parts(8192, 1), 1u);
}

// A training step (forward, backward, every projection and the LM head) through two workers
// that split every product gives the in-process encrypted backend's loss and LoRA gradients bit
// for bit, per example too; with splitting off the same, in fewer requests.
TEST_F(WorkerProcesses, TrainingStepThroughTwoSplittingWorkersEqualsTheInProcessBackend) {
  const model::LlamaConfig& c = weights->config;
  model::LlamaModel local(weights, std::make_unique<model::EncryptedBackend>(*weights));
  model::LoraConfig lc;
  lc.rank = 4;
  using K = model::ProjectionKind;
  lc.targets = {K::kQ, K::kK, K::kV, K::kO, K::kGate, K::kUp, K::kDown};
  std::mt19937_64 rng(14);  // test data only
  model::LoraParams lora = model::init_lora_params(c, lc, rng);
  training_test::randomize(lora, 15, 0.3);  // B != 0: every gradient path is live
  const model::TokenBatch batch({{4, 290, 17, 33, 2, 61, 8}, {70, 5, 5}, {12}});
  const model::LoraStep want = local.lora_step(batch, lora, /*per_example=*/true);
  ASSERT_GT(want.gradients.batch.squared_norm(), 0);
  uint64_t requests[2] = {0, 0};
  for (const bool split : {true, false}) {
    SCOPED_TRACE(split ? "split" : "not split");
    auto p = pool();
    participant::RemoteOptions options{"tiny", false};
    options.split_products = split;
    options.min_split_rows = 4;
    model::LlamaModel remote(weights, std::make_unique<participant::RemoteEncryptedBackend>(
                                          p, c, options, nullptr, weights.get()));
    const uint64_t before = served_by(*p, 0) + served_by(*p, 1);  // the model info requests
    const model::LoraStep got = remote.lora_step(batch, lora, /*per_example=*/true);
    requests[split] = served_by(*p, 0) + served_by(*p, 1) - before;
    EXPECT_EQ(got.loss, want.loss);
    EXPECT_TRUE(bit_identical(got.gradients.batch, want.gradients.batch));
    ASSERT_EQ(got.gradients.per_example.size(), 3u);
    for (size_t s = 0; s < 3; ++s) {
      EXPECT_TRUE(bit_identical(got.gradients.per_example[s], want.gradients.per_example[s])) << s;
    }
  }
  EXPECT_EQ(requests[1], 2 * requests[0]);  // every product of this model split in two
}

// One of two workers killed while split products stream through the pool: its parts in flight
// are sent again to the survivor and every product is still the int8 backend's bit for bit.
TEST_F(WorkerProcesses, KillingOneOfTwoWorkersMidSplitProductsStillGivesTheSameResults) {
  auto p = pool();
  participant::RemoteOptions options{"tiny", false};
  options.min_split_rows = 4;
  participant::RemoteEncryptedBackend remote(p, weights->config, options, nullptr, weights.get());
  model::Int8Backend int8(*weights);
  std::mt19937_64 rng(21);  // test data only
  std::normal_distribution<float> gauss(0, 1);
  int exact = 0, total = 0;
  const auto stream = [&](int count) {
    for (int i = 0; i < count; ++i) {
      const model::ProjectionId id{i % 2 ? model::ProjectionKind::kUp : model::ProjectionKind::kQ,
                                   i % 2};
      model::Activations x(weights->config.hidden_size, 300);
      for (int64_t k = 0; k < x.size(); ++k) x.data()[k] = gauss(rng);
      model::Activations y, want;
      remote.forward(id, x, y);
      int8.forward(id, x, want);
      exact += y == want;
      ++total;
    }
  };
  stream(4);
  const uint64_t a_before = served_by(*p, 0), b_before = served_by(*p, 1);
  EXPECT_GT(a_before, 0u);
  EXPECT_EQ(a_before, b_before);  // every product split in two, one part each
  std::atomic<bool> killed{false};
  std::thread killer([&] {
    std::this_thread::sleep_for(50ms);
    a->kill();
    killed = true;
  });
  stream(30);
  killer.join();
  ASSERT_TRUE(killed);
  stream(4);  // after the kill, for sure: the survivor computes every row
  EXPECT_EQ(exact, total);
  const auto status = p->status();
  EXPECT_EQ(status[0].health, WorkerHealth::kDead) << status[0].last_error;
  EXPECT_GT(status[1].served, b_before);
}

}  // namespace
