// The PEFT adapter directory: adapter_model.safetensors (float32 tensors) + adapter_config.json,
// as `fedctl` and Hugging Face PEFT write it. The coordinator reads the initial global adapter
// from one and exports the final one as one; adapter_config.json is copied through unchanged.
#pragma once

#include <filesystem>
#include <string>

#include "base/result.h"
#include "coordinator/adapter.h"
#include "protocol/result.h"

namespace coordinator {

struct PeftAdapter {
  Adapter adapter;
  std::string config_json;  // adapter_config.json as read (must be a JSON object)
};

base::Result<PeftAdapter> load_peft(const std::filesystem::path& dir);
// Creates `dir` if needed and writes both files atomically.
base::Status export_peft(const std::filesystem::path& dir, const PeftAdapter& peft);

}  // namespace coordinator
