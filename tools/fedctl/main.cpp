// fedctl: one binary, one subcommand per task. `fedctl --help` lists them.
#include <cstdio>
#include <cstring>
#include <iterator>

#include "commands.h"

namespace fedctl {
// Subcommands, one per line; each is defined in a cmd_*.cpp file of this folder.
int cmd_fhe_keygen(int argc, char** argv);
int cmd_fhe_encrypt(int argc, char** argv);
int cmd_fhe_matmul(int argc, char** argv);
int cmd_fhe_decrypt(int argc, char** argv);
int cmd_fhe_demo(int argc, char** argv);
int cmd_keygen(int argc, char** argv);
int cmd_make_model(int argc, char** argv);
int cmd_pretrain(int argc, char** argv);
int cmd_model_info(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_forward(int argc, char** argv);
int cmd_privacy(int argc, char** argv);
int cmd_make_data(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_export_int8(int argc, char** argv);
int cmd_merge(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_status(int argc, char** argv);
int cmd_provision(int argc, char** argv);
}  // namespace fedctl

namespace {

const fedctl::Command kCommands[] = {
    {"version", "print the version",
     [](int, char**) {
       std::puts("fedctl 0.1.0");
       return 0;
     }},
    {"fhe-keygen", "make an RLWE secret key", fedctl::cmd_fhe_keygen},
    {"fhe-encrypt", "encrypt an int8 .npy matrix (tokens along polynomial coefficients)",
     fedctl::cmd_fhe_encrypt},
    {"fhe-matmul", "multiply a ciphertext by an int8 .npy matrix, as a worker does (no key)",
     fedctl::cmd_fhe_matmul},
    {"fhe-decrypt", "decrypt a product ciphertext into an int64 .npy matrix",
     fedctl::cmd_fhe_decrypt},
    {"fhe-demo", "encrypt, multiply and decrypt one layer and check it is exact",
     fedctl::cmd_fhe_demo},
    {"keygen", "make a CurveZMQ key pair (PREFIX.key, PREFIX.pub) for the network sockets",
     fedctl::cmd_keygen},
    {"make-model", "write a random Llama model: small, or a published config (--preset), sharded",
     fedctl::cmd_make_model},
    {"pretrain", "pretrain a small Llama on every weight over a generated general-text corpus",
     fedctl::cmd_pretrain},
    {"model-info", "print a model's config, parameter count and projection shapes as JSON",
     fedctl::cmd_model_info},
    {"tokenize", "encode text to ids (or decode ids) with a model's tokenizer, as JSON",
     fedctl::cmd_tokenize},
    {"forward", "print the logits of a token sequence (float, int8 or encrypted projections)",
     fedctl::cmd_forward},
    {"privacy", "differential-privacy accounting: epsilon and sigma", fedctl::cmd_privacy},
    {"make-data", "write synthetic clinical notes per site (JSON lines) and MCQ questions",
     fedctl::cmd_make_data},
    {"train", "train a LoRA adapter (float, int8 or encrypted projections), write it as PEFT",
     fedctl::cmd_train},
    {"eval", "held-out loss, perplexity and MCQ accuracy of a model with an optional adapter",
     fedctl::cmd_eval},
    {"export-int8", "write the exact int8 matrix (and scales) an fhe_worker uses, as .npy",
     fedctl::cmd_export_int8},
    {"merge", "fold a LoRA adapter into its base model: a Hugging Face Llama directory",
     fedctl::cmd_merge},
    {"generate", "continue a prompt with a model and an optional adapter (greedy or top-k)",
     fedctl::cmd_generate},
    {"status", "ask a running coordinator for its run, round, sites, epsilon and recent failures",
     fedctl::cmd_status},
    {"provision", "write one start-up kit per party (keys, roster, allow-lists, configs, READMEs)",
     fedctl::cmd_provision},
};

void usage(std::FILE* out) {
  std::fprintf(out, "usage: fedctl <command> [options]\n\ncommands:\n");
  for (const auto& c : kCommands) std::fprintf(out, "  %-14s %s\n", c.name, c.summary);
  std::fprintf(out, "\n`fedctl <command> --help` shows a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (const auto& c : kCommands) {
    if (!std::strcmp(argv[1], c.name)) return c.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "fedctl: unknown command '%s' (see fedctl --help)\n", argv[1]);
  return 2;
}
