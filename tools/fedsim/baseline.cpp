#include "baseline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "base/atomic_file.h"
#include "model/dataset.h"
#include "model/linear_backends.h"
#include "model/llama_model.h"
#include "model/training_run.h"
#include "privacy/budget.h"
#include "privacy/random_source.h"

namespace fedsim {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kFormat = "fedsim-baseline";

// A number of a record, or "-" when it has none.
std::string cell(const json& row, const char* key, const char* format) {
  if (!row.contains(key) || !row[key].is_number()) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, format, row[key].get<double>());
  return buf;
}

std::string mcq_cell(const json& row) {
  if (!row.contains("mcq_accuracy") || !row["mcq_accuracy"].is_number()) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f (%lld/%lld)", row["mcq_accuracy"].get<double>(),
                static_cast<long long>(row.value("correct", int64_t{0})),
                static_cast<long long>(row.value("questions", int64_t{0})));
  return buf;
}

// What the site spent in the federation: its budget's epsilon and steps (nullopt without one).
struct FederatedSpend {
  double epsilon = 0;
  int64_t steps = 0;
};

std::optional<FederatedSpend> federated_spend(const SimLayout& layout, uint32_t k) {
  const fs::path file = layout.state_dir(k) / "budget.json";
  if (!fs::exists(file)) return std::nullopt;
  const privacy::Budget budget = privacy::Budget::load(file);
  return FederatedSpend{budget.spent(), budget.accountant().total_steps()};
}

// The baseline.json of an earlier run of this run directory, when it is of `round`.
std::optional<json> reusable(const fs::path& file, uint32_t round, uint32_t sites) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.value("format", "") != kFormat || !j.value("round", json()).is_number() ||
      j["round"].get<uint32_t>() != round || !j.value("rows", json()).is_array() ||
      j["rows"].size() != sites + 1u) {
    return std::nullopt;
  }
  return j;
}

}  // namespace

std::string baseline_dp_seed_hex(uint64_t seed, uint32_t site) {
  return sha256_hex("fedsim local baseline dp seed " + std::to_string(seed) + " " +
                    std::to_string(site));
}

std::string baseline_table(const json& b) {
  std::string out;
  char line[512];
  const std::string backend = b.value("federated_backend", "");
  if (backend == "float") {
    out +=
        "baseline: the federated run and the local baselines both ran in float (backend float)\n";
  } else {
    out += "baseline: the federated run's products were encrypted (backend " + backend +
           "); the local baselines run in float in this process, which only favours the "
           "baselines\n";
  }
  std::snprintf(line, sizeof line, "%-28s %13s %11s %16s %9s\n", "adapter (pooled held-out)",
                "held-out loss", "perplexity", "MCQ accuracy", "epsilon");
  out += line;
  for (const json& row : b["rows"]) {
    std::snprintf(line, sizeof line, "%-28s %13s %11s %16s %9s\n", row.value("name", "").c_str(),
                  cell(row, "heldout_loss", "%.4f").c_str(),
                  cell(row, "perplexity", "%.2f").c_str(), mcq_cell(row).c_str(),
                  cell(row, "epsilon", "%.4f").c_str());
    out += line;
  }
  if (!b.value("comparable", false)) {
    out += "no pooled held-out loss: the adapters cannot be compared on it\n";
  } else if (b.value("federated_beats_every_local", false)) {
    out += "the federated adapter beats every local-only adapter on the pooled held-out loss\n";
  } else {
    std::string names;
    for (const json& n : b["not_beaten_by"]) {
      names += (names.empty() ? "" : ", ") + n.get<std::string>();
    }
    out += "the federated adapter does not beat " + names + " on the pooled held-out loss\n";
  }
  return out;
}

json run_local_baseline(const SimConfig& config, const SimLayout& layout,
                        GlobalEvaluator& evaluator, std::FILE* out) {
  const fs::path file = layout.run / "baseline.json";
  auto ckpt = evaluator.latest_checkpoint();
  if (!ckpt) {
    std::fprintf(out, "baseline: skipped, no federated round to compare with (no checkpoint)\n");
    return json();
  }
  const uint32_t round = ckpt->first;
  if (auto previous = reusable(file, round, layout.site_count())) {
    std::fprintf(out, "baseline: reusing %s (round %u)\n%s", file.c_str(), round,
                 baseline_table(*previous).c_str());
    return *previous;
  }

  json federated = evaluator.evaluate_adapter(ckpt->second).pooled;
  federated.erase("site");
  federated["name"] = "federated (round " + std::to_string(round) + ")";
  federated["site_epsilon"] = json::object();

  const model::LoraParams initial = evaluator.initial_adapter();
  model::LlamaModel llama(
      evaluator.weights(),
      model::make_linear_backend(model::BackendKind::kFloat, evaluator.weights()));
  const int64_t planned = int64_t{config.rounds} * config.local_steps;
  std::fprintf(out,
               "baseline: each site trains alone from the initial adapter: lr %g, batch %u, "
               "DP-SGD sigma %g, clip %g, q %g, delta %g, as many steps as it took in the "
               "federation (%u rounds x %u local steps = %lld when it trained every round)\n",
               config.lr, config.batch_size, config.noise_multiplier, config.clip_norm,
               config.sample_rate, config.delta, config.rounds, config.local_steps,
               static_cast<long long>(planned));
  std::vector<json> locals;
  double max_epsilon = 0;
  for (uint32_t k = 0; k < layout.site_count(); ++k) {
    const std::string& id = layout.site_id(k);
    const std::optional<FederatedSpend> spend = federated_spend(layout, k);
    const int64_t steps = spend ? spend->steps : planned;
    json row = {{"name", id + " alone"}, {"site", id}, {"steps", steps}};
    if (spend) {
      row["federated_epsilon"] = spend->epsilon;
      federated["site_epsilon"][id] = spend->epsilon;
      max_epsilon = std::max(max_epsilon, spend->epsilon);
    }
    model::LoraParams adapter = initial;
    double epsilon = 0, seconds = 0;
    if (steps > 0) {
      const model::TextDataset train =
          model::load_text_dataset(layout.train_file(k), evaluator.tokenizer(), config.seq_len);
      const privacy::Seed seed = privacy::parse_seed_hex(baseline_dp_seed_hex(config.seed, k));
      model::TrainingRunConfig run;
      run.options.lora = evaluator.lora_config();
      run.options.adamw.lr = config.lr;
      run.options.adamw.weight_decay = 0;
      run.options.steps = steps;
      run.options.batch_size = std::min<int64_t>(config.batch_size, train.size());
      run.options.seed = config.seed + k;  // training order only; the DP streams come from `seed`
      run.initial_adapter = &initial;
      run.dp = model::DpSgdSettings{.sigma = config.noise_multiplier,
                                    .clip = config.clip_norm,
                                    .delta = config.delta,
                                    .sample_rate = config.sample_rate,
                                    .seed = &seed,
                                    .sampling_stream = 0,
                                    .noise_stream = 1};
      model::TrainingRunResult r = model::run_training(llama, train, run);
      epsilon = r.dp ? r.dp->epsilon : std::nan("");
      seconds = r.seconds;
      adapter = std::move(r.adapter);
    }
    json pooled = evaluator.evaluate_adapter(adapter).pooled;
    pooled.erase("site");
    row.update(pooled);
    row["epsilon"] = epsilon;
    std::fprintf(out,
                 "baseline: %s alone: %lld steps in %.1f s, epsilon %.4f (%s in the federation)\n",
                 id.c_str(), static_cast<long long>(steps), seconds, epsilon,
                 spend ? cell(row, "federated_epsilon", "%.4f").c_str() : "unknown");
    locals.push_back(std::move(row));
  }
  federated["epsilon"] = max_epsilon;

  json b = {{"format", kFormat},
            {"version", 1},
            {"round", round},
            {"steps_per_round", config.local_steps},
            {"federated_backend", config.backend},
            {"baseline_backend", "float"}};
  json rows = json::array({federated});
  json not_beaten = json::array();
  const bool comparable = federated.contains("heldout_loss");
  for (json& row : locals) {
    if (comparable && row.contains("heldout_loss") &&
        !(federated["heldout_loss"].get<double>() < row["heldout_loss"].get<double>())) {
      not_beaten.push_back(row["name"]);
    }
    rows.push_back(std::move(row));
  }
  b["rows"] = std::move(rows);
  b["comparable"] = comparable;
  b["federated_beats_every_local"] = comparable && not_beaten.empty();
  b["not_beaten_by"] = std::move(not_beaten);
  base::write_file_atomic(file, b.dump(2) + "\n");
  std::fprintf(out, "%sbaseline: %s\n", baseline_table(b).c_str(), file.c_str());
  return b;
}

}  // namespace fedsim
