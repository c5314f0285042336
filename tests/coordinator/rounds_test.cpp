// End-to-end rounds over real ZeroMQ sockets: the coordinator in this thread, scripted
// participants in theirs (scripted_site.h), and events.jsonl checked against what happened.
#include <cmath>
#include <thread>
#include <tuple>

#include "coordinator/coordinator.h"
#include "coordinator/files.h"
#include "coordinator/peft.h"
#include "privacy/budget.h"
#include "recording_strategy.h"
#include "scripted_site.h"
#include "test_util.h"

namespace coordinator {
namespace {

using namespace std::chrono_literals;
using coordinator_test::events_of;
using coordinator_test::read_events;
using coordinator_test::Script;
using coordinator_test::ScriptedSite;
using coordinator_test::SiteOptions;
using coordinator_test::TempDir;

CoordinatorConfig base_config(const std::filesystem::path& dir) {
  CoordinatorConfig c;
  c.endpoint = "tcp://127.0.0.1:*";
  c.insecure = true;
  c.run_dir = dir / "run";
  c.initial_adapter = coordinator_test::write_peft(dir / "init", coordinator_test::small_adapter());
  c.rounds = 1;
  c.fraction = 1.0;
  c.min_participants = 2;
  c.round_timeout = 1500ms;
  c.heartbeat_interval = 100ms;
  c.missed_heartbeats = 10;
  c.wait_for_sites = 5s;
  c.seed = 3;
  c.plan.local_steps = 10;
  c.plan.sample_rate = 0.01;
  c.plan.noise_multiplier = 1.0;
  return c;
}

struct Outcome {
  RunSummary summary;
  std::vector<nlohmann::json> events;
  std::vector<std::unique_ptr<ScriptedSite>> sites;  // stopped, for their counters
};

// Runs a coordinator with these sites until it ends.
Outcome run_federation(CoordinatorConfig config, std::vector<SiteOptions> sites,
                       zmq::context_t* shared_context = nullptr) {
  zmq::context_t own;
  zmq::context_t& ctx = shared_context ? *shared_context : own;
  // Start with every participant in, whatever the machine's speed.
  for (const auto& s : sites) {
    if (s.role == protocol::coord::Role::kParticipant && s.id != "intruder") ++config.start_after;
  }
  const auto run_dir = config.run_dir;
  auto c = Coordinator::create(ctx, std::move(config));
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().to_string());
  Outcome out;
  if (!c.ok()) return out;
  for (auto& s : sites) {
    out.sites.push_back(std::make_unique<ScriptedSite>(ctx, c.value()->endpoint(), s));
  }
  auto summary = c.value()->run();
  EXPECT_TRUE(summary.ok()) << (summary.ok() ? "" : summary.error().to_string());
  if (summary.ok()) out.summary = summary.value();
  std::this_thread::sleep_for(100ms);  // Shutdown reaches the sites
  for (auto& s : out.sites) s->stop();
  c.value().reset();
  out.events = read_events(run_dir / "events.jsonl");
  return out;
}

SiteOptions site(std::string id, Script script = Script::kNormal, float value = 0.01f,
                 uint64_t examples = 10) {
  SiteOptions o;
  o.id = std::move(id);
  o.script = script;
  o.delta_value = value;
  o.examples = examples;
  return o;
}

std::vector<std::string> ids(const nlohmann::json& array) {
  return array.get<std::vector<std::string>>();
}

TEST(Rounds, FullRoundsAggregateLogAndExport) {
  TempDir dir;
  auto cfg = base_config(dir.path());
  cfg.rounds = 2;
  const auto initial = coordinator_test::small_adapter();
  auto worker = site("w1");
  worker.role = protocol::coord::Role::kWorker;
  worker.compute_endpoint = "tcp://127.0.0.1:6001";
  auto out = run_federation(
      cfg, {site("a", Script::kNormal, 0.01f, 10), site("b", Script::kNormal, 0.02f, 20),
            site("c", Script::kNormal, 0.03f, 30), worker});
  EXPECT_EQ(out.summary.reason, "completed");
  EXPECT_EQ(out.summary.last_round, 2u);
  const auto finished = events_of(out.events, "round_finished");
  ASSERT_EQ(finished.size(), 2u);
  for (size_t r = 0; r < 2; ++r) {
    const auto& f = finished[r];
    EXPECT_EQ(f["round"], r + 1);
    EXPECT_EQ(ids(f["sites"]), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(f["examples"], 60);
    // Each site reports train loss 2 / round, weighted by examples: the same value.
    EXPECT_NEAR(f["train_loss"].get<double>(), 2.0 / (r + 1), 1e-12);
    EXPECT_NEAR(f["heldout_loss"].get<double>(), 2.0 / (r + 1) + 0.1, 1e-12);
    ASSERT_TRUE(f["epsilon"].is_object());
    EXPECT_EQ(f["epsilon"].size(), 3u);
    EXPECT_GT(f["epsilon"]["a"].get<double>(), 0.0);
    EXPECT_GT(f["bytes_down"].get<uint64_t>(), 3 * initial.values.size() * 4);
    EXPECT_GT(f["bytes_up"].get<uint64_t>(), 3 * initial.values.size() * 4);
  }
  // epsilon grows from round 1 to round 2.
  EXPECT_GT(finished[1]["epsilon"]["b"].get<double>(), finished[0]["epsilon"]["b"].get<double>());
  EXPECT_EQ(events_of(out.events, "round_started").size(), 2u);
  EXPECT_EQ(events_of(out.events, "participant_selected").size(), 6u);
  EXPECT_EQ(events_of(out.events, "delta_received").size(), 6u);
  EXPECT_EQ(events_of(out.events, "checkpoint_written").size(), 2u);
  ASSERT_EQ(events_of(out.events, "run_finished").size(), 1u);
  EXPECT_EQ(out.events.back()["event"], "run_finished");
  EXPECT_TRUE(events_of(out.events, "participant_dropped").empty());
  // Two FedAvg steps of the example-weighted mean (0.1 + 0.4 + 0.9) / 60.
  auto exported = load_peft(cfg.run_dir / "adapter");
  ASSERT_TRUE(exported.ok()) << exported.error().to_string();
  EXPECT_NE(exported.value().config_json.find("LORA"), std::string::npos);
  const double mean = (0.01 * 10 + 0.02 * 20 + 0.03 * 30) / 60;
  ASSERT_EQ(exported.value().adapter.values.size(), initial.values.size());
  for (size_t i = 0; i < initial.values.size(); ++i) {
    EXPECT_NEAR(exported.value().adapter.values[i], initial.values[i] + 2 * mean, 1e-5);
  }
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(out.sites[i]->uploads_accepted(), 2);
    EXPECT_TRUE(out.sites[i]->shut_down());
    // The registered worker is in the directory every invitation carries.
    const auto workers = out.sites[i]->workers();
    ASSERT_EQ(workers.size(), 1u);
    EXPECT_EQ(workers[0].endpoint, "tcp://127.0.0.1:6001");
  }
  EXPECT_EQ(out.sites[3]->invitations(), 0);  // a worker is never selected
  EXPECT_TRUE(out.sites[3]->shut_down());
}

TEST(Rounds, ASiteThatNeverAnswersIsDroppedAtTheDeadline) {
  TempDir dir;
  auto cfg = base_config(dir.path());
  cfg.round_timeout = 800ms;
  auto out = run_federation(cfg, {site("a"), site("b"), site("quiet", Script::kSilent)});
  EXPECT_EQ(out.summary.reason, "completed");
  const auto finished = events_of(out.events, "round_finished");
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(ids(finished[0]["sites"]), (std::vector<std::string>{"a", "b"}));
  const auto dropped = events_of(out.events, "participant_dropped");
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0]["site"], "quiet");
  EXPECT_EQ(dropped[0]["reason"], "deadline");
}

TEST(Rounds, TooFewDeltasRetryTheRoundWithANewSelection) {
  TempDir dir;
  auto cfg = base_config(dir.path());
  cfg.rounds = 2;
  cfg.fraction = 0.5;  // 2 of 3
  cfg.max_attempts = 20;
  cfg.round_timeout = 300ms;
  auto out = run_federation(cfg, {site("a"), site("b"), site("quiet", Script::kSilent)});
  EXPECT_EQ(out.summary.reason, "completed");
  const auto failed = events_of(out.events, "round_failed");
  ASSERT_FALSE(failed.empty()) << "seed 3 should select the silent site at least once";
  const auto started = events_of(out.events, "round_started");
  for (const auto& f : failed) {
    // The failed selection held the silent site; the round was started again, attempt + 1.
    bool retried = false;
    for (const auto& s : started) {
      if (s["round"] == f["round"] && s["attempt"] == f["attempt"]) {
        auto sel = ids(s["selected"]);
        EXPECT_NE(std::find(sel.begin(), sel.end(), "quiet"), sel.end());
      }
      if (s["round"] == f["round"] && s["attempt"] == f["attempt"].get<int>() + 1) retried = true;
    }
    EXPECT_TRUE(retried);
  }
  const auto finished = events_of(out.events, "round_finished");
  ASSERT_EQ(finished.size(), 2u);
  for (const auto& f : finished) {
    EXPECT_EQ(ids(f["sites"]), (std::vector<std::string>{"a", "b"}));
  }
}

TEST(Rounds, LateDeltasAreLoggedAndDropped) {
  TempDir dir;
  auto cfg = base_config(dir.path());
  cfg.rounds = 2;
  cfg.round_timeout = 700ms;
  auto out = run_federation(cfg, {site("a"), site("b"), site("slow", Script::kLateFirst)});
  EXPECT_EQ(out.summary.reason, "completed");
  const auto late = events_of(out.events, "delta_late");
  ASSERT_FALSE(late.empty());
  EXPECT_EQ(late[0]["site"], "slow");
  EXPECT_EQ(late[0]["round"], 1);
  EXPECT_GE(out.sites[2]->late_acks(), 1);
  const auto finished = events_of(out.events, "round_finished");
  ASSERT_EQ(finished.size(), 2u);
  EXPECT_EQ(ids(finished[0]["sites"]), (std::vector<std::string>{"a", "b"}));
  // In round 2 it is on time again.
  EXPECT_EQ(ids(finished[1]["sites"]), (std::vector<std::string>{"a", "b", "slow"}));
  for (const auto& d : events_of(out.events, "delta_received")) {
    if (d["site"] == "slow") {
      EXPECT_EQ(d["round"], 2);
    }
  }
}

TEST(Rounds, AMalformedUploadGetsAnErrorAndTheRoundCompletes) {
  TempDir dir;
  auto cfg = base_config(dir.path());
  cfg.min_participants = 3;
  auto out = run_federation(cfg, {site("a"), site("b"), site("bad", Script::kMalformedFirst)});
  EXPECT_EQ(out.summary.reason, "completed");
  const auto errors = out.sites[2]->errors();
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].code, protocol::ErrorCode::kMalformedRequest);
  EXPECT_EQ(errors[1].code, protocol::ErrorCode::kShapeMismatch);
  EXPECT_EQ(errors[2].code, protocol::ErrorCode::kMalformedRequest);
  EXPECT_TRUE(out.sites[0]->errors().empty());
  const auto finished = events_of(out.events, "round_finished");
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(ids(finished[0]["sites"]), (std::vector<std::string>{"a", "b", "bad"}));
  EXPECT_EQ(out.sites[2]->uploads_accepted(), 1);
}

// epsilon after one and after two phases of the test plan.
std::pair<double, double> epsilons(const CoordinatorConfig& cfg) {
  const privacy::Phase p{cfg.plan.sample_rate, cfg.plan.noise_multiplier,
                         static_cast<int64_t>(cfg.plan.local_steps)};
  privacy::Budget b(1e9, 1e-5);
  const double one = b.epsilon_after(p);
  b.commit(p);
  return {one, b.epsilon_after(p)};
}

TEST(Rounds, AnExhaustedSiteIsNeverSelectedAgain) {
  TempDir dir;
  auto cfg = base_config(dir.path());
  cfg.rounds = 3;
  const auto [one, two] = epsilons(cfg);
  auto tight = site("tight");
  tight.epsilon_max = (one + two) / 2;  // room for exactly one round
  auto out = run_federation(cfg, {site("a"), site("b"), tight});
  EXPECT_EQ(out.summary.reason, "completed");
  const auto exhausted = events_of(out.events, "budget_exhausted");
  ASSERT_EQ(exhausted.size(), 1u);
  EXPECT_EQ(exhausted[0]["site"], "tight");
  const auto finished = events_of(out.events, "round_finished");
  ASSERT_EQ(finished.size(), 3u);
  EXPECT_EQ(ids(finished[0]["sites"]).size(), 3u);
  for (size_t r = 1; r < 3; ++r) {
    EXPECT_EQ(ids(finished[r]["sites"]), (std::vector<std::string>{"a", "b"}));
    EXPECT_NEAR(finished[r]["epsilon"]["tight"].get<double>(), one, 1e-9);
  }
  EXPECT_LE(finished[2]["epsilon"]["tight"].get<double>(), tight.epsilon_max);
}

TEST(Rounds, TheRunEndsCleanlyWhenNoSiteCanTrain) {
  TempDir dir;
  auto cfg = base_config(dir.path());
  cfg.rounds = 10;
  const auto [one, two] = epsilons(cfg);
  std::vector<SiteOptions> sites{site("a"), site("b"), site("c")};
  for (auto& s : sites) s.epsilon_max = (one + two) / 2;
  auto out = run_federation(cfg, sites);
  EXPECT_EQ(out.summary.reason, "budget_exhausted");
  EXPECT_EQ(out.summary.last_round, 1u);
  EXPECT_EQ(events_of(out.events, "budget_exhausted").size(), 3u);
  EXPECT_EQ(events_of(out.events, "round_finished").size(), 1u);
  EXPECT_EQ(out.events.back()["event"], "run_finished");
  EXPECT_EQ(out.events.back()["reason"], "budget_exhausted");
  EXPECT_TRUE(std::filesystem::exists(cfg.run_dir / "adapter" / "adapter_model.safetensors"));
}

TEST(Rounds, ARestartResumesAtTheNextRoundAndReproducesTheAdapter) {
  TempDir dir;
  auto make = [&](const std::string& name, uint32_t rounds) {
    auto cfg = base_config(dir.path() / name);
    cfg.rounds = rounds;
    cfg.fraction = 0.5;  // 2 of 3: the DRBG state matters
    cfg.seed = 11;
    cfg.strategy.name = "fedadam";
    cfg.strategy.server_lr = 0.05;
    return cfg;
  };
  auto sites = [] {
    return std::vector<SiteOptions>{site("a", Script::kNormal, 0.01f, 10),
                                    site("b", Script::kNormal, -0.02f, 20),
                                    site("c", Script::kNormal, 0.04f, 30)};
  };
  const auto whole = make("whole", 3);
  run_federation(whole, sites());
  const auto part = make("part", 2);
  run_federation(part, sites());
  auto resumed = make("part", 3);
  {
    zmq::context_t ctx;
    auto c = Coordinator::create(ctx, resumed);
    ASSERT_TRUE(c.ok()) << c.error().to_string();
    EXPECT_EQ(c.value()->next_round(), 3u);
  }
  auto out = run_federation(resumed, sites());
  EXPECT_EQ(out.summary.last_round, 3u);
  std::vector<int> rounds_started;
  for (const auto& e : events_of(out.events, "round_started")) rounds_started.push_back(e["round"]);
  EXPECT_EQ(rounds_started, (std::vector<int>{1, 2, 3}));  // one log across both runs
  auto a = read_file(whole.run_dir / "adapter" / "adapter_model.safetensors");
  auto b = read_file(resumed.run_dir / "adapter" / "adapter_model.safetensors");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a.value(), b.value());
  auto init = load_peft(whole.initial_adapter).value().adapter.values;
  EXPECT_NE(load_peft(whole.run_dir / "adapter").value().adapter.values, init);
}

TEST(Rounds, UnauthorisedSitesAreRefusedUnderCurve) {
  TempDir dir;
  auto cfg = base_config(dir.path());
  cfg.insecure = false;
  auto server = protocol::KeyPair::generate().value();
  cfg.key = server;
  std::vector<SiteOptions> sites{site("a"), site("b"), site("intruder")};
  protocol::AllowList allow;
  for (auto& s : sites) {
    s.key = protocol::KeyPair::generate().value();
    s.server = server.public_key;
    if (s.id != "intruder") allow.add(s.key->public_key);
  }
  cfg.allow = allow;
  auto out = run_federation(cfg, sites);
  EXPECT_EQ(out.summary.reason, "completed");
  EXPECT_TRUE(out.sites[0]->registered());
  EXPECT_TRUE(out.sites[1]->registered());
  EXPECT_FALSE(out.sites[2]->registered());
  const auto finished = events_of(out.events, "round_finished");
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(ids(finished[0]["sites"]), (std::vector<std::string>{"a", "b"}));
  for (const auto& e : events_of(out.events, "site_registered")) EXPECT_NE(e["site"], "intruder");
}

TEST(Rounds, RunsInOneProcessOverInproc) {
  TempDir dir;
  auto cfg = base_config(dir.path());
  cfg.endpoint = "inproc://coordinator-test";
  zmq::context_t ctx;  // inproc needs one context for both ends
  auto out = run_federation(cfg, {site("a"), site("b")}, &ctx);
  EXPECT_EQ(out.summary.reason, "completed");
  EXPECT_EQ(events_of(out.events, "round_finished").size(), 1u);
}

TEST(StrategyDeltas, EachAcceptedUploadReachesTheStrategyOnceWithItsCappedWeight) {
  TempDir dir;
  auto cfg = base_config(dir.path());
  cfg.min_participants = 3;
  cfg.max_example_weight = 15;
  std::vector<coordinator_test::RecordedRound> rounds;
  cfg.strategy_factory = [&rounds](const StrategyConfig& c,
                                   size_t size) -> base::Result<std::unique_ptr<Strategy>> {
    auto inner = make_strategy(c, size);
    if (!inner) return inner.error();
    return std::unique_ptr<Strategy>(
        new coordinator_test::RecordingStrategy(std::move(inner).value(), &rounds));
  };
  const auto initial = coordinator_test::small_adapter();
  // `bad` first sends undecodable, wrongly shaped and NaN uploads (refused), then a good one.
  auto out = run_federation(
      cfg, {site("a", Script::kNormal, 0.01f, 10), site("b", Script::kNormal, 0.02f, 20),
            site("bad", Script::kMalformedFirst, 0.03f, 30)});
  EXPECT_EQ(out.summary.reason, "completed");
  ASSERT_EQ(rounds.size(), 1u);
  const auto& r = rounds[0];
  ASSERT_EQ(r.deltas.size(), 3u);
  const std::vector<std::tuple<std::string, uint64_t, float>> expected{
      {"a", 10, 0.01f}, {"b", 15, 0.02f}, {"bad", 15, 0.03f}};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(r.deltas[i].site, std::get<0>(expected[i]));
    EXPECT_EQ(r.deltas[i].weight, std::get<1>(expected[i]));
    EXPECT_EQ(r.deltas[i].values,
              std::vector<float>(initial.values.size(), std::get<2>(expected[i])));
  }
  // The update is still FedAvg's step with the streaming mean of the capped weights.
  const double mean = (0.01 * 10 + 0.02 * 15 + 0.03 * 15) / 40;
  auto exported = load_peft(cfg.run_dir / "adapter");
  ASSERT_TRUE(exported.ok()) << exported.error().to_string();
  ASSERT_EQ(exported.value().adapter.values.size(), initial.values.size());
  for (size_t i = 0; i < initial.values.size(); ++i) {
    EXPECT_NEAR(r.mean[i], mean, 1e-7);
    EXPECT_NEAR(exported.value().adapter.values[i], initial.values[i] + mean, 1e-6);
  }
}

TEST(Rounds, BadConfigurationIsRefused) {
  TempDir dir;
  zmq::context_t ctx;
  auto cfg = base_config(dir.path());
  cfg.fraction = 0;
  EXPECT_FALSE(Coordinator::create(ctx, cfg).ok());
  cfg = base_config(dir.path());
  cfg.insecure = false;  // no key
  EXPECT_FALSE(Coordinator::create(ctx, cfg).ok());
  cfg = base_config(dir.path());
  cfg.endpoint = "tcp://0.0.0.0:*";  // insecure off loopback
  EXPECT_FALSE(Coordinator::create(ctx, cfg).ok());
  cfg = base_config(dir.path());
  cfg.initial_adapter = dir.path() / "nowhere";
  EXPECT_FALSE(Coordinator::create(ctx, cfg).ok());
}

}  // namespace
}  // namespace coordinator
