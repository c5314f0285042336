// `fedctl export-int8` writes exactly model::quantize_weight_rows, and the LM head as the
// fhe_worker serves it.
#include <cstring>
#include <string>
#include <vector>

#include "common/npy.h"
#include "model/quantize.h"
#include "worker_test_util.h"

namespace {

using namespace worker_test;

TEST(ExportInt8, EqualsQuantizeWeightRows) {
  TempDir tmp;
  const auto dir = write_tiny_model(tmp.path());
  const auto weights = model::load_llama_weights(dir);
  const auto want = model::quantize_weight_rows(weights.layers[1].down_proj);
  const std::string cmd = std::string(FEDCTL_PATH) + " export-int8 --model " + dir.string() +
                          " --layer 1 --proj down --out " + (tmp / "w.npy") + " --scales-out " +
                          (tmp / "s.npy") + " >/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  size_t rows = 0, cols = 0;
  const auto w = fedtools::read_npy_int8(tmp / "w.npy", &rows, &cols);
  EXPECT_EQ(rows, static_cast<size_t>(want.rows));
  EXPECT_EQ(cols, static_cast<size_t>(want.cols));
  EXPECT_EQ(w, want.values);
  const auto s = fedtools::read_npy(tmp / "s.npy");
  ASSERT_EQ(s.type, fedtools::NpyType::kFloat32);
  ASSERT_EQ(s.rows, static_cast<size_t>(want.rows));
  std::vector<float> scales(s.rows);
  std::memcpy(scales.data(), s.data.data(), s.data.size());
  EXPECT_EQ(scales, want.scales);
  // Bad input: a layer out of range, an unknown projection.
  EXPECT_NE(std::system((std::string(FEDCTL_PATH) + " export-int8 --model " + dir.string() +
                         " --layer 2 --proj q --out " + (tmp / "x.npy") + " 2>/dev/null")
                            .c_str()),
            0);
  EXPECT_NE(std::system((std::string(FEDCTL_PATH) + " export-int8 --model " + dir.string() +
                         " --layer 0 --proj lm_hat --out " + (tmp / "x.npy") + " 2>/dev/null")
                            .c_str()),
            0);
  // A layer projection needs --layer; the LM head is layer 0 only.
  EXPECT_NE(std::system((std::string(FEDCTL_PATH) + " export-int8 --model " + dir.string() +
                         " --proj q --out " + (tmp / "x.npy") + " 2>/dev/null")
                            .c_str()),
            0);
  EXPECT_NE(std::system((std::string(FEDCTL_PATH) + " export-int8 --model " + dir.string() +
                         " --layer 1 --proj lm_head --out " + (tmp / "x.npy") + " 2>/dev/null")
                            .c_str()),
            0);
}

// The LM head exports as the worker serves it: the [vocab, hidden] matrix, quantized the same way.
TEST(ExportInt8, LmHeadEqualsTheServedWeight) {
  TempDir tmp;
  const auto dir = write_tiny_model(tmp.path());
  const auto weights = model::load_llama_weights(dir);
  fhe_worker::WorkerModelOptions mo;
  mo.model_id = "tiny";
  mo.device = fhe_worker::parse_device("cpu");
  mo.threads = 1;
  const fhe_worker::WorkerModel served(weights, mo);
  const auto& want = served.weight(0, protocol::ProjectionKind::kLmHead);
  for (const std::string layer : {"", " --layer 0"}) {
    const std::string cmd = std::string(FEDCTL_PATH) + " export-int8 --model " + dir.string() +
                            layer + " --proj lm_head --out " + (tmp / "h.npy") + " --scales-out " +
                            (tmp / "hs.npy") + " >/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    size_t rows = 0, cols = 0;
    EXPECT_EQ(fedtools::read_npy_int8(tmp / "h.npy", &rows, &cols), want.values);
    EXPECT_EQ(rows, 50u);
    EXPECT_EQ(cols, 64u);
    const auto s = fedtools::read_npy(tmp / "hs.npy");
    ASSERT_EQ(s.rows, 50u);
    std::vector<float> scales(s.rows);
    std::memcpy(scales.data(), s.data.data(), s.data.size());
    EXPECT_EQ(scales, want.scales);
  }
}

}  // namespace
