#include "model/lora_peft.h"

#include <algorithm>

#include "model/error.h"

namespace model {

PeftAdapter lora_to_peft(const LoraParams& params, const LlamaConfig& model,
                         const std::string& base_model_name_or_path) {
  params.check_fits(model);
  const LoraConfig& config = params.config();
  PeftAdapter peft;
  peft.r = config.rank;
  peft.lora_alpha = config.alpha;
  peft.base_model_name_or_path = base_model_name_or_path;
  for (const ProjectionKind kind : config.targets) {
    peft.target_modules.push_back(projection_module_name(kind));
  }
  for (const ProjectionId id : params.ids()) {
    const LoraPair& pair = params.at(id);
    if (pair.a.size() == 0) {
      throw ModelError("LoRA: the adapter of " + projection_name(id) + " has no A matrix");
    }
    LoraFactors& f = peft.weights[{id.layer, projection_module_name(id.kind)}];
    f.d_in = pair.a.cols();
    f.d_out = pair.b.rows();
    f.a.assign(pair.a.data(), pair.a.data() + pair.a.size());
    f.b.assign(pair.b.data(), pair.b.data() + pair.b.size());
  }
  validate_peft_adapter(peft);
  return peft;
}

LoraParams peft_to_lora(const PeftAdapter& adapter, const LlamaConfig& model) {
  check_peft_adapter(adapter, model);
  LoraConfig config;
  config.rank = adapter.r;
  config.alpha = adapter.lora_alpha;
  config.targets.clear();
  for (const std::string& module : adapter.target_modules) {
    config.targets.push_back(parse_projection_module(module));
  }
  LoraParams params(model, config);
  for (const ProjectionId id : params.ids()) {
    const LoraFactors& f = adapter.weights.at({id.layer, projection_module_name(id.kind)});
    LoraPair& pair = params.at(id);
    std::copy(f.a.begin(), f.a.end(), pair.a.data());
    std::copy(f.b.begin(), f.b.end(), pair.b.data());
  }
  return params;
}

LoraParams read_lora_adapter(const std::string& dir, const LlamaConfig& model) {
  return peft_to_lora(read_peft_adapter(dir, model), model);
}

void write_lora_adapter(const std::string& dir, const LoraParams& params, const LlamaConfig& model,
                        const std::string& base_model_name_or_path) {
  write_peft_adapter(dir, lora_to_peft(params, model, base_model_name_or_path));
}

}  // namespace model
