// Identities bound to keys over real processes: fedsim writes the coordinator's roster
// (RUN/keys/roster.txt) for every key it makes, and a real participant process with an allowed
// key that claims another site's id is refused (a RegisterReply naming its roster entry, a
// registration_refused event) while the real sites run the round. (tests/coordinator covers the
// roster's other refusals against scripted sites; here it is the executables next to each other.)
#include "federation_fixture.h"

namespace federation_test {
namespace {

TEST_F(FederationTest, AnAllowedKeyCannotTakeAnotherSitesId) {
  fedsim::SimConfig c = tiny_config();
  c.sites = 2;
  c.rounds = 1;
  c.min_participants = 2;
  c.fraction = 1.0;
  auto& fed = federation(c, fresh_run_dir());
  // An allowed key (in the roster as site "mallory") that will claim site-0's id.
  const fs::path mallory_key = fed.make_key("mallory", /*allowed=*/true);
  const std::string roster = slurp(fed.roster_file());
  EXPECT_NE(roster.find("site mallory "), std::string::npos) << roster;
  EXPECT_NE(roster.find("site site-0 "), std::string::npos) << roster;
  EXPECT_NE(roster.find("worker worker-0 "), std::string::npos) << roster;

  fed.start_coordinator();
  // The impostor first: under first-come binding it would have taken the id.
  fed.start("mallory", "participant",
            fedsim::with_flags(fed.site_args(0),
                               {{"--key", mallory_key.string() + ".key"},
                                {"--state-dir", (fed.layout().sites / "mallory").string()}}));
  ASSERT_TRUE(wait_for(fed, [](const std::vector<json>& ev) {
    return has_event(ev, "registration_refused",
                     [](const json& e) { return e["site"] == "site-0"; });
  }));
  fed.start_parties(kPatience);
  const auto rc = fed.wait_coordinator(kPatience);
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, 0);
  const auto all = events(fed);
  EXPECT_TRUE(has_event(all, "registration_refused", [](const json& e) {
    const std::string error = e.value("error", "");
    return e["site"] == "site-0" &&
           error.find("this key is participant 'mallory'") != std::string::npos &&
           error.find("it may not register as 'site-0'") != std::string::npos;
  }));
  EXPECT_TRUE(has_event(all, "round_finished", [](const json& e) {
    return e["round"] == 1 && id_set(e, "sites") == std::set<std::string>{"site-0", "site-1"};
  }));
  EXPECT_TRUE(has_event(all, "run_finished", [](const json& e) {
    return e["reason"] == "completed" && e["last_round"] == 1;
  }));
  // site-0 registered from its own key; mallory never did.
  int site0 = 0;
  for (const auto& e : all) {
    if (e.value("event", "") == "site_registered" && e["site"] == "site-0") ++site0;
    if (e.value("event", "") == "site_registered") {
      EXPECT_NE(e["site"], "mallory");
    }
  }
  EXPECT_GE(site0, 1);
  EXPECT_NE(slurp(fed.log_file("coordinator")).find("roster line"), std::string::npos);
}

}  // namespace
}  // namespace federation_test
