// fedsim --processes: the coordinator, the workers and the sites as separate processes on
// loopback TCP, every connection under CurveZMQ with keys and allow-lists made in RUN/keys.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "protocol/keys.h"
#include "sim_run.h"

extern char** environ;

namespace fedsim {
namespace {

namespace fs = std::filesystem;

// A free TCP port on 127.0.0.1 (the kernel's choice; released again at once).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free loopback port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// PREFIX.key / PREFIX.pub under RUN/keys, made once (a resumed run keeps its keys).
void ensure_keys(const fs::path& prefix) {
  if (fs::exists(prefix.string() + ".key")) return;
  auto pair = protocol::KeyPair::generate();
  if (!pair) throw std::runtime_error("key generation: " + pair.error().message);
  auto written = protocol::write_key_pair(pair.value(), prefix.string(), /*force=*/false);
  if (!written.ok()) throw std::runtime_error(written.error().message);
}

void allow(const fs::path& dir, const fs::path& prefix) {
  fs::create_directories(dir);
  fs::copy_file(prefix.string() + ".pub", dir / (prefix.filename().string() + ".pub"),
                fs::copy_options::overwrite_existing);
}

pid_t spawn(const fs::path& exe, const std::vector<std::string>& args, const fs::path& log) {
  std::vector<char*> argv;
  std::string exe_s = exe.string();
  argv.push_back(exe_s.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!log.empty()) {
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
  }
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + exe.string());
  return pid;
}

}  // namespace

int run_processes(const SimConfig& c, const SimLayout& l, const fs::path& bin) {
  for (const char* name : {"coordinator", "fhe_worker", "participant"}) {
    if (!fs::exists(bin / name)) {
      throw std::runtime_error((bin / name).string() + " not found (build every target first)");
    }
  }
  fs::create_directories(l.keys);
  ensure_keys(l.keys / "coordinator");
  for (uint32_t w = 0; w < c.workers; ++w) {
    const fs::path p = l.keys / ("worker-" + std::to_string(w));
    ensure_keys(p);
    allow(l.keys / "allow-coordinator", p);
  }
  for (uint32_t k = 0; k < c.sites; ++k) {
    const fs::path p = l.keys / l.site_id(k);
    ensure_keys(p);
    allow(l.keys / "allow-coordinator", p);
    allow(l.keys / "allow-workers", p);
  }

  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(free_port());
  const coordinator::CoordinatorConfig cc = coordinator_config(c, l);
  auto num = [](double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return std::string(buf);
  };
  std::vector<std::string> coord_args = {
      "--endpoint", endpoint,
      "--key", (l.keys / "coordinator.key").string(),
      "--allow-dir", (l.keys / "allow-coordinator").string(),
      "--run-dir", l.run.string(),
      "--initial-adapter", l.initial_adapter.string(),
      "--rounds", std::to_string(cc.rounds),
      "--fraction", num(cc.fraction),
      "--min-participants", std::to_string(cc.min_participants),
      "--round-timeout", std::to_string(c.round_timeout_s),
      "--heartbeat-ms", "500",
      "--seed", std::to_string(cc.seed),
      "--local-steps", std::to_string(cc.plan.local_steps),
      "--lr", num(cc.plan.learning_rate),
      "--batch-size", std::to_string(cc.plan.batch_size),
      "--sample-rate", num(cc.plan.sample_rate),
      "--noise-multiplier", num(cc.plan.noise_multiplier),
      "--clip-norm", num(cc.plan.clip_norm),
      "--delta", num(cc.plan.delta),
      "--strategy", cc.strategy.name,
      "--server-lr", num(cc.strategy.server_lr)};
  std::map<pid_t, std::string> others;
  const pid_t coord = spawn(bin / "coordinator", coord_args, "");

  for (uint32_t w = 0; w < c.workers; ++w) {
    const std::string name = "worker-" + std::to_string(w);
    const std::string bind = "tcp://127.0.0.1:" + std::to_string(free_port());
    others[spawn(bin / "fhe_worker",
                 {"--model", l.model.string(), "--model-id", "model", "--bind", bind,
                  "--secret-key", (l.keys / (name + ".key")).string(), "--allow",
                  (l.keys / "allow-workers").string(), "--threads", "1", "--id", name,
                  "--coordinator", endpoint, "--coordinator-key",
                  (l.keys / "coordinator.pub").string(), "--log-level", c.log_level},
                 l.logs / (name + ".log"))] = name;
  }
  for (uint32_t k = 0; k < c.sites; ++k) {
    const std::string id = l.site_id(k);
    others[spawn(bin / "participant",
                 {"--site-id", id, "--coordinator", endpoint, "--coordinator-key",
                  (l.keys / "coordinator.pub").string(), "--key",
                  (l.keys / (id + ".key")).string(), "--model", l.model.string(), "--model-id",
                  "model", "--data", l.train_file(k).string(), "--eval",
                  l.heldout_file(k).string(), "--state-dir", l.state_dir(k).string(),
                  "--seq-len", std::to_string(c.seq_len), "--lora-rank",
                  std::to_string(c.lora_rank), "--lora-alpha", num(c.lora_alpha), "--targets",
                  c.targets, "--epsilon-max", num(c.epsilon_max), "--delta", num(c.delta),
                  "--dp-seed", site_dp_seed_hex(c.seed, k), "--backend", c.backend,
                  "--heartbeat-ms", "500", "--log-level", c.log_level},
                 l.logs / (id + ".log"))] = id;
  }
  std::fprintf(stderr, "fedsim: %u workers and %u sites started; logs in %s\n", c.workers,
               c.sites, l.logs.c_str());

  int status = 0;
  while (::waitpid(coord, &status, 0) < 0 && errno == EINTR) {
  }
  for (const auto& [pid, name] : others) ::kill(pid, SIGTERM);
  for (const auto& [pid, name] : others) {
    int s = 0;
    while (::waitpid(pid, &s, 0) < 0 && errno == EINTR) {
    }
  }
  if (!WIFEXITED(status)) {
    std::fprintf(stderr, "fedsim: the coordinator ended abnormally\n");
    return 1;
  }
  return WEXITSTATUS(status);
}

}  // namespace fedsim
