#include "participant/progress.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/atomic_file.h"

namespace participant {
namespace {

constexpr size_t kMaxProgressBytes = 1 << 16;  // a progress file is ~150 bytes

}  // namespace

std::string progress_json(const TrainingProgress& p) {
  const auto finite = [](double v) { return std::isfinite(v) ? v : 0.0; };
  const nlohmann::json j = {{"round", p.round},
                            {"step", p.step},
                            {"steps", p.steps},
                            {"tokens", p.tokens},
                            {"tokens_per_s", finite(p.tokens_per_s)},
                            {"eta_s", finite(p.eta_s)},
                            {"phase", p.phase}};
  return j.dump();
}

std::optional<TrainingProgress> parse_progress(std::string_view text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  const auto field = [&](const char* name) -> const nlohmann::json* {
    const auto it = j.find(name);
    return it == j.end() ? nullptr : &*it;
  };
  const nlohmann::json* round = field("round");
  const nlohmann::json* step = field("step");
  const nlohmann::json* steps = field("steps");
  const nlohmann::json* tokens = field("tokens");
  const nlohmann::json* rate = field("tokens_per_s");
  const nlohmann::json* eta = field("eta_s");
  const nlohmann::json* phase = field("phase");
  for (const nlohmann::json* n : {round, step, steps, tokens}) {
    if (n == nullptr || !n->is_number_integer() || n->get<int64_t>() < 0) return std::nullopt;
  }
  for (const nlohmann::json* n : {rate, eta}) {
    if (n == nullptr || !n->is_number()) return std::nullopt;
  }
  if (phase == nullptr || !phase->is_string()) return std::nullopt;
  TrainingProgress p;
  p.round = round->get<uint32_t>();
  p.step = step->get<int64_t>();
  p.steps = steps->get<int64_t>();
  p.tokens = tokens->get<int64_t>();
  p.tokens_per_s = rate->get<double>();
  p.eta_s = eta->get<double>();
  p.phase = phase->get<std::string>();
  if (p.phase != "training" && p.phase != "uploading" && p.phase != "idle") return std::nullopt;
  return p;
}

std::optional<TrainingProgress> read_progress(const std::filesystem::path& file) {
  // C stdio, not a stream: a directory or a read error is a short read here, never an exception.
  std::FILE* in = std::fopen(file.c_str(), "rb");
  if (in == nullptr) return std::nullopt;
  std::string text;
  char buf[4096];
  size_t n = 0;
  while (text.size() < kMaxProgressBytes && (n = std::fread(buf, 1, sizeof buf, in)) > 0) {
    text.append(buf, n);
  }
  const bool failed = std::ferror(in) != 0;
  std::fclose(in);
  if (failed || text.size() >= kMaxProgressBytes) return std::nullopt;
  return parse_progress(text);
}

void write_progress(const std::filesystem::path& file, const TrainingProgress& p) {
  base::write_file_atomic(file, progress_json(p) + "\n");
}

}  // namespace participant
