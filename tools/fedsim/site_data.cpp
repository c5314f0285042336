#include "site_data.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string_view>

#include "base/atomic_file.h"
#include "model/dataset.h"
#include "model/error.h"
#include "model/llama_config.h"
#include "model/tokenizer.h"

namespace fedsim {
namespace fs = std::filesystem;
namespace {

constexpr size_t kMaxSiteIdChars = 64;
constexpr std::string_view kHeldoutSuffix = ".heldout.jsonl";
constexpr std::string_view kMcqSuffix = ".mcq.jsonl";
constexpr std::string_view kTrainSuffix = ".jsonl";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

void check_site_id(const std::string& id, const fs::path& file) {
  const bool ok =
      !id.empty() && id.size() <= kMaxSiteIdChars && id != "." && id != ".." &&
      std::all_of(id.begin(), id.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-';
      });
  if (!ok) {
    throw SiteDataError(file.string() +
                        ": a site's name (the file name before .jsonl) must be 1 to 64 letters, "
                        "digits, '.', '_' or '-'");
  }
}

int64_t count_windowed(const std::vector<std::string>& texts, const model::Tokenizer& tokenizer,
                        int64_t seq_len) {
  int64_t n = 0;
  for (const auto& text : texts) {
    // BOS + tokens + EOS, as TextDataset builds a record before its windows.
    if (static_cast<int64_t>(tokenizer.encode(text).size()) + 2 > seq_len) ++n;
  }
  return n;
}

}  // namespace

std::unique_ptr<model::Tokenizer> check_model(const fs::path& model_dir, int64_t seq_len) {
  try {
    const model::LlamaConfig config = model::load_llama_config(model_dir);
    if (seq_len > config.max_position_embeddings) {
      throw SiteDataError("--seq-len " + std::to_string(seq_len) +
                          " is beyond the model's context (" + model_dir.string() +
                          ": max_position_embeddings " +
                          std::to_string(config.max_position_embeddings) + ")");
    }
    if (std::string(model::tokenizer_kind(model_dir)) == "byte") {
      std::fprintf(stderr,
                   "fedsim: warning: %s has neither tokenizer.model nor tokenizer.json: the sites "
                   "use the byte tokenizer\n",
                   model_dir.c_str());
    }
    return model::load_tokenizer(model_dir, config.vocab_size);
  } catch (const model::ModelError& e) {
    throw SiteDataError(std::string("--model: ") + e.what());
  }
}

std::vector<SiteFiles> discover_sites(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw SiteDataError("--data " + dir.string() + ": not a directory");
  std::map<std::string, SiteFiles> sites;
  std::vector<fs::path> extras;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || !ends_with(name, kTrainSuffix)) continue;
    if (ends_with(name, kHeldoutSuffix) || ends_with(name, kMcqSuffix)) {
      extras.push_back(entry.path());
      continue;
    }
    const std::string id = name.substr(0, name.size() - kTrainSuffix.size());
    check_site_id(id, entry.path());
    sites[id] = {id, entry.path(), {}, {}};
  }
  if (ec) throw SiteDataError("--data " + dir.string() + ": " + ec.message());
  for (const auto& p : extras) {
    const std::string name = p.filename().string();
    const bool heldout = ends_with(name, kHeldoutSuffix);
    const std::string id =
        name.substr(0, name.size() - (heldout ? kHeldoutSuffix : kMcqSuffix).size());
    const auto it = sites.find(id);
    if (it == sites.end()) {
      throw SiteDataError(p.string() + ": no training file " + id + ".jsonl beside it");
    }
    (heldout ? it->second.heldout : it->second.mcq) = p;
  }
  if (sites.empty()) {
    throw SiteDataError("--data " + dir.string() +
                        ": no site files (one NAME.jsonl per site, a \"text\" field per line)");
  }
  std::vector<SiteFiles> out;
  for (auto& [id, site] : sites) out.push_back(std::move(site));
  return out;
}

SiteSummary check_site(const SiteFiles& site, const model::Tokenizer& tokenizer, int64_t seq_len) {
  SiteSummary s;
  try {
    const auto train = model::read_jsonl_texts(site.train);
    s.notes = static_cast<int64_t>(train.size());
    s.windowed = count_windowed(train, tokenizer, seq_len);
    if (!site.heldout.empty()) {
      const auto heldout = model::read_jsonl_texts(site.heldout);
      s.heldout_notes = static_cast<int64_t>(heldout.size());
      s.windowed += count_windowed(heldout, tokenizer, seq_len);
    }
    if (!site.mcq.empty())
      s.questions = static_cast<int64_t>(model::read_mcq_jsonl(site.mcq).size());
  } catch (const model::ModelError& e) {
    throw SiteDataError("site " + site.id + ": " + e.what());
  }
  return s;
}

SiteFiles split_heldout(const SiteFiles& site, const fs::path& out_dir) {
  const auto texts = model::read_jsonl_texts(site.train);
  if (texts.size() < 10) return site;
  std::string train, heldout;
  for (size_t i = 0; i < texts.size(); ++i) {
    ((i + 1) % 10 == 0 ? heldout : train) += nlohmann::json{{"text", texts[i]}}.dump() + "\n";
  }
  SiteFiles out = site;
  out.train = out_dir / (site.id + ".jsonl");
  out.heldout = out_dir / (site.id + ".heldout.jsonl");
  fs::create_directories(out_dir);
  base::write_file_atomic(out.train, train);
  base::write_file_atomic(out.heldout, heldout);
  return out;
}

}  // namespace fedsim
