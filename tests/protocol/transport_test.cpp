// Real ROUTER/DEALER pairs (inproc:// and tcp://127.0.0.1 on an ephemeral port) exchanging
// matmul requests with blob frames and their replies; malformed traffic on the same stream;
// oversized frames; configurations that must be refused. Every wait is bounded.
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include <zmq_addon.hpp>

#include "echo_server.h"
#include "protocol/socket.h"
#include "sample_messages.h"

namespace {

using namespace std::chrono_literals;
using protocol::ErrorCode;
using protocol::Message;

protocol::Server insecure_server(zmq::context_t& ctx, const std::string& endpoint,
                                 protocol::SocketOptions options = {}) {
  protocol::ServerConfig c;
  c.endpoint = endpoint;
  c.insecure = true;
  c.options = options;
  auto s = protocol::Server::bind(ctx, c);
  EXPECT_TRUE(s.ok()) << s.error().to_string();
  return std::move(s).value();
}

protocol::Client insecure_client(zmq::context_t& ctx, const std::string& endpoint) {
  protocol::ClientConfig c;
  c.endpoint = endpoint;
  c.insecure = true;
  auto client = protocol::Client::connect(ctx, c);
  EXPECT_TRUE(client.ok()) << client.error().to_string();
  return std::move(client).value();
}

// Sends a request and checks the reply is the echo of it, frame for frame.
void exchange(protocol::Client& client, uint64_t id, uint64_t rows, uint64_t cols) {
  const Message request = protocol_test::matmul_request(id, rows, cols, 2048);
  ASSERT_TRUE(client.send(protocol_test::clone(request)).ok());
  auto reply = client.receive(10s);
  ASSERT_TRUE(reply.ok()) << reply.error().to_string();
  EXPECT_TRUE(protocol_test::same(reply.value(), protocol_test::echo_reply(request)));
  const auto& r = std::get<protocol::MatmulReply>(reply.value().body);
  EXPECT_EQ(r.request_id, id);
  const auto& results = std::get<std::vector<protocol::ResultPlanes>>(r.outcome);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[2].projection, protocol::ProjectionKind::kV);
  ASSERT_EQ(reply.value().blobs.size(), 6u);
  const uint64_t blocks = (cols + 2047) / 2048;
  EXPECT_EQ(reply.value().blobs[5].bytes().size(), blocks * rows * 2048 * 6);
}

TEST(Transport, InprocRequestAndReply) {
  zmq::context_t ctx;
  protocol_test::EchoServer server(insecure_server(ctx, "inproc://transport-test"));
  auto client = insecure_client(ctx, server.endpoint());
  exchange(client, 1, 4, 2049);  // two ciphertext blocks
  exchange(client, 2, 1, 1);
  EXPECT_EQ(server.served(), 2);
  EXPECT_EQ(server.refused(), 0);
}

TEST(Transport, TcpLoopbackEphemeralPortRequestAndReply) {
  zmq::context_t ctx;
  protocol_test::EchoServer server(insecure_server(ctx, "tcp://127.0.0.1:*"));
  EXPECT_EQ(server.endpoint().rfind("tcp://127.0.0.1:", 0), 0u);
  EXPECT_NE(server.endpoint(), "tcp://127.0.0.1:*");
  auto client = insecure_client(ctx, server.endpoint());
  exchange(client, 10, 16, 3000);
  // Several requests in flight at once, answered in order.
  for (uint64_t id = 20; id < 25; ++id) {
    ASSERT_TRUE(client.send(protocol_test::matmul_request(id, 2, 100, 2048)).ok());
  }
  for (uint64_t id = 20; id < 25; ++id) {
    auto reply = client.receive(10s);
    ASSERT_TRUE(reply.ok()) << reply.error().to_string();
    EXPECT_EQ(std::get<protocol::MatmulReply>(reply.value().body).request_id, id);
  }
  EXPECT_EQ(server.served(), 6);
}

TEST(Transport, ReceiveTimesOutAsAValue) {
  zmq::context_t ctx;
  auto server = insecure_server(ctx, "inproc://timeout-test");
  const auto start = std::chrono::steady_clock::now();
  auto in = server.receive(50ms);
  ASSERT_FALSE(in.ok());
  EXPECT_EQ(in.error().code, ErrorCode::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  auto client = insecure_client(ctx, "inproc://timeout-test");
  auto r = client.receive(20ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout);
}

// Garbage on the same connection: the server answers each with an ErrorReply and keeps serving.
TEST(Transport, MalformedMessagesGetErrorRepliesAndTheStreamRecovers) {
  zmq::context_t ctx;
  protocol_test::EchoServer server(insecure_server(ctx, "inproc://garbage-test"));
  zmq::socket_t raw(ctx, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect("inproc://garbage-test");
  auto good = protocol::encode(protocol_test::matmul_request(99, 2, 10, 64));
  ASSERT_TRUE(good.ok());
  std::vector<std::vector<uint8_t>> frames;
  for (const auto& f : good.value()) {
    const auto* p = static_cast<const uint8_t*>(f.data());
    frames.emplace_back(p, p + f.size());
  }
  std::mt19937_64 g(3);  // test data only
  const int kBad = 200;
  for (int i = 0; i < kBad; ++i) {
    auto bad = frames;
    switch (i % 4) {
      case 0:
        bad[0][g() % bad[0].size()] ^= 0x40;
        bad[0].resize(bad[0].size() - 1 - g() % 8);
        break;
      case 1:
        bad.pop_back();
        break;
      case 2:
        bad.push_back({1, 2, 3});
        break;
      case 3:
        bad[1].push_back(0);
        break;
    }
    for (size_t k = 0; k < bad.size(); ++k) {
      raw.send(zmq::buffer(bad[k]),
               k + 1 < bad.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
    std::vector<zmq::message_t> reply;
    zmq::pollitem_t item{raw.handle(), 0, ZMQ_POLLIN, 0};
    ASSERT_EQ(zmq::poll(&item, 1, 5s), 1) << "no reply to bad message " << i;
    ASSERT_TRUE(zmq::recv_multipart(raw, std::back_inserter(reply)));
    auto decoded = protocol::decode(std::move(reply));
    ASSERT_TRUE(decoded.ok());
    const auto& err = std::get<protocol::ErrorReply>(decoded.value().body).error;
    EXPECT_TRUE(err.code == ErrorCode::kMalformedRequest || err.code == ErrorCode::kShapeMismatch)
        << err.to_string();
  }
  for (size_t k = 0; k < frames.size(); ++k) {
    raw.send(zmq::buffer(frames[k]),
             k + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
  std::vector<zmq::message_t> reply;
  zmq::pollitem_t item{raw.handle(), 0, ZMQ_POLLIN, 0};
  ASSERT_EQ(zmq::poll(&item, 1, 5s), 1);
  ASSERT_TRUE(zmq::recv_multipart(raw, std::back_inserter(reply)));
  auto decoded = protocol::decode(std::move(reply));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(std::get<protocol::MatmulReply>(decoded.value().body).request_id, 99u);
  EXPECT_EQ(server.refused(), kBad);
  EXPECT_EQ(server.served(), 1);
}

// A frame above ZMQ_MAXMSGSIZE never reaches the server (ZeroMQ drops the connection), and the
// server keeps serving the same client once it has reconnected.
TEST(Transport, OversizedFrameIsDroppedAndServingContinues) {
  zmq::context_t ctx;
  protocol::SocketOptions small;
  small.limits.max_blob_bytes = 64 * 1024;  // ZMQ_MAXMSGSIZE = max(header, blob limits)
  small.limits.max_header_bytes = 16 * 1024;
  protocol_test::EchoServer server(insecure_server(ctx, "tcp://127.0.0.1:*", small));
  auto client = insecure_client(ctx, server.endpoint());
  ASSERT_TRUE(client.send(protocol_test::matmul_request(1000, 8, 2048, 2048)).ok());  // 96 KiB
  bool answered = false;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  for (uint64_t id = 1; !answered && std::chrono::steady_clock::now() < deadline; ++id) {
    ASSERT_TRUE(client.send(protocol_test::matmul_request(id, 2, 10, 2048)).ok());
    auto reply = client.receive(300ms);
    answered = reply.ok() && std::get<protocol::MatmulReply>(reply.value().body).request_id == id;
  }
  EXPECT_TRUE(answered);
  for (const uint64_t id : server.request_ids()) EXPECT_NE(id, 1000u);
  // ZeroMQ dropped it before the decoder saw it (the decoder would have answered an error).
  EXPECT_EQ(server.refused(), 0);
}

TEST(Transport, UnsafeConfigurationsAreRefused) {
  zmq::context_t ctx;
  protocol::ServerConfig s;
  s.insecure = true;
  s.endpoint = "tcp://0.0.0.0:*";
  auto r = protocol::Server::bind(ctx, s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("--insecure refused"), std::string::npos);

  s.insecure = false;
  s.endpoint = "tcp://127.0.0.1:*";
  s.key = protocol::KeyPair::generate().value();
  r = protocol::Server::bind(ctx, s);  // CURVE without a ZAP handler would admit anyone
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("ZAP"), std::string::npos);

  s.endpoint = "inproc://curve";  // no handshake on inproc: CURVE would be a false promise
  r = protocol::Server::bind(ctx, s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);

  protocol::ClientConfig c;
  c.endpoint = "tcp://10.1.2.3:5555";
  c.insecure = true;
  auto client = protocol::Client::connect(ctx, c);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().code, ErrorCode::kInvalidArgument);
  c.insecure = false;
  c.key = protocol::KeyPair::generate().value();
  client = protocol::Client::connect(ctx, c);  // no server key
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().code, ErrorCode::kInvalidArgument);

  s.insecure = true;
  s.endpoint = "tcp://127.0.0.1:notaport";
  r = protocol::Server::bind(ctx, s);
  ASSERT_FALSE(r.ok());
}

}  // namespace
