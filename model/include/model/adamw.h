// AdamW: Adam with decoupled weight decay, step for step as PyTorch's torch.optim.AdamW
// (amsgrad=False, maximize=False). For each parameter p with gradient g at its step t (1-based):
//
//   p  <- p * (1 - lr * weight_decay)
//   m  <- beta1 * m + (1 - beta1) * g
//   v  <- beta2 * v + (1 - beta2) * g^2
//   p  <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//
// m and v are float32 as in PyTorch; each element's update is computed in double and rounded
// once, so results agree with PyTorch to float32 rounding, not bit for bit.
//
//   model::AdamW opt({.lr = 2e-4});
//   opt.set_lr(schedule.lr(2e-4, step));                  // optional, see lr_schedule.h
//   opt.step({{"layers.0.q_proj.lora_A", a, grad_a}, {"layers.0.q_proj.lora_B", b, grad_b}});
//
// Parameters are named flat float arrays; each has its own state, created at its first step
// (so, as in PyTorch, a parameter first stepped later starts its own t at 1).
#pragma once

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace model {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

// Throws model::ModelError unless lr >= 0, eps >= 0, weight_decay >= 0 and both betas lie in
// [0, 1), the checks PyTorch makes.
void validate_adamw_options(const AdamWOptions& options);

// One parameter to update: its values (updated in place) and its gradient, of equal size.
struct ParameterGradient {
  std::string name;
  std::span<float> values;
  std::span<const float> gradient;
};

// The optimizer state of one parameter, as PyTorch keeps it: "step", "exp_avg", "exp_avg_sq".
struct AdamWParameterState {
  int64_t step = 0;
  std::vector<float> exp_avg;
  std::vector<float> exp_avg_sq;

  bool operator==(const AdamWParameterState&) const = default;
};

class AdamW {
 public:
  explicit AdamW(const AdamWOptions& options = {});

  // One update of every listed parameter. Throws model::ModelError, before changing anything, for
  // a duplicate or empty name, values and gradient of different sizes, or a size that differs
  // from the parameter's existing state.
  void step(std::span<const ParameterGradient> parameters);
  void step(std::initializer_list<ParameterGradient> parameters) {
    step(std::span<const ParameterGradient>(parameters.begin(), parameters.size()));
  }

  const AdamWOptions& options() const { return options_; }
  double lr() const { return options_.lr; }
  // Sets the learning rate of the next steps (a schedule calls this before each step).
  // Throws model::ModelError for a negative or non-finite lr.
  void set_lr(double lr);

  // Calls of step() so far.
  int64_t steps_taken() const { return steps_taken_; }
  const std::map<std::string, AdamWParameterState>& state() const { return state_; }

  // Replaces the whole state (a restored checkpoint). Throws model::ModelError for a negative step
  // or exp_avg and exp_avg_sq of different sizes.
  void load_state(int64_t steps_taken, std::map<std::string, AdamWParameterState> state);

 private:
  AdamWOptions options_;
  int64_t steps_taken_ = 0;
  std::map<std::string, AdamWParameterState> state_;
};

// Checkpoint file of an optimizer: a safetensors file with F32 tensors "{name}.exp_avg" and
// "{name}.exp_avg_sq" (one-dimensional) per parameter and metadata "format" = "fedlora-adamw",
// "options" (lr, betas, eps, weight_decay as JSON), "steps_taken" and "step" (JSON object name ->
// step). Written through a temporary file renamed into place.
void save_adamw(const std::filesystem::path& path, const AdamW& optimizer);
// Reads a file of save_adamw. Throws model::ModelError naming the file for a missing or malformed
// file, a wrong "format", bad options, a parameter lacking one of its two tensors, or an
// unknown tensor.
AdamW load_adamw(const std::filesystem::path& path);

}  // namespace model
