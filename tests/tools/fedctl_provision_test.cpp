// `fedctl provision` as a user runs it: the kits' files, their config files' relative paths, and
// bad descriptions (a clear one-line error, exit 2, nothing written). The kits running a
// federation: tests/federation/provision_test.cpp.
#include <gtest/gtest.h>

#include <filesystem>

#include "protocol/keys.h"
#include "test_support/files.h"
#include "test_support/run.h"
#include "test_support/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using test_support::run;
using test_support::slurp;
using test_support::TempDir;
using test_support::write_file;

const std::string kFedctl = FEDCTL_PATH;

const std::string kGood =
    "federation = demo\n"
    "coordinator = tcp://coord.example.org:5560\n"
    "site = st-mary\n"
    "site = st-john /data/st-john.jsonl\n"
    "worker = gpu-a tcp://gpu-a.example.org:5555   # a comment\n"
    "[coordinator]\n"
    "rounds = 3\n";

test_support::RunResult provision(const TempDir& dir, const std::string& description) {
  write_file(dir / "fed.ini", description);
  return run(kFedctl + " provision --description " + dir / "fed.ini" + " --out " + dir / "kits");
}

// No kit directory and no staging directory next to it.
void expect_nothing_written(const TempDir& dir) {
  EXPECT_FALSE(fs::exists(dir / "kits"));
  for (const auto& e : fs::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().filename().string().find("provision"), std::string::npos) << e.path();
  }
}

TEST(FedctlProvision, WritesOneKitPerPartyWithKeysRosterAndConfigs) {
  TempDir dir;
  const auto r = provision(dir, kGood);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto kits = dir / "kits";
  // Keys: each party its own pair; the peers' public keys where they are needed.
  const auto coordinator = protocol::load_key_pair(kits / "coordinator/coordinator.key");
  ASSERT_TRUE(coordinator.ok()) << coordinator.error().to_string();
  const auto mary = protocol::load_key_pair(kits / "sites/st-mary/st-mary.key");
  ASSERT_TRUE(mary.ok()) << mary.error().to_string();
  EXPECT_EQ(protocol::load_public_key(kits / "sites/st-mary/coordinator.pub").value(),
            coordinator.value().public_key);
  EXPECT_EQ(protocol::load_public_key(kits / "workers/gpu-a/allowed/st-mary.pub").value(),
            mary.value().public_key);
  EXPECT_TRUE(fs::exists(kits / "workers/gpu-a/allowed/st-john.pub"));
  const std::string roster = slurp(kits / "coordinator/roster.txt");
  EXPECT_NE(roster.find("site st-mary " + mary.value().public_key.z85()), std::string::npos);
  EXPECT_NE(roster.find(" tcp://gpu-a.example.org:5555"), std::string::npos) << roster;
  // Configs: paths relative to the kit, binds on every interface off loopback, sections copied.
  const std::string coord_ini = slurp(kits / "coordinator/coordinator.ini");
  EXPECT_NE(coord_ini.find("bind = tcp://0.0.0.0:5560"), std::string::npos) << coord_ini;
  EXPECT_NE(coord_ini.find("roster = roster.txt"), std::string::npos);
  EXPECT_NE(coord_ini.find("rounds = 3"), std::string::npos);
  const std::string worker_ini = slurp(kits / "workers/gpu-a/worker.ini");
  EXPECT_NE(worker_ini.find("bind = tcp://*:5555"), std::string::npos) << worker_ini;
  EXPECT_NE(worker_ini.find("advertise = tcp://gpu-a.example.org:5555"), std::string::npos);
  EXPECT_NE(worker_ini.find("allow-dir = allowed"), std::string::npos);
  const std::string john_ini = slurp(kits / "sites/st-john/participant.ini");
  EXPECT_NE(john_ini.find("data = /data/st-john.jsonl"), std::string::npos) << john_ini;
  EXPECT_NE(slurp(kits / "sites/st-mary/participant.ini").find("data = data/train.jsonl"),
            std::string::npos);
  // No model readable here: the coordinator's README says how to make the initial adapter.
  EXPECT_NE(slurp(kits / "coordinator/README.md").find("fedctl train"), std::string::npos);
  EXPECT_NE(slurp(kits / "sites/st-mary/README.md").find("participant --config"),
            std::string::npos);
  EXPECT_NE(r.out.find("make the initial adapter"), std::string::npos) << r.out;

  // A second provision into the same directory is refused; the kits stay.
  const auto again = provision(dir, kGood);
  EXPECT_EQ(again.status, 2);
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;
  EXPECT_TRUE(mary.value().public_key ==
              protocol::load_key_pair(kits / "sites/st-mary/st-mary.key").value().public_key);
}

TEST(FedctlProvision, AddSiteUpdatesRosterAndAllowListsAndRefusesAKnownName) {
  TempDir dir;
  ASSERT_EQ(provision(dir, kGood).status, 0);
  const auto kits = dir / "kits";
  const auto r = run(kFedctl + " provision --add-site st-luke --kits " + kits);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto luke = protocol::load_key_pair(kits / "sites/st-luke/st-luke.key");
  ASSERT_TRUE(luke.ok());
  EXPECT_EQ(protocol::load_public_key(kits / "workers/gpu-a/allowed/st-luke.pub").value(),
            luke.value().public_key);
  EXPECT_NE(
      slurp(kits / "coordinator/roster.txt").find("site st-luke " + luke.value().public_key.z85()),
      std::string::npos);
  EXPECT_NE(slurp(kits / "sites/st-luke/participant.ini").find("site-id = st-luke"),
            std::string::npos);
  EXPECT_NE(r.out.find("kill -HUP"), std::string::npos) << r.out;

  const std::string roster = slurp(kits / "coordinator/roster.txt");
  for (const std::string name : {"st-luke", "gpu-a", "bad/name"}) {
    const auto again = run(kFedctl + " provision --add-site '" + name + "' --kits " + kits);
    EXPECT_EQ(again.status, 2) << name;
    EXPECT_NE(again.err.find("fedctl provision: --add-site"), std::string::npos) << again.err;
  }
  EXPECT_EQ(slurp(kits / "coordinator/roster.txt"), roster);
  EXPECT_EQ(run(kFedctl + " provision --add-site x --kits " + dir / "nowhere").status, 2);
}

TEST(FedctlProvision, BadDescriptionsSayWhichLineAndWriteNothing) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"site = st-mary\n" + kGood, "fed.ini:4: the name 'st-mary' is used twice"},
      {"worker = st-mary tcp://h:9\n" + kGood, "fed.ini:4: the name 'st-mary' is used twice"},
      {"federation = demo\nsite = a\nworker = w tcp://h:1\n",
       "'coordinator = tcp://HOST:PORT' is missing"},
      {"coordinator = tcp://h:1\nsite = a\nworker = w tcp://h:2\n",
       "'federation = NAME' is missing"},
      {"federation = demo\ncoordinator = tcp://h:1\nworker = w tcp://h:2\n", "no 'site = NAME'"},
      {"federation = demo\ncoordinator = tcp://h:1\nsite = a\n", "no 'worker = NAME"},
      {"federation = demo\ncoordinator = tcp://h:70000\nsite = a\nworker = w tcp://h:2\n",
       "fed.ini:2: bad coordinator endpoint 'tcp://h:70000'"},
      {"federation = demo\ncoordinator = tcp://h:1\nsite = a\nworker = w h:2\n",
       "fed.ini:4: worker 'w': bad endpoint 'h:2'"},
      {"federation = demo\ncoordinator = tcp://h:1\nsite = a\nworker = w tcp://h:1\n",
       "the endpoint tcp://h:1 is used twice"},
      {"federation = demo\ncoordinator = tcp://h:1\nsite = a\nworker = w\n",
       "expected `worker = NAME tcp://HOST:PORT`"},
      {"federation = demo\ncoordinator = tcp://h:1\nsite = a b c d\nworker = w tcp://h:2\n",
       "expected `site = NAME [DATA [EVAL]]`"},
      {"federation = demo\nbogus = 1\n", "fed.ini:2: unknown key 'bogus'"},
      {kGood + "key = mine.key\n", "'key' of [coordinator] is written by fedctl provision"},
      {kGood + "[extra]\n", "unknown section [extra]"},
      {"federation = de mo\n", "the federation name must be"},
      {"federation = demo\ncoordinator = tcp://h:1\nsite = a/b\n", "the site name 'a/b'"},
  };
  for (const auto& [text, needle] : cases) {
    TempDir dir;
    const auto r = provision(dir, text);
    EXPECT_EQ(r.status, 2) << text;
    EXPECT_EQ(r.err.rfind("fedctl provision: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "' in " << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
    expect_nothing_written(dir);
  }
  // A missing description file, and --model without a model.
  TempDir dir;
  const auto missing =
      run(kFedctl + " provision --description " + dir / "none.ini" + " --out " + dir / "kits");
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.err.find("cannot read the description"), std::string::npos) << missing.err;
  write_file(dir / "fed.ini", kGood);
  const auto no_model = run(kFedctl + " provision --description " + dir / "fed.ini" + " --out " +
                            dir / "kits" + " --model " + dir / "none");
  EXPECT_EQ(no_model.status, 2);
  EXPECT_NE(no_model.err.find("no config.json"), std::string::npos) << no_model.err;
  fs::remove(dir / "fed.ini");
  expect_nothing_written(dir);
  // --help describes the description file.
  const auto help = run(kFedctl + " provision --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("--add-site"), std::string::npos);
  EXPECT_NE(help.out.find("worker = NAME"), std::string::npos) << help.out;
}

}  // namespace
