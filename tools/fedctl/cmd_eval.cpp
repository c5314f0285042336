// fedctl eval: held-out loss and perplexity of a model, with or without a LoRA adapter, and
// multiple-choice accuracy (library: model, evaluation.h).
#include <cstdint>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli.h"
#include "model/dataset.h"
#include "model/evaluation.h"
#include "model/linear_backends.h"
#include "model/llama_model.h"
#include "model/llama_weights.h"
#include "model/lora_peft.h"
#include "training_io.h"

namespace fedctl {
namespace {

nlohmann::json eval_json(const model::EvaluationReport& report) {
  nlohmann::json result = nlohmann::json::object();
  if (report.loss) {
    result["loss"] = report.loss->loss;
    result["perplexity"] = report.loss->perplexity;
    result["tokens"] = report.loss->tokens;
    result["sequences"] = report.loss->sequences;
  }
  if (report.mcq) {
    result["mcq_accuracy"] = report.mcq->accuracy;
    result["mcq_questions"] = report.mcq->questions;
    result["mcq_correct"] = report.mcq->correct;
  }
  return result;
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  std::string model_dir, adapter, data, mcq, backend_flag;
  int64_t seq_len = 0, batch = 0;
  po::options_description options("eval options");
  options.add_options()("model", po::value(&model_dir)->required(),
                        "model directory (config.json + safetensors checkpoint)")(
      "adapter", po::value(&adapter), "LoRA adapter directory in PEFT layout")(
      "data", po::value(&data), "JSON lines with a \"text\" field: loss and perplexity")(
      "mcq", po::value(&mcq),
      "JSON lines with \"question\", \"options\", \"answer\": accuracy, each option scored by "
      "the log-likelihood of its tokens given the question")(
      "backend", po::value(&backend_flag)->default_value("float"),
      "how the frozen projections run: float, int8 or encrypted")(
      "seq-len", po::value(&seq_len)->default_value(128),
      "tokens per example of --data (BOS + text + EOS, cut to this length)")(
      "batch-size", po::value(&batch)->default_value(8), "examples per batch");
  return run_command(
      "eval",
      "--model DIR (--data FILE.jsonl | --mcq FILE.jsonl | both) [--adapter DIR] "
      "[--backend float|int8|encrypted]\n\n"
      "Prints {\"loss\", \"perplexity\", \"tokens\", \"sequences\"} for --data (mean next-token "
      "cross-entropy over the predicted tokens) and {\"mcq_accuracy\", \"mcq_questions\", "
      "\"mcq_correct\"} for --mcq.",
      options, argc, argv,
      [&](const po::variables_map& vm) {
        const bool has_data = vm.count("data") > 0;
        const bool has_mcq = vm.count("mcq") > 0;
        if (!has_data && !has_mcq) throw std::invalid_argument("give --data, --mcq or both");
        const model::BackendKind kind = model::parse_backend_kind(backend_flag);
        auto weights =
            std::make_shared<const model::LlamaWeights>(model::load_llama_weights(model_dir));
        const model::LlamaConfig& config = weights->config;
        if (has_data) check_seq_len(seq_len, config);
        std::optional<model::LoraParams> lora;
        if (vm.count("adapter")) lora.emplace(model::read_lora_adapter(adapter, config));
        const auto tokenizer = model::load_tokenizer(model_dir, config.vocab_size);
        std::optional<model::TextDataset> dataset;
        if (has_data) dataset.emplace(model::load_text_dataset(data, *tokenizer, seq_len));
        std::vector<model::McqQuestion> questions;
        if (has_mcq) questions = model::read_mcq_jsonl(mcq);

        model::LlamaModel llama(weights, model::make_linear_backend(kind, weights));
        const model::EvaluationReport report =
            model::evaluate_model(llama, lora ? &*lora : nullptr, dataset ? &*dataset : nullptr,
                                  has_mcq ? &questions : nullptr, *tokenizer, batch);
        const nlohmann::json result = eval_json(report);
        std::cout << result.dump() << "\n";
        return 0;
      },
      {protocol::cli::at_least("seq-len", 2), protocol::cli::at_least("batch-size", 1)});
}

}  // namespace fedctl
