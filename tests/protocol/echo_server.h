// A stand-in fhe_worker for transport tests: a Server on its own thread that answers each matmul
// request with one result per projection whose c0 and c1 planes are copies of the input, every
// other valid message with nothing, and every malformed message with an ErrorReply.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "protocol/socket.h"

namespace protocol_test {

class EchoServer {
 public:
  explicit EchoServer(protocol::Server server);
  ~EchoServer();  // stops and joins the thread
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;

  const std::string& endpoint() const { return endpoint_; }
  int served() const { return served_.load(); }    // valid matmul requests answered
  int refused() const { return refused_.load(); }  // malformed messages answered with errors
  std::vector<uint64_t> request_ids() const;       // of the valid requests, in arrival order
  std::vector<std::string> user_ids() const;       // CURVE client keys of those requests

 private:
  void run();
  void handle(protocol::Incoming& in);

  protocol::Server server_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::atomic<int> served_{0}, refused_{0};
  mutable std::mutex mu_;
  std::vector<uint64_t> request_ids_;
  std::vector<std::string> user_ids_;
  std::thread thread_;
};

// The reply EchoServer sends to `request` (so tests can compare).
protocol::Message echo_reply(const protocol::Message& request);

}  // namespace protocol_test
