// fedctl pretrain: a base model worth fine-tuning (library: model, pretrained_base.h): a small
// random Llama trained on every weight over the project's general-text corpus.
#include <cstdio>
#include <string>

#include "cli.h"
#include "model/pretrained_base.h"

namespace fedctl {

int cmd_pretrain(int argc, char** argv) {
  std::string out;
  model::BaseModelRecipe r;
  model::LlamaConfig& c = r.config;
  c.hidden_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.intermediate_size = 176;
  c.vocab_size = 512;
  c.max_position_embeddings = 2048;
  c.rms_norm_eps = 1e-5;
  po::options_description options("pretrain options");
  options.add_options()("out", po::value(&out)->required(),
                        "model directory to write (must not exist)")(
      "hidden", protocol::cli::value(&c.hidden_size), "hidden_size")(
      "layers", protocol::cli::value(&c.num_hidden_layers), "num_hidden_layers")(
      "heads", protocol::cli::value(&c.num_attention_heads), "num_attention_heads")(
      "kv-heads", protocol::cli::value(&c.num_key_value_heads), "num_key_value_heads")(
      "intermediate", protocol::cli::value(&c.intermediate_size), "intermediate_size")(
      "vocab", protocol::cli::value(&c.vocab_size),
      "vocab_size (at least 259: the byte tokenizer)")(
      "documents", protocol::cli::value(&r.documents),
      "general-text documents generated (every 20th held out)")(
      "corpus-seed", protocol::cli::value(&r.corpus_seed), "seed of the generated corpus")(
      "seed", protocol::cli::value(&r.init_seed),
      "seed of the random initial weights and the window order")(
      "seq-len", protocol::cli::value(&r.seq_len), "tokens per training window")(
      "steps", protocol::cli::value(&r.train.steps), "optimizer steps")(
      "batch-size", protocol::cli::value(&r.train.batch_size), "windows per step")(
      "lr", po::value(&r.train.lr)->default_value(r.train.lr, "0.003"),
      "peak learning rate (AdamW, linear warmup, cosine decay)")(
      "warmup", protocol::cli::value(&r.train.warmup_steps), "warmup steps");
  return run_command(
      "pretrain", "--out DIR [--hidden 64 --layers 2 ... --steps 600]", options, argc, argv,
      [&](const po::variables_map&) {
        c.head_dim = c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0;
        r.train.seed = r.init_seed;
        const model::BaseModelReport rep = model::make_pretrained_base(
            out, r, model::pretrain_progress_printer(stderr, "fedctl "));
        std::printf(
            "pretrained %s: held-out loss of the general corpus %.4f (random model) -> %.4f, "
            "%lld windows (%lld tokens), %.0f s\n",
            out.c_str(), rep.initial_heldout_loss, rep.heldout_loss,
            static_cast<long long>(rep.windows), static_cast<long long>(rep.tokens), rep.seconds);
        return 0;
      });
}

}  // namespace fedctl
