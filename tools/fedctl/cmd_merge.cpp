// fedctl merge: fold a LoRA adapter into its base model and write the result as a plain
// Hugging Face Llama directory (library: model, merge.h).
//
//   fedctl merge --model base/ --adapter runs/x/adapter --out merged/
//
// merged/ holds config.json (the model's, torch_dtype set), the safetensors weights with
// W + (lora_alpha / r) * B * A for every adapted projection, and the model's tokenizer files;
// it loads with AutoModelForCausalLM.from_pretrained("merged/") and with every fedctl command.
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "cli.h"
#include "model/dtype.h"
#include "model/merge.h"

namespace fedctl {
namespace {

model::DType merge_dtype(const std::string& s) {
  if (s == "f32") return model::DType::kF32;
  if (s == "f16") return model::DType::kF16;
  if (s == "bf16") return model::DType::kBF16;
  throw std::invalid_argument("--dtype must be f32, f16 or bf16, got '" + s + "'");
}

}  // namespace

int cmd_merge(int argc, char** argv) {
  std::string model_dir, adapter, out, dtype;
  po::options_description options("merge options");
  options.add_options()("model", po::value(&model_dir)->required(),
                        "base model directory (config.json + safetensors checkpoint)")(
      "adapter", po::value(&adapter)->required(),
      "LoRA adapter directory in PEFT layout (adapter_config.json + adapter_model.safetensors) "
      "trained on that model")(
      "out", po::value(&out)->required(),
      "the merged model's directory: must not exist, or be empty; written whole or not at all")(
      "dtype", po::value(&dtype)->default_value("f32"),
      "dtype of the written weights: f32 (exact), f16 or bf16 (rounded to nearest)");
  return run_command(
      "merge",
      "--model DIR --adapter DIR --out DIR [--dtype f32|f16|bf16]\n\n"
      "Writes the base model with the adapter folded in (W + lora_alpha / r * B A for every "
      "adapted projection, in double, rounded once) as a Hugging Face Llama directory: "
      "config.json, the safetensors weights and the model's tokenizer files. Prints "
      "{\"out\", \"merged_projections\", \"dtype\", \"copied\"}. An adapter that does not fit "
      "the model, a missing directory or an --out that is not empty is refused (exit 2) "
      "before anything is written.",
      options, argc, argv, [&](const po::variables_map&) {
        const model::DType kind = merge_dtype(dtype);
        const model::MergeReport report =
            model::merge_lora_directory(model_dir, adapter, out, {.dtype = kind});
        const nlohmann::json summary = {{"out", out},
                                        {"merged_projections", report.merged_projections},
                                        {"dtype", std::string(model::dtype_name(kind))},
                                        {"copied", report.copied}};
        std::cout << summary.dump() << "\n";
        return 0;
      });
}

}  // namespace fedctl
