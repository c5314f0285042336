#include "model/random_model.h"

#include <cmath>
#include <fstream>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "model/checkpoint_writer.h"
#include "model/error.h"
#include "model/llama_layout.h"
#include "model/tensor_store.h"

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

bool is_norm(const ExpectedTensor& t) {
  return t.shape.size() == 1;
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) throw Error(path.string() + ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw Error(path.string() + ": cannot rename the temporary file into place");
}

}  // namespace

void write_random_llama(const std::filesystem::path& dir, const LlamaConfig& config_in,
                        const RandomModelOptions& options) {
  if (!is_float_dtype(options.dtype)) {
    throw Error("random model: dtype " + std::string(dtype_name(options.dtype)) +
                " is not F32, F16 or BF16");
  }
  LlamaConfig config = config_in;
  config.torch_dtype = std::string(torch_dtype_name(options.dtype));
  validate_llama_config(config, "random model config");

  const auto layout = llama_tensor_layout(config);
  std::vector<TensorSpec> specs;
  for (const auto& t : layout) specs.push_back({t.name, options.dtype, t.shape});
  const bool sharded = plan_shards(specs, options.max_shard_bytes).size() > 1;

  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(dir.string() + ": cannot create directory: " + ec.message());
  if (!sharded && std::filesystem::exists(dir / kShardIndexFile, ec)) {
    throw Error(dir.string() + ": already holds a sharded checkpoint (" + kShardIndexFile + ")");
  }
  if (sharded && std::filesystem::exists(dir / kSingleCheckpointFile, ec)) {
    throw Error(dir.string() + ": already holds a one-file checkpoint (" + kSingleCheckpointFile +
                ")");
  }

  // One generator over the tensors in layout order, so the values do not depend on sharding.
  Gaussian gauss(options.seed);
  const auto fill = [&](size_t tensor, std::span<float> chunk) {
    const bool norm = is_norm(layout[tensor]);
    for (float& v : chunk)
      v = norm ? 1.0f + kNormNoiseStd * gauss.next() : kWeightStd * gauss.next();
  };
  write_checkpoint(dir, specs, fill, options.max_shard_bytes);
  write_text(dir / kConfigFile, llama_config_to_json(config).dump(2) + "\n");
}

}  // namespace model
