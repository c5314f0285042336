// The roster (coordinator/roster.h): its file format, and identities bound to keys end to end
// over real CURVE sockets, against scripted sites that try to take another site's id, register
// as the wrong role, announce a foreign endpoint or an empty key, or come with a key the roster
// does not list; reloading the roster when the file changes and on request.
#include "coordinator/roster.h"

#include <fstream>
#include <thread>

#include "coordinator/coordinator.h"
#include "scripted_site.h"
#include "test_util.h"

namespace coordinator {
namespace {

using namespace std::chrono_literals;
using coordinator_test::events_of;
using coordinator_test::Script;
using coordinator_test::ScriptedSite;
using coordinator_test::SiteOptions;
using coordinator_test::TempDir;
namespace pc = protocol::coord;

std::string key_text() {
  return protocol::KeyPair::generate().value().public_key.z85();
}

TEST(Roster, ParsesSitesWorkersAndComments) {
  const std::string a = key_text(), w = key_text();
  auto r = Roster::parse("# the federation\n\nsite st-mary " + a + "\n  worker\tgpu-a  " + w +
                             "  tcp://gpu-a.example:6000\r\n",
                         "roster.txt");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r.value().size(), 2u);
  const RosterEntry* s = r.value().find_key(a);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->id, "st-mary");
  EXPECT_EQ(s->role, pc::Role::kParticipant);
  EXPECT_EQ(s->line, 3);
  const RosterEntry* g = r.value().find_id("gpu-a");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->key, w);
  EXPECT_EQ(g->role, pc::Role::kWorker);
  EXPECT_EQ(g->endpoint, "tcp://gpu-a.example:6000");
  EXPECT_EQ(r.value().find_key(key_text()), nullptr);
  EXPECT_EQ(r.value().find_id("nobody"), nullptr);
}

TEST(Roster, RefusesABadFileNamingTheLine) {
  const std::string a = key_text(), b = key_text();
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"site a " + a + "\nsite b " + a + "\n",
       "roster.txt:2: key of 'b' is already the key of 'a'"},
      {"site a " + a + "\nsite a " + b + "\n", "roster.txt:2: id 'a' is listed twice"},
      {"site a\xff " + a + "\n", "roster.txt:1: id must be"},
      {"site " + std::string(65, 'x') + " " + a + "\n", "roster.txt:1: id must be"},
      {"site a notakey\n", "roster.txt:1:"},
      {"admin a " + a + "\n", "roster.txt:1: unknown role 'admin'"},
      {"worker w " + a + "\n", "roster.txt:1: a worker line is"},
      {"site a " + a + " tcp://x:1\n", "roster.txt:1: a site line is"},
  };
  for (const auto& [text, want] : bad) {
    auto r = Roster::parse(text, "roster.txt");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().code, base::Code::kInvalidArgument);
    EXPECT_NE(r.error().message.find(want), std::string::npos) << r.error().message;
  }
  EXPECT_FALSE(Roster::load("/nonexistent/roster.txt").ok());
}

TEST(Roster, CheckRegisterBindsIdRoleEndpointAndKey) {
  const std::string a = key_text(), w = key_text();
  auto roster =
      Roster::parse("site a " + a + "\nworker w " + w + " tcp://127.0.0.1:6001\n", "r").value();
  pc::Register site{pc::Role::kParticipant, "a", 10, 1, 1e-5, "", ""};
  EXPECT_TRUE(check_register(roster, a, site).ok());
  auto other = site;
  other.site_id = "b";
  auto e = check_register(roster, a, other);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code, protocol::ErrorCode::kUnauthorised);
  EXPECT_NE(e.error().message.find("participant 'a' (roster line 1)"), std::string::npos)
      << e.error().message;
  EXPECT_FALSE(check_register(roster, w, site).ok());  // the worker's key claiming site a
  EXPECT_NE(check_register(roster, key_text(), site).error().message.find("bound to another key"),
            std::string::npos);
  pc::Register worker{pc::Role::kWorker, "w", 0, 0, 0, "tcp://127.0.0.1:6001", w};
  EXPECT_TRUE(check_register(roster, w, worker).ok());
  auto as_worker = worker;
  as_worker.site_id = "a";
  EXPECT_FALSE(check_register(roster, a, as_worker).ok());  // a site key as a worker
  auto moved = worker;
  moved.compute_endpoint = "tcp://10.6.6.6:6001";
  EXPECT_FALSE(check_register(roster, w, moved).ok());
  auto keyless = worker;
  keyless.public_key = "";
  EXPECT_NE(check_register(roster, w, keyless).error().message.find("not an empty one"),
            std::string::npos);
  auto foreign_key = worker;
  foreign_key.public_key = a;
  EXPECT_FALSE(check_register(roster, w, foreign_key).ok());
}

// --- end to end ----------------------------------------------------------------------------------

struct Curve {
  protocol::KeyPair server = protocol::KeyPair::generate().value();
  std::map<std::string, protocol::KeyPair> keys;  // by name

  const protocol::KeyPair& key(const std::string& name) {
    auto it = keys.find(name);
    if (it == keys.end()) it = keys.emplace(name, protocol::KeyPair::generate().value()).first;
    return it->second;
  }
  std::string z85(const std::string& name) { return key(name).public_key.z85(); }
  SiteOptions site(const std::string& key_name, const std::string& id) {
    SiteOptions o;
    o.id = id;
    o.key = key(key_name);
    o.server = server.public_key;
    return o;
  }
  SiteOptions worker(const std::string& key_name, const std::string& id,
                     const std::string& endpoint) {
    SiteOptions o = site(key_name, id);
    o.role = pc::Role::kWorker;
    o.compute_endpoint = endpoint;
    o.public_key = z85(key_name);
    return o;
  }
};

CoordinatorConfig curve_config(const std::filesystem::path& dir, Curve& curve) {
  CoordinatorConfig c;
  c.endpoint = "tcp://127.0.0.1:*";
  c.insecure = false;
  c.key = curve.server;
  c.run_dir = dir / "run";
  c.initial_adapter = coordinator_test::write_peft(dir / "init", coordinator_test::small_adapter());
  c.roster_file = dir / "roster.txt";
  c.rounds = 1;
  c.min_participants = 2;
  c.round_timeout = 5s;
  c.heartbeat_interval = 100ms;
  c.missed_heartbeats = 20;
  c.wait_for_sites = 20s;
  c.seed = 5;
  return c;
}

// events.jsonl as far as it parses (the coordinator may be writing a line).
std::vector<nlohmann::json> events_so_far(const std::filesystem::path& file) {
  std::vector<nlohmann::json> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    try {
      out.push_back(nlohmann::json::parse(line));
    } catch (const std::exception&) {
      break;
    }
  }
  return out;
}

template <typename Pred>
bool wait_for(Pred pred, std::chrono::milliseconds timeout = 20s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

TEST(RosterRounds, KeysSpeakOnlyAsTheirRosterEntry) {
  TempDir dir;
  Curve curve;
  std::ofstream(dir.path() / "roster.txt")
      << "# two hospitals, one worker, a site that will misbehave\n"
      << "site a " << curve.z85("a") << "\n"
      << "site b " << curve.z85("b") << "\n"
      << "worker w1 " << curve.z85("w1") << " tcp://127.0.0.1:6001\n"
      << "site mallory " << curve.z85("mallory") << "\n"
      << "worker w2 " << curve.z85("w2") << " tcp://127.0.0.1:6002\n";
  auto cfg = curve_config(dir.path(), curve);
  protocol::AllowList allow;  // admits a key the roster does not list
  allow.add(curve.key("stranger").public_key);
  cfg.allow = allow;
  cfg.start_after = 2;
  zmq::context_t ctx;
  auto c = Coordinator::create(ctx, cfg);
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  const std::string ep = c.value()->endpoint();
  std::optional<base::Result<RunSummary>> summary;
  std::thread runner([&] { summary = c.value()->run(); });

  // The attackers first, so that a first-come binding would have given them the ids.
  auto claim_a = curve.site("mallory", "a");                                    // another site's id
  auto as_worker = curve.worker("mallory", "mallory", "tcp://127.0.0.1:6009");  // wrong role
  auto foreign = curve.worker("w2", "w2", "tcp://10.6.6.6:6002");  // endpoint not its own
  auto keyless = curve.worker("w2", "w2", "tcp://127.0.0.1:6002");
  keyless.public_key = "";  // an empty key: every site would decline every round
  auto stranger = curve.site("stranger", "c");  // not in the roster
  std::vector<std::unique_ptr<ScriptedSite>> bad;
  for (const auto& o : {claim_a, as_worker, foreign, keyless, stranger}) {
    bad.push_back(std::make_unique<ScriptedSite>(ctx, ep, o));
  }
  EXPECT_TRUE(wait_for([&] {
    return std::all_of(bad.begin(), bad.end(), [](const auto& s) { return s->refused(); });
  }));
  auto w1 =
      std::make_unique<ScriptedSite>(ctx, ep, curve.worker("w1", "w1", "tcp://127.0.0.1:6001"));
  EXPECT_TRUE(wait_for([&] { return w1->registered(); }));
  auto a = std::make_unique<ScriptedSite>(ctx, ep, curve.site("a", "a"));
  auto b = std::make_unique<ScriptedSite>(ctx, ep, curve.site("b", "b"));
  runner.join();
  ASSERT_TRUE(summary.has_value() && summary->ok());
  EXPECT_EQ(summary->value().reason, "completed");
  for (auto* s : {a.get(), b.get(), w1.get()}) s->stop();
  for (auto& s : bad) s->stop();
  c.value().reset();

  EXPECT_NE(bad[0]->refusal().find("participant 'mallory' (roster line 5), it may not register "
                                   "as 'a'"),
            std::string::npos)
      << bad[0]->refusal();
  EXPECT_NE(bad[1]->refusal().find("it may not register as a worker"), std::string::npos)
      << bad[1]->refusal();
  EXPECT_NE(bad[2]->refusal().find("may announce only tcp://127.0.0.1:6002"), std::string::npos)
      << bad[2]->refusal();
  EXPECT_NE(bad[3]->refusal().find("not an empty one"), std::string::npos) << bad[3]->refusal();
  EXPECT_NE(bad[4]->refusal().find("not in the roster"), std::string::npos) << bad[4]->refusal();
  EXPECT_TRUE(a->registered() && b->registered());
  EXPECT_EQ(a->uploads_accepted(), 1);
  // The invitations carried only the roster's worker, with its roster key.
  const auto workers = a->workers();
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0].endpoint, "tcp://127.0.0.1:6001");
  EXPECT_EQ(workers[0].public_key, curve.z85("w1"));

  const auto all = coordinator_test::read_events(cfg.run_dir / "events.jsonl");
  std::set<std::string> registered;
  for (const auto& e : events_of(all, "site_registered")) registered.insert(e["site"]);
  EXPECT_EQ(registered, (std::set<std::string>{"a", "b", "w1"}));
  // One per attacker at least (a slow reply makes a site ask again); the stranger is cut before.
  std::set<std::string> refused_ids;
  for (const auto& e : events_of(all, "registration_refused")) refused_ids.insert(e["site"]);
  EXPECT_EQ(refused_ids, (std::set<std::string>{"a", "mallory", "w2"}));
  bool stranger_logged = false;
  for (const auto& e : events_of(all, "message_refused")) {
    if (e.value("key", "") == curve.z85("stranger")) stranger_logged = true;
  }
  EXPECT_TRUE(stranger_logged);
  const auto finished = events_of(all, "round_finished");
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(finished[0]["sites"].get<std::vector<std::string>>(),
            (std::vector<std::string>{"a", "b"}));
}

TEST(RosterRounds, TheRosterIsReloadedWhenTheFileChangesAndOnRequest) {
  TempDir dir;
  Curve curve;
  const auto file = dir.path() / "roster.txt";
  auto write_roster = [&](const std::vector<std::string>& sites) {
    std::ofstream out(file.string() + ".new");
    for (const auto& s : sites) out << "site " << s << " " << curve.z85(s) << "\n";
    out.close();
    std::filesystem::rename(file.string() + ".new", file);
  };
  write_roster({"a", "b"});
  auto cfg = curve_config(dir.path(), curve);
  protocol::AllowList allow;
  allow.add(curve.key("c").public_key);
  cfg.allow = allow;
  cfg.start_after = 3;
  zmq::context_t ctx;
  auto c = Coordinator::create(ctx, cfg);
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  const std::string ep = c.value()->endpoint();
  std::optional<base::Result<RunSummary>> summary;
  std::thread runner([&] { summary = c.value()->run(); });

  ScriptedSite a(ctx, ep, curve.site("a", "a"));
  ScriptedSite b(ctx, ep, curve.site("b", "b"));
  {
    ScriptedSite early(ctx, ep, curve.site("c", "c"));  // not in the roster yet
    EXPECT_TRUE(wait_for([&] { return early.refused(); }));
    EXPECT_NE(early.refusal().find("not in the roster"), std::string::npos) << early.refusal();
  }
  // The operator adds c: picked up from the file's change, without a restart.
  write_roster({"a", "b", "c"});
  auto roster_loads = [&] {
    return events_of(events_so_far(cfg.run_dir / "events.jsonl"), "roster_loaded").size();
  };
  EXPECT_TRUE(wait_for([&] { return roster_loads() == 2; }));
  ScriptedSite late(ctx, ep, curve.site("c", "c"));
  // c completes the three sites the first round waits for.
  runner.join();
  ASSERT_TRUE(summary.has_value() && summary->ok());
  EXPECT_EQ(summary->value().reason, "completed");
  EXPECT_TRUE(late.registered());
  const auto all = coordinator_test::read_events(cfg.run_dir / "events.jsonl");
  const auto finished = events_of(all, "round_finished");
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(finished[0]["sites"].get<std::vector<std::string>>(),
            (std::vector<std::string>{"a", "b", "c"}));
}

TEST(RosterRounds, ASiteRemovedFromTheRosterIsRevoked) {
  TempDir dir;
  Curve curve;
  const auto file = dir.path() / "roster.txt";
  std::ofstream(file) << "site a " << curve.z85("a") << "\nsite b " << curve.z85("b") << "\nsite c "
                      << curve.z85("c") << "\n";
  auto cfg = curve_config(dir.path(), curve);
  cfg.start_after = 4;  // never reached: the round starts after wait_for_sites
  cfg.wait_for_sites = 3s;
  zmq::context_t ctx;
  auto c = Coordinator::create(ctx, cfg);
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  const std::string ep = c.value()->endpoint();
  std::optional<base::Result<RunSummary>> summary;
  std::thread runner([&] { summary = c.value()->run(); });
  ScriptedSite a(ctx, ep, curve.site("a", "a"));
  ScriptedSite b(ctx, ep, curve.site("b", "b"));
  ScriptedSite cs(ctx, ep, curve.site("c", "c"));
  EXPECT_TRUE(wait_for([&] { return a.registered() && b.registered() && cs.registered(); }));
  // The explicit request (what SIGHUP does) reloads it at once.
  {  // written aside and renamed over, as an operator's tool should
    std::ofstream(file.string() + ".new")
        << "site a " << curve.z85("a") << "\nsite b " << curve.z85("b") << "\n";
    std::filesystem::rename(file.string() + ".new", file);
  }
  c.value()->reload_roster();
  runner.join();
  ASSERT_TRUE(summary.has_value() && summary->ok());
  EXPECT_EQ(summary->value().reason, "completed");
  const auto all = coordinator_test::read_events(cfg.run_dir / "events.jsonl");
  const auto revoked = events_of(all, "site_revoked");
  ASSERT_EQ(revoked.size(), 1u);
  EXPECT_EQ(revoked[0]["site"], "c");
  const auto finished = events_of(all, "round_finished");
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(finished[0]["sites"].get<std::vector<std::string>>(),
            (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(cs.invitations(), 0);
  bool unauthorised = false;
  for (const auto& e : cs.errors()) {
    if (e.code == protocol::ErrorCode::kUnauthorised) unauthorised = true;
  }
  EXPECT_TRUE(unauthorised);  // its heartbeats are refused from then on
}

TEST(RosterRounds, ABadRosterIsRefusedAtStart) {
  TempDir dir;
  Curve curve;
  const auto file = dir.path() / "roster.txt";
  std::ofstream(file) << "site a " << curve.z85("a") << "\nsite a " << curve.z85("b") << "\n";
  auto cfg = curve_config(dir.path(), curve);
  zmq::context_t ctx;
  auto bad = Coordinator::create(ctx, cfg);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("roster.txt:2"), std::string::npos) << bad.error().message;
  auto insecure = cfg;
  insecure.insecure = true;
  EXPECT_FALSE(Coordinator::create(ctx, insecure).ok());  // a roster needs CURVE keys
}

}  // namespace
}  // namespace coordinator
