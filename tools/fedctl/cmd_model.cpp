// fedctl make-model / model-info: random test models and checkpoint inspection (library: model).
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

#include "cli.h"
#include "model/checkpoint_writer.h"
#include "model/dtype.h"
#include "model/llama_config.h"
#include "model/llama_layout.h"
#include "model/llama_presets.h"
#include "model/random_model.h"
#include "model/tensor_store.h"
#include "model/tokenizer.h"

namespace fedctl {
namespace {

void require_positive(int64_t value, const char* flag) {
  if (value <= 0) {
    throw std::invalid_argument(std::string(flag) + " must be positive, got " +
                                std::to_string(value));
  }
}

std::optional<int64_t> optional_flag(const po::variables_map& vm, const char* name) {
  if (!vm.count(name)) return std::nullopt;
  return vm[name].as<int64_t>();
}

model::DType parse_dtype_flag(const std::string& s) {
  if (s == "f32") return model::DType::kF32;
  if (s == "f16") return model::DType::kF16;
  if (s == "bf16") return model::DType::kBF16;
  throw std::invalid_argument("--dtype must be f32, f16 or bf16, got '" + s + "'");
}

// The dtype shared by one projection across all layers, or "mixed".
std::string projection_dtype(const model::TensorStore& store, const model::LlamaConfig& config,
                             const std::string& suffix) {
  std::string dtype;
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    const auto& info = store.info(model::llama_layer_tensor_name(layer, suffix));
    const std::string d(model::dtype_name(info.dtype));
    if (dtype.empty()) dtype = d;
    if (dtype != d) return "mixed";
  }
  return dtype;
}

}  // namespace

int cmd_make_model(int argc, char** argv) {
  std::string out, dtype_flag, preset, shard_size;
  int64_t hidden = 0, layers = 0, heads = 0, intermediate = 0, vocab = 0, max_pos = 0;
  uint64_t seed = 0;
  double rope_theta = 0;
  bool tied = false;
  po::options_description options("make-model options");
  options.add_options()("out", po::value(&out)->required(),
                        "model directory to write (created if missing)")(
      "preset", po::value(&preset),
      "the config of a published checkpoint: llama-3.2-1b, llama-3.2-3b or llama-3.1-8b "
      "(then only --layers and --vocab may change it)")("hidden", po::value(&hidden),
                                                        "hidden_size")(
      "layers", po::value(&layers), "num_hidden_layers (with --preset: cut the depth)")(
      "heads", po::value(&heads), "num_attention_heads")("kv-heads", po::value<int64_t>(),
                                                         "num_key_value_heads (default: --heads)")(
      "intermediate", po::value(&intermediate), "intermediate_size")(
      "vocab", po::value(&vocab), "vocab_size (with --preset: a smaller test vocabulary)")(
      "seed", po::value(&seed)->default_value(0), "seed of the weight generator")(
      "dtype", po::value(&dtype_flag),
      "stored dtype: f32, bf16 or f16 (default: bf16 with --preset, else f32)")(
      "max-shard-size", po::value(&shard_size)->default_value("5GB"),
      "largest shard, as transformers' max_shard_size (5GB = 5e9 bytes, also MB, KB, GiB, "
      "MiB, KiB or bytes); a model that fits is one model.safetensors")(
      "tied", po::bool_switch(&tied), "tie lm_head to the token embeddings")(
      "rope-theta", po::value(&rope_theta)->default_value(10000.0), "rope_theta")(
      "head-dim", po::value<int64_t>(), "head_dim (default: hidden / heads)")(
      "max-pos", po::value(&max_pos)->default_value(2048), "max_position_embeddings");
  return run_command(
      "make-model",
      "--out DIR (--preset NAME [--layers L] [--vocab V] | --hidden H --layers L --heads A "
      "[--kv-heads K] --intermediate I --vocab V) [options]",
      options, argc, argv, [&](const po::variables_map& vm) {
        model::RandomModelOptions opts;
        opts.seed = seed;
        opts.max_shard_bytes = model::parse_shard_size(shard_size);
        model::LlamaConfig config;
        if (vm.count("preset")) {
          const auto found = model::llama_preset(preset);
          if (!found) {
            std::string known;
            for (const auto& n : model::llama_preset_names())
              known += (known.empty() ? "" : ", ") + n;
            throw std::invalid_argument("unknown preset '" + preset + "' (known: " + known + ")");
          }
          for (const char* flag : {"hidden", "heads", "kv-heads", "intermediate", "tied",
                                   "rope-theta", "head-dim", "max-pos"}) {
            if (vm.count(flag) && !vm[flag].defaulted()) {
              throw std::invalid_argument(std::string("--") + flag +
                                          " cannot change a --preset (only --layers and --vocab)");
            }
          }
          if (tied) throw std::invalid_argument("--tied cannot change a --preset");
          config = *found;
          if (vm.count("layers")) {
            require_positive(layers, "--layers");
            config.num_hidden_layers = layers;
          }
          if (vm.count("vocab")) {
            require_positive(vocab, "--vocab");
            config.vocab_size = vocab;
          }
          opts.dtype = parse_dtype_flag(dtype_flag.empty() ? "bf16" : dtype_flag);
          model::write_random_llama(out, config, opts);
          return 0;
        }
        for (const char* flag : {"hidden", "layers", "heads", "intermediate", "vocab"}) {
          if (!vm.count(flag)) {
            throw std::invalid_argument(std::string("--") + flag +
                                        " is required (or give --preset)");
          }
        }
        const std::optional<int64_t> kv_heads = optional_flag(vm, "kv-heads");
        const std::optional<int64_t> head_dim = optional_flag(vm, "head-dim");
        require_positive(hidden, "--hidden");
        require_positive(layers, "--layers");
        require_positive(heads, "--heads");
        require_positive(intermediate, "--intermediate");
        require_positive(vocab, "--vocab");
        require_positive(max_pos, "--max-pos");
        if (kv_heads) require_positive(*kv_heads, "--kv-heads");
        if (head_dim) require_positive(*head_dim, "--head-dim");
        if (!(rope_theta > 0)) throw std::invalid_argument("--rope-theta must be positive");
        if (!head_dim && hidden % heads != 0) {
          throw std::invalid_argument("--heads " + std::to_string(heads) +
                                      " does not divide --hidden " + std::to_string(hidden) +
                                      " (or give --head-dim)");
        }
        if (kv_heads && heads % *kv_heads != 0) {
          throw std::invalid_argument("--kv-heads " + std::to_string(*kv_heads) +
                                      " does not divide --heads " + std::to_string(heads));
        }

        config.hidden_size = hidden;
        config.intermediate_size = intermediate;
        config.num_hidden_layers = layers;
        config.num_attention_heads = heads;
        config.num_key_value_heads = kv_heads.value_or(heads);
        config.head_dim = head_dim.value_or(hidden / heads);
        config.vocab_size = vocab;
        config.max_position_embeddings = max_pos;
        config.rms_norm_eps = 1e-5;
        config.rope_theta = rope_theta;
        config.tie_word_embeddings = tied;
        opts.dtype = parse_dtype_flag(dtype_flag.empty() ? "f32" : dtype_flag);
        model::write_random_llama(out, config, opts);
        return 0;
      });
}

int cmd_model_info(int argc, char** argv) {
  std::string dir;
  po::options_description options("model-info options");
  options.add_options()("model", po::value(&dir)->required(),
                        "model directory (config.json + model.safetensors or a sharded "
                        "checkpoint)");
  return run_command("model-info", "--model DIR", options, argc, argv, [&](const auto&) {
    const model::LlamaConfig config = model::load_llama_config(dir);
    const model::TensorStore store = model::TensorStore::open(dir);
    model::check_llama_checkpoint(store, config);

    std::map<std::string, int64_t> dtype_counts;
    int64_t counted = 0;
    for (const auto& t : model::llama_tensor_layout(config)) {
      const auto& info = store.info(t.name);
      ++dtype_counts[std::string(model::dtype_name(info.dtype))];
      counted += info.numel();
    }
    nlohmann::json projections = nlohmann::json::object();
    for (const auto& p : model::llama_projection_shapes(config)) {
      projections[p.name] = {{"shape", {p.d_out, p.d_in}},
                             {"dtype", projection_dtype(store, config, p.suffix)}};
    }
    const nlohmann::json info = {
        {"model", dir},
        {"config", model::llama_config_to_json(config)},
        {"parameter_count", counted},
        {"tensor_count", store.names().size()},
        {"dtypes", dtype_counts},
        {"projections", projections},
        {"tokenizer", model::tokenizer_kind(dir)},
    };
    std::cout << info.dump(2) << "\n";
    return 0;
  });
}

}  // namespace fedctl
