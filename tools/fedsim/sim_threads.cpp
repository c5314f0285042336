// fedsim's in-process federation: the coordinator, the workers and the sites as threads.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "fhe_worker/registrar.h"
#include "fhe_worker/worker.h"
#include "fhe_worker/worker_model.h"
#include "model/lora_config.h"
#include "participant/agent.h"
#include "privacy/random_source.h"
#include "protocol/log_format.h"
#include "sim_run.h"

namespace fedsim {
namespace {

std::shared_ptr<spdlog::logger> logger(const std::string& name, const std::string& level) {
  auto log = std::make_shared<spdlog::logger>(
      name, std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  protocol::use_log_format(*log);
  log->set_level(spdlog::level::from_str(level));
  return log;
}

}  // namespace

coordinator::CoordinatorConfig coordinator_config(const SimConfig& c, const SimLayout& l) {
  coordinator::CoordinatorConfig cc;
  cc.run_dir = l.run;
  cc.initial_adapter = l.initial_adapter;
  cc.rounds = c.rounds;
  cc.fraction = c.fraction;
  cc.min_participants = std::min(c.min_participants, l.site_count());
  cc.round_timeout = std::chrono::seconds(c.round_timeout_s);
  cc.heartbeat_interval = std::chrono::milliseconds(500);
  cc.wait_for_sites = std::chrono::seconds(120);
  cc.start_after = l.site_count();  // the first round begins with every site of the simulation
  cc.seed = c.seed;
  cc.plan.local_steps = c.local_steps;
  cc.plan.learning_rate = c.lr;
  cc.plan.batch_size = c.batch_size;
  cc.plan.sample_rate = c.sample_rate;
  cc.plan.noise_multiplier = c.noise_multiplier;
  cc.plan.clip_norm = c.clip_norm;
  cc.plan.delta = c.delta;
  cc.plan.participant_dp = c.participant_dp;
  cc.plan.participant_clip = c.participant_clip;
  cc.plan.participant_sigma = c.participant_sigma;
  cc.strategy.name = c.strategy;
  cc.strategy.server_lr = c.server_lr;
  return cc;
}

int run_threads(const SimConfig& c, const SimLayout& l) {
  zmq::context_t ctx;
  coordinator::CoordinatorConfig cc = coordinator_config(c, l);
  cc.endpoint = "tcp://127.0.0.1:*";
  cc.insecure = true;
  auto created = coordinator::Coordinator::create(ctx, cc);
  if (!created) throw std::runtime_error("coordinator: " + created.error().message);
  coordinator::Coordinator& coord = *created.value();
  const std::string endpoint = coord.endpoint();

  // Workers: one model in memory, served by W workers, each registered with the coordinator.
  fhe_worker::WorkerModelOptions wo;
  wo.model_id = "model";
  wo.threads = 1;
  std::shared_ptr<const fhe_worker::WorkerModel> worker_model =
      fhe_worker::WorkerModel::load(l.model, wo);
  std::vector<std::unique_ptr<fhe_worker::Worker>> workers;
  std::vector<std::unique_ptr<fhe_worker::Registrar>> registrars;
  for (uint32_t w = 0; w < c.workers; ++w) {
    const std::string name = "worker-" + std::to_string(w);
    fhe_worker::WorkerConfig wc;
    wc.bind = "tcp://127.0.0.1:*";
    wc.insecure = true;
    wc.sender_id = name;
    wc.log = logger(name, c.log_level);
    workers.push_back(fhe_worker::Worker::start(worker_model, wc));
    fhe_worker::RegistrarConfig rc;
    rc.coordinator = endpoint;
    rc.insecure = true;
    rc.site_id = name;
    rc.compute_endpoint = workers.back()->endpoint();
    rc.heartbeat_interval = std::chrono::milliseconds(500);
    rc.log = wc.log;
    registrars.push_back(std::make_unique<fhe_worker::Registrar>(rc));
  }

  // Sites.
  std::vector<std::unique_ptr<participant::Agent>> agents;
  for (uint32_t k = 0; k < l.site_count(); ++k) {
    participant::AgentConfig ac;
    ac.site_id = l.site_id(k);
    ac.coordinator = endpoint;
    ac.insecure = true;
    ac.model_dir = l.model;
    ac.model_id = "model";
    ac.train_file = l.train_file(k);
    ac.heldout_file = l.heldout_file(k);
    ac.state_dir = l.state_dir(k);
    ac.progress_file = l.progress_file(k);
    ac.seq_len = c.seq_len;
    ac.eval_batch = 16;
    ac.lora.rank = c.lora_rank;
    ac.lora.alpha = c.lora_alpha;
    ac.lora.targets = model::parse_lora_targets(c.targets);
    ac.epsilon_max = c.epsilon_max;
    ac.delta = c.delta;
    ac.dp_seed = privacy::parse_seed_hex(site_dp_seed_hex(c.seed, k));
    ac.backend = c.backend;
    ac.heartbeat_interval = std::chrono::milliseconds(500);
    ac.log = logger(ac.site_id, c.log_level);
    agents.push_back(std::make_unique<participant::Agent>(ac));
  }
  std::vector<std::jthread> threads;
  for (auto& agent : agents) {
    threads.emplace_back([a = agent.get()](std::stop_token st) { a->run(st); });
  }

  auto summary = coord.run();
  for (auto& t : threads) t.request_stop();
  threads.clear();  // joins
  registrars.clear();
  for (auto& w : workers) w->request_stop();
  for (auto& w : workers) w->wait();
  if (!summary) {
    std::fprintf(stderr, "fedsim: coordinator: %s\n", summary.error().to_string().c_str());
    return 1;
  }
  std::fprintf(stderr, "fedsim: run ended after round %u: %s\n", summary.value().last_round,
               summary.value().reason.c_str());
  return 0;
}

}  // namespace fedsim
