// What `fedctl train` shows while it trains: the progress line on stderr and the --log-json
// lines, as a model::TrainingObserver of model::run_training.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

#include "model/evaluation.h"
#include "model/trainer.h"
#include "model/training_run.h"

namespace fedctl {

// "1h02m" or "3m07s".
inline std::string duration_text(double seconds) {
  const auto s = static_cast<int64_t>(std::llround(seconds));
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  }
  return buf;
}

// The progress line on stderr: rewritten in place on a terminal, otherwise one line at the
// first and last step and at most every 10 seconds in between.
class Progress {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Progress(int64_t steps) : steps_(steps), tty_(::isatty(2) != 0) {}

  // `epsilon`: DP-SGD's epsilon spent so far (NaN without DP: not shown).
  void step(const model::TrainStepReport& r, double tokens_per_s, double elapsed,
            double epsilon = std::nan("")) {
    const bool due = r.step == 1 || r.step == steps_ ||
                     std::chrono::duration<double>(Clock::now() - last_).count() >= 10;
    if (!tty_ && !due) return;
    const double eta = elapsed / static_cast<double>(r.step) * static_cast<double>(steps_ - r.step);
    char dp[48] = "";
    if (!std::isnan(epsilon)) std::snprintf(dp, sizeof dp, "  epsilon %.3f", epsilon);
    std::fprintf(stderr, "%sstep %lld/%lld  loss %.4f  lr %.3g%s  %.0f tok/s  ETA %s%s",
                 tty_ ? "\r\033[K" : "", static_cast<long long>(r.step),
                 static_cast<long long>(steps_), r.loss, r.lr, dp, tokens_per_s,
                 duration_text(eta).c_str(), tty_ ? "" : "\n");
    std::fflush(stderr);
    last_ = Clock::now();
  }

  void evaluation(int64_t step, const model::EvalResult& e) {
    std::fprintf(stderr, "%sstep %lld: held-out loss %.4f, perplexity %.3f (%lld tokens)\n",
                 tty_ ? "\r\033[K" : "", static_cast<long long>(step), e.loss, e.perplexity,
                 static_cast<long long>(e.tokens));
  }

  // Restarts the clock of the 10-second interval (when training starts).
  void restart() { last_ = Clock::now(); }

  void finish() {
    if (tty_) std::fputc('\n', stderr);
  }

 private:
  int64_t steps_;
  bool tty_;
  Clock::time_point last_ = Clock::now();
};

// The progress line, and with a log path one JSON object per step: step, train_loss, lr,
// tokens, tokens_per_s, epsilon with DP-SGD, heldout_loss and heldout_perplexity on evaluation
// steps (step 0: the evaluation before training, train_loss null).
class TrainReporter : public model::TrainingObserver {
 public:
  // Opens (truncates) `log_path` if there is one; throws std::runtime_error if it cannot.
  TrainReporter(int64_t steps, bool dp, const std::optional<std::string>& log_path)
      : progress_(steps), dp_(dp), log_path_(log_path.value_or("")) {
    if (!log_path) return;
    log_.open(*log_path, std::ios::trunc);
    if (!log_) throw std::runtime_error(*log_path + ": cannot open for writing");
  }

  void on_step(const model::TrainingStepProgress& p) override {
    const model::TrainStepReport& r = p.report;
    line_ = {{"step", r.step},
             {"train_loss", r.loss},
             {"lr", r.lr},
             {"tokens", r.tokens},
             {"tokens_per_s", static_cast<double>(r.tokens) / p.step_seconds}};
    if (dp_) line_["epsilon"] = p.epsilon;
    progress_.step(r, static_cast<double>(p.tokens_so_far) / p.elapsed_seconds, p.elapsed_seconds,
                   p.epsilon);
  }

  void on_evaluation(int64_t step, const model::EvalResult& e) override {
    if (step == 0) line_ = {{"step", 0}, {"train_loss", nullptr}};
    progress_.evaluation(step, e);
    line_["heldout_loss"] = e.loss;
    line_["heldout_perplexity"] = e.perplexity;
  }

  void on_step_end(int64_t /*step*/) override {
    if (!log_.is_open()) return;
    log_ << line_.dump() << "\n";
    if (!log_.flush()) throw std::runtime_error(log_path_ + ": write failed");
  }

  // Right before the first step (or the evaluation before it).
  void begin() { progress_.restart(); }
  // After the last step.
  void finish() { progress_.finish(); }

 private:
  Progress progress_;
  bool dp_;
  std::string log_path_;
  std::ofstream log_;
  nlohmann::json line_;
};

}  // namespace fedctl
