// Shared pieces of the fhe_worker tests: a tiny random model on disk, an in-process worker on
// tcp loopback, clients, encryption of test inputs and the plaintext int8 products.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "fhe/context.h"
#include "fhe/encryptor.h"
#include "fhe/noise.h"
#include "fhe/secret_key.h"
#include "fhe_worker/ciphertext_wire.h"
#include "fhe_worker/worker.h"
#include "fhe_worker/worker_model.h"
#include "model/llama_weights.h"
#include "model/random_model.h"
#include "protocol/socket.h"
#include "test_support/temp_dir.h"

namespace worker_test {

using namespace std::chrono_literals;
using test_support::TempDir;

// hidden 64, 2 layers, 4 heads (2 kv heads), intermediate 96: q 64x64, k/v 32x64, o 64x64,
// gate/up 96x64, down 64x96.
inline model::LlamaConfig tiny_config() {
  model::LlamaConfig c;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 50;
  return c;
}

// Writes the tiny model to dir/name and returns its path.
inline std::filesystem::path write_tiny_model(const std::filesystem::path& dir,
                                              const std::string& name = "tiny", uint64_t seed = 7) {
  const auto path = dir / name;
  model::write_random_llama(path, tiny_config(),
                            model::RandomModelOptions{seed, model::DType::kF32});
  return path;
}

// Deterministic int8 test data in [-127, 127].
inline std::vector<int8_t> test_matrix(size_t rows, size_t cols, uint32_t salt) {
  std::vector<int8_t> x(rows * cols);
  uint32_t s = 0x9e3779b9u ^ salt;
  for (auto& v : x) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    v = static_cast<int8_t>(static_cast<int>(s % 255) - 127);
  }
  return x;
}

// y = W x (transpose = false, x has w.cols rows) or W^T x (x has w.rows rows); x is row-major
// rows x tokens.
inline std::vector<int64_t> plain_product(const model::QuantizedWeight& w,
                                          const std::vector<int8_t>& x, size_t tokens,
                                          bool transpose) {
  const auto R = static_cast<size_t>(w.rows), C = static_cast<size_t>(w.cols);
  const size_t out = transpose ? C : R;
  std::vector<int64_t> y(out * tokens, 0);
  for (size_t i = 0; i < R; ++i) {
    for (size_t j = 0; j < C; ++j) {
      const int64_t wij = w.values[i * C + j];
      for (size_t t = 0; t < tokens; ++t) {
        if (transpose) {
          y[j * tokens + t] += wij * x[i * tokens + t];
        } else {
          y[i * tokens + t] += wij * x[j * tokens + t];
        }
      }
    }
  }
  return y;
}

// An in-process insecure worker on tcp loopback, with a client key and an encryption key.
struct Fixture {
  zmq::context_t client_ctx;
  std::shared_ptr<const fhe_worker::WorkerModel> model;
  std::unique_ptr<fhe_worker::Worker> worker;
  std::shared_ptr<const fhe::Context> fhe_ctx = fhe::Context::create();
  fhe::SecretKey key = fhe::SecretKey::generate(fhe_ctx);

  // Loads the model from `dir` and starts an insecure worker.
  void start(const std::filesystem::path& dir, fhe_worker::WorkerConfig config = {}) {
    fhe_worker::WorkerModelOptions mo;
    mo.device = fhe_worker::parse_device("cpu");
    mo.threads = 1;
    model = fhe_worker::WorkerModel::load(dir, mo);
    config.bind = "tcp://127.0.0.1:0";
    config.insecure = true;
    if (!config.log) config.log = fhe_worker::make_console_logger("warn");
    worker = fhe_worker::Worker::start(model, std::move(config));
  }

  protocol::Client client() {
    protocol::ClientConfig c;
    c.endpoint = worker->endpoint();
    c.insecure = true;
    auto r = protocol::Client::connect(client_ctx, c);
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return std::move(r).value();
  }

  fhe::CiphertextMatrix encrypt(const std::vector<int8_t>& x, size_t rows, size_t tokens) const {
    return fhe::Encryptor(key).encrypt(x.data(), rows, tokens, fhe::worst_case_bounds(rows));
  }
};

// Sends `m` and waits for the reply (fails the test on a timeout).
inline protocol::Message round_trip(protocol::Client& client, protocol::Message&& m,
                                    std::chrono::milliseconds timeout = 10s) {
  auto s = client.send(std::move(m));
  EXPECT_TRUE(s.ok()) << s.error().to_string();
  auto r = client.receive(timeout);
  EXPECT_TRUE(r.ok()) << r.error().to_string();
  if (!r.ok()) return protocol::Message{protocol::ErrorReply{0, r.error()}, {}};
  return std::move(r).value();
}

}  // namespace worker_test
