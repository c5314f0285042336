#include "model/adamw.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

#include "model/error.h"
#include "model/safetensors_reader.h"
#include "model/safetensors_writer.h"

namespace model {
namespace {

constexpr char kFormat[] = "fedlora-adamw";
constexpr std::string_view kExpAvg = ".exp_avg";
constexpr std::string_view kExpAvgSq = ".exp_avg_sq";

std::string number(double x) {
  std::ostringstream s;
  s << x;
  return s.str();
}

}  // namespace

void validate_adamw_options(const AdamWOptions& o) {
  if (!(o.lr >= 0.0) || !std::isfinite(o.lr)) throw ModelError("AdamW: invalid lr " + number(o.lr));
  if (!(o.eps >= 0.0) || !std::isfinite(o.eps)) {
    throw ModelError("AdamW: invalid eps " + number(o.eps));
  }
  if (!(o.beta1 >= 0.0 && o.beta1 < 1.0)) throw ModelError("AdamW: invalid beta1 " + number(o.beta1));
  if (!(o.beta2 >= 0.0 && o.beta2 < 1.0)) throw ModelError("AdamW: invalid beta2 " + number(o.beta2));
  if (!(o.weight_decay >= 0.0) || !std::isfinite(o.weight_decay)) {
    throw ModelError("AdamW: invalid weight_decay " + number(o.weight_decay));
  }
}

AdamW::AdamW(const AdamWOptions& options) : options_(options) {
  validate_adamw_options(options_);
}

void AdamW::set_lr(double lr) {
  AdamWOptions o = options_;
  o.lr = lr;
  validate_adamw_options(o);
  options_ = o;
}

void AdamW::step(std::span<const ParameterGradient> parameters) {
  std::set<std::string_view> seen;
  for (const auto& p : parameters) {
    if (p.name.empty()) throw ModelError("AdamW: a parameter has an empty name");
    if (!seen.insert(p.name).second) throw ModelError("AdamW: parameter '" + p.name + "' listed twice");
    if (p.values.size() != p.gradient.size()) {
      throw ModelError("AdamW: parameter '" + p.name + "' has " + std::to_string(p.values.size()) +
                  " values but " + std::to_string(p.gradient.size()) + " gradient entries");
    }
    const auto it = state_.find(p.name);
    if (it != state_.end() && it->second.exp_avg.size() != p.values.size()) {
      throw ModelError("AdamW: parameter '" + p.name + "' has " + std::to_string(p.values.size()) +
                  " values, its state " + std::to_string(it->second.exp_avg.size()));
    }
  }

  const double lr = options_.lr, beta1 = options_.beta1, beta2 = options_.beta2;
  const double decay = 1.0 - lr * options_.weight_decay;
  for (const auto& p : parameters) {
    AdamWParameterState& s = state_[p.name];
    if (s.step == 0) {
      s.exp_avg.assign(p.values.size(), 0.0f);
      s.exp_avg_sq.assign(p.values.size(), 0.0f);
    }
    ++s.step;
    const double t = static_cast<double>(s.step);
    const double step_size = lr / (1.0 - std::pow(beta1, t));
    const double bias_correction2_sqrt = std::sqrt(1.0 - std::pow(beta2, t));
    for (size_t i = 0; i < p.values.size(); ++i) {
      const double g = p.gradient[i];
      s.exp_avg[i] = static_cast<float>(beta1 * s.exp_avg[i] + (1.0 - beta1) * g);
      s.exp_avg_sq[i] = static_cast<float>(beta2 * s.exp_avg_sq[i] + (1.0 - beta2) * g * g);
      const double denom =
          std::sqrt(static_cast<double>(s.exp_avg_sq[i])) / bias_correction2_sqrt + options_.eps;
      p.values[i] = static_cast<float>(static_cast<double>(p.values[i]) * decay -
                                       step_size * s.exp_avg[i] / denom);
    }
  }
  ++steps_taken_;
}

void AdamW::load_state(int64_t steps_taken, std::map<std::string, AdamWParameterState> state) {
  if (steps_taken < 0) throw ModelError("AdamW: negative step count " + std::to_string(steps_taken));
  for (const auto& [name, s] : state) {
    if (s.step < 0 || s.exp_avg.size() != s.exp_avg_sq.size()) {
      throw ModelError("AdamW: inconsistent state for parameter '" + name + "'");
    }
  }
  steps_taken_ = steps_taken;
  state_ = std::move(state);
}

void save_adamw(const std::filesystem::path& path, const AdamW& optimizer) {
  std::vector<TensorToWrite> tensors;
  nlohmann::json steps = nlohmann::json::object();
  for (const auto& [name, s] : optimizer.state()) {
    const auto n = static_cast<int64_t>(s.exp_avg.size());
    tensors.push_back({name + std::string(kExpAvg), DType::kF32, {n}, s.exp_avg});
    tensors.push_back({name + std::string(kExpAvgSq), DType::kF32, {n}, s.exp_avg_sq});
    steps[name] = s.step;
  }
  const AdamWOptions& o = optimizer.options();
  const nlohmann::json options = {{"lr", o.lr},
                                  {"betas", {o.beta1, o.beta2}},
                                  {"eps", o.eps},
                                  {"weight_decay", o.weight_decay}};
  write_safetensors(path, tensors,
                    {{"format", kFormat},
                     {"options", options.dump()},
                     {"steps_taken", std::to_string(optimizer.steps_taken())},
                     {"step", steps.dump()}});
}

AdamW load_adamw(const std::filesystem::path& path) {
  const SafetensorsReader file(path);
  const std::string where = path.string() + ": ";
  const auto& meta = file.metadata();
  const auto get = [&](const char* key) -> const std::string& {
    const auto it = meta.find(key);
    if (it == meta.end())
      throw ModelError(where + "not an AdamW checkpoint (no metadata '" + key + "')");
    return it->second;
  };
  if (get("format") != kFormat)
    throw ModelError(where + "format is '" + get("format") + "', not " + kFormat);

  AdamWOptions o;
  int64_t steps_taken = 0;
  nlohmann::json steps;
  try {
    const auto j = nlohmann::json::parse(get("options"));
    o.lr = j.at("lr").get<double>();
    o.beta1 = j.at("betas").at(0).get<double>();
    o.beta2 = j.at("betas").at(1).get<double>();
    o.eps = j.at("eps").get<double>();
    o.weight_decay = j.at("weight_decay").get<double>();
    steps_taken = nlohmann::json::parse(get("steps_taken")).get<int64_t>();
    steps = nlohmann::json::parse(get("step"));
    if (!steps.is_object()) throw ModelError("not an object");
  } catch (const ModelError&) {
    throw;
  } catch (const std::exception&) {
    throw ModelError(where + "malformed AdamW metadata");
  }
  AdamW optimizer(o);

  std::map<std::string, AdamWParameterState> state;
  for (const auto& info : file.tensors()) {
    const std::string& t = info.name;
    const bool sq = t.ends_with(kExpAvgSq);
    if (!sq && !t.ends_with(kExpAvg)) throw ModelError(where + "unknown tensor '" + t + "'");
    const std::string name = t.substr(0, t.size() - (sq ? kExpAvgSq : kExpAvg).size());
    if (!steps.contains(name) || !steps[name].is_number_integer()) {
      throw ModelError(where + "tensor '" + t + "' has no step count");
    }
    if (info.shape.size() != 1) throw ModelError(where + "tensor '" + t + "' is not one-dimensional");
    AdamWParameterState& s = state[name];
    s.step = steps[name].get<int64_t>();
    (sq ? s.exp_avg_sq : s.exp_avg) = file.read_f32(t);
  }
  for (const auto& [name, s] : state) {
    if (s.exp_avg.size() != s.exp_avg_sq.size() || !file.find(name + std::string(kExpAvg)) ||
        !file.find(name + std::string(kExpAvgSq))) {
      throw ModelError(where + "parameter '" + name + "' lacks exp_avg or exp_avg_sq");
    }
  }
  if (steps.size() != state.size())
    throw ModelError(where + "step counts of parameters without tensors");
  optimizer.load_state(steps_taken, std::move(state));
  return optimizer;
}

}  // namespace model
