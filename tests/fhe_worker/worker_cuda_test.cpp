// The worker's `--device cuda` path on a GPU: two in-process workers on tcp loopback serve the
// same tiny model, one with the device parsed from "cuda" and one on the CPU. Every GPU reply
// must decrypt to the plaintext int8 product bit for bit (forward, transposed, several
// projections, switched modulus, several blocks of tokens, batched requests) and equal the CPU
// worker's reply word for word. Skips without a CUDA device; the refusal of `cuda` without one
// is checked everywhere.
#include <algorithm>

#include "fhe/cuda_plane_gemm.h"
#include "fhe_worker/ciphertext_wire.h"
#include "fhe_worker/error.h"
#include "fhe_worker/matmul.h"
#include "model/projection.h"
#include "model/quantize.h"
#include "worker_test_util.h"

namespace {

using namespace worker_test;
using protocol::ProjectionKind;

#define REQUIRE_GPU()                                                              \
  do {                                                                             \
    if (fhe::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device available"; \
  } while (0)

std::shared_ptr<const fhe_worker::WorkerModel> load_model(const std::filesystem::path& dir,
                                                          const std::string& device) {
  fhe_worker::WorkerModelOptions mo;
  mo.device = fhe_worker::parse_device(device);
  mo.threads = 1;
  return fhe_worker::WorkerModel::load(dir, mo);
}

std::unique_ptr<fhe_worker::Worker> start_worker(
    std::shared_ptr<const fhe_worker::WorkerModel> model) {
  fhe_worker::WorkerConfig config;
  config.bind = "tcp://127.0.0.1:0";
  config.insecure = true;
  config.log = fhe_worker::make_console_logger("warn");
  return fhe_worker::Worker::start(std::move(model), std::move(config));
}

class WorkerCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (fhe::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device available";
    dir = write_tiny_model(tmp.path());
    weights = model::load_llama_weights(dir);
    gpu.model = load_model(dir, "cuda");
    gpu.worker = start_worker(gpu.model);
    cpu.start(dir);  // --device cpu
  }

  model::QuantizedWeight local(uint32_t layer, ProjectionKind kind) const {
    return model::quantize_weight_rows(
        model::projection_weight(weights, {fhe_worker::to_model_kind(kind), layer}));
  }

  // The reply of `worker` to the request for `call` on input ct.
  protocol::Message ask(Fixture& worker, const fhe_worker::MatmulCall& call,
                        const fhe::CiphertextMatrix& ct) {
    auto request = fhe_worker::make_matmul_request(*gpu.fhe_ctx, call, ct);
    EXPECT_TRUE(request.ok()) << request.error().to_string();
    auto client = worker.client();
    return round_trip(client, std::move(request).value(), 60s);
  }

  // One request to both workers: the GPU products decrypt exactly and equal the CPU's.
  void check(uint32_t layer, std::vector<ProjectionKind> kinds, bool transpose, bool switch_modulus,
             size_t tokens) {
    const std::string what = "layer " + std::to_string(layer) + (transpose ? " transposed" : "") +
                             (switch_modulus ? " switched" : "") + " T=" + std::to_string(tokens);
    // The GPU worker really uses the CUDA implementation.
    for (const auto kind : kinds) {
      EXPECT_TRUE(gpu.model->gemm(layer, kind, transpose).implementation().starts_with("cuda"))
          << gpu.model->gemm(layer, kind, transpose).implementation();
    }
    const model::QuantizedWeight w0 = local(layer, kinds.front());
    const size_t rows = static_cast<size_t>(transpose ? w0.rows : w0.cols);
    const auto x = test_matrix(rows, tokens, layer * 11 + tokens);
    const fhe::CiphertextMatrix ct = gpu.encrypt(x, rows, tokens);
    const fhe_worker::MatmulCall call{7, "tiny", layer, kinds, transpose, switch_modulus};
    const protocol::Message from_gpu = ask(gpu, call, ct);
    const protocol::Message from_cpu = ask(cpu, call, ct);
    const auto* m = std::get_if<protocol::MatmulReply>(&from_gpu.body);
    ASSERT_NE(m, nullptr) << what << ": " << protocol::body_name(from_gpu.body);
    EXPECT_EQ(m->request_id, 7u);
    auto got = fhe_worker::read_matmul_reply(*gpu.fhe_ctx, from_gpu);
    ASSERT_TRUE(got.ok()) << what << ": " << got.error().to_string();
    auto want = fhe_worker::read_matmul_reply(*gpu.fhe_ctx, from_cpu);
    ASSERT_TRUE(want.ok()) << what << ": " << want.error().to_string();
    ASSERT_EQ(got.value().size(), kinds.size()) << what;
    ASSERT_EQ(want.value().size(), kinds.size()) << what;
    fhe::Decryptor dec(gpu.key);
    for (size_t k = 0; k < kinds.size(); ++k) {
      const auto& y = got.value()[k];
      const auto& z = want.value()[k];
      const std::string which = what + " " + std::string(protocol::projection_name(kinds[k]));
      EXPECT_EQ(y.kind, switch_modulus ? fhe::CtKind::kSwitched : fhe::CtKind::kProduct) << which;
      EXPECT_EQ(dec.decrypt(y), plain_product(local(layer, kinds[k]), x, tokens, transpose))
          << which;
      EXPECT_EQ(y.kind, z.kind) << which;
      EXPECT_EQ(y.rows, z.rows) << which;
      EXPECT_EQ(y.cols, z.cols) << which;
      EXPECT_EQ(y.log2_delta, z.log2_delta) << which;
      EXPECT_EQ(y.log2_modulus, z.log2_modulus) << which;
      EXPECT_TRUE(y.c0 == z.c0) << which << ": c0 words differ from the CPU worker's";
      EXPECT_TRUE(y.c1 == z.c1) << which << ": c1 words differ from the CPU worker's";
    }
    // The replies' blobs byte for byte.
    ASSERT_EQ(from_gpu.blobs.size(), from_cpu.blobs.size()) << what;
    for (size_t b = 0; b < from_gpu.blobs.size(); ++b) {
      const auto gb = from_gpu.blobs[b].bytes(), cb = from_cpu.blobs[b].bytes();
      EXPECT_TRUE(std::equal(gb.begin(), gb.end(), cb.begin(), cb.end())) << what << " blob " << b;
    }
  }

  TempDir tmp;
  std::filesystem::path dir;
  model::LlamaWeights weights;
  Fixture gpu, cpu;
};

TEST_F(WorkerCuda, ForwardProductsMatchThePlaintextAndTheCpuWorker) {
  check(0, {ProjectionKind::kQ}, false, false, 5);
  check(1, {ProjectionKind::kDown}, false, false, 3);
  check(1, {ProjectionKind::kQ, ProjectionKind::kK, ProjectionKind::kV}, false, false, 6);
}

TEST_F(WorkerCuda, TransposedProductsMatchThePlaintextAndTheCpuWorker) {
  check(1, {ProjectionKind::kGate}, true, false, 4);
  check(0, {ProjectionKind::kQ, ProjectionKind::kO}, true, false, 2);
  check(1, {ProjectionKind::kK}, true, false, 9);
}

TEST_F(WorkerCuda, SwitchedAndMultiBlockProductsMatchTheCpuWorker) {
  check(0, {ProjectionKind::kO, ProjectionKind::kQ}, false, true, 7);
  check(1, {ProjectionKind::kUp}, true, true, 3);
  check(0, {ProjectionKind::kV}, false, false, 2 * 2048 + 9);
  check(1, {ProjectionKind::kDown}, true, true, 2048 + 1);
}

// compute_batch over several requests for one projection (the CUDA evaluator multiplies them one
// after another) answers each exactly, like the CPU worker's single GEMM over all blocks.
TEST_F(WorkerCuda, BatchedRequestsMatchTheCpuWorker) {
  const auto w = local(1, ProjectionKind::kUp);
  std::vector<fhe_worker::MatmulJob> jobs;
  std::vector<std::vector<int8_t>> xs;
  const size_t tokens[] = {3, 2048 + 1, 11};
  for (size_t i = 0; i < 3; ++i) {
    xs.push_back(test_matrix(64, tokens[i], 300 + i));
    auto m = fhe_worker::make_matmul_request(
        *gpu.fhe_ctx, {i + 1, "tiny", 1, {ProjectionKind::kUp}, false, i == 2},
        gpu.encrypt(xs[i], 64, tokens[i]));
    ASSERT_TRUE(m.ok());
    auto& msg = m.value();
    jobs.push_back({"peer", std::get<protocol::MatmulRequest>(msg.body), std::move(msg.blobs[0])});
    ASSERT_TRUE(fhe_worker::check_request(*gpu.model, jobs.back().request, jobs.back().input).ok());
  }
  std::vector<const fhe_worker::MatmulJob*> ptrs;
  for (const auto& j : jobs) ptrs.push_back(&j);
  const auto from_gpu = fhe_worker::compute_batch(*gpu.model, ptrs);
  const auto from_cpu = fhe_worker::compute_batch(*cpu.model, ptrs);
  ASSERT_EQ(from_gpu.size(), 3u);
  ASSERT_EQ(from_cpu.size(), 3u);
  fhe::Decryptor dec(gpu.key);
  for (size_t i = 0; i < 3; ++i) {
    auto y = fhe_worker::read_matmul_reply(*gpu.fhe_ctx, from_gpu[i]);
    ASSERT_TRUE(y.ok()) << y.error().to_string();
    auto z = fhe_worker::read_matmul_reply(*gpu.fhe_ctx, from_cpu[i]);
    ASSERT_TRUE(z.ok()) << z.error().to_string();
    EXPECT_EQ(dec.decrypt(y.value()[0]), plain_product(w, xs[i], tokens[i], false)) << i;
    EXPECT_TRUE(y.value()[0].c0 == z.value()[0].c0) << i;
    EXPECT_TRUE(y.value()[0].c1 == z.value()[0].c1) << i;
  }
}

// Without a GPU, a worker asked for `cuda` refuses to load with a clear error (no crash).
TEST(WorkerCudaDevice, CudaIsRefusedCleanlyWithoutAGpu) {
  const fhe_worker::Device d = fhe_worker::parse_device("cuda");
  EXPECT_EQ(d.kind, fhe_worker::Device::Kind::kCuda);
  EXPECT_EQ(d.index, 0);
  if (fhe::cuda_device_count() > 0) {
    EXPECT_TRUE(fhe_worker::cuda_available());
    GTEST_SKIP() << "a CUDA device is available";
  }
  EXPECT_FALSE(fhe_worker::cuda_available());
  TempDir tmp;
  const auto dir = write_tiny_model(tmp.path());
  EXPECT_THROW(load_model(dir, "cuda"), fhe_worker::WorkerError);
}

}  // namespace
