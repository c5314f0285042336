// The training engine: seeded determinism, held-out loss going down, gradient accumulation,
// the learning-rate schedule and weight decay reaching AdamW, FFA-LoRA, the per-example
// gradient hook, evaluation, MCQ scoring and the LoRA <-> PEFT conversion.
#include "model/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "model/byte_tokenizer.h"
#include "model/error.h"
#include "model/evaluation.h"
#include "model/float_backend.h"
#include "model/llama_model.h"
#include "model/lora_peft.h"
#include "model/random_model.h"
#include "model/synthetic_notes.h"
#include "test_util.h"

namespace {

using model::LoraParams;
using model::ProjectionId;

// Hidden 64, 2 layers, 4 query heads sharing 2 key/value heads, byte vocabulary.
model::LlamaConfig tiny_config() {
  model::LlamaConfig c;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 300;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-5;
  return c;
}

// A random model as `fedctl make-model` writes it, and synthetic notes of one site.
class Trainer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto path = std::filesystem::path(::testing::TempDir()) /
                      ("fedlora_trainer_model_" + std::to_string(::getpid()));
    model::write_random_llama(path, tiny_config(), {.seed = 11});
    weights_ = new std::shared_ptr<const model::LlamaWeights>(
        std::make_shared<const model::LlamaWeights>(model::load_llama_weights(path)));
    std::filesystem::remove_all(path);
    model::SyntheticNoteGenerator notes(5);
    std::vector<std::string> train, heldout;
    for (int i = 0; i < 48; ++i) train.push_back(notes.site_note(0).text);
    for (int i = 0; i < 8; ++i) heldout.push_back(notes.site_note(0).text);
    const model::ByteTokenizer tokenizer(300);
    train_ = new model::TextDataset(train, tokenizer, kSeqLen);
    heldout_ = new model::TextDataset(heldout, tokenizer, kSeqLen);
  }
  static void TearDownTestSuite() {
    delete weights_;
    delete train_;
    delete heldout_;
  }

  static std::unique_ptr<model::LlamaModel> float_model() {
    return std::make_unique<model::LlamaModel>(*weights_,
                                               std::make_unique<model::FloatBackend>(*weights_));
  }
  static model::TrainingOptions options() {
    model::TrainingOptions o;
    o.lora.rank = 4;
    o.lora.alpha = 8;
    o.adamw.lr = 5e-3;
    o.steps = 10;
    o.batch_size = 4;
    o.seed = 3;
    return o;
  }

  static constexpr int64_t kSeqLen = 24;
  static std::shared_ptr<const model::LlamaWeights>* weights_;
  static model::TextDataset* train_;
  static model::TextDataset* heldout_;
};

std::shared_ptr<const model::LlamaWeights>* Trainer::weights_ = nullptr;
model::TextDataset* Trainer::train_ = nullptr;
model::TextDataset* Trainer::heldout_ = nullptr;

// max |a - b| over every matrix, and max |b|.
struct Difference {
  double max_diff = 0;
  double max_abs = 0;
};
Difference difference(const LoraParams& a, const LoraParams& b) {
  Difference d;
  for (const ProjectionId id : b.ids()) {
    const auto& pa = a.at(id);
    const auto& pb = b.at(id);
    EXPECT_EQ(pa.a.size(), pb.a.size());
    if (pb.a.size() != 0) {
      d.max_diff = std::max(d.max_diff, double((pa.a - pb.a).cwiseAbs().maxCoeff()));
      d.max_abs = std::max(d.max_abs, double(pb.a.cwiseAbs().maxCoeff()));
    }
    d.max_diff = std::max(d.max_diff, double((pa.b - pb.b).cwiseAbs().maxCoeff()));
    d.max_abs = std::max(d.max_abs, double(pb.b.cwiseAbs().maxCoeff()));
  }
  return d;
}

// Each record's first window, as a dataset of its own.
std::vector<std::vector<int32_t>> first_windows(const model::TextDataset& data) {
  std::vector<std::vector<int32_t>> out;
  for (int64_t i = 0; i < data.size(); ++i) {
    const auto w = data.window(i, 0);
    out.emplace_back(w.begin(), w.end());
  }
  return out;
}

bool identical(const LoraParams& a, const LoraParams& b) {
  if (a.ids() != b.ids()) return false;
  for (const ProjectionId id : a.ids()) {
    if (a.at(id).a != b.at(id).a || a.at(id).b != b.at(id).b) return false;
  }
  return true;
}

TEST_F(Trainer, SeedFixesInitialisationAndBatchOrder) {
  auto llama = float_model();
  model::LoraTrainer a(*llama, *train_, options());
  model::LoraTrainer b(*llama, *train_, options());
  model::TrainingOptions other = options();
  other.seed = 4;
  model::LoraTrainer c(*llama, *train_, other);

  // The initialisation is init_lora_params on the seed's LoRA stream.
  std::mt19937_64 rng(model::lora_init_seed(3));
  EXPECT_TRUE(identical(a.adapter(), model::init_lora_params(tiny_config(), options().lora, rng)));
  EXPECT_FALSE(identical(a.adapter(), c.adapter()));
  for (int s = 0; s < 3; ++s) {
    const auto ra = a.step();
    const auto rb = b.step();
    EXPECT_EQ(ra.loss, rb.loss);
    EXPECT_EQ(ra.step, s + 1);
    EXPECT_EQ(ra.examples, 4);
    c.step();
  }
  EXPECT_TRUE(identical(a.adapter(), b.adapter()));
  EXPECT_FALSE(identical(a.adapter(), c.adapter()));
  EXPECT_NE(model::lora_init_seed(3), model::batch_order_seed(3));
}

TEST_F(Trainer, TrainingLowersHeldOutLoss) {
  auto llama = float_model();
  model::TrainingOptions o = options();
  o.steps = 40;
  o.batch_size = 8;
  o.lora.targets = model::parse_lora_targets("q,k,v,o,gate,up,down");
  // The notes' first windows: a random base model learns their openings within 40 steps (a
  // note's later windows need a pretrained base; the fedsim tests train on every window).
  const model::TextDataset train(first_windows(*train_));
  const model::TextDataset heldout(first_windows(*heldout_));
  model::LoraTrainer trainer(*llama, train, o);
  const model::EvalResult before = trainer.evaluate(heldout, 8);
  // B starts at zero: the adapted model is the base model.
  EXPECT_EQ(before.loss, model::evaluate_loss(*llama, heldout, nullptr, 8).loss);
  double first_train = 0, last_train = 0;
  for (int s = 0; s < o.steps; ++s) {
    const auto r = trainer.step();
    if (s == 0) first_train = r.loss;
    last_train = r.loss;
  }
  const model::EvalResult after = trainer.evaluate(heldout, 8);
  std::printf("held-out loss %.4f -> %.4f after %lld steps (train %.4f -> %.4f)\n", before.loss,
              after.loss, static_cast<long long>(o.steps), first_train, last_train);
  EXPECT_NEAR(before.loss, std::log(300.0), 0.05);  // a random model is close to uniform
  EXPECT_LT(after.loss, 0.9 * before.loss);
  EXPECT_LT(last_train, first_train);
  EXPECT_EQ(after.perplexity, std::exp(after.loss));
}

// K micro-batches of B take the same step as one batch of K * B: the same examples (the
// effective batch is drawn whole), the same token-weighted mean loss, the same gradient up to
// float rounding. Tolerance: 1e-5 of the largest gradient element (float32 GEMMs over 2 or 4
// columns blocks instead of 8, and K weighted partial sums).
TEST_F(Trainer, GradientAccumulationEqualsTheLargerBatch) {
  auto llama = float_model();
  model::TrainingOptions whole = options();
  whole.batch_size = 8;
  model::LoraTrainer reference(*llama, *train_, whole);
  const auto r0 = reference.step();
  for (const int64_t k : {2, 4}) {
    model::TrainingOptions split = options();
    split.batch_size = 8 / k;
    split.grad_accum = k;
    model::LoraTrainer trainer(*llama, *train_, split);
    const auto r = trainer.step();
    EXPECT_EQ(r.examples, 8);
    EXPECT_EQ(r.tokens, r0.tokens);
    EXPECT_EQ(r.predicted_tokens, r0.predicted_tokens);
    EXPECT_NEAR(r.loss, r0.loss, 1e-6 * r0.loss) << k;
    const Difference d = difference(trainer.last_gradient(), reference.last_gradient());
    std::printf("grad-accum %lld x %lld vs batch 8: max gradient difference %.3g of %.3g\n",
                static_cast<long long>(k), static_cast<long long>(8 / k), d.max_diff, d.max_abs);
    ASSERT_GT(d.max_abs, 0);
    EXPECT_LE(d.max_diff, 1e-5 * d.max_abs) << k;
  }
}

TEST_F(Trainer, ScheduleAndWeightDecayReachTheOptimizer) {
  auto llama = float_model();
  model::TrainingOptions o = options();
  o.schedule = model::LrScheduleKind::kLinear;
  o.warmup_steps = 2;
  o.steps = 6;
  o.adamw.weight_decay = 0.5;
  model::LoraTrainer trainer(*llama, *train_, o);
  const LoraParams init = trainer.adapter();
  const model::LrSchedule schedule{model::LrScheduleKind::kLinear, 2, 6};
  for (int64_t s = 0; s < o.steps; ++s) {
    const auto r = trainer.step();
    EXPECT_EQ(r.lr, schedule.lr(o.adamw.lr, s)) << s;
    EXPECT_EQ(trainer.optimizer().lr(), r.lr) << s;
    EXPECT_EQ(trainer.optimizer().steps_taken(), s + 1);
    // Warmup starts at lr 0: the first step changes nothing, not even by weight decay.
    if (s == 0) {
      EXPECT_TRUE(identical(trainer.adapter(), init));
    }
  }
  EXPECT_FALSE(identical(trainer.adapter(), init));
  EXPECT_EQ(trainer.optimizer().lr(), schedule.lr(o.adamw.lr, 5));

  // With B = 0, A's first gradient is exactly 0, so AdamW's first step only decays A:
  // a <- a * (1 - lr * weight_decay), rounded once.
  model::TrainingOptions constant = options();
  constant.adamw.weight_decay = 0.5;
  model::LoraTrainer decayed(*llama, *train_, constant);
  const LoraParams before = decayed.adapter();
  decayed.step();
  const double factor = 1.0 - constant.adamw.lr * 0.5;
  for (const ProjectionId id : before.ids()) {
    const auto& a0 = before.at(id).a;
    const auto& a1 = decayed.adapter().at(id).a;
    EXPECT_EQ(decayed.last_gradient().at(id).a.cwiseAbs().maxCoeff(), 0.0f);
    for (int64_t i = 0; i < a0.size(); ++i) {
      ASSERT_EQ(a1.data()[i], static_cast<float>(static_cast<double>(a0.data()[i]) * factor));
    }
    EXPECT_GT(decayed.adapter().at(id).b.cwiseAbs().maxCoeff(), 0.0f);
  }
}

TEST_F(Trainer, FfaLoraLeavesAUnchanged) {
  auto llama = float_model();
  model::TrainingOptions o = options();
  o.lora.freeze_a = true;
  o.adamw.weight_decay = 0.1;
  model::LoraTrainer trainer(*llama, *train_, o);
  const LoraParams init = trainer.adapter();
  for (int s = 0; s < 5; ++s) trainer.step();
  for (const ProjectionId id : init.ids()) {
    EXPECT_EQ(trainer.adapter().at(id).a, init.at(id).a) << model::projection_name(id);
    EXPECT_NE(trainer.adapter().at(id).b, init.at(id).b) << model::projection_name(id);
    EXPECT_EQ(trainer.last_gradient().at(id).a.size(), 0);
  }
  for (const auto& [name, state] : trainer.optimizer().state()) {
    EXPECT_TRUE(name.ends_with(".lora_B")) << name;
  }
  EXPECT_EQ(trainer.optimizer().state().size(), init.ids().size());
}

// Records what the hook sees and passes it on to the mean reducer.
class RecordingReducer : public model::MeanGradientReducer {
 public:
  void add(std::span<const LoraParams> per_example, std::span<const int64_t> predicted,
           LoraParams& sum) override {
    sizes.push_back(static_cast<int64_t>(per_example.size()));
    for (const int64_t p : predicted) predicted_sum += p;
    for (const auto& g : per_example) has_a = has_a && g.at(g.ids()[0]).a.size() != 0;
    model::MeanGradientReducer::add(per_example, predicted, sum);
  }
  void finish(LoraParams& sum, int64_t examples, int64_t predicted) override {
    finished_examples += examples;
    finished_predicted += predicted;
    model::MeanGradientReducer::finish(sum, examples, predicted);
  }
  std::vector<int64_t> sizes;
  int64_t predicted_sum = 0, finished_examples = 0, finished_predicted = 0;
  bool has_a = true;
};

// A reducer that throws every gradient away (as if the noise drowned it).
class ZeroReducer : public model::GradientReducer {
 public:
  void add(std::span<const LoraParams>, std::span<const int64_t>, LoraParams&) override {}
  void finish(LoraParams& sum, int64_t, int64_t) override { sum.set_zero(); }
};

TEST_F(Trainer, GradientReducerSeesPerExampleGradientsBeforeTheSum) {
  auto llama = float_model();
  model::TrainingOptions o = options();
  o.batch_size = 3;
  o.grad_accum = 2;
  model::LoraTrainer plain(*llama, *train_, o);
  model::LoraTrainer hooked(*llama, *train_, o);
  RecordingReducer recorder;
  hooked.set_gradient_reducer(&recorder);
  const auto rp = plain.step();
  const auto rh = hooked.step();
  EXPECT_EQ(rh.loss, rp.loss);
  EXPECT_EQ(recorder.sizes, (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(recorder.predicted_sum, rp.predicted_tokens);
  EXPECT_EQ(recorder.finished_predicted, rp.predicted_tokens);
  EXPECT_EQ(recorder.finished_examples, 6);
  EXPECT_TRUE(recorder.has_a);
  // Rebuilt from per-example shares, the gradient is the batch gradient up to float rounding.
  const Difference d = difference(hooked.last_gradient(), plain.last_gradient());
  ASSERT_GT(d.max_abs, 0);
  EXPECT_LE(d.max_diff, 1e-5 * d.max_abs);

  // What the reducer returns is what the optimizer applies: a zero gradient and no weight
  // decay leave the adapter as it was.
  model::TrainingOptions no_decay = options();
  no_decay.adamw.weight_decay = 0;
  model::LoraTrainer zeroed(*llama, *train_, no_decay);
  ZeroReducer zero;
  zeroed.set_gradient_reducer(&zero);
  const LoraParams init = zeroed.adapter();
  zeroed.step();
  EXPECT_TRUE(identical(zeroed.adapter(), init));
}

TEST_F(Trainer, RefusesBadOptions) {
  auto llama = float_model();
  const auto refuses = [&](const model::TrainingOptions& o, const std::string& needle) {
    try {
      model::LoraTrainer t(*llama, *train_, o);
      ADD_FAILURE() << "accepted; expected: " << needle;
    } catch (const model::ModelError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  model::TrainingOptions o = options();
  o.batch_size = 25;
  o.grad_accum = 2;
  refuses(o, "the training set has 48");
  o = options();
  o.steps = 0;
  refuses(o, "steps");
  o = options();
  o.grad_accum = 0;
  refuses(o, "gradient accumulation");
  o = options();
  o.warmup_steps = -1;
  refuses(o, "warmup");
  o = options();
  o.lora.rank = 0;
  refuses(o, "rank");
  o = options();
  o.adamw.lr = -1;
  refuses(o, "lr");
}

TEST_F(Trainer, EvaluationIsTheTokenWeightedMeanWhateverTheBatching) {
  auto llama = float_model();
  std::mt19937_64 rng(9);
  LoraParams lora = model::init_lora_params(tiny_config(), options().lora, rng);
  for (const ProjectionId id : lora.ids()) lora.at(id).b.setConstant(0.05f);
  const model::EvalResult one = model::evaluate_loss(*llama, *heldout_, &lora, 1);
  const model::EvalResult three = model::evaluate_loss(*llama, *heldout_, &lora, 3);
  double total = 0;
  int64_t tokens = 0;
  // Every window of every record (the held-out notes are longer than kSeqLen tokens).
  const std::vector<model::RecordWindow> windows = heldout_->all_windows();
  EXPECT_GT(windows.size(), static_cast<size_t>(heldout_->size()));
  for (const model::RecordWindow& w : windows) {
    const model::TokenBatch b = heldout_->batch(std::span<const model::RecordWindow>(&w, 1));
    total += llama->loss(b, &lora) * static_cast<double>(b.total_tokens() - 1);
    tokens += b.total_tokens() - 1;
  }
  EXPECT_EQ(one.tokens, tokens);
  EXPECT_EQ(one.sequences, heldout_->size());
  EXPECT_NEAR(one.loss, total / static_cast<double>(tokens), 1e-12);
  EXPECT_NEAR(three.loss, one.loss, 1e-6 * one.loss);
  EXPECT_EQ(three.tokens, one.tokens);
  EXPECT_THROW(model::evaluate_loss(*llama, *heldout_, &lora, 0), model::ModelError);
}

TEST_F(Trainer, McqScoresOptionTokensGivenTheQuestion) {
  auto llama = float_model();
  const model::ByteTokenizer tokenizer(300);
  const model::McqQuestion q{"Which class is apixaban?", {"anticoagulant", "statin", "x"}, 1};
  const std::vector<double> scores = model::option_log_likelihoods(*llama, q, tokenizer, nullptr);
  ASSERT_EQ(scores.size(), 3u);
  // Each option alone: the log-probabilities of the bytes of " " + option after the question.
  for (size_t i = 0; i < 3; ++i) {
    std::vector<int32_t> ids = {tokenizer.bos_id()};
    for (const int32_t t : tokenizer.encode(q.question + " " + q.options[i])) ids.push_back(t);
    const model::Matrix logits = llama->forward(model::TokenBatch({ids}));
    const size_t first = 1 + q.question.size();  // the space that starts the continuation
    double ll = 0;
    for (size_t p = first - 1; p + 1 < ids.size(); ++p) {
      const Eigen::RowVectorXd row = logits.row(static_cast<int64_t>(p)).cast<double>();
      ll += row(ids[p + 1]) - std::log((row.array() - row.maxCoeff()).exp().sum()) - row.maxCoeff();
    }
    EXPECT_NEAR(scores[i], ll, 1e-4 * std::fabs(ll)) << i;
  }
  // Accuracy counts the questions whose answer scores highest.
  std::vector<model::McqQuestion> questions = {q, q, q};
  questions[0].answer = 0;
  questions[2].answer = 2;
  // The score is per byte of " " + option (acc_norm): the best option by that measure is the one
  // counted right, whatever the plain sums say.
  size_t best = 0;
  const auto per_byte = [&](size_t i) {
    return scores[i] / static_cast<double>(q.options[i].size() + 1);
  };
  for (size_t i = 1; i < 3; ++i) best = per_byte(i) > per_byte(best) ? i : best;
  const model::McqResult r = model::evaluate_mcq(*llama, questions, tokenizer, nullptr);
  EXPECT_EQ(r.questions, 3);
  EXPECT_EQ(r.correct, 1);
  EXPECT_DOUBLE_EQ(r.accuracy, 1.0 / 3.0);
  for (size_t i = 0; i < 3; ++i) {
    model::McqQuestion one = q;
    one.answer = static_cast<int64_t>(i);
    EXPECT_EQ(model::evaluate_mcq(*llama, std::span(&one, 1), tokenizer, nullptr).correct,
              i == best ? 1 : 0)
        << i;
  }
  // A long option whose every byte is likely beats a short one whose single byte is not.
  const model::McqQuestion lengths{"", {"a", "aaaaaaaa"}, 1};
  const std::vector<double> ll = model::option_log_likelihoods(*llama, lengths, tokenizer, nullptr);
  EXPECT_EQ(model::evaluate_mcq(*llama, std::span(&lengths, 1), tokenizer, nullptr).correct,
            ll[1] / 9.0 > ll[0] / 2.0 ? 1 : 0);
}

TEST_F(Trainer, AdapterRoundTripsThroughPeftFiles) {
  auto llama = float_model();
  model::TrainingOptions o = options();
  o.lora.targets = {model::ProjectionKind::kV, model::ProjectionKind::kQ,
                    model::ProjectionKind::kDown};
  model::LoraTrainer trainer(*llama, *train_, o);
  for (int s = 0; s < 3; ++s) trainer.step();
  const model::PeftAdapter peft = model::lora_to_peft(trainer.adapter(), tiny_config(), "m");
  EXPECT_EQ(peft.r, 4);
  EXPECT_EQ(peft.lora_alpha, 8);
  EXPECT_EQ(peft.base_model_name_or_path, "m");
  EXPECT_EQ(peft.target_modules, (std::vector<std::string>{"v_proj", "q_proj", "down_proj"}));
  EXPECT_EQ(peft.weights.size(), 6u);
  const auto& down = peft.weights.at({1, "down_proj"});
  EXPECT_EQ(down.d_in, 128);
  EXPECT_EQ(down.d_out, 64);
  const auto& pair = trainer.adapter().at({model::ProjectionKind::kDown, 1});
  EXPECT_EQ(down.b[5], pair.b.data()[5]);  // B row-major d_out x r, as PEFT stores it
  EXPECT_EQ(down.a[130], pair.a(1, 2));    // A row-major r x d_in

  model_test::TempDir dir;
  model::write_peft_adapter(dir / "adapter", peft);
  const LoraParams back =
      model::peft_to_lora(model::read_peft_adapter(dir / "adapter", tiny_config()), tiny_config());
  EXPECT_TRUE(identical(back, trainer.adapter()));
  EXPECT_EQ(back.config().scaling(), trainer.adapter().config().scaling());
  const model::TokenBatch batch({{1, 40, 50, 60, 70}});
  EXPECT_EQ(llama->forward(batch, nullptr, &back),
            llama->forward(batch, nullptr, &trainer.adapter()));

  // Gradients of a frozen A are not an adapter; an adapter of another model does not fit.
  EXPECT_THROW(model::lora_to_peft(LoraParams(tiny_config(), o.lora, false), tiny_config()),
               model::ModelError);
  model::LlamaConfig other = tiny_config();
  other.num_hidden_layers = 3;
  EXPECT_THROW(model::peft_to_lora(peft, other), model::ModelError);
}

TEST(LoraTargets, ParsesShortAndLongNames) {
  using model::ProjectionKind;
  EXPECT_EQ(model::parse_lora_targets("q,v"),
            (std::vector<ProjectionKind>{ProjectionKind::kQ, ProjectionKind::kV}));
  EXPECT_EQ(model::parse_lora_targets("down_proj,gate,o"),
            (std::vector<ProjectionKind>{ProjectionKind::kDown, ProjectionKind::kGate,
                                         ProjectionKind::kO}));
  EXPECT_THROW(model::parse_lora_targets(""), model::ModelError);
  EXPECT_THROW(model::parse_lora_targets("q,,v"), model::ModelError);
  EXPECT_THROW(model::parse_lora_targets("q,q_proj"), model::ModelError);
  EXPECT_THROW(model::parse_lora_targets("lm_head"), model::ModelError);
  EXPECT_THROW(model::parse_lora_targets("_proj"), model::ModelError);
  EXPECT_EQ(model::projection_module_name(ProjectionKind::kGate), "gate_proj");
}

}  // namespace
