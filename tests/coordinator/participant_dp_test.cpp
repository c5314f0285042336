// Participant-level DP as an option of the federation: the plan's three fields on the wire
// (round trip, refusal of bad values by encoder and decoder), the coordinator's flags, its
// federation-level accountant checked against privacy::RdpAccountant directly (over real ZeroMQ
// sockets with scripted sites), checkpointing of that accountant, and old checkpoints without it.
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include "coordinator/checkpoint.h"
#include "coordinator/cli.h"
#include "coordinator/coordinator.h"
#include "privacy/accountant.h"
#include "protocol/coordinator_codec.h"
#include "scripted_site.h"
#include "test_util.h"

namespace coordinator {
namespace {

using namespace std::chrono_literals;
using coordinator_test::events_of;
using coordinator_test::read_events;
using coordinator_test::ScriptedSite;
using coordinator_test::SiteOptions;
using coordinator_test::TempDir;
namespace pc = protocol::coord;

// --- the plan on the wire -------------------------------------------------------------------

pc::Message invitation(const pc::TrainingPlan& plan) {
  pc::AdapterTable table{{{"a.lora_A.weight", {2, 3}, 0}, {"a.lora_B.weight", {3, 2}, 6}}, 0};
  pc::Message m{
      pc::RoundInvitation{
          3, 1, plan, {{"tcp://10.0.0.2:6000", ""}}, table, "00112233445566778899aabbccddeeff"},
      {}};
  m.blobs.push_back(pc::float_blob(std::vector<float>(12, 0.25f)).value());
  return m;
}

pc::TrainingPlan dp_plan() {
  pc::TrainingPlan p{.local_steps = 10,
                     .learning_rate = 1e-3,
                     .batch_size = 8,
                     .sample_rate = 0.02,
                     .noise_multiplier = 1.1,
                     .clip_norm = 1.0,
                     .delta = 1e-5,
                     .deadline_unix_ms = 1700000000000,
                     .seed = 99};
  p.participant_dp = true;
  p.participant_clip = 0.123456789;  // distinctive bytes, patched below
  p.participant_sigma = 1.75;
  return p;
}

TEST(ParticipantDpPlan, RoundTripsOnAndOff) {
  for (const bool on : {true, false}) {
    pc::TrainingPlan plan = dp_plan();
    if (!on) {
      plan.participant_dp = false;
      plan.participant_clip = 0;
      plan.participant_sigma = 0;
    }
    pc::Message m = invitation(plan);
    const pc::Body body = m.body;
    auto frames = pc::encode(std::move(m));
    ASSERT_TRUE(frames.ok()) << frames.error().to_string();
    auto back = pc::decode(std::move(frames).value());
    ASSERT_TRUE(back.ok()) << back.error().to_string();
    EXPECT_TRUE(back.value().body == body);
    const auto& p = std::get<pc::RoundInvitation>(back.value().body).plan;
    EXPECT_EQ(p.participant_dp, on);
    EXPECT_EQ(p.participant_clip, on ? 0.123456789 : 0.0);
    EXPECT_EQ(p.participant_sigma, on ? 1.75 : 0.0);
  }
}

TEST(ParticipantDpPlan, EncoderRefusesBadValues) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    bool on;
    double clip, sigma;
  };
  for (const Case c :
       {Case{true, 0, 1}, Case{true, 1, 0}, Case{true, -1, 1}, Case{true, 1, -2},
        Case{true, nan, 1}, Case{true, 1, inf}, Case{false, nan, 0}, Case{false, 0, inf}}) {
    pc::TrainingPlan plan = dp_plan();
    plan.participant_dp = c.on;
    plan.participant_clip = c.clip;
    plan.participant_sigma = c.sigma;
    pc::Message m = invitation(plan);
    auto frames = pc::encode(std::move(m));
    ASSERT_FALSE(frames.ok()) << c.on << " " << c.clip << " " << c.sigma;
    EXPECT_EQ(frames.error().code, protocol::ErrorCode::kMalformedRequest);
    EXPECT_NE(frames.error().message.find("participant"), std::string::npos)
        << frames.error().message;
  }
  // Off, the values are not used: any finite ones pass.
  pc::TrainingPlan plan = dp_plan();
  plan.participant_dp = false;
  EXPECT_TRUE(pc::encode(invitation(plan)).ok());
}

TEST(ParticipantDpPlan, DecoderRefusesBadValuesFromAPeer) {
  // A well-formed header whose participant clip a hostile peer then sets to 0, -1 or NaN.
  for (const double bad : {0.0, -1.0, std::numeric_limits<double>::quiet_NaN()}) {
    pc::Message m = invitation(dp_plan());
    std::vector<protocol::BlobDesc> descs{m.blobs[0].desc};
    auto header = pc::encode_header(m.body, descs);
    ASSERT_TRUE(header.ok()) << header.error().to_string();
    std::vector<uint8_t> bytes = header.value();
    ASSERT_TRUE(pc::decode_header(bytes).ok());
    const double good = 0.123456789;
    size_t hits = 0;
    for (size_t i = 0; i + 8 <= bytes.size(); i += 8) {
      if (std::memcmp(bytes.data() + i, &good, 8) == 0) {
        std::memcpy(bytes.data() + i, &bad, 8);
        ++hits;
      }
    }
    ASSERT_EQ(hits, 1u);
    auto decoded = pc::decode_header(bytes);
    ASSERT_FALSE(decoded.ok()) << bad;
    EXPECT_EQ(decoded.error().code, protocol::ErrorCode::kMalformedRequest);
  }
}

// --- flags ---------------------------------------------------------------------------------------

base::Result<CliOutcome> parse(std::vector<std::string> args) {
  std::vector<const char*> argv{"coordinator", "--run-dir", "x", "--insecure"};
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out;
  return parse_cli(static_cast<int>(argv.size()), argv.data(), out);
}

TEST(ParticipantDpCli, FlagsAndIni) {
  auto off = parse({});
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off.value().config.plan.participant_dp);
  auto on = parse({"--participant-dp", "--participant-clip", "0.5", "--participant-sigma", "2"});
  ASSERT_TRUE(on.ok()) << on.error().to_string();
  EXPECT_TRUE(on.value().config.plan.participant_dp);
  EXPECT_EQ(on.value().config.plan.participant_clip, 0.5);
  EXPECT_EQ(on.value().config.plan.participant_sigma, 2.0);
  TempDir dir;
  const auto ini = dir.path() / "c.ini";
  std::ofstream(ini) << "participant-dp = true\nparticipant-clip = 0.25\nparticipant-sigma = 3\n";
  auto file = parse({"--config", ini.string(), "--participant-sigma", "4"});
  ASSERT_TRUE(file.ok()) << file.error().to_string();
  EXPECT_TRUE(file.value().config.plan.participant_dp);
  EXPECT_EQ(file.value().config.plan.participant_clip, 0.25);
  EXPECT_EQ(file.value().config.plan.participant_sigma, 4.0);  // flags win
  EXPECT_FALSE(parse({"--participant-dp"}).ok());
  EXPECT_FALSE(parse({"--participant-dp", "--participant-clip", "1"}).ok());
  EXPECT_FALSE(
      parse({"--participant-dp", "--participant-clip", "0", "--participant-sigma", "1"}).ok());
}

// --- accounting over real rounds -----------------------------------------------------------------

CoordinatorConfig dp_config(const std::filesystem::path& dir, uint32_t rounds) {
  CoordinatorConfig c;
  c.endpoint = "tcp://127.0.0.1:*";
  c.insecure = true;
  c.run_dir = dir / "run";
  c.initial_adapter = coordinator_test::write_peft(dir / "init", coordinator_test::small_adapter());
  c.rounds = rounds;
  c.fraction = 0.5;  // 2 of 4 sites: q = 0.5 with amplification
  // These tests check the accountant's arithmetic with the subsampled rate; the default (q = 1,
  // no amplification: the coordinator knows the sample) is RoundsAreNotAmplifiedByDefault's.
  c.participant_amplification = true;
  c.min_participants = 2;
  c.round_timeout = 1500ms;
  c.heartbeat_interval = 100ms;
  c.missed_heartbeats = 10;
  c.wait_for_sites = 5s;
  c.seed = 11;
  c.plan.participant_dp = true;
  c.plan.participant_clip = 0.5;
  c.plan.participant_sigma = 1.2;
  return c;
}

// Runs a coordinator with four normal sites until it ends; returns its events (the whole log).
std::vector<nlohmann::json> run_four_sites(CoordinatorConfig config) {
  zmq::context_t ctx;
  config.start_after = 4;
  const auto run_dir = config.run_dir;
  auto c = Coordinator::create(ctx, std::move(config));
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().to_string());
  if (!c.ok()) return {};
  std::vector<std::unique_ptr<ScriptedSite>> sites;
  for (const char* id : {"a", "b", "c", "d"}) {
    SiteOptions o;
    o.id = id;
    sites.push_back(std::make_unique<ScriptedSite>(ctx, c.value()->endpoint(), o));
  }
  auto summary = c.value()->run();
  EXPECT_TRUE(summary.ok()) << (summary.ok() ? "" : summary.error().to_string());
  if (summary.ok()) {
    EXPECT_EQ(summary.value().reason, "completed");
  }
  std::this_thread::sleep_for(100ms);
  for (auto& s : sites) s->stop();
  c.value().reset();
  return read_events(run_dir / "events.jsonl");
}

// The participant-level epsilon after each round_finished, recomputed with RdpAccountant from
// the selections the log records (every attempt here received deltas).
std::vector<double> expected_epsilons(const std::vector<nlohmann::json>& events, double sigma,
                                      double delta) {
  privacy::RdpAccountant acc;
  std::vector<double> out;
  for (const auto& e : events) {
    if (e.at("event") == "round_started") {
      const double q =
          static_cast<double>(e.at("selected").size()) / e.at("eligible").get<double>();
      EXPECT_EQ(q, 0.5);
      acc.add({.q = q, .sigma = sigma, .steps = 1});
    } else if (e.at("event") == "round_finished") {
      out.push_back(acc.spent(delta).epsilon);
    }
  }
  return out;
}

std::vector<double> logged_epsilons(const std::vector<nlohmann::json>& events) {
  std::vector<double> out;
  for (const auto& f : events_of(events, "round_finished")) {
    EXPECT_TRUE(f.contains("participant_epsilon")) << f.dump();
    out.push_back(f.value("participant_epsilon", -1.0));
  }
  return out;
}

TEST(ParticipantDpRounds, RoundFinishedCarriesTheAccountantsEpsilon) {
  TempDir dir;
  const auto cfg = dp_config(dir.path(), 3);
  const auto events = run_four_sites(cfg);
  const auto logged = logged_epsilons(events);
  ASSERT_EQ(logged.size(), 3u);
  const auto expected = expected_epsilons(events, 1.2, cfg.plan.delta);
  ASSERT_EQ(expected.size(), 3u);
  for (size_t r = 0; r < 3; ++r) {
    EXPECT_GT(logged[r], 0.0);
    EXPECT_NEAR(logged[r], expected[r], 1e-12 * expected[r]) << "round " << r + 1;
    if (r > 0) {
      EXPECT_GT(logged[r], logged[r - 1]);
    }
  }
  // Directly: three steps of q = 0.5, sigma 1.2.
  EXPECT_NEAR(logged[2],
              privacy::epsilon_for({.q = 0.5, .sigma = 1.2, .steps = 3}, cfg.plan.delta).epsilon,
              1e-12 * logged[2]);
  const auto end = events_of(events, "run_finished");
  ASSERT_EQ(end.size(), 1u);
  EXPECT_EQ(end[0].at("participant_epsilon").get<double>(), logged[2]);
  ASSERT_EQ(events_of(events, "participant_dp").size(), 1u);
}

TEST(ParticipantDpRounds, TheAccountantIsCheckpointedAndResumed) {
  TempDir dir;
  auto cfg = dp_config(dir.path(), 2);
  run_four_sites(cfg);
  auto ckpt = read_checkpoint(cfg.run_dir / "checkpoints" / "latest.ckpt");
  ASSERT_TRUE(ckpt.ok()) << ckpt.error().to_string();
  ASSERT_FALSE(ckpt.value().participant_accountant_json.empty());
  EXPECT_EQ(
      privacy::RdpAccountant::from_json(ckpt.value().participant_accountant_json).total_steps(), 2);
  cfg.rounds = 3;
  const auto events = run_four_sites(cfg);  // resumes at round 3; the log is appended
  const auto logged = logged_epsilons(events);
  ASSERT_EQ(logged.size(), 3u);
  EXPECT_NEAR(logged[2],
              privacy::epsilon_for({.q = 0.5, .sigma = 1.2, .steps = 3}, cfg.plan.delta).epsilon,
              1e-12 * logged[2]);
}

TEST(ParticipantDpRounds, OffByDefaultAndOldCheckpointsLoadAsZeroSpent) {
  TempDir dir;
  auto cfg = dp_config(dir.path(), 1);
  cfg.plan.participant_dp = false;
  const auto off = run_four_sites(cfg);
  const auto finished = events_of(off, "round_finished");
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_FALSE(finished[0].contains("participant_epsilon"));
  EXPECT_TRUE(events_of(off, "participant_dp").empty());
  auto ckpt = read_checkpoint(cfg.run_dir / "checkpoints" / "latest.ckpt");
  ASSERT_TRUE(ckpt.ok());
  EXPECT_TRUE(ckpt.value().participant_accountant_json.empty());  // as an older coordinator's

  cfg.plan.participant_dp = true;
  cfg.rounds = 2;
  const auto events = run_four_sites(cfg);
  const auto on = events_of(events, "round_finished");
  ASSERT_EQ(on.size(), 2u);
  EXPECT_NEAR(on[1].at("participant_epsilon").get<double>(),
              privacy::epsilon_for({.q = 0.5, .sigma = 1.2, .steps = 1}, cfg.plan.delta).epsilon,
              1e-12);
}

TEST(ParticipantDpRounds, RoundsAreNotAmplifiedByDefault) {
  TempDir dir;
  auto cfg = dp_config(dir.path(), 2);
  cfg.participant_amplification = false;  // the default
  EXPECT_FALSE(CoordinatorConfig{}.participant_amplification);
  const auto events = run_four_sites(cfg);
  const auto logged = logged_epsilons(events);
  ASSERT_EQ(logged.size(), 2u);
  // Two releases of the Gaussian mechanism with q = 1 although only half the sites were
  // selected: the guarantee holds against the coordinator, which chose them.
  const double unamplified =
      privacy::epsilon_for({.q = 1.0, .sigma = 1.2, .steps = 2}, cfg.plan.delta).epsilon;
  EXPECT_NEAR(logged[1], unamplified, 1e-12 * unamplified);
  EXPECT_GT(logged[1],
            privacy::epsilon_for({.q = 0.5, .sigma = 1.2, .steps = 2}, cfg.plan.delta).epsilon);
  for (const auto& s : events_of(events, "round_started")) EXPECT_EQ(s["selected"].size(), 2u);
}

TEST(ParticipantDpRounds, ABadConfigIsRefused) {
  TempDir dir;
  auto cfg = dp_config(dir.path(), 1);
  cfg.plan.participant_sigma = 0;
  zmq::context_t ctx;
  auto c = Coordinator::create(ctx, cfg);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("participant_sigma"), std::string::npos);
}

}  // namespace
}  // namespace coordinator
