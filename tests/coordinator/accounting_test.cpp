// Honest accounting and no budget spent on rounds that cannot succeed, end to end over real
// ZeroMQ sockets with scripted sites: every site that accepted an attempt is charged for it even
// when the attempt fails (the coordinator's epsilon equals what each site charged itself), a
// misconfigured site is excluded after its first decline, a tiny budget never ends the run,
// FedAvg weights are capped and bounded by the registered dataset size, losses are optional,
// and the run id is drawn once per run and kept across a restart.
#include <cmath>
#include <fstream>
#include <thread>

#include "coordinator/checkpoint.h"
#include "coordinator/coordinator.h"
#include "coordinator/peft.h"
#include "coordinator/registry.h"
#include "privacy/budget.h"
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

CoordinatorConfig config(const std::filesystem::path& dir) {
  CoordinatorConfig c;
  c.endpoint = "tcp://127.0.0.1:*";
  c.insecure = true;
  c.run_dir = dir / "run";
  c.initial_adapter = coordinator_test::write_peft(dir / "init", coordinator_test::small_adapter());
  c.rounds = 1;
  c.min_participants = 2;
  c.round_timeout = 3s;
  c.heartbeat_interval = 100ms;
  c.missed_heartbeats = 20;
  c.wait_for_sites = 10s;
  c.seed = 3;
  c.plan.local_steps = 10;
  c.plan.sample_rate = 0.01;
  return c;
}

SiteOptions site(std::string id, Script script = Script::kNormal) {
  SiteOptions o;
  o.id = std::move(id);
  o.script = script;
  return o;
}

struct Outcome {
  RunSummary summary;
  std::vector<nlohmann::json> events;
  std::vector<std::unique_ptr<ScriptedSite>> sites;
};

Outcome run(CoordinatorConfig cfg, const std::vector<SiteOptions>& sites) {
  zmq::context_t ctx;
  if (cfg.start_after == 0) cfg.start_after = static_cast<uint32_t>(sites.size());
  const auto run_dir = cfg.run_dir;
  auto c = Coordinator::create(ctx, std::move(cfg));
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().to_string());
  Outcome out;
  if (!c.ok()) return out;
  for (const auto& s : sites) {
    out.sites.push_back(std::make_unique<ScriptedSite>(ctx, c.value()->endpoint(), s));
  }
  auto summary = c.value()->run();
  EXPECT_TRUE(summary.ok()) << (summary.ok() ? "" : summary.error().to_string());
  if (summary.ok()) out.summary = summary.value();
  std::this_thread::sleep_for(100ms);
  for (auto& s : out.sites) s->stop();
  c.value().reset();
  out.events = read_events(run_dir / "events.jsonl");
  return out;
}

// epsilon after `n` phases of the plan, as a site's own privacy::Budget records it.
double epsilon_after(const CoordinatorConfig& cfg, int n) {
  const privacy::Phase p{cfg.plan.sample_rate, cfg.plan.noise_multiplier,
                         static_cast<int64_t>(cfg.plan.local_steps)};
  privacy::Budget b(1e9, 1e-5);
  for (int i = 0; i < n; ++i) b.commit(p);
  return b.spent();
}

TEST(Accounting, AMisconfiguredSiteIsExcludedAndEveryAcceptedAttemptIsCharged) {
  TempDir dir;
  auto cfg = config(dir.path());
  cfg.rounds = 3;
  cfg.fraction = 0.75;  // 3 of 4
  cfg.min_participants = 3;
  cfg.max_attempts = 5;
  auto out = run(cfg, {site("a"), site("b"), site("bad", Script::kMisconfigured), site("d")});
  EXPECT_EQ(out.summary.reason, "completed");
  EXPECT_EQ(out.summary.last_round, 3u);
  // Selected at most once: its decline excludes it until it registers again.
  int bad_selected = 0;
  for (const auto& s : events_of(out.events, "round_started")) {
    for (const auto& id : s["selected"]) bad_selected += id == "bad";
  }
  EXPECT_LE(bad_selected, 1);
  EXPECT_EQ(out.sites[2]->accepts(), bad_selected);
  const auto failed = events_of(out.events, "round_failed");
  EXPECT_EQ(failed.size(), static_cast<size_t>(bad_selected));
  if (bad_selected == 1) {
    ASSERT_EQ(events_of(out.events, "site_misconfigured").size(), 1u);
    EXPECT_EQ(events_of(out.events, "site_misconfigured")[0]["site"], "bad");
  }
  // Every attempt a site accepted is charged once at the coordinator, failed ones included:
  // its epsilon equals what the site itself charged (one phase per accepted attempt).
  const auto end = events_of(out.events, "run_finished");
  ASSERT_EQ(end.size(), 1u);
  const auto& eps = end[0]["epsilon"];
  const std::vector<std::string> ids = {"a", "b", "bad", "d"};
  int total_accepts = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int accepts = out.sites[i]->accepts();
    total_accepts += accepts;
    EXPECT_NEAR(eps[ids[i]].get<double>(), epsilon_after(cfg, accepts), 1e-9) << ids[i];
    std::printf("site %-4s accepted %d attempts, coordinator epsilon %.6f\n", ids[i].c_str(),
                accepts, eps[ids[i]].get<double>());
  }
  // 3 completed attempts of 3 sites, plus the failed attempt's accepting sites.
  EXPECT_EQ(total_accepts, 9 + 3 * bad_selected);
}

TEST(Accounting, AFailedAttemptsChargesReachTheCheckpoint) {
  TempDir dir;
  auto cfg = config(dir.path());
  cfg.min_participants = 3;
  cfg.max_attempts = 1;  // the round fails and the run ends
  cfg.round_timeout = 600ms;
  auto out = run(cfg, {site("a"), site("b"), site("quiet", Script::kSilent)});
  EXPECT_EQ(out.summary.reason, "round_failed");
  EXPECT_EQ(events_of(out.events, "round_failed").size(), 1u);
  auto ckpt = read_checkpoint(cfg.run_dir / "checkpoints" / "latest.ckpt");
  ASSERT_TRUE(ckpt.ok()) << ckpt.error().to_string();
  EXPECT_EQ(ckpt.value().round, 0u);         // no round completed
  EXPECT_EQ(ckpt.value().next_attempt, 2u);  // attempt 1 is spent
  auto registry = Registry::from_json(ckpt.value().registry_json);
  ASSERT_TRUE(registry.ok());
  EXPECT_NEAR(registry.value().find("a")->budget->spent(), epsilon_after(cfg, 1), 1e-9);
  EXPECT_EQ(registry.value().find("quiet")->budget->spent(), 0.0);  // never accepted
  // A restarted coordinator goes on with attempt 2, never attempt 1 again.
  cfg.max_attempts = 5;
  auto again = run(cfg, {site("a"), site("b"), site("c")});
  EXPECT_EQ(again.summary.reason, "completed");
  const auto started = events_of(again.events, "round_started");
  ASSERT_EQ(started.size(), 2u);
  EXPECT_EQ(started[1]["attempt"], 2);
  EXPECT_NEAR(events_of(again.events, "run_finished").back()["epsilon"]["a"].get<double>(),
              epsilon_after(cfg, 2), 1e-9);
}

TEST(Accounting, ATinyBudgetMakesASiteIneligibleWithoutEndingTheRun) {
  TempDir dir;
  auto cfg = config(dir.path());
  cfg.rounds = 2;
  cfg.start_after = 2;
  auto tiny = site("tiny");
  tiny.epsilon_max = 1e-9;  // registers first: alone, it must not end the run
  auto out = run(cfg, {tiny, site("a"), site("b")});
  EXPECT_EQ(out.summary.reason, "completed");
  EXPECT_EQ(out.summary.last_round, 2u);
  const auto insufficient = events_of(out.events, "budget_insufficient");
  ASSERT_EQ(insufficient.size(), 1u);
  EXPECT_EQ(insufficient[0]["site"], "tiny");
  EXPECT_TRUE(events_of(out.events, "budget_exhausted").empty());
  for (const auto& s : events_of(out.events, "round_started")) {
    for (const auto& id : s["selected"]) EXPECT_NE(id, "tiny");
  }
  EXPECT_EQ(out.sites[0]->invitations(), 0);
}

TEST(Accounting, ExampleWeightsAreCappedAndBoundedByTheDatasetSize) {
  TempDir dir;
  auto cfg = config(dir.path());
  cfg.max_example_weight = 10;
  auto small = site("small");
  small.examples = 10;
  small.delta_value = 0.01f;
  auto big = site("big");
  big.dataset_size = 1000;
  big.examples = 1000;  // weighted as 10
  big.delta_value = 0.03f;
  auto liar = site("liar");
  liar.dataset_size = 5;
  liar.examples = 10;  // more than it registered
  auto out = run(cfg, {small, big, liar});
  EXPECT_EQ(out.summary.reason, "completed");
  const auto finished = events_of(out.events, "round_finished");
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(finished[0]["sites"].get<std::vector<std::string>>(),
            (std::vector<std::string>{"big", "small"}));
  bool refused = false;
  for (const auto& e : out.sites[2]->errors()) {
    refused |= e.code == protocol::ErrorCode::kMalformedRequest &&
               e.message.find("exceeds the registered dataset size 5") != std::string::npos;
  }
  EXPECT_TRUE(refused);
  for (const auto& d : events_of(out.events, "delta_received")) {
    if (d["site"] == "big") {
      EXPECT_EQ(d["examples"], 1000);
      EXPECT_EQ(d["weight"], 10);
    }
  }
  // FedAvg with weights 10 and 10: the plain mean of 0.01 and 0.03.
  const auto initial = coordinator_test::small_adapter();
  auto exported = load_peft(cfg.run_dir / "adapter");
  ASSERT_TRUE(exported.ok());
  for (size_t i = 0; i < initial.values.size(); ++i) {
    EXPECT_NEAR(exported.value().adapter.values[i], initial.values[i] + 0.02, 1e-6);
  }
}

TEST(Accounting, LossesAreOptional) {
  TempDir dir;
  auto cfg = config(dir.path());
  auto a = site("a"), b = site("b");
  a.train_loss_override = NAN;  // neither reports a loss
  b.train_loss_override = NAN;
  auto quiet = run(cfg, {a, b});
  EXPECT_EQ(quiet.summary.reason, "completed");
  const auto finished = events_of(quiet.events, "round_finished");
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_FALSE(finished[0].contains("train_loss"));
  EXPECT_FALSE(finished[0].contains("heldout_loss"));
  for (const auto& d : events_of(quiet.events, "delta_received")) {
    EXPECT_FALSE(d.contains("train_loss"));
  }
  // One site reports: the round's loss is its own (the other's NaN is left out, not averaged).
  TempDir dir2;
  auto cfg2 = config(dir2.path());
  auto c = site("c");
  c.train_loss_override = 1.5;
  auto mixed = run(cfg2, {a, c});
  const auto f2 = events_of(mixed.events, "round_finished");
  ASSERT_EQ(f2.size(), 1u);
  EXPECT_DOUBLE_EQ(f2[0]["train_loss"].get<double>(), 1.5);
}

TEST(Accounting, TheRunIdIsDrawnOnceAndKeptAcrossARestart) {
  TempDir dir;
  auto cfg = config(dir.path());
  auto first = run(cfg, {site("a"), site("b")});
  const auto started = events_of(first.events, "run_started");
  ASSERT_EQ(started.size(), 1u);
  const std::string id = started[0]["run_id"];
  EXPECT_TRUE(protocol::coord::is_run_id(id)) << id;
  for (const auto& s : first.sites) {
    for (const auto& r : s->run_ids()) EXPECT_EQ(r, id);
    EXPECT_FALSE(s->run_ids().empty());
  }
  EXPECT_EQ(read_checkpoint(cfg.run_dir / "checkpoints" / "latest.ckpt").value().run_id, id);
  cfg.rounds = 2;
  auto second = run(cfg, {site("a"), site("b")});
  const auto both = events_of(second.events, "run_started");
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[1]["run_id"], id);  // resumed: the same run
  // RUN/run_id holds it from the start: a run stopped before its first checkpoint keeps it too.
  std::ifstream in(cfg.run_dir / "run_id");
  std::string stored;
  in >> stored;
  EXPECT_EQ(stored, id);
  TempDir early;
  auto early_cfg = config(early.path());
  {
    zmq::context_t ctx;
    auto c = Coordinator::create(ctx, early_cfg);  // no round, no checkpoint
    ASSERT_TRUE(c.ok());
  }
  std::ifstream in2(early_cfg.run_dir / "run_id");
  std::string early_id;
  in2 >> early_id;
  EXPECT_TRUE(protocol::coord::is_run_id(early_id));
  auto resumed_early = run(early_cfg, {site("a"), site("b")});
  EXPECT_EQ(events_of(resumed_early.events, "run_started")[0]["run_id"], early_id);
  // Another run directory is another run.
  TempDir other;
  auto fresh = run(config(other.path()), {site("a"), site("b")});
  EXPECT_NE(events_of(fresh.events, "run_started")[0]["run_id"], id);
}

}  // namespace
}  // namespace coordinator
