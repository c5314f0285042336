// The keys of a site's DP releases and its ledger (participant/releases.h): every difference in
// what a release depends on gives independent streams; the very same release gives the same
// ones; a release serves exactly one delta; the cached delta reads back whole or not at all.
#include "participant/releases.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "privacy/random_source.h"
#include "privacy/stream_key.h"

namespace participant {
namespace {

namespace fs = std::filesystem;
namespace coord = protocol::coord;

fs::path temp_dir(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("fedlora_releases_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

privacy::Seed site_seed(unsigned char fill = 3) {
  privacy::Seed s{};
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<unsigned char>(fill * 31 + i);
  return s;
}

coord::RoundInvitation invitation() {
  coord::RoundInvitation inv;
  inv.run_id = "0123456789abcdef0123456789abcdef";
  inv.round = 3;
  inv.attempt = 1;
  inv.plan = {.local_steps = 10,
              .learning_rate = 1e-3,
              .batch_size = 8,
              .sample_rate = 0.04,
              .noise_multiplier = 0.8,
              .clip_norm = 1.0,
              .delta = 1e-5,
              .deadline_unix_ms = 1000,
              .seed = 42};
  inv.adapter.tensors = {{"layers.0.q.lora_A", {2, 4}, 0}, {"layers.0.q.lora_B", {4, 2}, 8}};
  return inv;
}

std::vector<float> values() {
  std::vector<float> v(16);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.25f * static_cast<float>(i) - 1.0f;
  return v;
}

Digest digest(unsigned char fill) {
  Digest d{};
  d.fill(fill);
  return d;
}

TEST(Releases, EverythingAReleaseDependsOnChangesItsKeyAndId) {
  const Release base = derive_release(site_seed(), invitation(), values(), digest(1));
  EXPECT_EQ(base.id.size(), 64u);
  EXPECT_NE(base.id, privacy::seed_hex(base.key));  // the public id is not the secret key

  // The same release, with only the deadline moved (a coordinator replaying the round).
  coord::RoundInvitation replay = invitation();
  replay.plan.deadline_unix_ms = 99999;
  const Release same = derive_release(site_seed(), replay, values(), digest(1));
  EXPECT_EQ(same.id, base.id);
  EXPECT_EQ(same.key, base.key);

  const std::vector<std::pair<std::string, std::function<void(coord::RoundInvitation&)>>>
      changes = {
          {"run id", [](auto& i) { i.run_id = "fedcba9876543210fedcba9876543210"; }},
          {"round", [](auto& i) { ++i.round; }},
          {"attempt", [](auto& i) { ++i.attempt; }},
          {"local steps", [](auto& i) { ++i.plan.local_steps; }},
          {"learning rate", [](auto& i) { i.plan.learning_rate *= 2; }},
          {"batch", [](auto& i) { ++i.plan.batch_size; }},
          {"sample rate", [](auto& i) { i.plan.sample_rate = 0.05; }},
          {"sigma", [](auto& i) { i.plan.noise_multiplier = 0.9; }},
          {"clip", [](auto& i) { i.plan.clip_norm = 2; }},
          {"delta", [](auto& i) { i.plan.delta = 1e-6; }},
          {"plan seed", [](auto& i) { ++i.plan.seed; }},
          {"participant dp", [](auto& i) { i.plan.participant_dp = true; }},
          {"participant clip", [](auto& i) { i.plan.participant_clip = 0.5; }},
          {"participant sigma", [](auto& i) { i.plan.participant_sigma = 0.5; }},
          {"tensor name", [](auto& i) { i.adapter.tensors[0].name = "layers.0.v.lora_A"; }},
          {"tensor shape",
           [](auto& i) {
             i.adapter.tensors[0].shape = {4, 2};
           }},
      };
  std::set<std::string> ids = {base.id};
  for (const auto& [what, change] : changes) {
    coord::RoundInvitation inv = invitation();
    change(inv);
    const Release r = derive_release(site_seed(), inv, values(), digest(1));
    EXPECT_NE(r.key, base.key) << what;
    ids.insert(r.id);
  }
  EXPECT_EQ(ids.size(), changes.size() + 1);  // all distinct from each other too

  std::vector<float> other = values();
  other[7] = std::nextafter(other[7], 10.0f);  // one bit of one adapter value
  EXPECT_NE(derive_release(site_seed(), invitation(), other, digest(1)).key, base.key);
  EXPECT_NE(derive_release(site_seed(), invitation(), values(), digest(2)).key, base.key);
  EXPECT_NE(derive_release(site_seed(4), invitation(), values(), digest(1)).key, base.key);
}

TEST(Releases, TheStreamsOfOneReleaseAreDistinct) {
  const Release r = derive_release(site_seed(), invitation(), values(), digest(1));
  std::set<uint64_t> first_words;
  for (const uint64_t stream : {kSamplingStream, kNoiseStream, kDeltaNoiseStream}) {
    privacy::RandomSource src(r.key, stream);
    first_words.insert(src.next_u64());
  }
  EXPECT_EQ(first_words.size(), 3u);
}

TEST(Releases, SiteDigestCoversTheDataAndTheSetup) {
  const fs::path dir = temp_dir("digest");
  const fs::path file = dir / "train.jsonl";
  { std::ofstream(file) << "{\"text\": \"note one\"}\n"; }
  model::LoraConfig lora;
  const Digest a = site_digest("st-mary", file, 64, lora);
  EXPECT_EQ(a, site_digest("st-mary", file, 64, lora));
  EXPECT_NE(a, site_digest("st-anne", file, 64, lora));
  EXPECT_NE(a, site_digest("st-mary", file, 128, lora));
  model::LoraConfig rank4 = lora;
  rank4.rank = 4;
  EXPECT_NE(a, site_digest("st-mary", file, 64, rank4));
  { std::ofstream(file, std::ios::app) << "{\"text\": \"note two\"}\n"; }
  EXPECT_NE(a, site_digest("st-mary", file, 64, lora));
  EXPECT_THROW(site_digest("st-mary", dir / "missing.jsonl", 64, lora), std::runtime_error);
  fs::remove_all(dir);
}

TEST(ReleaseLedger, OneDeltaPerReleaseAcrossRestarts) {
  const fs::path dir = temp_dir("ledger");
  const std::string id(64, 'a');
  {
    ReleaseLedger ledger = ReleaseLedger::open(dir);
    EXPECT_EQ(ledger.size(), 0u);
    EXPECT_EQ(ledger.find(id), nullptr);
    ledger.add({id, "run-1", 2, 1, ""});
    ASSERT_NE(ledger.find(id), nullptr);
    EXPECT_TRUE(ledger.bind_delta(id, "hash-1"));
  }
  ReleaseLedger reopened = ReleaseLedger::open(dir);  // as a restarted site reads it
  ASSERT_NE(reopened.find(id), nullptr);
  EXPECT_EQ(reopened.find(id)->run_id, "run-1");
  EXPECT_EQ(reopened.find(id)->round, 2u);
  EXPECT_EQ(reopened.find(id)->delta_sha256, "hash-1");
  EXPECT_TRUE(reopened.bind_delta(id, "hash-1"));   // the identical delta again: allowed
  EXPECT_FALSE(reopened.bind_delta(id, "hash-2"));  // a different delta: refused
  EXPECT_EQ(ReleaseLedger::open(dir).find(id)->delta_sha256, "hash-1");
  EXPECT_THROW(reopened.bind_delta(std::string(64, 'b'), "x"), std::runtime_error);

  { std::ofstream(dir / "releases.json") << "{\"version\": 1, \"releases\": [{\"id\": 5}]}"; }
  EXPECT_THROW(ReleaseLedger::open(dir), std::runtime_error);
  fs::remove_all(dir);
}

TEST(CachedDelta, ReadsBackWholeOrNotAtAll) {
  const fs::path dir = temp_dir("cache");
  EXPECT_FALSE(load_cached_delta(dir).has_value());
  CachedDelta d;
  d.release_id = std::string(64, 'c');
  d.upload.round = 4;
  d.upload.attempt = 2;
  d.upload.site_id = "st-mary";
  d.upload.delta.tensors = invitation().adapter.tensors;
  d.upload.example_count = 1200;
  d.upload.train_loss = std::nan("");
  d.upload.heldout_loss = 3.25;
  d.upload.steps = 10;
  d.upload.epsilon_spent = 1.5;
  d.values = values();
  save_cached_delta(dir, d);
  const auto back = load_cached_delta(dir);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->release_id, d.release_id);
  EXPECT_EQ(back->upload, d.upload);
  EXPECT_EQ(back->values, d.values);

  // A torn cache (values of another delta) is ignored, never trusted.
  std::vector<float> other = values();
  other[0] = 9;
  {
    std::ofstream out(dir / "last_delta.f32", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(other.data()),
              static_cast<std::streamsize>(other.size() * sizeof(float)));
  }
  EXPECT_FALSE(load_cached_delta(dir).has_value());
  fs::resize_file(dir / "last_delta.f32", 12);
  EXPECT_FALSE(load_cached_delta(dir).has_value());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace participant
