// Helpers shared by the model tests: a per-test temporary directory, raw file access, raw
// safetensors files and a tiny config.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "model/llama_config.h"
#include "test_support/files.h"
#include "test_support/temp_dir.h"

namespace model_test {

using test_support::TempDir;

// A safetensors file from a literal header and data area: 8-byte length, header, data.
inline std::string raw_safetensors(const std::string& header, const std::string& data) {
  const uint64_t n = header.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

// A small grouped-query config: 4 query heads sharing 2 key/value heads of width 4.
inline model::LlamaConfig tiny_llama_config() {
  model::LlamaConfig c;
  c.hidden_size = 16;
  c.intermediate_size = 40;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  c.vocab_size = 300;
  c.max_position_embeddings = 64;
  return c;
}

}  // namespace model_test
