// An in-process stand-in for fhe_worker, for the pool's unit tests: a real protocol::Server on
// loopback TCP, on its own thread, answering heartbeats, model info and matmul requests with
// the real encrypted products of a model (model::LocalEncryptedProducts): every listed
// projection of a request, or the one summed product of a stacked one. It lists the LM head
// as fhe_worker does (layer 0, [1, vocab] scales). Switches make it go silent (a hung worker),
// answer "overloaded", leave the LM head out of its model info (an older worker), or refuse the
// transposed LM head with a typed error (a vocabulary too large for it).
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "model/encrypted_products.h"
#include "model/llama_weights.h"
#include "protocol/socket.h"
#include "protocol/zap.h"

namespace participant_test {

class TestWorker {
 public:
  // Binds tcp://127.0.0.1:* insecure, or under CURVE with `key` and `allow` when key is set.
  TestWorker(std::shared_ptr<const model::LlamaWeights> weights, std::string model_id,
             std::optional<protocol::KeyPair> key = std::nullopt, protocol::AllowList allow = {});
  ~TestWorker();

  const std::string& endpoint() const { return endpoint_; }
  void set_silent(bool on) { silent_ = on; }
  void set_overloaded(bool on) { overloaded_ = on; }
  // Takes effect for the model info requests that follow.
  void set_lists_lm_head(bool on) { lists_lm_head_ = on; }
  // Answer every lm_head^T request with this error (kShapeMismatch, kNoiseBudget), or serve them.
  void set_refuse_transposed_lm_head(std::optional<protocol::ErrorCode> code) {
    refuse_lm_head_t_ = code ? static_cast<int>(*code) : 0;
  }
  int served() const { return served_; }
  // lm_head requests received (served or refused), by direction.
  int lm_head_requests(bool transpose) const { return lm_head_requests_[transpose]; }

 private:
  void run();
  std::optional<protocol::Message> answer(const protocol::Message& m);
  protocol::Message model_info() const;
  protocol::Message matmul(const protocol::MatmulRequest& r, const protocol::Blob& input);

  std::shared_ptr<const model::LlamaWeights> weights_;
  std::string model_id_;
  zmq::context_t context_;
  std::unique_ptr<protocol::ZapHandler> zap_;
  std::optional<protocol::Server> server_;
  std::string endpoint_;
  std::unique_ptr<model::LocalEncryptedProducts> products_;
  std::shared_ptr<const fhe::Context> ctx_;
  std::atomic<bool> stop_{false}, silent_{false}, overloaded_{false}, lists_lm_head_{true};
  std::atomic<int> refuse_lm_head_t_{0};  // a protocol::ErrorCode, 0 for none
  std::atomic<int> served_{0};
  std::atomic<int> lm_head_requests_[2] = {0, 0};
  std::thread thread_;
};

}  // namespace participant_test
