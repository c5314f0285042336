// Helpers shared by the coordinator tests: temp dirs, small adapters, events.jsonl reading.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "coordinator/adapter.h"
#include "coordinator/peft.h"
#include "test_support/temp_dir.h"

namespace coordinator_test {

using test_support::TempDir;

// A LoRA-like adapter: two layers of A [rank, 4] and B [4, rank] matrices (+ a scalar).
inline coordinator::Adapter small_adapter(float start = 0.0f, size_t layers = 2) {
  std::vector<coordinator::NamedTensor> t;
  float v = start;
  for (size_t l = 0; l < layers; ++l) {
    for (const char* m : {"lora_A", "lora_B"}) {
      coordinator::NamedTensor n;
      n.name =
          "base_model.model.layers." + std::to_string(l) + ".self_attn.q_proj." + m + ".weight";
      n.shape =
          std::string(m) == "lora_A" ? std::vector<uint64_t>{2, 4} : std::vector<uint64_t>{4, 2};
      for (int i = 0; i < 8; ++i) n.values.push_back(v += 0.125f);
      t.push_back(std::move(n));
    }
  }
  return coordinator::make_adapter(std::move(t)).value();
}

inline std::filesystem::path write_peft(const std::filesystem::path& dir,
                                        const coordinator::Adapter& a) {
  const auto s = coordinator::export_peft(
      dir, {a, R"({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]})"});
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().to_string());
  return dir;
}

inline std::vector<nlohmann::json> read_events(const std::filesystem::path& file) {
  std::vector<nlohmann::json> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    out.push_back(nlohmann::json::parse(line));  // throws (fails the test) on a bad line
  }
  return out;
}

inline std::vector<nlohmann::json> events_of(const std::vector<nlohmann::json>& all,
                                             const std::string& kind) {
  std::vector<nlohmann::json> out;
  for (const auto& e : all) {
    if (e.at("event") == kind) out.push_back(e);
  }
  return out;
}

}  // namespace coordinator_test
