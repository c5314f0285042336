// The weights of a Llama model, loaded as float32 Eigen matrices.
//
// Matrices are row-major with the checkpoint's [d_out, d_in] shape, so a projection is
// y = W * x exactly as torch.nn.Linear computes it, and W.data() is the checkpoint's element
// order.
#pragma once

#include <Eigen/Core>
#include <filesystem>
#include <memory>
#include <vector>

#include "model/llama_config.h"
#include "model/tensor_store.h"

namespace model {

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vector = Eigen::VectorXf;

struct LlamaLayerWeights {
  Vector input_layernorm;           // [H]
  Matrix q_proj;                    // [heads * head_dim, H]
  Matrix k_proj;                    // [kv_heads * head_dim, H]
  Matrix v_proj;                    // [kv_heads * head_dim, H]
  Matrix o_proj;                    // [H, heads * head_dim]
  Vector post_attention_layernorm;  // [H]
  Matrix gate_proj;                 // [I, H]
  Matrix up_proj;                   // [I, H]
  Matrix down_proj;                 // [H, I]
};

struct LlamaWeights {
  LlamaConfig config;
  Matrix embed_tokens;  // [V, H]
  std::vector<LlamaLayerWeights> layers;
  Vector norm;            // [H]
  Matrix lm_head_weight;  // [V, H]; empty when config.tie_word_embeddings
  // The open checkpoint, kept when the embedding tables were not loaded
  // (WeightLoadOptions::embeddings = false): lookups and the LM head's quantization read it.
  std::shared_ptr<const TensorStore> store;

  // The output projection: lm_head_weight, or embed_tokens when the embeddings are tied.
  const Matrix& lm_head() const {
    return config.tie_word_embeddings ? embed_tokens : lm_head_weight;
  }
};

// What load_llama_weights reads. A participant whose projections run on FHE workers needs the
// embeddings, the norms and the LM head, never the decoder layers' projections (most of the
// model: 3.9 GB of float32 in Llama-3.2-1B): with decoder_projections = false their matrices
// stay empty (0 x 0), projection_weight() refuses them, and the model hash comes from the files
// (quantized_model_hash(store, config)).
// With embeddings = false neither embed_tokens nor lm_head_weight is read (for Llama-3.2-1B a
// 1 GB float32 table, for Llama-3.1-8B two of 2 GB): embedding lookups read their rows from the
// mapped checkpoint (embedding_forward(weights, ...)) and the LM head is quantized straight
// from the files (quantized_projection in quantized_checkpoint.h).
struct WeightLoadOptions {
  bool decoder_projections = true;
  bool embeddings = true;
};

// Loads the weights after check_llama_checkpoint (see llama_layout.h) has passed. Every tensor
// read is converted to float32 up front (a bf16 checkpoint takes twice its file size in memory);
// the mapped pages of each tensor are released once it is converted, so the peak RSS is the
// float32 weights plus about one tensor, not the float32 weights plus the whole mapped file.
LlamaWeights load_llama_weights(const TensorStore& store, const LlamaConfig& config,
                                WeightLoadOptions options = {});
// Loads config.json and the checkpoint of a model directory.
LlamaWeights load_llama_weights(const std::filesystem::path& dir, WeightLoadOptions options = {});

// False when the weights were loaded without their decoder projections.
bool has_decoder_projections(const LlamaWeights& weights);

}  // namespace model
