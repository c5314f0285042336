// Failures that speak (issue 16): a participant that cannot get through says why on its own
// side within a few heartbeats and exits with a non-zero status, and the refusing side names
// what it knows. Real processes on loopback: a site key the coordinator does not allow, a wrong
// --coordinator-key, a public key given as the secret key, and a worker refusing a site the
// coordinator admits. Asserts on messages and exit statuses; waits are generous bounds only.
#include <fstream>

#include "federation_fixture.h"
#include "protocol/keys.h"

namespace federation_test {
namespace {

std::string public_z85(const fs::path& prefix) {
  return protocol::load_public_key(prefix.string() + ".pub").value().z85();
}

TEST_F(FederationTest, RefusedAndMisKeyedSitesSayWhyAndExit) {
  fedsim::SimConfig c = tiny_config();
  c.sites = 1;
  c.rounds = 1;
  c.min_participants = 1;
  auto& fed = federation(c, fresh_run_dir());
  const fs::path intruder = fed.make_key("intruder", /*allowed=*/false);
  const fs::path misled = fed.make_key("misled", /*allowed=*/true);
  const fs::path confused = fed.make_key("confused", /*allowed=*/true);
  // Admitted by the coordinator (roster), unknown to the workers.
  const fs::path lonely = fed.make_key("lonely", /*allowed=*/false);
  {
    std::ofstream roster(fed.roster_file(), std::ios::app);
    roster << "site lonely " << public_z85(lonely) << "\n";
  }
  fed.start_coordinator({{"--start-after", "1"}});
  fed.start_workers(kPatience);
  const auto site = [&](const std::string& id, const fs::path& key, fedsim::FlagOverrides more) {
    fedsim::FlagOverrides flags = {{"--site-id", id},
                                   {"--key", key.string() + ".key"},
                                   {"--state-dir", (fed.layout().sites / id).string()}};
    flags.insert(flags.end(), more.begin(), more.end());
    fed.start(id, "participant", fedsim::with_flags(fed.site_args(0), flags));
  };
  site("intruder", intruder, {});
  // Its coordinator key is another party's public key.
  site("misled", misled, {{"--coordinator-key", confused.string() + ".pub"}});
  site("confused", confused, {{"--key", confused.string() + ".pub"}});
  site("lonely", lonely, {{"--connect-attempts", "1"}});

  // A key not in the allow-list: refused, said with the key, exit 1 after the attempts.
  ASSERT_EQ(fed.wait("intruder", kPatience), std::optional<int>(1));
  const std::string intruder_log = slurp(fed.log_file("intruder"));
  EXPECT_NE(intruder_log.find("the coordinator at " + fed.endpoint() +
                              " refused this site's key (public key " + public_z85(intruder)),
            std::string::npos)
      << intruder_log;
  EXPECT_NE(intruder_log.find("giving up after 5 attempts"), std::string::npos) << intruder_log;

  // The wrong coordinator key: the handshake is not accepted, said with the flag to check.
  ASSERT_EQ(fed.wait("misled", kPatience), std::optional<int>(1));
  const std::string misled_log = slurp(fed.log_file("misled"));
  EXPECT_NE(misled_log.find("the coordinator at " + fed.endpoint() +
                            " did not accept the CURVE handshake: is --coordinator-key the "
                            "coordinator's public key?"),
            std::string::npos)
      << misled_log;

  // A .pub as the secret key: refused at start-up, exit 2.
  ASSERT_EQ(fed.wait("confused", kPatience), std::optional<int>(2));
  const std::string confused_log = slurp(fed.log_file("confused"));
  EXPECT_NE(confused_log.find("confused.pub is a public key file"), std::string::npos)
      << confused_log;

  // Refused by the worker: the round's workers all refuse this site's key; exit 1.
  ASSERT_EQ(fed.wait("lonely", kPatience), std::optional<int>(1));
  const std::string lonely_log = slurp(fed.log_file("lonely"));
  EXPECT_NE(lonely_log.find("refused this site's key (public key " + public_z85(lonely)),
            std::string::npos)
      << lonely_log;
  EXPECT_NE(lonely_log.find("the worker at tcp://"), std::string::npos) << lonely_log;

  // The refusing sides: the coordinator names the unknown key and the failed handshakes, the
  // worker the key it does not allow.
  EXPECT_TRUE(wait_for_log(fed, "coordinator",
                           "client key " + public_z85(intruder) + " is not in the allow-list"));
  EXPECT_TRUE(wait_for_log(fed, "coordinator", "failed the CURVE handshake"));
  EXPECT_TRUE(wait_for_log(fed, fedsim::ProcessFederation::worker_name(0),
                           "client key " + public_z85(lonely) + " is not in the allow-list"));
  // Once a minute per key, not once a try.
  const std::string coordinator_log = slurp(fed.log_file("coordinator"));
  size_t lines = 0;
  for (size_t at = 0;
       (at = coordinator_log.find("client key " + public_z85(intruder), at)) != std::string::npos;
       ++at) {
    ++lines;
  }
  EXPECT_EQ(lines, 1u) << coordinator_log;
}

}  // namespace
}  // namespace federation_test
