// Refusals over real processes: a participant process whose key is not in the coordinator's
// allow-list never gets in, and a registered, allowed client that sends garbage frames and a
// DeltaUpload with a wrong tensor table gets an error reply for each while the round completes
// from the real sites. (tests/coordinator covers the same refusals against scripted sites in one
// process; here they hit the coordinator executable next to running sites and workers.)
#include <zmq.hpp>

#include "federation_fixture.h"
#include "protocol/coordinator_client.h"
#include "protocol/keys.h"

namespace federation_test {
namespace {

namespace coord = protocol::coord;

// Receives (heartbeating meanwhile) until `want` accepts a message or `timeout` passes.
bool receive_until(coord::CoordinatorClient& client, const std::string& id,
                   const std::function<bool(const coord::Message&)>& want,
                   std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  auto beat = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < end) {
    if (std::chrono::steady_clock::now() >= beat) {
      (void)client.heartbeat(id);
      beat = std::chrono::steady_clock::now() + std::chrono::milliseconds(400);
    }
    auto m = client.receive(std::chrono::milliseconds(100));
    if (m.ok() && want(m.value())) return true;
  }
  return false;
}

TEST_F(FederationTest, IntrudersAndMalformedUploadsDoNotDisturbTheRound) {
  fedsim::SimConfig c = tiny_config();
  c.sites = 2;
  c.rounds = 1;
  c.min_participants = 2;
  c.fraction = 1.0;
  auto& fed = federation(c, fresh_run_dir());
  // The tester (below) is an allowed, registered participant; the intruder's key is unknown.
  const fs::path tester_key = fed.make_key("tester", /*allowed=*/true);
  const fs::path intruder_key = fed.make_key("intruder", /*allowed=*/false);
  fed.start_coordinator({{"--start-after", "3"}});  // the two sites and the tester
  fed.start_parties(kPatience);
  fed.start("intruder", "participant",
            fedsim::with_flags(fed.site_args(0),
                               {{"--site-id", "intruder"},
                                {"--key", intruder_key.string() + ".key"},
                                {"--connect-attempts", "0"},  // keeps knocking
                                {"--state-dir", (fed.layout().sites / "intruder").string()}}));

  zmq::context_t ctx;
  protocol::ClientConfig cc;
  cc.endpoint = fed.endpoint();
  cc.key = protocol::load_key_pair(tester_key.string() + ".key").value();
  cc.server_key =
      protocol::load_public_key((fed.layout().keys / "coordinator.pub").string()).value();
  auto connected = coord::CoordinatorClient::connect(ctx, cc);
  ASSERT_TRUE(connected.ok()) << connected.error().to_string();
  coord::CoordinatorClient client = std::move(connected).value();
  coord::Register reg;
  reg.role = coord::Role::kParticipant;
  reg.site_id = "tester";
  reg.dataset_size = 10;
  reg.epsilon_max = 8;
  reg.delta = 1e-5;
  auto reply = client.register_site(reg, std::chrono::seconds(30));
  ASSERT_TRUE(reply.ok()) << reply.error().to_string();
  ASSERT_TRUE(reply.value().accepted) << reply.value().reason;

  // Selected with the two sites for round 1.
  std::optional<coord::RoundInvitation> invitation;
  ASSERT_TRUE(receive_until(
      client, "tester",
      [&](const coord::Message& m) {
        if (const auto* inv = std::get_if<coord::RoundInvitation>(&m.body)) invitation = *inv;
        return invitation.has_value();
      },
      kPatience));
  ASSERT_TRUE(client.accept(*invitation, "tester").ok());
  auto error_reply = [&](std::optional<protocol::Error>& got) {
    return [&](const coord::Message& m) {
      if (const auto* e = std::get_if<coord::ErrorReply>(&m.body)) got = e->error;
      return got.has_value();
    };
  };

  // Garbage frames: an error reply.
  std::vector<zmq::message_t> garbage;
  garbage.emplace_back(std::string("\x01\x02 not a message"));
  garbage.emplace_back(std::string(100, '\xff'));
  ASSERT_TRUE(client.send_frames(std::move(garbage)).ok());
  std::optional<protocol::Error> garbage_error;
  EXPECT_TRUE(receive_until(client, "tester", error_reply(garbage_error), kPatience));

  // A well-formed upload whose tensor table is not the global adapter's: an error reply.
  coord::DeltaUpload bad;
  bad.round = invitation->round;
  bad.attempt = invitation->attempt;
  bad.site_id = "tester";
  bad.delta.tensors = {coord::TensorEntry{"not.a.lora.tensor", {3}, 0}};
  bad.example_count = 10;
  bad.steps = 1;
  const std::vector<float> values = {0.5f, -0.5f, 1.0f};
  ASSERT_TRUE(client.upload(bad, values).ok());
  std::optional<protocol::Error> table_error;
  ASSERT_TRUE(receive_until(client, "tester", error_reply(table_error), kPatience));
  EXPECT_EQ(table_error->code, protocol::ErrorCode::kShapeMismatch) << table_error->to_string();
  ASSERT_TRUE(client.decline(*invitation, "tester", coord::DeclineReason::kOther, "done").ok());

  // The round completes from the real sites; the run ends normally.
  const auto rc = fed.wait_coordinator(kPatience);
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, 0);
  const auto all = events(fed);
  EXPECT_TRUE(has_event(all, "round_started", [](const json& e) {
    return id_set(e, "selected") == std::set<std::string>{"site-0", "site-1", "tester"};
  }));
  EXPECT_TRUE(has_event(all, "round_finished", [](const json& e) {
    return e["round"] == 1 && id_set(e, "sites") == std::set<std::string>{"site-0", "site-1"};
  }));
  EXPECT_TRUE(has_event(all, "run_finished", [](const json& e) {
    return e["reason"] == "completed" && e["last_round"] == 1;
  }));
  EXPECT_TRUE(
      has_event(all, "message_refused", [](const json& e) { return e["site"] == "tester"; }));
  EXPECT_FALSE(
      has_event(all, "delta_received", [](const json& e) { return e["site"] == "tester"; }));
  // The intruder never got a message through: not registered, never selected, still knocking.
  for (const auto& e : all) EXPECT_EQ(e.dump().find("intruder"), std::string::npos) << e.dump();
  EXPECT_TRUE(fed.running("intruder"));
}

}  // namespace
}  // namespace federation_test
