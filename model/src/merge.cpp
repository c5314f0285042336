#include "model/merge.h"

#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "atomic_write.h"
#include "model/error.h"
#include "model/llama_config.h"
#include "model/lora_peft.h"
#include "model/projection.h"
#include "model/random_model.h"
#include "model/tokenizer.h"

namespace model {
namespace {

namespace fs = std::filesystem;

void require_directory(const fs::path& dir, const char* what) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw ModelError(dir.string() + ": the " + what + " directory does not exist");
  }
}

// Throws unless `out` is absent or an empty directory (which the merged directory replaces).
void require_free_output(const fs::path& out) {
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(out, ec);
  if (!fs::exists(status)) return;
  if (!fs::is_directory(status) || !fs::is_empty(out, ec) || ec) {
    throw ModelError(out.string() +
                     ": already exists and is not an empty directory; the merged model is "
                     "written into a new or empty directory");
  }
}

std::string read_whole_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelError(path.string() + ": cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) throw ModelError(path.string() + ": cannot read");
  return text.str();
}

// The model's own config.json with torch_dtype set to what was written.
std::string merged_config_json(const fs::path& model_dir, DType dtype) {
  const fs::path path = model_dir / kConfigFile;
  nlohmann::json config = nlohmann::json::parse(read_whole_file(path), nullptr, false);
  if (!config.is_object()) throw ModelError(path.string() + ": not a JSON object");
  config["torch_dtype"] = std::string(torch_dtype_name(dtype));
  if (config.contains("dtype")) config["dtype"] = std::string(torch_dtype_name(dtype));
  return config.dump(2) + "\n";
}

}  // namespace

LlamaWeights merge_lora(const LlamaWeights& base, const LoraParams& adapter) {
  if (!has_decoder_projections(base)) {
    throw ModelError("merge: the base model was loaded without its decoder projections");
  }
  adapter.check_fits(base.config);
  const double scaling = adapter.config().scaling();
  LlamaWeights merged = base;
  for (const ProjectionId id : adapter.ids()) {
    const LoraPair& pair = adapter.at(id);
    if (pair.a.size() == 0) {
      throw ModelError("merge: the adapter of " + projection_name(id) + " has no A matrix");
    }
    Matrix& w = layer_projection_weight(merged.layers[static_cast<size_t>(id.layer)], id.kind);
    const Eigen::MatrixXd delta = pair.b.cast<double>() * pair.a.cast<double>();
    w = (w.cast<double>() + scaling * delta).cast<float>();
  }
  return merged;
}

const std::vector<std::string>& merge_copied_files() {
  static const std::vector<std::string> files = {kSentencePieceModelFile, kHfTokenizerFile,
                                                 "tokenizer_config.json", "special_tokens_map.json",
                                                 "added_tokens.json",     "generation_config.json"};
  return files;
}

MergeReport merge_lora_directory(const fs::path& model_dir, const fs::path& adapter_dir,
                                 const fs::path& out_dir, const MergeOptions& options) {
  require_directory(model_dir, "model");
  require_directory(adapter_dir, "adapter");
  require_free_output(out_dir);
  if (!is_float_dtype(options.dtype)) {
    throw ModelError("merge: the weights are written as F32, F16 or BF16, not " +
                     std::string(dtype_name(options.dtype)));
  }
  const LlamaWeights base = load_llama_weights(model_dir);
  const LoraParams lora = read_lora_adapter(adapter_dir, base.config);
  LlamaWeights merged = merge_lora(base, lora);
  merged.config.torch_dtype = std::string(torch_dtype_name(options.dtype));
  const std::string config_text = merged_config_json(model_dir, options.dtype);

  MergeReport report;
  report.merged_projections = static_cast<int64_t>(lora.ids().size());
  std::error_code ec;
  std::string out_text = out_dir.string();  // "merged/" names the directory "merged"
  while (out_text.size() > 1 && out_text.back() == '/') out_text.pop_back();
  const fs::path out(out_text);
  const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  if (!fs::exists(parent, ec)) {
    fs::create_directories(parent, ec);
    if (ec) throw ModelError(parent.string() + ": cannot create directory: " + ec.message());
  }
  const fs::path tmp =
      parent / (out.filename().string() + ".partial-" + std::to_string(::getpid()));
  fs::remove_all(tmp, ec);
  try {
    write_llama_weights(tmp, merged, {.dtype = options.dtype});
    detail::write_text_file(tmp / kConfigFile, config_text);
    for (const std::string& file : merge_copied_files()) {
      const fs::path from = model_dir / file;
      if (!fs::is_regular_file(from, ec)) continue;
      detail::write_text_file(tmp / file, read_whole_file(from));
      report.copied.push_back(file);
    }
    // An empty directory at `out` (checked above) is replaced by the rename.
    fs::rename(tmp, out, ec);
    if (ec)
      throw ModelError(out.string() + ": cannot move the merged model into place: " + ec.message());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  return report;
}

}  // namespace model
