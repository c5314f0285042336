// fedctl provision (issue 16): the kits of 3 sites and 2 workers start a federation as written
// (real coordinator, fhe_worker and participant processes from the build, each started with
// only `--config KIT/FILE.ini`, from a working directory that is not the kit), and a 4th site
// added later with one command plus SIGHUP joins the running coordinator and workers.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "child_process.h"
#include "test_support/files.h"
#include "test_support/run.h"
#include "test_support/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test_support::slurp;

const std::string kBin = FEDLORA_BIN_DIR;

// A loopback port free a moment ago.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string endpoint() {
  return "tcp://127.0.0.1:" + std::to_string(free_port());
}

// A one-layer model and 4 sites' notes, made with fedctl.
void make_model_and_data(const fs::path& dir) {
  const std::string fedctl = kBin + "/fedctl";
  auto m = test_support::run(fedctl + " make-model --out " + (dir / "model").string() +
                             " --hidden 32 --layers 1 --heads 2 --kv-heads 1 --intermediate 64"
                             " --vocab 300 --seed 3");
  ASSERT_EQ(m.status, 0) << m.err;
  auto d = test_support::run(fedctl + " make-data --out " + (dir / "data").string() +
                             " --sites 4 --records 40 --mcq 0 --seed 3");
  ASSERT_EQ(d.status, 0) << d.err;
}

// The description: sites a, b, c (each its own generated notes), workers w1, w2, tiny rounds.
std::string description(const fs::path& dir, int rounds, int min_participants) {
  std::string t = "federation = test\ncoordinator = " + endpoint() + "\n";
  for (int k = 0; k < 3; ++k) {
    const std::string name(1, static_cast<char>('a' + k));
    t += "site = " + name + " " +
         (dir / "data" / ("site" + std::to_string(k) + ".jsonl")).string() + "\n";
  }
  t += "worker = w1 " + endpoint() + "\nworker = w2 " + endpoint() + "\n";
  t += "lora-rank = 2\n[coordinator]\nrounds = " + std::to_string(rounds) +
       "\nmin-participants = " + std::to_string(min_participants) +
       "\nlocal-steps = 2\nbatch-size = 4\nsample-rate = 0.1\nround-timeout = 120\n"
       "[site]\nseq-len = 16\n[worker]\nthreads = 1\n";
  return t;
}

class Kits {
 public:
  explicit Kits(fs::path out) : out_(std::move(out)) {}
  fedsim::ChildProcess start(const std::string& exe, const fs::path& config,
                             const std::string& log) {
    return fedsim::ChildProcess::start(kBin + "/" + exe, {"--config", config.string()},
                                       out_ / (log + ".log"));
  }
  fs::path log(const std::string& name) const { return out_ / (name + ".log"); }
  const fs::path& out() const { return out_; }

 private:
  fs::path out_;
};

// Polls `done` every 100 ms for up to `limit`.
template <class F>
bool wait_until(F done, std::chrono::milliseconds limit = 120s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return done();
}

std::vector<nlohmann::json> events(const fs::path& file) {
  std::vector<nlohmann::json> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(j);
  }
  return out;
}

// True once `count` parties of `role` ("worker", "participant") have registered.
bool registered(const fs::path& file, const std::string& role, int count) {
  int n = 0;
  for (const auto& e : events(file)) {
    n += e.value("event", "") == "site_registered" && e.value("role", "") == role;
  }
  return n >= count;
}

bool has_event(const fs::path& file, const std::string& name) {
  for (const auto& e : events(file)) {
    if (e.value("event", "") == name) return true;
  }
  return false;
}

TEST(Provision, KitsOfThreeSitesAndTwoWorkersRunAFederationAsWritten) {
  test_support::TempDir tmp;
  make_model_and_data(tmp.path());
  test_support::write_file(tmp / "federation.ini", description(tmp.path(), 1, 3));
  const fs::path out = tmp / "kits";
  auto p = test_support::run(kBin + "/fedctl provision --description " + tmp / "federation.ini" +
                             " --out " + out.string() + " --model " + tmp / "model");
  ASSERT_EQ(p.status, 0) << p.err;
  EXPECT_EQ(fs::status(out / "sites" / "a" / "a.key").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_TRUE(fs::exists(out / "coordinator" / "README.md"));
  EXPECT_TRUE(fs::exists(out / "workers" / "w2" / "allowed" / "c.pub"));

  // Each party: its executable and --config, nothing else; the test's working directory is not
  // the kit, so every relative path in the files resolves against the file's directory.
  Kits k(tmp.path());
  auto coordinator = k.start("coordinator", out / "coordinator" / "coordinator.ini", "coordinator");
  auto w1 = k.start("fhe_worker", out / "workers" / "w1" / "worker.ini", "w1");
  auto w2 = k.start("fhe_worker", out / "workers" / "w2" / "worker.ini", "w2");
  const fs::path adapter = out / "coordinator" / "run" / "adapter" / "adapter_model.safetensors";
  const fs::path ev = out / "coordinator" / "run" / "events.jsonl";
  // The kits' order (their READMEs): the coordinator, the workers, then the sites.
  ASSERT_TRUE(wait_until([&] { return registered(ev, "worker", 2); }))
      << slurp(k.log("coordinator")) << slurp(k.log("w1"));
  std::vector<fedsim::ChildProcess> sites;
  for (const char* s : {"a", "b", "c"}) {
    sites.push_back(k.start("participant", out / "sites" / s / "participant.ini", s));
  }
  ASSERT_TRUE(wait_until([&] { return has_event(ev, "run_finished"); }))
      << slurp(k.log("coordinator")) << slurp(k.log("a")) << slurp(k.log("w1"));
  EXPECT_EQ(coordinator.wait(30s), std::optional<int>(0)) << slurp(k.log("coordinator"));
  EXPECT_TRUE(fs::exists(adapter));
  bool finished = false;
  for (const auto& e : events(ev)) {
    if (e.value("event", "") == "round_finished") {
      finished = true;
      EXPECT_EQ(e["sites"].size(), 3u) << e.dump();
    }
  }
  EXPECT_TRUE(finished) << slurp(ev);
  for (auto& s : sites) EXPECT_EQ(s.wait(30s), std::optional<int>(0));
}

TEST(Provision, ASiteAddedLaterJoinsAfterSighupWithoutRestarts) {
  test_support::TempDir tmp;
  make_model_and_data(tmp.path());
  // Four sites needed: the run waits for the one added later.
  test_support::write_file(tmp / "federation.ini", description(tmp.path(), 1, 4));
  const fs::path out = tmp / "kits";
  auto p = test_support::run(kBin + "/fedctl provision --description " + tmp / "federation.ini" +
                             " --out " + out.string() + " --model " + tmp / "model");
  ASSERT_EQ(p.status, 0) << p.err;
  Kits k(tmp.path());
  auto coordinator = k.start("coordinator", out / "coordinator" / "coordinator.ini", "coordinator");
  auto w1 = k.start("fhe_worker", out / "workers" / "w1" / "worker.ini", "w1");
  auto w2 = k.start("fhe_worker", out / "workers" / "w2" / "worker.ini", "w2");
  const fs::path ev = out / "coordinator" / "run" / "events.jsonl";
  ASSERT_TRUE(wait_until([&] { return registered(ev, "worker", 2); }))
      << slurp(k.log("coordinator")) << slurp(k.log("w1"));
  std::vector<fedsim::ChildProcess> sites;
  for (const char* s : {"a", "b", "c"}) {
    sites.push_back(k.start("participant", out / "sites" / s / "participant.ini", s));
  }
  ASSERT_TRUE(wait_until([&] { return registered(ev, "participant", 3); }))
      << slurp(k.log("coordinator"));

  // One command, then SIGHUP to the coordinator and both workers; nothing restarts.
  auto add = test_support::run(kBin + "/fedctl provision --add-site d --kits " + out.string() +
                               " --data " + (tmp.path() / "data" / "site3.jsonl").string());
  ASSERT_EQ(add.status, 0) << add.err;
  EXPECT_NE(slurp(out / "coordinator" / "roster.txt").find("site d "), std::string::npos);
  EXPECT_TRUE(fs::exists(out / "workers" / "w1" / "allowed" / "d.pub"));
  EXPECT_NE(slurp(out / "federation.ini").find("site = d "), std::string::npos);
  coordinator.signal(SIGHUP);
  w1.signal(SIGHUP);
  w2.signal(SIGHUP);
  for (const char* w : {"w1", "w2"}) {
    EXPECT_TRUE(wait_until(
        [&] {
          return slurp(k.log(w)).find("added: allow-list file d.pub; removed: none") !=
                 std::string::npos;
        },
        30s))
        << slurp(k.log(w));
  }
  sites.push_back(k.start("participant", out / "sites" / "d" / "participant.ini", "d"));

  ASSERT_TRUE(wait_until([&] { return has_event(ev, "run_finished"); }))
      << slurp(k.log("coordinator")) << slurp(k.log("d"));
  bool with_d = false;
  for (const auto& e : events(ev)) {
    if (e.value("event", "") != "round_finished") continue;
    for (const auto& s : e["sites"]) with_d = with_d || s == "d";
  }
  EXPECT_TRUE(with_d) << slurp(ev);
  EXPECT_TRUE(fs::exists(out / "coordinator" / "run" / "adapter" / "adapter_model.safetensors"));
  EXPECT_TRUE(w1.running());  // the same processes throughout
  EXPECT_TRUE(w2.running());
  EXPECT_EQ(coordinator.wait(30s), std::optional<int>(0)) << slurp(k.log("coordinator"));
}

}  // namespace
