// A worker sent garbage answers with typed errors (or, for a frame over ZMQ_MAXMSGSIZE, drops
// that connection) and keeps serving valid requests; a full queue answers `overloaded`; a
// CURVE worker refuses a client whose key is not in --allow and keeps serving allowed ones.
#include <filesystem>

#include "fhe_worker/error.h"
#include "fhe_worker/matmul.h"
#include "model/quantize.h"
#include "protocol/codec.h"
#include "protocol/keys.h"
#include "raw_header.h"
#include "worker_test_util.h"

namespace {

using namespace worker_test;
using protocol::ErrorCode;
using protocol::ProjectionKind;

// A DEALER without the codec, to send frames the encoder would refuse to write.
class RawClient {
 public:
  RawClient(zmq::context_t& ctx, const std::string& endpoint)
      : socket_(ctx, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.connect(endpoint);
  }
  void send(std::vector<zmq::message_t>&& frames) {
    for (size_t i = 0; i < frames.size(); ++i) {
      socket_.send(frames[i],
                   i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }
  void send_bytes(const std::vector<std::vector<uint8_t>>& frames) {
    std::vector<zmq::message_t> m;
    for (const auto& f : frames) m.emplace_back(f.data(), f.size());
    send(std::move(m));
  }
  // The decoded reply, or an error (kTimeout when nothing came).
  protocol::Result<protocol::Message> receive(std::chrono::milliseconds timeout = 10s) {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) <= 0) return protocol::make_error(ErrorCode::kTimeout, "none");
    std::vector<zmq::message_t> frames;
    do {
      zmq::message_t part;
      (void)socket_.recv(part);
      frames.push_back(std::move(part));
    } while (socket_.get(zmq::sockopt::rcvmore));
    return protocol::decode(std::move(frames));
  }

 private:
  zmq::socket_t socket_;
};

// The error code a reply carries (ErrorReply, MatmulReply or ModelInfoReply), or none.
std::optional<ErrorCode> reply_error(const protocol::Message& m) {
  if (const auto* e = std::get_if<protocol::ErrorReply>(&m.body)) return e->error.code;
  if (const auto* r = std::get_if<protocol::MatmulReply>(&m.body)) {
    if (const auto* e = std::get_if<protocol::Error>(&r->outcome)) return e->code;
  }
  if (const auto* r = std::get_if<protocol::ModelInfoReply>(&m.body)) {
    if (const auto* e = std::get_if<protocol::Error>(&r->outcome)) return e->code;
  }
  return std::nullopt;
}

class WorkerRobustness : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = write_tiny_model(tmp.path());
    fhe_worker::WorkerConfig config;
    // Small limits so that an oversized frame is cheap to make.
    config.socket.limits.max_header_bytes = 64 * 1024;
    config.socket.limits.max_blob_bytes = 4 << 20;
    config.socket.limits.max_total_bytes = 6 << 20;
    f.start(dir, config);
    q = model::quantize_weight_rows(model::load_llama_weights(dir).layers[0].q_proj);
  }

  protocol::Message request(uint64_t id, fhe_worker::MatmulCall call = {}, size_t rows = 64,
                            size_t tokens = 3) {
    if (call.model_id.empty()) {
      call.model_id = "tiny";
      call.projections = {ProjectionKind::kQ};
    }
    call.request_id = id;
    x = test_matrix(rows, tokens, static_cast<uint32_t>(id));
    auto m = fhe_worker::make_matmul_request(*f.fhe_ctx, call, f.encrypt(x, rows, tokens));
    EXPECT_TRUE(m.ok());
    return std::move(m).value();
  }

  std::vector<zmq::message_t> frames(protocol::Message&& m) {
    auto r = protocol::encode(std::move(m));
    EXPECT_TRUE(r.ok());
    return std::move(r).value();
  }

  // A valid request on `client` is answered exactly.
  template <typename Client>
  void expect_served(Client& client, uint64_t id) {
    if constexpr (std::is_same_v<Client, RawClient>) {
      client.send(frames(request(id)));
    } else {
      ASSERT_TRUE(client.send(request(id)).ok());
    }
    auto reply = client.receive(10s);
    ASSERT_TRUE(reply.ok()) << reply.error().to_string();
    auto y = fhe_worker::read_matmul_reply(*f.fhe_ctx, reply.value());
    ASSERT_TRUE(y.ok()) << y.error().to_string();
    EXPECT_EQ(fhe::Decryptor(f.key).decrypt(y.value()[0]), plain_product(q, x, 3, false));
  }

  ErrorCode error_of(RawClient& client) {
    auto reply = client.receive();
    EXPECT_TRUE(reply.ok()) << reply.error().to_string();
    if (!reply.ok()) return ErrorCode::kTimeout;
    const auto code = reply_error(reply.value());
    EXPECT_TRUE(code.has_value()) << protocol::body_name(reply.value().body);
    return code.value_or(ErrorCode::kTimeout);
  }

  TempDir tmp;
  std::filesystem::path dir;
  Fixture f;
  model::QuantizedWeight q;
  std::vector<int8_t> x;
};

TEST_F(WorkerRobustness, GarbageGetsErrorRepliesAndServingGoesOn) {
  RawClient raw(f.client_ctx, f.worker->endpoint());
  // Random bytes as a header.
  {
    const auto noise = test_matrix(1, 300, 1);
    raw.send_bytes({std::vector<uint8_t>(noise.begin(), noise.end())});
  }
  EXPECT_EQ(error_of(raw), ErrorCode::kMalformedRequest);
  // A truncated header.
  {
    auto fr = frames(request(1));
    std::vector<uint8_t> header(static_cast<uint8_t*>(fr[0].data()),
                                static_cast<uint8_t*>(fr[0].data()) + fr[0].size() / 2);
    raw.send_bytes({header});
    EXPECT_EQ(error_of(raw), ErrorCode::kMalformedRequest);
  }
  // A truncated blob frame.
  {
    auto fr = frames(request(2));
    std::vector<uint8_t> header(static_cast<uint8_t*>(fr[0].data()),
                                static_cast<uint8_t*>(fr[0].data()) + fr[0].size());
    std::vector<uint8_t> blob(static_cast<uint8_t*>(fr[1].data()),
                              static_cast<uint8_t*>(fr[1].data()) + fr[1].size() - 5);
    raw.send_bytes({header, blob});
    EXPECT_NE(error_of(raw), ErrorCode::kTimeout);
  }
  // A header whose blob count disagrees with the frames: the blob frame missing, or one extra.
  {
    auto fr = frames(request(3));
    fr.pop_back();
    raw.send(std::move(fr));
    EXPECT_EQ(error_of(raw), ErrorCode::kMalformedRequest);
    auto fr2 = frames(request(4));
    fr2.emplace_back(std::string("extra"));
    raw.send(std::move(fr2));
    EXPECT_EQ(error_of(raw), ErrorCode::kMalformedRequest);
  }
  // An oversized header frame (over max_header_bytes, under ZMQ_MAXMSGSIZE).
  raw.send_bytes({std::vector<uint8_t>(100 * 1024, 0)});
  EXPECT_EQ(error_of(raw), ErrorCode::kMalformedRequest);
  // A message that is not a request.
  raw.send(frames(protocol::Message{protocol::ErrorReply{5, {ErrorCode::kInternal, "x"}}, {}}));
  EXPECT_EQ(error_of(raw), ErrorCode::kMalformedRequest);
  expect_served(raw, 10);
  EXPECT_GE(f.worker->stats().error_replies, 7u);
}

TEST_F(WorkerRobustness, TypedErrorsForWrongRequests) {
  RawClient raw(f.client_ctx, f.worker->endpoint());
  auto expect = [&](protocol::Message&& m, ErrorCode want) {
    raw.send(frames(std::move(m)));
    EXPECT_EQ(error_of(raw), want);
  };
  expect(request(1, {0, "other", 0, {ProjectionKind::kQ}}), ErrorCode::kUnknownModel);
  expect(request(2, {0, "tiny", 2, {ProjectionKind::kQ}}), ErrorCode::kUnknownLayer);
  // The LM head is served as layer 0 only; lm_head^T takes vocab (50) rows, not 64.
  expect(request(3, {0, "tiny", 1, {ProjectionKind::kLmHead}}), ErrorCode::kUnknownLayer);
  expect(request(3, {0, "tiny", 0, {ProjectionKind::kLmHead}, true}), ErrorCode::kShapeMismatch);
  // q takes 64 features, not 32; down takes 96; transposed k takes 32.
  expect(request(4, {0, "tiny", 0, {ProjectionKind::kQ}}, 32), ErrorCode::kShapeMismatch);
  expect(request(5, {0, "tiny", 0, {ProjectionKind::kDown}}, 64), ErrorCode::kShapeMismatch);
  expect(request(6, {0, "tiny", 0, {ProjectionKind::kK}, true}, 64), ErrorCode::kShapeMismatch);
  // Projections of different input widths in one request.
  expect(request(7, {0, "tiny", 0, {ProjectionKind::kQ, ProjectionKind::kDown}}),
         ErrorCode::kShapeMismatch);
  expect(protocol::Message{protocol::ModelInfoRequest{"other"}, {}}, ErrorCode::kUnknownModel);
  // A scale too large for the noise/message budget.
  {
    auto m = request(8);
    std::get<protocol::MatmulRequest>(m.body).log2_delta = 47;
    expect(std::move(m), ErrorCode::kNoiseBudget);
  }
  // Another parameter set.
  {
    auto m = request(9);
    std::get<protocol::MatmulRequest>(m.body).params_id = 99;
    expect(std::move(m), ErrorCode::kMalformedRequest);
  }
  expect_served(raw, 20);
}

// A frame over ZMQ_MAXMSGSIZE: ZeroMQ drops that connection before buffering it; the worker
// logs the disconnect and serves the next connection.
TEST_F(WorkerRobustness, FrameOverMaxMsgSizeDropsOnlyThatConnection) {
  {
    RawClient raw(f.client_ctx, f.worker->endpoint());
    raw.send_bytes({std::vector<uint8_t>(16), std::vector<uint8_t>(5 << 20, 1)});
    EXPECT_EQ(raw.receive(1s).error().code, ErrorCode::kTimeout);
  }
  auto client = f.client();
  expect_served(client, 30);
}

TEST_F(WorkerRobustness, FullQueueAnswersOverloaded) {
  // A second worker with a queue of one request and one compute thread.
  Fixture g;
  fhe_worker::WorkerConfig config;
  config.max_queue = 1;
  g.start(dir, config);
  auto client = g.client();
  constexpr int kRequests = 24;
  for (int i = 0; i < kRequests; ++i) {
    auto m = fhe_worker::make_matmul_request(
        *g.fhe_ctx, {static_cast<uint64_t>(i + 1), "tiny", 0, {ProjectionKind::kGate}},
        g.encrypt(test_matrix(64, 2048, i), 64, 2048));
    ASSERT_TRUE(m.ok());
    ASSERT_TRUE(client.send(std::move(m).value()).ok());
  }
  int answered = 0, overloaded = 0;
  for (int i = 0; i < kRequests; ++i) {
    auto r = client.receive(30s);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    const auto code = reply_error(r.value());
    if (code == ErrorCode::kOverloaded) {
      ++overloaded;
    } else {
      EXPECT_FALSE(code.has_value());
      ++answered;
    }
  }
  EXPECT_GE(answered, 1);
  EXPECT_GE(overloaded, 1);
  EXPECT_EQ(g.worker->stats().overloaded, static_cast<uint64_t>(overloaded));
}

TEST(WorkerCurve, UnlistedClientIsRefusedAllowedOneServed) {
  TempDir tmp;
  const auto dir = write_tiny_model(tmp.path());
  const auto server = protocol::KeyPair::generate().value();
  const auto allowed = protocol::KeyPair::generate().value();
  const auto intruder = protocol::KeyPair::generate().value();
  ASSERT_TRUE(protocol::write_key_pair(server, tmp / "worker", false).ok());
  ASSERT_TRUE(protocol::write_key_pair(allowed, tmp / "site1", false).ok());
  std::filesystem::create_directory(tmp / "allow");
  std::filesystem::copy_file(tmp / "site1.pub", tmp / "allow/site1.pub");

  fhe_worker::WorkerModelOptions mo;
  mo.threads = 1;
  auto model = fhe_worker::WorkerModel::load(dir, mo);
  fhe_worker::WorkerConfig config;
  config.bind = "tcp://127.0.0.1:0";
  config.secret_key_file = tmp / "worker.key";
  config.allow_dir = tmp / "allow";
  config.log = fhe_worker::make_console_logger("error");
  auto worker = fhe_worker::Worker::start(std::move(model), config);
  EXPECT_EQ(worker->public_key_z85(), server.public_key.z85());

  zmq::context_t ctx;
  auto connect = [&](const protocol::KeyPair& key) {
    protocol::ClientConfig c;
    c.endpoint = worker->endpoint();
    c.key = key;
    c.server_key = server.public_key;
    return protocol::Client::connect(ctx, c).value();
  };
  auto info = [] { return protocol::Message{protocol::ModelInfoRequest{"tiny"}, {}}; };
  auto bad = connect(intruder);
  ASSERT_TRUE(bad.send(info()).ok());
  EXPECT_EQ(bad.receive(1500ms).error().code, ErrorCode::kTimeout);
  auto good = connect(allowed);
  ASSERT_TRUE(good.send(info()).ok());
  auto r = good.receive(10s);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_TRUE(std::holds_alternative<protocol::ModelInfo>(
      std::get<protocol::ModelInfoReply>(r.value().body).outcome));
  EXPECT_GE(worker->stats().handshake_failures, 1u);
  // An insecure worker is refused on a non-loopback endpoint.
  fhe_worker::WorkerConfig open;
  open.bind = "tcp://0.0.0.0:0";
  open.insecure = true;
  open.log = config.log;
  EXPECT_THROW(fhe_worker::Worker::start(
                   fhe_worker::WorkerModel::load(dir, fhe_worker::WorkerModelOptions{}), open),
               fhe_worker::WorkerError);
}

// An empty or reversed output row range (which the encoder refuses to write) is refused as
// malformed, naming the range, and the worker goes on serving.
TEST_F(WorkerRobustness, EmptyRowRangesAreMalformedAndServingGoesOn) {
  RawClient raw(f.client_ctx, f.worker->endpoint());
  for (const auto& [begin, end] : {std::pair<uint64_t, uint64_t>{9, 9}, {10, 2}, {3, 0}}) {
    auto m = frames(request(50 + begin));
    std::vector<std::vector<uint8_t>> bytes;
    for (const auto& frame : m) {
      const auto* p = static_cast<const uint8_t*>(frame.data());
      bytes.emplace_back(p, p + frame.size());
    }
    bytes[0] = protocol_test::tweak_header(bytes[0], [&](protocol::wire::Envelope::Builder e) {
      e.getBody().getMatmulRequest().setRowBegin(begin);
      e.getBody().getMatmulRequest().setRowEnd(end);
    });
    raw.send_bytes(bytes);
    auto reply = raw.receive();
    ASSERT_TRUE(reply.ok()) << reply.error().to_string();
    const auto* e = std::get_if<protocol::ErrorReply>(&reply.value().body);
    ASSERT_NE(e, nullptr) << protocol::body_name(reply.value().body);
    EXPECT_EQ(e->error.code, ErrorCode::kMalformedRequest) << e->error.message;
    EXPECT_NE(e->error.message.find("output row range"), std::string::npos) << e->error.message;
  }
  expect_served(raw, 60);
}

}  // namespace
