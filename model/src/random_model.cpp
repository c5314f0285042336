#include "model/random_model.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "atomic_write.h"
#include "model/checkpoint_writer.h"
#include "model/error.h"
#include "model/llama_layout.h"
#include "model/tensor_store.h"
#include "model/weight_gradients.h"

namespace model {
namespace {

constexpr float kWeightStd = 0.02f;
constexpr float kNormNoiseStd = 0.05f;

// N(0, 1) by Box-Muller over the raw generator output, so the values depend only on the seed
// and not on the standard library's distribution implementation.
class Gaussian {
 public:
  explicit Gaussian(uint64_t seed) : engine_(seed) {}

  float next() {
    if (have_spare_) {
      have_spare_ = false;
      return spare_;
    }
    const double u1 = (static_cast<double>(engine_() >> 11) + 1.0) * 0x1p-53;  // (0, 1]
    const double u2 = static_cast<double>(engine_() >> 11) * 0x1p-53;          // [0, 1)
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = static_cast<float>(r * std::sin(2.0 * std::numbers::pi * u2));
    have_spare_ = true;
    return static_cast<float>(r * std::cos(2.0 * std::numbers::pi * u2));
  }

 private:
  std::mt19937_64 engine_;
  float spare_ = 0;
  bool have_spare_ = false;
};

// The tensors in transformers' state_dict order (module registration order of
// LlamaForCausalLM: embed_tokens; per layer q, k, v, o, gate, up, down, input_layernorm,
// post_attention_layernorm; norm; lm_head), the order in which transformers fills shards.
std::vector<size_t> state_dict_order(const std::vector<ExpectedTensor>& layout) {
  static const char* const kLayerOrder[] = {
      "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
      "self_attn.o_proj.weight", "mlp.gate_proj.weight",    "mlp.up_proj.weight",
      "mlp.down_proj.weight",    "input_layernorm.weight",  "post_attention_layernorm.weight"};
  const auto key = [](const std::string& name) -> std::pair<int64_t, int> {
    if (name == "model.embed_tokens.weight") return {-1, 0};
    if (name == "model.norm.weight") return {INT64_MAX, 0};
    if (name == "lm_head.weight") return {INT64_MAX, 1};
    const std::string prefix = "model.layers.";
    const size_t dot = name.find('.', prefix.size());
    const int64_t layer = std::stoll(name.substr(prefix.size(), dot - prefix.size()));
    const std::string suffix = name.substr(dot + 1);
    for (int k = 0; k < 9; ++k) {
      if (suffix == kLayerOrder[k]) return {layer, k};
    }
    return {layer, 9};
  };
  std::vector<size_t> order(layout.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return key(layout[a].name) < key(layout[b].name); });
  return order;
}

bool is_norm(const ExpectedTensor& t) {
  return t.shape.size() == 1;
}

}  // namespace

namespace {

// The checkpoint of `config` in `dir`, each tensor's values from `fill`.
void write_llama_checkpoint(const std::filesystem::path& dir, const LlamaConfig& config_in,
                            const RandomModelOptions& options,
                            const std::function<void(const std::vector<ExpectedTensor>& layout,
                                                     size_t tensor, std::span<float>)>& fill_in) {
  if (!is_float_dtype(options.dtype)) {
    throw ModelError("random model: dtype " + std::string(dtype_name(options.dtype)) +
                     " is not F32, F16 or BF16");
  }
  LlamaConfig config = config_in;
  config.torch_dtype = std::string(torch_dtype_name(options.dtype));
  validate_llama_config(config, "random model config");

  const auto layout = llama_tensor_layout(config);
  std::vector<TensorSpec> specs;
  for (const auto& t : layout) specs.push_back({t.name, options.dtype, t.shape});
  const bool sharded = plan_shards(specs, options.max_shard_bytes).size() > 1;  // any order
  const std::vector<size_t> shard_order = state_dict_order(layout);

  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw ModelError(dir.string() + ": cannot create directory: " + ec.message());
  if (!sharded && std::filesystem::exists(dir / kShardIndexFile, ec)) {
    throw ModelError(dir.string() + ": already holds a sharded checkpoint (" + kShardIndexFile +
                     ")");
  }
  if (sharded && std::filesystem::exists(dir / kSingleCheckpointFile, ec)) {
    throw ModelError(dir.string() + ": already holds a one-file checkpoint (" +
                     kSingleCheckpointFile + ")");
  }

  const auto fill = [&](size_t tensor, std::span<float> chunk) { fill_in(layout, tensor, chunk); };
  write_checkpoint(dir, specs, fill, options.max_shard_bytes, shard_order);
  detail::write_text_file(dir / kConfigFile, llama_config_to_json(config).dump(2) + "\n");
}

}  // namespace

void write_random_llama(const std::filesystem::path& dir, const LlamaConfig& config,
                        const RandomModelOptions& options) {
  // One generator over the tensors in layout order, so the values do not depend on sharding.
  Gaussian gauss(options.seed);
  write_llama_checkpoint(
      dir, config, options,
      [&](const std::vector<ExpectedTensor>& layout, size_t tensor, std::span<float> chunk) {
        const bool norm = is_norm(layout[tensor]);
        for (float& v : chunk)
          v = norm ? 1.0f + kNormNoiseStd * gauss.next() : kWeightStd * gauss.next();
      });
}

void write_llama_weights(const std::filesystem::path& dir, const LlamaWeights& weights,
                         const RandomModelOptions& options) {
  // named_tensors only reads here: it lists the tensors in llama_tensor_layout's order.
  const std::vector<NamedTensor> tensors = named_tensors(const_cast<LlamaWeights&>(weights));
  const auto layout = llama_tensor_layout(weights.config);
  if (tensors.size() != layout.size()) {
    throw ModelError("write weights: the weights do not hold every tensor of their config");
  }
  for (size_t i = 0; i < layout.size(); ++i) {
    size_t expected = 1;
    for (const int64_t d : layout[i].shape) expected *= static_cast<size_t>(d);
    if (tensors[i].name != layout[i].name || tensors[i].size != expected) {
      throw ModelError("write weights: " + layout[i].name + " holds " +
                       std::to_string(tensors[i].size) + " values, its shape " +
                       std::to_string(expected));
    }
  }
  size_t current = SIZE_MAX, offset = 0;
  write_llama_checkpoint(
      dir, weights.config, options,
      [&](const std::vector<ExpectedTensor>&, size_t tensor, std::span<float> chunk) {
        if (tensor != current) current = tensor, offset = 0;
        std::copy_n(tensors[tensor].data + offset, chunk.size(), chunk.data());
        offset += chunk.size();
      });
}

}  // namespace model
