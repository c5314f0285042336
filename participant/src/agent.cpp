// The participant agent's state (agent_impl.h): configuration, model, data, budget, DP seed,
// release ledger, cached delta and RLWE key, loaded or made in the state directory.
#include "participant/agent.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <algorithm>
#include <fstream>
#include <stdexcept>

#include "agent_impl.h"
#include "base/atomic_file.h"
#include "base/model_id.h"
#include "fhe/context.h"
#include "fhe/secret_key.h"
#include "model/tokenizer.h"
#include "protocol/log_format.h"

namespace participant {
namespace {

std::shared_ptr<spdlog::logger> console_logger(const std::string& name) {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto log = std::make_shared<spdlog::logger>(name, sink);
  protocol::use_log_format(*log);
  return log;
}

// The 32-byte secret seed of the DP streams: dp.seed in the state directory (64 hex digits,
// mode 0600), made from RAND_bytes on first start.
privacy::Seed load_or_make_seed(const std::filesystem::path& file) {
  if (std::filesystem::exists(file)) {
    std::ifstream in(file);
    std::string hex;
    in >> hex;
    return privacy::parse_seed_hex(hex);
  }
  privacy::Seed seed{};
  if (RAND_bytes(seed.data(), static_cast<int>(seed.size())) != 1) {
    throw std::runtime_error("RAND_bytes failed making the DP seed");
  }
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (const unsigned char b : seed) {
    hex += digits[b >> 4];
    hex += digits[b & 15];
  }
  hex += "\n";
  base::write_file_atomic(file, hex, 0600);
  OPENSSL_cleanse(hex.data(), hex.size());
  return seed;
}

}  // namespace

uint64_t coarsen_count(uint64_t n) {
  uint64_t unit = 1;
  while (n / unit >= 100) unit *= 10;
  return std::max<uint64_t>(1, n / unit * unit);
}

Agent::Impl::Impl(AgentConfig c) : config(std::move(c)) {
  log = config.log ? config.log : console_logger(config.site_id);
  check_config();
  open_state_dir();
  load_inputs();
  load_budget();
  load_state();
}

Agent::Impl::~Impl() {
  OPENSSL_cleanse(seed.data(), seed.size());
}

void Agent::Impl::check_config() {
  if (config.site_id.empty()) throw std::runtime_error("participant: a site id is required");
  if (config.state_dir.empty())
    throw std::runtime_error("participant: a state directory is required");
  if (config.backend != "remote" && config.backend != "encrypted" && config.backend != "float") {
    throw std::runtime_error("participant: backend must be remote, encrypted or float, got " +
                             config.backend);
  }
  if (config.model_id.empty()) config.model_id = base::default_model_id(config.model_dir);
}

void Agent::Impl::open_state_dir() {
  std::filesystem::create_directories(config.state_dir);
  std::filesystem::permissions(config.state_dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace);
  state_lock.emplace(base::DirLock::acquire(config.state_dir, "participant"));
}

void Agent::Impl::load_inputs() {
  // Offloaded, the decoder projections are never read into memory here (the workers hold
  // them), nor the embedding tables (lookups read the mapped checkpoint; the LM head is
  // quantized from the files): only the norms.
  model::WeightLoadOptions load;
  load.decoder_projections = config.backend != "remote";
  load.embeddings = config.backend != "remote";
  weights = std::make_shared<const model::LlamaWeights>(
      model::load_llama_weights(config.model_dir, load));
  const auto tokenizer = model::load_tokenizer(config.model_dir, weights->config.vocab_size);
  train.emplace(model::load_text_dataset(config.train_file, *tokenizer, config.seq_len));
  if (!config.heldout_file.empty()) {
    const model::TextDataset notes =
        model::load_text_dataset(config.heldout_file, *tokenizer, config.seq_len);
    heldout_records = notes.size();
    heldout.emplace(notes.window_sample(kHeldoutWindows));
  }
  model::LoraParams probe(weights->config, config.lora);  // validates the LoRA config
  (void)probe;
}

void Agent::Impl::load_budget() {
  budget_file = config.state_dir / "budget.json";
  if (!std::filesystem::exists(budget_file)) {
    budget.emplace(config.epsilon_max, config.delta);
    budget->save(budget_file);
    return;
  }
  budget.emplace(privacy::Budget::load(budget_file));
  if (budget->epsilon_max() != config.epsilon_max || budget->delta() != config.delta) {
    log->warn(
        "state budget (epsilon {} at delta {}) differs from the configured (epsilon {} "
        "at delta {}); the spent budget is kept and the configured limit applies",
        budget->epsilon_max(), budget->delta(), config.epsilon_max, config.delta);
    budget.emplace(config.epsilon_max, config.delta, budget->accountant());
  }
  log->info("resumed state: epsilon {:.4f} of {} spent at delta {}", budget->spent(),
            budget->epsilon_max(), budget->delta());
}

// The DP seed, the release ledger, the cached delta and the RLWE key.
void Agent::Impl::load_state() {
  seed = config.dp_seed ? *config.dp_seed : load_or_make_seed(config.state_dir / "dp.seed");
  site = site_digest(config.site_id, config.train_file, config.seq_len, config.lora);
  ledger.emplace(ReleaseLedger::open(config.state_dir));
  delivered = load_cached_delta(config.state_dir);
  if (delivered) {
    log->info("cached delta of round {} (attempt {}) kept for a replay", delivered->upload.round,
              delivered->upload.attempt);
  }
  key_file = config.state_dir / "rlwe.key";
  if (!std::filesystem::exists(key_file)) {
    fhe::SecretKey::generate(fhe::Context::create()).save(key_file.string());
  }
  stats.epsilon_spent = budget->spent();
}

Agent::Agent(AgentConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}
Agent::~Agent() = default;

int Agent::run(std::stop_token stop) {
  try {
    return impl_->run(stop);
  } catch (const std::exception& e) {
    impl_->log->error("{}", e.what());
    return 1;
  }
}

AgentStats Agent::stats() const {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->stats;
}

}  // namespace participant
