#include "sim_eval.h"

#include <cmath>
#include <fstream>
#include <set>

#include "coordinator/checkpoint.h"
#include "model/dataset.h"
#include "model/evaluation.h"
#include "model/linear_backends.h"
#include "model/llama_model.h"
#include "model/lora_config.h"
#include "model/lora_peft.h"
#include "model/tokenizer.h"
#include "participant/adapter_tensors.h"

namespace fedsim {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int64_t kEvalBatch = 16;

struct SiteEval {
  std::string id;
  std::optional<model::TextDataset> heldout;
  std::vector<model::McqQuestion> mcq;
};

}  // namespace

struct GlobalEvaluator::Impl {
  fs::path file;
  model::LoraConfig lora;
  std::shared_ptr<const model::LlamaWeights> weights;
  std::unique_ptr<model::LlamaModel> llama;
  std::unique_ptr<model::Tokenizer> tokenizer;
  std::vector<SiteEval> sites;
  std::set<uint32_t> done;
  fs::path checkpoint, initial_adapter;

  json evaluate_site(const SiteEval& s, const model::LoraParams& params) {
    const model::EvaluationReport r =
        model::evaluate_model(*llama, &params, s.heldout ? &*s.heldout : nullptr,
                              s.mcq.empty() ? nullptr : &s.mcq, *tokenizer, kEvalBatch);
    json out = {{"site", s.id}};
    if (r.loss) {
      out["heldout_loss"] = r.loss->loss;
      out["perplexity"] = r.loss->perplexity;
      out["tokens"] = r.loss->tokens;
    }
    if (r.mcq) {
      out["mcq_accuracy"] = r.mcq->accuracy;
      out["questions"] = r.mcq->questions;
      out["correct"] = r.mcq->correct;
    }
    return out;
  }
};

GlobalEvaluator::GlobalEvaluator(const SimConfig& c, const SimLayout& l)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.file = l.run / "evaluation.jsonl";
  m.checkpoint = l.run / "checkpoints" / "latest.ckpt";
  m.initial_adapter = l.initial_adapter;
  m.lora.rank = c.lora_rank;
  m.lora.alpha = c.lora_alpha;
  m.lora.targets = model::parse_lora_targets(c.targets);
  m.weights = std::make_shared<const model::LlamaWeights>(model::load_llama_weights(l.model));
  m.llama = std::make_unique<model::LlamaModel>(
      m.weights, model::make_linear_backend(model::BackendKind::kFloat, m.weights));
  m.tokenizer = model::load_tokenizer(l.model, m.weights->config.vocab_size);
  const fs::path shared_mcq = l.data / "mcq.jsonl";
  for (const auto& f : l.site_files) {
    SiteEval s{f.id, std::nullopt, {}};
    if (!f.heldout.empty()) {
      s.heldout.emplace(model::read_jsonl_texts(f.heldout), *m.tokenizer, c.seq_len);
    }
    const fs::path mcq = !f.mcq.empty() ? f.mcq : (c.data_dir.empty() ? shared_mcq : fs::path());
    if (!mcq.empty() && fs::exists(mcq)) s.mcq = model::read_mcq_jsonl(mcq);
    m.sites.push_back(std::move(s));
  }
  for (const json& e : pooled_evaluations(l.run)) m.done.insert(e.value("round", 0u));
}

GlobalEvaluator::~GlobalEvaluator() = default;

bool GlobalEvaluator::has_round(uint32_t round) const {
  return impl_->done.count(round) > 0;
}

GlobalEvaluator::Evaluation GlobalEvaluator::evaluate_adapter(const model::LoraParams& lora) {
  Impl& m = *impl_;
  Evaluation out;
  double loss = 0, tokens = 0;
  int64_t questions = 0, correct = 0;
  for (const auto& s : m.sites) {
    json r = m.evaluate_site(s, lora);
    if (r.contains("tokens")) {
      loss += r["heldout_loss"].get<double>() * r["tokens"].get<double>();
      tokens += r["tokens"].get<double>();
    }
    questions += r.value("questions", int64_t{0});
    correct += r.value("correct", int64_t{0});
    out.sites.push_back(std::move(r));
  }
  json pooled = {{"site", "pooled"}};
  if (tokens > 0) {
    pooled["heldout_loss"] = loss / tokens;
    pooled["perplexity"] = std::exp(loss / tokens);
    pooled["tokens"] = tokens;
  }
  if (questions > 0) {
    pooled["mcq_accuracy"] = static_cast<double>(correct) / static_cast<double>(questions);
    pooled["questions"] = questions;
    pooled["correct"] = correct;
  }
  out.pooled = std::move(pooled);
  return out;
}

json GlobalEvaluator::evaluate(uint32_t round, const model::LoraParams& lora) {
  Impl& m = *impl_;
  Evaluation e = evaluate_adapter(lora);
  std::ofstream out(m.file, std::ios::app);
  for (json& r : e.sites) {
    r["round"] = round;
    out << r.dump() << "\n";
  }
  json pooled = {{"round", round}};
  pooled.update(e.pooled);
  out << pooled.dump() << "\n";
  out.flush();
  m.done.insert(round);
  return pooled;
}

model::LoraParams GlobalEvaluator::initial_adapter() const {
  return model::read_lora_adapter(impl_->initial_adapter.string(), impl_->weights->config);
}

json GlobalEvaluator::evaluate_initial() {
  return evaluate(0, initial_adapter());
}

std::optional<std::pair<uint32_t, model::LoraParams>> GlobalEvaluator::latest_checkpoint() const {
  const Impl& m = *impl_;
  const auto ckpt = coordinator::read_checkpoint(m.checkpoint);
  if (!ckpt.ok()) return std::nullopt;
  model::LoraParams params(m.weights->config, m.lora);
  const coordinator::Adapter& global = ckpt.value().global;
  participant::read_adapter_table(global.table(), global.values, params);
  return std::make_pair(ckpt.value().round, std::move(params));
}

std::optional<json> GlobalEvaluator::evaluate_checkpoint(uint32_t round) {
  auto ckpt = latest_checkpoint();
  if (!ckpt || ckpt->first != round) return std::nullopt;
  return evaluate(round, ckpt->second);
}

const std::shared_ptr<const model::LlamaWeights>& GlobalEvaluator::weights() const {
  return impl_->weights;
}

const model::Tokenizer& GlobalEvaluator::tokenizer() const {
  return *impl_->tokenizer;
}

const model::LoraConfig& GlobalEvaluator::lora_config() const {
  return impl_->lora;
}

std::vector<json> pooled_evaluations(const fs::path& run_dir) {
  std::map<uint32_t, json> by_round;
  std::ifstream in(run_dir / "evaluation.jsonl");
  for (std::string line; std::getline(in, line);) {
    const json e = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (e.is_object() && e.value("site", "") == "pooled" && e.value("round", json()).is_number()) {
      by_round[e["round"].get<uint32_t>()] = e;
    }
  }
  std::vector<json> out;
  for (auto& [round, e] : by_round) out.push_back(std::move(e));
  return out;
}

}  // namespace fedsim
