#include "sim_setup.h"

#include <openssl/sha.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>

#include "model/byte_tokenizer.h"
#include "model/error.h"
#include "model/llama_config.h"
#include "model/lora_config.h"
#include "model/lora_params.h"
#include "model/lora_peft.h"
#include "model/peft_adapter.h"
#include "model/pretrained_base.h"
#include "model/random_model.h"
#include "model/synthetic_notes.h"
#include "model/trainer.h"

namespace fedsim {

namespace {

// Multiple-choice questions fedsim generates with its synthetic notes, shared by every site.
constexpr int64_t kGeneratedQuestions = 60;

SimLayout paths_of(const SimConfig& c) {
  SimLayout l;
  l.run = c.run_dir;
  l.model = c.model_dir.empty() ? l.run / "model" : std::filesystem::absolute(c.model_dir);
  l.data = l.run / "data";
  l.initial_adapter = l.run / "initial_adapter";
  l.sites = l.run / "sites";
  l.keys = l.run / "keys";
  l.logs = l.run / "logs";
  return l;
}

// The user's sites and model, checked; nothing is written.
std::vector<SiteFiles> checked_user_sites(const SimConfig& c, std::ostream& progress) {
  std::unique_ptr<model::Tokenizer> tokenizer;
  if (!c.model_dir.empty()) tokenizer = check_model(c.model_dir, c.seq_len);
  if (c.data_dir.empty()) return {};
  if (!tokenizer) tokenizer = std::make_unique<model::ByteTokenizer>(c.vocab);
  std::vector<SiteFiles> sites = discover_sites(c.data_dir);
  for (const auto& site : sites) {
    const SiteSummary n = check_site(site, *tokenizer, c.seq_len);
    progress << "fedsim: site " << site.id << ": " << n.notes << " notes, "
             << (site.heldout.empty() ? std::string("every 10th held out")
                                      : std::to_string(n.heldout_notes) + " held out")
             << ", " << n.questions << " questions";
    if (n.windowed > 0) {
      progress << "; " << n.windowed << " notes longer than --seq-len " << c.seq_len
               << " tokens are seen through windows of " << c.seq_len << " tokens";
    }
    progress << "\n";
  }
  return sites;
}

// The pretrained base of the run's shape: made once per recipe in the cache (pretraining runs
// before the federation and is not part of it), then copied into RUN/model.
void copy_pretrained_base(const SimConfig& c, const model::LlamaConfig& config, const SimLayout& l,
                          std::ostream& progress) {
  model::BaseModelRecipe recipe;
  recipe.config = config;
  recipe.corpus_seed = c.seed;
  recipe.init_seed = c.seed;
  recipe.seq_len = c.seq_len;
  recipe.train.steps = c.pretrain_steps;
  recipe.train.seed = c.seed;
  const std::filesystem::path cache =
      c.base_cache.empty() ? c.run_dir.parent_path() / ".base-models" : c.base_cache;
  const std::filesystem::path cached = cache / ("base-" + model::recipe_key(recipe));
  if (!std::filesystem::exists(cached / "config.json")) {
    progress << "fedsim: pretraining a base model on the generated general-text corpus ("
             << c.pretrain_steps << " steps, once; kept in " << cached.string() << ")\n";
    if (!cache.empty()) std::filesystem::create_directories(cache);
    const model::BaseModelReport r = model::make_pretrained_base(
        cached, recipe, model::pretrain_progress_printer(stderr, "fedsim: "));
    char line[256];
    std::snprintf(line, sizeof line,
                  "fedsim: pretrained in %.0f s: held-out loss of the general corpus %.4f "
                  "(random weights) -> %.4f\n",
                  r.seconds, r.initial_heldout_loss, r.heldout_loss);
    progress << line;
  }
  const std::filesystem::path tmp = l.model.string() + ".partial";
  std::filesystem::remove_all(tmp);
  std::filesystem::copy(cached, tmp, std::filesystem::copy_options::recursive);
  std::filesystem::rename(tmp, l.model);
  progress << "fedsim: base model: pretrained Llama (hidden " << c.hidden << ", " << c.layers
           << " layers, vocabulary " << c.vocab << ", byte tokenizer) from " << cached.string()
           << " in " << l.model.string() << "\n";
}

// The shape of the generated model, from the flags.
model::LlamaConfig generated_config(const SimConfig& c) {
  model::LlamaConfig config;
  config.hidden_size = c.hidden;
  config.intermediate_size = c.intermediate;
  config.num_hidden_layers = c.layers;
  config.num_attention_heads = c.heads;
  config.num_key_value_heads = c.kv_heads;
  config.head_dim = c.heads > 0 ? c.hidden / c.heads : 0;
  config.vocab_size = c.vocab;
  config.max_position_embeddings = std::max<int64_t>(2048, c.seq_len);
  config.rms_norm_eps = 1e-5;
  return config;
}

void generate_model(const SimConfig& c, const SimLayout& l, std::ostream& progress) {
  if (std::filesystem::exists(l.model / "config.json")) return;
  const model::LlamaConfig config = generated_config(c);
  model::validate_llama_config(config, "fedsim model");
  if (c.base == "pretrained") {
    copy_pretrained_base(c, config, l, progress);
    return;
  }
  model::write_random_llama(l.model, config, {.seed = c.seed});
  progress << "fedsim: generated a random Llama model (hidden " << c.hidden << ", " << c.layers
           << " layers, vocabulary " << c.vocab << ") in " << l.model.string() << "\n";
}

std::vector<SiteFiles> generated_sites(const SimConfig& c, const SimLayout& l,
                                       std::ostream& progress) {
  std::vector<SiteFiles> sites;
  for (uint32_t k = 0; k < c.sites; ++k) {
    const std::string stem = "site" + std::to_string(k);
    sites.push_back({"site-" + std::to_string(k),
                     l.data / (stem + ".jsonl"),
                     l.data / (stem + ".heldout.jsonl"),
                     {}});
  }
  if (!std::filesystem::exists(sites.back().train)) {
    model::SyntheticDataOptions o;
    o.sites = static_cast<int>(c.sites);
    o.records = c.records;
    o.heldout_fraction = c.heldout_fraction;
    o.mcq_count = kGeneratedQuestions;
    o.seed = c.seed;
    model::write_synthetic_dataset(l.data, o);
    progress << "fedsim: generated " << c.records << " synthetic clinical notes for each of "
             << c.sites << " sites in " << l.data.string() << "\n";
  }
  return sites;
}

void write_initial_adapter(const SimConfig& c, const SimLayout& l) {
  if (std::filesystem::exists(l.initial_adapter / model::kPeftConfigFile)) return;
  const model::LlamaConfig config = model::load_llama_config(l.model);
  model::LoraConfig lora;
  lora.rank = c.lora_rank;
  lora.alpha = c.lora_alpha;
  lora.targets = model::parse_lora_targets(c.targets);
  std::mt19937_64 rng(model::lora_init_seed(c.seed));  // LoRA init: training RNG, not a secret
  const model::LoraParams params = model::init_lora_params(config, lora, rng);
  model::write_peft_adapter(l.initial_adapter, model::lora_to_peft(params, config, "model"));
}

// What prepare_run creates, so that a failure removes it again (never what was there before).
class Created {
 public:
  explicit Created(const SimLayout& l) {
    for (const auto& p : {l.run, l.sites, l.logs, l.data, l.initial_adapter, l.model}) {
      if (!std::filesystem::exists(p)) fresh_.push_back(p);
    }
  }
  // Removes what did not exist when this was made; the run directory itself, if it was new.
  void undo() const noexcept {
    std::error_code ec;
    for (const auto& p : fresh_) {
      std::filesystem::remove_all(p, ec);
      std::filesystem::remove_all(p.string() + ".partial", ec);
    }
  }

 private:
  std::vector<std::filesystem::path> fresh_;
};

}  // namespace

SimLayout prepare_run(const SimConfig& c, std::ostream& progress) {
  SimLayout l = paths_of(c);
  std::vector<SiteFiles> user_sites = checked_user_sites(c, progress);
  if (c.model_dir.empty()) {
    try {
      model::validate_llama_config(generated_config(c),
                                   "the generated model (--hidden, --heads, ...)");
    } catch (const model::ModelError& e) {
      throw std::invalid_argument(e.what());
    }
  }
  const Created created(l);
  try {
    std::filesystem::create_directories(l.run);
    std::filesystem::create_directories(l.sites);
    std::filesystem::create_directories(l.logs);
    if (c.model_dir.empty()) generate_model(c, l, progress);
    if (user_sites.empty()) {
      l.site_files = generated_sites(c, l, progress);
    } else {
      for (auto& site : user_sites) {
        l.site_files.push_back(site.heldout.empty() ? split_heldout(site, l.data) : site);
      }
    }
    write_initial_adapter(c, l);
  } catch (...) {
    created.undo();
    throw;
  }
  return l;
}

std::optional<uint32_t> finished_rounds(const std::filesystem::path& run_dir) {
  std::ifstream in(run_dir / "events.jsonl");
  if (!in) return std::nullopt;
  std::optional<uint32_t> last;
  std::string line;
  while (std::getline(in, line)) {
    const auto e = nlohmann::json::parse(line, nullptr, false);
    if (!e.is_object()) continue;
    const std::string event = e.value("event", std::string());
    if (event == "run_finished") {
      last = e.value("last_round", 0u);
    } else if (event == "run_started") {
      last.reset();  // a resumed run that has not finished yet
    }
  }
  return last;
}

std::string sha256_hex(const std::string& input) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (const unsigned char b : digest) {
    hex += digits[b >> 4];
    hex += digits[b & 15];
  }
  return hex;
}

std::string site_dp_seed_hex(uint64_t seed, uint32_t site) {
  return sha256_hex("fedsim dp seed " + std::to_string(seed) + " " + std::to_string(site));
}

}  // namespace fedsim
