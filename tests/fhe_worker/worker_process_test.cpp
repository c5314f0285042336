// build/bin/fhe_worker as a real process: --port-file, INI config, exact products, SIGTERM while
// requests are in flight (all answered, exit 0), bad options (exit 2). (`fedctl export-int8`:
// tests/tools/fedctl_export_int8_test.cpp.)
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <thread>

#include "model/quantize.h"
#include "worker_process_util.h"

namespace {

using namespace worker_test;
using protocol::ProjectionKind;

protocol::Client connect(zmq::context_t& ctx, const std::string& endpoint) {
  protocol::ClientConfig c;
  c.endpoint = endpoint;
  c.insecure = true;
  return protocol::Client::connect(ctx, c).value();
}

TEST(WorkerProcess, ServesFromIniConfigAndDrainsOnSigterm) {
  TempDir tmp;
  const auto dir = write_tiny_model(tmp.path(), "tiny-model");
  {
    std::ofstream ini(tmp / "worker.ini");
    ini << "# test config\nmodel = " << dir.string()
        << "\nmodel-id = from-ini\nbind = tcp://127.0.0.1:0\ninsecure = true\n"
           "threads = 1\nlog-level = info\n";
  }
  // The command line wins over the file (--model-id).
  Process worker({FHE_WORKER_PATH, "--config", tmp / "worker.ini", "--model-id", "cli-id",
                  "--port-file", tmp / "port"},
                 tmp / "worker.log");
  const std::string endpoint = wait_for_port(tmp / "port");
  ASSERT_FALSE(endpoint.empty()) << slurp(tmp / "worker.log");
  EXPECT_TRUE(endpoint.starts_with("tcp://127.0.0.1:")) << endpoint;

  zmq::context_t ctx;
  auto client = connect(ctx, endpoint);
  auto info = round_trip(client, protocol::Message{protocol::ModelInfoRequest{"cli-id"}, {}});
  ASSERT_TRUE(std::holds_alternative<protocol::ModelInfo>(
      std::get<protocol::ModelInfoReply>(info.body).outcome));

  // A stream of requests, then SIGTERM while they are queued or computing: a heartbeat sent
  // after them (answered by the I/O thread in order) proves they are in the worker first.
  const auto weights = model::load_llama_weights(dir);
  const auto gate = model::quantize_weight_rows(weights.layers[1].gate_proj);
  const auto up = model::quantize_weight_rows(weights.layers[1].up_proj);
  auto fhe_ctx = fhe::Context::create();
  const auto key = fhe::SecretKey::generate(fhe_ctx);
  constexpr int kRequests = 8;
  constexpr size_t kTokens = 4 * 2048;
  std::vector<std::vector<int8_t>> xs;
  for (int i = 0; i < kRequests; ++i) {
    xs.push_back(test_matrix(64, kTokens, i));
    auto ct =
        fhe::Encryptor(key).encrypt(xs.back().data(), 64, kTokens, fhe::worst_case_bounds(64));
    auto m = fhe_worker::make_matmul_request(*fhe_ctx,
                                             {static_cast<uint64_t>(i),
                                              "cli-id",
                                              1,
                                              {ProjectionKind::kGate, ProjectionKind::kUp},
                                              false,
                                              i % 2 == 1},
                                             ct);
    ASSERT_TRUE(m.ok());
    ASSERT_TRUE(client.send(std::move(m).value()).ok());
  }
  ASSERT_TRUE(client.send(protocol::Message{protocol::Heartbeat{"test", 0, 0, 0, 0}, {}}).ok());
  fhe::Decryptor dec(key);
  int answered = 0;
  bool signalled = false;
  while (answered < kRequests || !signalled) {
    auto r = client.receive(60s);
    ASSERT_TRUE(r.ok()) << r.error().to_string() << "\n" << slurp(tmp / "worker.log");
    if (const auto* h = std::get_if<protocol::Heartbeat>(&r.value().body)) {
      EXPECT_GT(h->queued + h->in_flight, 0u) << "requests already done before SIGTERM";
      worker.signal(SIGTERM);
      signalled = true;
      continue;
    }
    const auto id = std::get<protocol::MatmulReply>(r.value().body).request_id;
    auto y = fhe_worker::read_matmul_reply(*fhe_ctx, r.value());
    ASSERT_TRUE(y.ok()) << y.error().to_string();
    ASSERT_EQ(y.value().size(), 2u);
    EXPECT_EQ(dec.decrypt(y.value()[0]), plain_product(gate, xs[id], kTokens, false)) << id;
    EXPECT_EQ(dec.decrypt(y.value()[1]), plain_product(up, xs[id], kTokens, false)) << id;
    ++answered;
  }
  EXPECT_EQ(worker.wait(30s), 0) << slurp(tmp / "worker.log");
  const std::string log = slurp(tmp / "worker.log");
  EXPECT_NE(log.find("model 'cli-id'"), std::string::npos) << log;
  EXPECT_NE(log.find("drained"), std::string::npos) << log;
}

TEST(WorkerProcess, BadOptionsExitWithStatus2) {
  TempDir tmp;
  const auto dir = write_tiny_model(tmp.path());
  {
    Process p({FHE_WORKER_PATH, "--model", dir.string(), "--bind", "tcp://127.0.0.1:0",
               "--insecure", "--device", "tpu"},
              tmp / "a.log");
    EXPECT_EQ(p.wait(30s), 2);
    EXPECT_NE(slurp(tmp / "a.log").find("--device"), std::string::npos);
  }
  {
    Process p({FHE_WORKER_PATH, "--model", dir.string(), "--bind", "tcp://127.0.0.1:0",
               "--insecure", "--device", "cuda:0"},
              tmp / "b.log");
    const int status = p.wait(30s);
    if (!fhe_worker::cuda_available()) {
      EXPECT_EQ(status, 2);
      EXPECT_NE(slurp(tmp / "b.log").find("not available"), std::string::npos)
          << slurp(tmp / "b.log");
    }
  }
  {
    // Insecure off loopback is refused.
    Process p({FHE_WORKER_PATH, "--model", dir.string(), "--bind", "tcp://*:0", "--insecure"},
              tmp / "c.log");
    EXPECT_EQ(p.wait(30s), 2);
  }
  {
    Process p({FHE_WORKER_PATH, "--model", (tmp / "missing"), "--bind", "tcp://127.0.0.1:0",
               "--insecure"},
              tmp / "d.log");
    EXPECT_EQ(p.wait(30s), 2);
  }
  {
    // CURVE without keys.
    Process p({FHE_WORKER_PATH, "--model", dir.string(), "--bind", "tcp://127.0.0.1:0"},
              tmp / "e.log");
    EXPECT_EQ(p.wait(30s), 2);
    EXPECT_NE(slurp(tmp / "e.log").find("--secret-key"), std::string::npos);
  }
}

}  // namespace
