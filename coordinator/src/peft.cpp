#include "coordinator/peft.h"

#include <nlohmann/json.hpp>

#include "coordinator/files.h"
#include "coordinator/safetensors.h"

namespace coordinator {

using base::make_error;

base::Result<PeftAdapter> load_peft(const std::filesystem::path& dir) {
  auto adapter = read_safetensors(dir / "adapter_model.safetensors");
  if (!adapter) return adapter.error();
  auto config = read_file(dir / "adapter_config.json", 1 << 20);
  if (!config) return config.error();
  std::string text(config.value().begin(), config.value().end());
  try {
    if (!nlohmann::json::parse(text).is_object()) {
      return make_error(base::Code::kInvalidArgument, (dir / "adapter_config.json").string(),
                        " is not a JSON object");
    }
  } catch (const std::exception& e) {
    return make_error(base::Code::kInvalidArgument, (dir / "adapter_config.json").string(),
                      " is not JSON: ", e.what());
  }
  return PeftAdapter{std::move(adapter).value(), std::move(text)};
}

base::Status export_peft(const std::filesystem::path& dir, const PeftAdapter& peft) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error(base::Code::kIo, "cannot create ", dir.string(), ": ", ec.message());
  if (auto s = write_safetensors(dir / "adapter_model.safetensors", peft.adapter); !s) return s;
  return write_file_atomic(dir / "adapter_config.json", peft.config_json);
}

}  // namespace coordinator
