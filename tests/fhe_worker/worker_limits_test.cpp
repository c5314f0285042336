// Request limits (docs/worker.md, "Request limits"): a request whose reply would need gigabytes
// is refused with a typed error naming the limit, before the worker allocates anything for it,
// and the worker goes on serving exact products. Once with a real fhe_worker process and its
// default limits (peak RSS read from /proc), once in process for the queued-bytes accounting.
#include <cstdio>

#include "fhe_worker/matmul.h"
#include "fhe_worker/options.h"
#include "model/quantize.h"
#include "worker_process_util.h"

namespace {

using namespace worker_test;
using protocol::ErrorCode;
using protocol::ProjectionKind;

// The error of a MatmulReply (kInternal with "not an error" when it carries products).
protocol::Error reply_error(const protocol::Message& m) {
  if (const auto* r = std::get_if<protocol::MatmulReply>(&m.body)) {
    if (const auto* e = std::get_if<protocol::Error>(&r->outcome)) return *e;
  }
  if (const auto* e = std::get_if<protocol::ErrorReply>(&m.body)) return e->error;
  return protocol::make_error(ErrorCode::kInternal, "not an error");
}

protocol::Message request(const fhe::Context& ctx, uint64_t id, const std::string& model_id,
                          ProjectionKind kind, const fhe::CiphertextMatrix& ct) {
  auto m = fhe_worker::make_matmul_request(ctx, {id, model_id, 0, {kind}, false, false}, ct);
  EXPECT_TRUE(m.ok()) << m.error().to_string();
  return std::move(m).value();
}

// A 40 000-token vocabulary over a 64-wide model: the LM head W·X of one block of tokens has
// 40 000 x 2048 x 2 = 163 840 000 product coefficients (1.3 GB as 64-bit words, about 2.3 GB with
// the packed reply frames) for a request of 786 KB.
TEST(WorkerLimits, OverLargeLmHeadIsRefusedBeforeAllocationAndServingGoesOn) {
  TempDir tmp;
  model::LlamaConfig config = tiny_config();
  config.vocab_size = 40000;
  config.num_hidden_layers = 1;
  const auto dir = tmp.path() / "big-vocab";
  model::write_random_llama(dir, config, model::RandomModelOptions{11, model::DType::kF32});
  Process worker({FHE_WORKER_PATH, "--model", dir.string(), "--bind", "tcp://127.0.0.1:0",
                  "--insecure", "--threads", "1", "--port-file", tmp / "port"},
                 tmp / "worker.log");
  const std::string endpoint = wait_for_port(tmp / "port");
  ASSERT_FALSE(endpoint.empty()) << slurp(tmp / "worker.log");
  const long start_kib = proc_status_kib(worker.pid(), "VmRSS");
  ASSERT_GT(start_kib, 0);

  zmq::context_t ctx;
  protocol::ClientConfig cc;
  cc.endpoint = endpoint;
  cc.insecure = true;
  auto client = protocol::Client::connect(ctx, cc).value();
  auto fhe_ctx = fhe::Context::create();
  const auto key = fhe::SecretKey::generate(fhe_ctx);
  const size_t tokens = 2048;
  const auto x = test_matrix(64, tokens, 3);
  const auto ct = fhe::Encryptor(key).encrypt(x.data(), 64, tokens, fhe::worst_case_bounds(64));

  const auto refused =
      round_trip(client, request(*fhe_ctx, 1, "big-vocab", ProjectionKind::kLmHead, ct), 60s);
  const protocol::Error e = reply_error(refused);
  EXPECT_EQ(e.code, ErrorCode::kShapeMismatch) << e.to_string();
  EXPECT_NE(e.message.find("--max-output-values"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("163840000"), std::string::npos) << e.message;
  std::printf("refusal: %s\n", e.message.c_str());

  // The next request is served, exactly.
  const auto weights = model::load_llama_weights(dir);
  const auto q = model::quantize_weight_rows(weights.layers[0].q_proj);
  const auto reply =
      round_trip(client, request(*fhe_ctx, 2, "big-vocab", ProjectionKind::kQ, ct), 60s);
  auto y = fhe_worker::read_matmul_reply(*fhe_ctx, reply);
  ASSERT_TRUE(y.ok()) << y.error().to_string() << "\n" << slurp(tmp / "worker.log");
  ASSERT_EQ(y.value().size(), 1u);
  EXPECT_EQ(fhe::Decryptor(key).decrypt(y.value()[0]), plain_product(q, x, tokens, false));

  // Peak resident memory of the worker over its whole life, against its size once listening
  // (the model loaded) plus 256 MiB: the refused request would have needed over 1.3 GB for its
  // products alone (without the limits, the peak was 2.4 GB), the exact one about 7 MB.
  const long peak_kib = proc_status_kib(worker.pid(), "VmHWM");
  const long kBoundKib = start_kib + 256 * 1024;
  std::printf("worker RSS at start %ld KiB, peak %ld KiB (bound %ld KiB)\n", start_kib, peak_kib,
              kBoundKib);
  ASSERT_GT(peak_kib, 0);
  EXPECT_LT(peak_kib, kBoundKib) << slurp(tmp / "worker.log");
  EXPECT_NE(slurp(tmp / "worker.log").find("request too large"), std::string::npos);
}

// The bytes of queued and in-flight requests are bounded as a whole: a request that alone needs
// more than --max-queued-bytes is too large; one that would push the sum past it is
// `overloaded`; the count goes back to zero once every reply is sent.
TEST(WorkerLimits, QueuedBytesAreBounded) {
  TempDir tmp;
  Fixture f;
  const auto dir = write_tiny_model(tmp.path());
  const auto& p = f.fhe_ctx->params();
  // One block of a q request (64 rows in, 64 out): its frame, 16 bytes per input value and
  // 8 + 6 bytes per output value.
  const uint64_t one_block = 64 * p.n * p.log2_q / 8 + 16 * 64 * p.n + 14 * 2 * 64 * p.n;
  fhe_worker::WorkerConfig config;
  config.max_queued_bytes = 3 * one_block + one_block / 2;
  config.max_input_values = 4 * 64 * p.n;
  f.start(dir, config);
  auto client = f.client();
  const auto q = model::quantize_weight_rows(model::load_llama_weights(dir).layers[0].q_proj);

  // Over the input limit: 5 blocks.
  const auto x5 = test_matrix(64, 4 * p.n + 1, 1);
  auto e = reply_error(round_trip(
      client, request(*f.fhe_ctx, 1, "tiny", ProjectionKind::kQ, f.encrypt(x5, 64, 4 * p.n + 1))));
  EXPECT_EQ(e.code, ErrorCode::kShapeMismatch);
  EXPECT_NE(e.message.find("--max-input-values"), std::string::npos) << e.message;
  // Four blocks need more than the whole queue may hold.
  const auto x4 = test_matrix(64, 3 * p.n + 1, 2);
  e = reply_error(round_trip(
      client, request(*f.fhe_ctx, 2, "tiny", ProjectionKind::kQ, f.encrypt(x4, 64, 3 * p.n + 1))));
  EXPECT_EQ(e.code, ErrorCode::kShapeMismatch);
  EXPECT_NE(e.message.find("--max-queued-bytes"), std::string::npos) << e.message;

  // A three-block request, then a burst of one-block ones (all packed before the first is
  // sent): the first holds its bytes until its reply is sent, so one-block requests that arrive
  // while it computes are `overloaded`; every answered request is exact.
  constexpr int kBurst = 8;
  const size_t big_tokens = 3 * p.n;
  const auto x3 = test_matrix(64, big_tokens, 3);
  const auto x1 = test_matrix(64, 100, 4);
  const auto ct1 = f.encrypt(x1, 64, 100);
  std::vector<protocol::Message> burst;
  burst.push_back(
      request(*f.fhe_ctx, 10, "tiny", ProjectionKind::kQ, f.encrypt(x3, 64, big_tokens)));
  for (int i = 1; i <= kBurst; ++i) {
    burst.push_back(request(*f.fhe_ctx, 10 + i, "tiny", ProjectionKind::kQ, ct1));
  }
  for (auto& m : burst) ASSERT_TRUE(client.send(std::move(m)).ok());
  int exact = 0, overloaded = 0;
  fhe::Decryptor dec(f.key);
  for (int i = 0; i <= kBurst; ++i) {
    auto r = client.receive(30s);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    const auto id = std::get<protocol::MatmulReply>(r.value().body).request_id;
    auto y = fhe_worker::read_matmul_reply(*f.fhe_ctx, r.value());
    if (y.ok()) {
      EXPECT_EQ(dec.decrypt(y.value()[0]), id == 10 ? plain_product(q, x3, big_tokens, false)
                                                    : plain_product(q, x1, 100, false))
          << id;
      ++exact;
    } else {
      EXPECT_NE(id, 10u) << "the first request fits the empty queue";
      EXPECT_EQ(y.error().code, ErrorCode::kOverloaded) << y.error().to_string();
      EXPECT_NE(y.error().message.find("--max-queued-bytes"), std::string::npos);
      ++overloaded;
    }
  }
  EXPECT_GE(exact, 1);
  EXPECT_GE(overloaded, 1);
  const auto st = f.worker->stats();
  EXPECT_EQ(st.queued_bytes, 0u);
  EXPECT_EQ(st.too_large, 2u);
}

// The limits are flags (and INI keys), listed by --help; zero is refused at start.
TEST(WorkerLimits, FlagsAreDocumentedAndChecked) {
  TempDir tmp;
  const auto dir = write_tiny_model(tmp.path());
  const auto parsed = fhe_worker::parse_command_line(
      7, std::vector<const char*>{"fhe_worker", "--model", "m", "--insecure", "--max-output-values",
                                  "1000", "--max-queued-bytes=5000", nullptr}
             .data());
  EXPECT_EQ(parsed.options.worker.max_output_values, 1000u);
  EXPECT_EQ(parsed.options.worker.max_queued_bytes, 5000u);
  EXPECT_EQ(parsed.options.worker.max_input_values, uint64_t{1} << 26);
  const char* help_argv[] = {"fhe_worker", "--help", nullptr};
  const std::string text = fhe_worker::parse_command_line(2, help_argv).help_text;
  for (const char* flag : {"--max-input-values", "--max-output-values", "--max-queued-bytes"}) {
    EXPECT_NE(text.find(flag), std::string::npos) << flag;
  }
  Process zero({FHE_WORKER_PATH, "--model", dir.string(), "--bind", "tcp://127.0.0.1:0",
                "--insecure", "--max-queued-bytes", "0"},
               tmp / "zero.log");
  EXPECT_EQ(zero.wait(30s), 2);
  EXPECT_NE(slurp(tmp / "zero.log").find("--max-queued-bytes"), std::string::npos)
      << slurp(tmp / "zero.log");
}

}  // namespace
