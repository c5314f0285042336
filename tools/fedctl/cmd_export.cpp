// fedctl export-int8: the exact int8 matrix (and scales) an fhe_worker multiplies by.
//
//   fedctl export-int8 --model DIR --layer 3 --proj q --out W.npy [--scales-out S.npy]
//   fedctl export-int8 --model DIR --proj lm_head --out W.npy      (the LM head: layer 0 or none)
//
// W.npy is int8 [d_out, d_in]: the projection quantized per output channel with
// model::quantize_weight_rows, as the worker does at start (scale = max|row| / 127, round half
// away from zero, clamp to [-127, 127]). S.npy is float32 [d_out, 1]: the scales. Anyone can
// then check a worker's result against W.npy times the plaintext. The LM head is lm_head.weight,
// or embed_tokens when the model ties them ([vocab, hidden]).
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "cli.h"
#include "common/npy.h"
#include "model/llama_weights.h"
#include "model/projection.h"
#include "model/quantize.h"

namespace fedctl {

int cmd_export_int8(int argc, char** argv) {
  std::string model_dir, proj, out, scales_out;
  int64_t layer = 0;
  po::options_description o("export-int8 options");
  o.add_options()("model", po::value(&model_dir)->required(), "model directory")(
      "layer", po::value(&layer), "decoder layer (0-based; required except for lm_head)")(
      "proj", po::value(&proj)->required(), "projection: q, k, v, o, gate, up, down or lm_head")(
      "out", po::value(&out)->required(), "int8 .npy file to write [d_out, d_in]")(
      "scales-out", po::value(&scales_out), "float32 .npy file for the scales [d_out, 1]");
  return run_command(
      "export-int8", "--model DIR [--layer L] --proj q|k|v|o|gate|up|down|lm_head --out W.npy", o,
      argc, argv, [&](const po::variables_map& vm) {
        const bool lm_head = proj == "lm_head";
        const model::ProjectionKind kind =
            lm_head ? model::ProjectionKind::kLmHead : model::parse_projection_module(proj);
        if (lm_head && layer != 0) {
          throw std::invalid_argument("--layer " + std::to_string(layer) +
                                      ": the LM head is one matrix (layer 0)");
        }
        if (!lm_head && vm.count("layer") == 0) {
          throw std::invalid_argument("--layer is required for --proj " + proj);
        }
        const model::LlamaWeights weights = model::load_llama_weights(model_dir);
        if (!lm_head && (layer < 0 || layer >= weights.config.num_hidden_layers)) {
          throw std::invalid_argument("--layer " + std::to_string(layer) + " out of range (" +
                                      std::to_string(weights.config.num_hidden_layers) +
                                      " layers)");
        }
        const model::QuantizedWeight q =
            model::quantize_weight_rows(model::projection_weight(weights, {kind, layer}));
        const auto rows = static_cast<size_t>(q.rows), cols = static_cast<size_t>(q.cols);
        fedtools::write_npy(out, fedtools::NpyType::kInt8, rows, cols, q.values.data());
        if (!scales_out.empty()) {
          fedtools::write_npy(scales_out, fedtools::NpyType::kFloat32, rows, 1, q.scales.data());
        }
        std::printf("{\"layer\": %lld, \"proj\": \"%s\", \"rows\": %zu, \"cols\": %zu}\n",
                    static_cast<long long>(layer), model::projection_module_name(kind).c_str(),
                    rows, cols);
        return 0;
      });
}

}  // namespace fedctl
