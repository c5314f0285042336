// The command line and INI parsing, and build/bin/coordinator as a real process.
#include "coordinator/cli.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "scripted_site.h"
#include "test_util.h"

extern char** environ;

namespace coordinator {
namespace {

using namespace std::chrono_literals;

base::Result<CliOutcome> parse(std::vector<std::string> args) {
  std::vector<const char*> argv{"coordinator"};
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out;
  return parse_cli(static_cast<int>(argv.size()), argv.data(), out);
}

TEST(Cli, ReadsTheIniFileAndFlagsWin) {
  coordinator_test::TempDir dir;
  const auto ini = dir.path() / "c.ini";
  std::ofstream(ini) << "# comment\nendpoint = tcp://127.0.0.1:7000\ninsecure = true\n"
                        "run-dir = /tmp/run\nrounds = 7\nstrategy = fedyogi\nround-timeout = 2.5\n"
                        "sample-rate = 0.05\nmin-participants = 3\n";
  auto r = parse({"--config", ini.string(), "--rounds", "3"});
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  const auto& c = r.value().config;
  EXPECT_FALSE(r.value().help);
  EXPECT_TRUE(c.insecure);
  EXPECT_EQ(c.endpoint, "tcp://127.0.0.1:7000");
  EXPECT_EQ(c.rounds, 3u);
  EXPECT_EQ(c.strategy.name, "fedyogi");
  EXPECT_EQ(c.round_timeout, 2500ms);
  EXPECT_DOUBLE_EQ(c.plan.sample_rate, 0.05);
  EXPECT_EQ(c.min_participants, 3u);
  EXPECT_EQ(c.run_dir, "/tmp/run");
}

// A relative path in the file is relative to the file's directory; on the command line, to the
// working directory (fedctl provision's kits run from anywhere).
TEST(Cli, ConfigFilePathsAreRelativeToTheFile) {
  coordinator_test::TempDir dir;
  const auto ini = dir.path() / "c.ini";
  std::ofstream(ini) << "insecure = true\nrun-dir = run\ninitial-adapter = /abs/adapter\n";
  auto from_file = parse({"--config", ini.string()});
  ASSERT_TRUE(from_file.ok()) << from_file.error().to_string();
  EXPECT_EQ(from_file.value().config.run_dir, dir.path() / "run");
  EXPECT_EQ(from_file.value().config.initial_adapter, "/abs/adapter");
  auto from_flag = parse({"--config", ini.string(), "--run-dir", "here"});
  ASSERT_TRUE(from_flag.ok());
  EXPECT_EQ(from_flag.value().config.run_dir, "here");
}

TEST(Cli, RefusesBadInput) {
  EXPECT_FALSE(parse({"--run-dir", "x", "--insecure", "--bogus", "1"}).ok());
  EXPECT_FALSE(parse({"--insecure"}).ok());      // no run dir
  EXPECT_FALSE(parse({"--run-dir", "x"}).ok());  // CURVE without keys
  EXPECT_FALSE(parse({"--run-dir", "x", "--insecure", "--rounds", "many"}).ok());
  EXPECT_FALSE(parse({"--config", "/nonexistent.ini", "--run-dir", "x"}).ok());
  EXPECT_FALSE(parse({"--run-dir", "x", "--key", "/nonexistent.key", "--allow-dir", "/"}).ok());
  auto help = parse({"--help"});
  ASSERT_TRUE(help.ok());
  EXPECT_TRUE(help.value().help);
}

TEST(Cli, TheHardeningFlags) {
  auto r = parse({"--run-dir", "x", "--insecure", "--handshake-timeout", "2.5",
                  "--max-example-weight", "500", "--participant-amplification"});
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r.value().config.handshake_timeout, 2500ms);
  EXPECT_EQ(r.value().config.max_example_weight, 500u);
  EXPECT_TRUE(r.value().config.participant_amplification);
  auto d = parse({"--run-dir", "x", "--insecure"});
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d.value().config.participant_amplification);  // q = 1 unless asked
  EXPECT_EQ(d.value().config.max_example_weight, 0u);
  EXPECT_FALSE(parse({"--run-dir", "x", "--insecure", "--handshake-timeout", "0"}).ok());
  // A roster binds CURVE keys: it cannot go with --insecure.
  auto insecure_roster = parse({"--run-dir", "x", "--insecure", "--roster", "r.txt"});
  ASSERT_FALSE(insecure_roster.ok());
  EXPECT_NE(insecure_roster.error().message.find("--roster needs CURVE"), std::string::npos);
  // --roster is enough for CURVE (no --allow-dir needed): only the key file is missing here.
  auto curve = parse({"--run-dir", "x", "--roster", "r.txt", "--key", "/nonexistent.key"});
  ASSERT_FALSE(curve.ok());
  EXPECT_EQ(curve.error().message.find("--allow-dir"), std::string::npos) << curve.error().message;
}

int run_process(const std::vector<std::string>& args, pid_t* pid_out = nullptr) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  if (pid_out != nullptr) {
    *pid_out = pid;
    return 0;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(CoordinatorBinary, HelpAndBadFlags) {
  EXPECT_EQ(run_process({COORDINATOR_PATH, "--help"}), 0);
  EXPECT_EQ(run_process({COORDINATOR_PATH, "--no-such-flag"}), 2);
  EXPECT_EQ(run_process({COORDINATOR_PATH, "--run-dir", "/tmp/x", "--insecure", "--endpoint",
                         "tcp://0.0.0.0:5999", "--initial-adapter", "/nonexistent"}),
            2);
}

TEST(CoordinatorBinary, RunsARoundWithParticipantsAndExits) {
  coordinator_test::TempDir dir;
  coordinator_test::write_peft(dir.path() / "init", coordinator_test::small_adapter());
  const auto run_dir = dir.path() / "run";
  pid_t pid = 0;
  ASSERT_EQ(run_process({COORDINATOR_PATH, "--insecure", "--endpoint", "tcp://127.0.0.1:*",
                         "--run-dir", run_dir.string(), "--initial-adapter",
                         (dir.path() / "init").string(), "--rounds", "2", "--min-participants", "2",
                         "--round-timeout", "5", "--heartbeat-ms", "100", "--wait-for-sites", "20"},
                        &pid),
            0);
  // The bound endpoint (port chosen by the system) is in the first event.
  std::string endpoint;
  for (int i = 0; i < 200 && endpoint.empty(); ++i) {
    std::this_thread::sleep_for(25ms);
    if (!std::filesystem::exists(run_dir / "events.jsonl")) continue;
    for (const auto& e : coordinator_test::read_events(run_dir / "events.jsonl")) {
      if (e["event"] == "run_started") endpoint = e["endpoint"];
    }
  }
  ASSERT_FALSE(endpoint.empty());
  zmq::context_t ctx;
  coordinator_test::SiteOptions oa, ob;
  oa.id = "a";
  ob.id = "b";
  {
    coordinator_test::ScriptedSite a(ctx, endpoint, oa);
    coordinator_test::ScriptedSite b(ctx, endpoint, ob);
    int status = 0;
    for (int i = 0; i < 400; ++i) {
      if (waitpid(pid, &status, WNOHANG) == pid) break;
      std::this_thread::sleep_for(25ms);
      if (i == 399) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        FAIL() << "coordinator did not exit";
      }
    }
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(a.uploads_accepted(), 2);
  }
  const auto events = coordinator_test::read_events(run_dir / "events.jsonl");
  EXPECT_EQ(coordinator_test::events_of(events, "round_finished").size(), 2u);
  EXPECT_EQ(events.back()["event"], "run_finished");
  EXPECT_EQ(events.back()["reason"], "completed");
  EXPECT_TRUE(std::filesystem::exists(run_dir / "adapter" / "adapter_config.json"));
  EXPECT_TRUE(std::filesystem::exists(run_dir / "checkpoints" / "latest.ckpt"));
}

TEST(CoordinatorBinary, StopsCleanlyOnSigterm) {
  coordinator_test::TempDir dir;
  coordinator_test::write_peft(dir.path() / "init", coordinator_test::small_adapter());
  const auto run_dir = dir.path() / "run";
  pid_t pid = 0;
  ASSERT_EQ(
      run_process({COORDINATOR_PATH, "--insecure", "--endpoint", "tcp://127.0.0.1:*", "--run-dir",
                   run_dir.string(), "--initial-adapter", (dir.path() / "init").string()},
                  &pid),
      0);
  for (int i = 0; i < 200 && !std::filesystem::exists(run_dir / "events.jsonl"); ++i) {
    std::this_thread::sleep_for(25ms);
  }
  std::this_thread::sleep_for(100ms);
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  const auto events = coordinator_test::read_events(run_dir / "events.jsonl");
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["reason"], "stopped");
}

}  // namespace
}  // namespace coordinator
