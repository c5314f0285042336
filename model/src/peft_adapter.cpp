#include "model/peft_adapter.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "atomic_write.h"
#include "model/dtype.h"
#include "model/error.h"
#include "model/llama_layout.h"
#include "model/safetensors_reader.h"
#include "model/safetensors_writer.h"

namespace model {
namespace {

using nlohmann::json;

constexpr std::string_view kPrefix = "base_model.model.model.layers.";

// The module group of a projection ("self_attn" or "mlp"), or empty for an unknown name.
std::string_view projection_group(std::string_view projection) {
  if (projection == "q_proj" || projection == "k_proj" || projection == "v_proj" ||
      projection == "o_proj") {
    return "self_attn";
  }
  if (projection == "gate_proj" || projection == "up_proj" || projection == "down_proj") {
    return "mlp";
  }
  return {};
}

void validate_targets(const std::vector<std::string>& targets, const std::string& where) {
  if (targets.empty()) throw ModelError(where + "target_modules is empty");
  std::set<std::string> seen;
  for (const auto& t : targets) {
    if (!is_lora_projection(t)) {
      throw ModelError(where + "unknown target module '" + t +
                  "' (expected q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj or down_proj)");
    }
    if (!seen.insert(t).second) throw ModelError(where + "target module '" + t + "' listed twice");
  }
}

// A parsed tensor name: layer, projection and 'A' or 'B'; nullopt-like `ok` false otherwise.
struct ParsedName {
  bool ok = false;
  int64_t layer = 0;
  std::string projection;
  char matrix = 0;
};

ParsedName parse_tensor_name(std::string_view name) {
  ParsedName p;
  if (!name.starts_with(kPrefix)) return p;
  name.remove_prefix(kPrefix.size());
  const size_t dot = name.find('.');
  if (dot == std::string_view::npos || dot == 0 || (dot > 1 && name[0] == '0')) return p;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + dot, p.layer);
  if (ec != std::errc() || end != name.data() + dot) return p;
  name.remove_prefix(dot + 1);
  for (const char matrix : {'A', 'B'}) {
    const std::string suffix = std::string(".lora_") + matrix + ".weight";
    if (!name.ends_with(suffix)) continue;
    const std::string_view module = name.substr(0, name.size() - suffix.size());
    const size_t sep = module.find('.');
    if (sep == std::string_view::npos) return p;
    const std::string_view projection = module.substr(sep + 1);
    if (projection_group(projection).empty() ||
        projection_group(projection) != module.substr(0, sep)) {
      return p;
    }
    p.projection = std::string(projection);
    p.matrix = matrix;
    p.ok = true;
  }
  return p;
}

std::vector<float> read_tensor(const SafetensorsReader& file, const TensorInfo& info,
                               const std::string& where) {
  if (!is_float_dtype(info.dtype)) {
    throw ModelError(where + "tensor '" + info.name + "' has dtype " +
                std::string(dtype_name(info.dtype)) + ", not F32, F16 or BF16");
  }
  std::vector<float> values(static_cast<size_t>(info.numel()));
  file.read_f32(info, values);
  return values;
}

PeftAdapter parse_config(const std::filesystem::path& path) {
  const std::string where = path.string() + ": ";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelError(where + "cannot open");
  std::stringstream text;
  text << in.rdbuf();
  json j;
  try {
    j = json::parse(text.str());
  } catch (const json::parse_error&) {
    throw ModelError(where + "not valid JSON");
  }
  if (!j.is_object()) throw ModelError(where + "not a JSON object");
  const auto field = [&](const char* key) -> const json* {
    const auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  };
  const json* peft_type = field("peft_type");
  if (!peft_type || *peft_type != "LORA") throw ModelError(where + "peft_type is not \"LORA\"");

  PeftAdapter a;
  const json* r = field("r");
  if (!r || !r->is_number_integer() || r->get<int64_t>() < 1) {
    throw ModelError(where + "\"r\" must be a positive integer");
  }
  a.r = r->get<int64_t>();
  const json* alpha = field("lora_alpha");
  if (!alpha || !alpha->is_number() || !std::isfinite(alpha->get<double>())) {
    throw ModelError(where + "\"lora_alpha\" must be a number");
  }
  a.lora_alpha = alpha->get<double>();
  const json* targets = field("target_modules");
  if (targets && targets->is_string()) {
    throw ModelError(where + "target_modules as a regular expression is not supported");
  }
  if (!targets || !targets->is_array()) throw ModelError(where + "\"target_modules\" must be a list");
  for (const auto& t : *targets) {
    if (!t.is_string()) throw ModelError(where + "\"target_modules\" must hold strings");
    a.target_modules.push_back(t.get<std::string>());
  }
  validate_targets(a.target_modules, where);
  if (const json* base = field("base_model_name_or_path"); base && base->is_string()) {
    a.base_model_name_or_path = base->get<std::string>();
  }

  // Options that change the adapter's meaning; refuse rather than ignore them.
  for (const char* flag : {"use_dora", "use_rslora", "fan_in_fan_out"}) {
    if (const json* v = field(flag); v && *v != false) {
      throw ModelError(where + "\"" + flag + "\" is not supported");
    }
  }
  for (const char* pattern : {"rank_pattern", "alpha_pattern"}) {
    if (const json* v = field(pattern); v && !v->empty()) {
      throw ModelError(where + "\"" + pattern + "\" is not supported");
    }
  }
  if (field("layers_to_transform")) throw ModelError(where + "\"layers_to_transform\" is not supported");
  if (const json* bias = field("bias"); bias && *bias != "none") {
    throw ModelError(where + "bias other than \"none\" is not supported");
  }
  return a;
}

}  // namespace

int64_t PeftAdapter::layer_count() const {
  int64_t n = 0;
  for (const auto& [site, factors] : weights) n = std::max(n, site.layer + 1);
  return n;
}

bool is_lora_projection(std::string_view projection) {
  return !projection_group(projection).empty();
}

std::string peft_lora_tensor_name(int64_t layer, std::string_view projection, char matrix) {
  const std::string_view group = projection_group(projection);
  if (group.empty()) throw ModelError("unknown LoRA projection '" + std::string(projection) + "'");
  if (matrix != 'A' && matrix != 'B') throw ModelError("LoRA matrix must be 'A' or 'B'");
  return std::string(kPrefix) + std::to_string(layer) + "." + std::string(group) + "." +
         std::string(projection) + ".lora_" + matrix + ".weight";
}

PeftAdapter make_peft_adapter(const LlamaConfig& config, int64_t r, double lora_alpha,
                              const std::vector<std::string>& target_modules) {
  if (r < 1) throw ModelError("LoRA rank r must be at least 1, got " + std::to_string(r));
  validate_targets(target_modules, "adapter: ");
  PeftAdapter a;
  a.r = r;
  a.lora_alpha = lora_alpha;
  a.target_modules = target_modules;
  const auto shapes = llama_projection_shapes(config);
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    for (const auto& p : shapes) {
      if (std::find(target_modules.begin(), target_modules.end(), p.name) == target_modules.end()) {
        continue;
      }
      LoraFactors& f = a.weights[{layer, p.name}];
      f.d_in = p.d_in;
      f.d_out = p.d_out;
      f.a.assign(static_cast<size_t>(r * p.d_in), 0.0f);
      f.b.assign(static_cast<size_t>(p.d_out * r), 0.0f);
    }
  }
  validate_peft_adapter(a);
  return a;
}

void validate_peft_adapter(const PeftAdapter& a, std::string_view source) {
  const std::string where = std::string(source) + ": ";
  if (a.r < 1) throw ModelError(where + "LoRA rank r must be at least 1, got " + std::to_string(a.r));
  if (!std::isfinite(a.lora_alpha)) throw ModelError(where + "lora_alpha is not finite");
  validate_targets(a.target_modules, where);
  const int64_t layers = a.layer_count();
  if (layers == 0) throw ModelError(where + "holds no LoRA weights");
  std::map<std::string, std::pair<int64_t, int64_t>> dims;  // projection -> (d_in, d_out)
  for (const auto& [site, f] : a.weights) {
    const std::string name = "layer " + std::to_string(site.layer) + " " + site.projection;
    if (site.layer < 0 || site.layer >= kMaxLlamaLayers) {
      throw ModelError(where + name + ": layer index out of range");
    }
    if (std::find(a.target_modules.begin(), a.target_modules.end(), site.projection) ==
        a.target_modules.end()) {
      throw ModelError(where + name + ": projection not in target_modules");
    }
    if (f.d_in < 1 || f.d_out < 1) throw ModelError(where + name + ": empty factor shape");
    if (static_cast<int64_t>(f.a.size()) != a.r * f.d_in ||
        static_cast<int64_t>(f.b.size()) != f.d_out * a.r) {
      throw ModelError(where + name + ": factor sizes " + std::to_string(f.a.size()) + " and " +
                  std::to_string(f.b.size()) + " do not match r " + std::to_string(a.r) +
                  ", d_in " + std::to_string(f.d_in) + ", d_out " + std::to_string(f.d_out));
    }
    const auto [it, fresh] = dims.emplace(site.projection, std::pair{f.d_in, f.d_out});
    if (!fresh && it->second != std::pair{f.d_in, f.d_out}) {
      throw ModelError(where + name + ": shape differs from the same projection in another layer");
    }
  }
  for (int64_t layer = 0; layer < layers; ++layer) {
    for (const auto& t : a.target_modules) {
      if (!a.weights.contains({layer, t})) {
        throw ModelError(where + "layer " + std::to_string(layer) + " lacks " + t);
      }
    }
  }
}

void check_peft_adapter(const PeftAdapter& a, const LlamaConfig& config, std::string_view source) {
  validate_peft_adapter(a, source);
  const std::string where = std::string(source) + ": ";
  if (a.layer_count() != config.num_hidden_layers) {
    throw ModelError(where + "covers " + std::to_string(a.layer_count()) + " layers, the model has " +
                std::to_string(config.num_hidden_layers));
  }
  for (const auto& p : llama_projection_shapes(config)) {
    const auto it = a.weights.find({0, p.name});
    if (it == a.weights.end()) continue;
    if (it->second.d_in != p.d_in || it->second.d_out != p.d_out) {
      throw ModelError(where + p.name + " is " + std::to_string(it->second.d_out) + " x " +
                  std::to_string(it->second.d_in) + ", the model's is " + std::to_string(p.d_out) +
                  " x " + std::to_string(p.d_in));
    }
  }
}

void write_peft_adapter(const std::filesystem::path& dir, const PeftAdapter& a) {
  validate_peft_adapter(a, dir.string());
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw ModelError(dir.string() + ": cannot create directory: " + ec.message());

  std::vector<TensorToWrite> tensors;
  for (const auto& [site, f] : a.weights) {
    tensors.push_back(
        {peft_lora_tensor_name(site.layer, site.projection, 'A'), DType::kF32, {a.r, f.d_in}, f.a});
    tensors.push_back({peft_lora_tensor_name(site.layer, site.projection, 'B'),
                       DType::kF32,
                       {f.d_out, a.r},
                       f.b});
  }
  write_safetensors(dir / kPeftWeightsFile, tensors, {{"format", "pt"}});

  json alpha = a.lora_alpha;
  if (a.lora_alpha == std::trunc(a.lora_alpha) && std::abs(a.lora_alpha) < 1e15) {
    alpha = static_cast<int64_t>(a.lora_alpha);  // PEFT writes integer alphas as integers
  }
  const json config = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"base_model_name_or_path", a.base_model_name_or_path},
      {"r", a.r},
      {"lora_alpha", alpha},
      {"target_modules", a.target_modules},
      {"lora_dropout", 0.0},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"inference_mode", true},
  };
  detail::write_text_file(dir / kPeftConfigFile, config.dump(2) + "\n");
}

PeftAdapter read_peft_adapter(const std::filesystem::path& dir) {
  const std::filesystem::path config_path = dir / kPeftConfigFile;
  const std::filesystem::path weights_path = dir / kPeftWeightsFile;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(config_path, ec)) {
    throw ModelError(config_path.string() + ": cannot open (no such file)");
  }
  if (!std::filesystem::is_regular_file(weights_path, ec)) {
    throw ModelError(weights_path.string() + ": cannot open (no such file)");
  }
  PeftAdapter a = parse_config(config_path);

  const SafetensorsReader file(weights_path);
  const std::string where = weights_path.string() + ": ";
  for (const auto& info : file.tensors()) {
    const ParsedName p = parse_tensor_name(info.name);
    if (!p.ok) throw ModelError(where + "unknown tensor '" + info.name + "'");
    if (std::find(a.target_modules.begin(), a.target_modules.end(), p.projection) ==
        a.target_modules.end()) {
      throw ModelError(where + "tensor '" + info.name + "' adapts " + p.projection +
                  ", which is not in target_modules");
    }
    if (info.shape.size() != 2) {
      throw ModelError(where + "tensor '" + info.name + "' has shape " + shape_string(info.shape) +
                  ", expected a matrix");
    }
    const int64_t rank = p.matrix == 'A' ? info.shape[0] : info.shape[1];
    if (rank != a.r) {
      throw ModelError(where + "tensor '" + info.name + "' has rank " + std::to_string(rank) +
                  " (shape " + shape_string(info.shape) +
                  "), adapter_config.json says r = " + std::to_string(a.r));
    }
    LoraFactors& f = a.weights[{p.layer, p.projection}];
    if (p.matrix == 'A') {
      f.d_in = info.shape[1];
      f.a = read_tensor(file, info, where);
    } else {
      f.d_out = info.shape[0];
      f.b = read_tensor(file, info, where);
    }
  }
  for (const auto& [site, f] : a.weights) {
    if (f.d_in == 0 || f.d_out == 0) {
      const char missing = f.d_in == 0 ? 'A' : 'B';
      throw ModelError(where + "lacks tensor '" +
                  peft_lora_tensor_name(site.layer, site.projection, missing) + "'");
    }
  }
  validate_peft_adapter(a, weights_path.string());
  return a;
}

PeftAdapter read_peft_adapter(const std::filesystem::path& dir, const LlamaConfig& config) {
  PeftAdapter a = read_peft_adapter(dir);
  check_peft_adapter(a, config, dir.string());
  return a;
}

}  // namespace model
