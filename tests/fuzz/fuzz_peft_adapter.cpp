// The PEFT adapter reader (model/peft_adapter.h): adapter_config.json and
// adapter_model.safetensors. The input is the config, then the separator "\n--\n", then the
// safetensors bytes (without a separator: the config alone and an empty weights file). A read
// adapter must pass validate_peft_adapter; a refusal is a one-line model::ModelError.
#include "fuzz_files.h"
#include "fuzz_target.h"
#include "model/error.h"
#include "model/peft_adapter.h"

namespace {

int one_input(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t sep = input.find("\n--\n");
  const std::string_view config = input.substr(0, sep);
  const std::string_view weights =
      sep == std::string_view::npos ? std::string_view() : input.substr(sep + 4);
  fuzz::write_scratch(model::kPeftConfigFile, config);
  fuzz::write_scratch(model::kPeftWeightsFile, weights);
  try {
    const auto adapter = model::read_peft_adapter(fuzz::scratch_dir());
    model::validate_peft_adapter(adapter, "fuzzed adapter");
  } catch (const model::ModelError& e) {
    fuzz::expect_one_line(e.what());
  }
  return 0;
}

}  // namespace

FEDLORA_FUZZ_TARGET(peft_adapter, one_input)
