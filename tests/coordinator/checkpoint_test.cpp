#include "coordinator/checkpoint.h"

#include "coordinator/drbg.h"
#include "coordinator/files.h"
#include "coordinator/registry.h"
#include "test_util.h"

namespace coordinator {
namespace {

Checkpoint sample() {
  Registry reg;
  protocol::coord::Register r{protocol::coord::Role::kParticipant, "site1", 100, 8.0, 1e-5, "", ""};
  auto s = reg.register_site(r, "peer", "", Clock::now());
  EXPECT_TRUE(s.ok());
  s.value()->budget->commit({0.01, 1.1, 50});
  Drbg d(5);
  d.next_u64();
  Checkpoint c;
  c.round = 7;
  c.drbg_state = d.state();
  c.global = coordinator_test::small_adapter(0.1f);
  c.global.values[3] = -0.0f;
  c.global.values[4] = 1e-40f;  // subnormal: must survive bit for bit
  c.adapter_config = R"({"r": 2})";
  c.strategy = "fedadam";
  c.strategy_state = {3,
                      {std::vector<float>(c.global.values.size(), 0.5f),
                       std::vector<float>(c.global.values.size(), 0.25f)}};
  c.registry_json = reg.to_json();
  return c;
}

TEST(Checkpoint, RoundTripsBitExactly) {
  coordinator_test::TempDir dir;
  const auto c = sample();
  ASSERT_TRUE(write_checkpoint(dir.path() / "c.ckpt", c).ok());
  auto back = read_checkpoint(dir.path() / "c.ckpt");
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(serialize_checkpoint(back.value()), serialize_checkpoint(c));
  EXPECT_EQ(back.value().global.tensors, c.global.tensors);
  EXPECT_EQ(0, std::memcmp(back.value().global.values.data(), c.global.values.data(),
                           c.global.values.size() * 4));
  EXPECT_EQ(back.value().strategy_state, c.strategy_state);
  // The registry (and the budget inside it) comes back with the same spent epsilon.
  auto reg = Registry::from_json(back.value().registry_json);
  ASSERT_TRUE(reg.ok());
  EXPECT_EQ(reg.value().sites().at("site1").budget->spent(),
            Registry::from_json(c.registry_json).value().sites().at("site1").budget->spent());
  EXPECT_GT(reg.value().sites().at("site1").budget->spent(), 0.0);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "c.ckpt.tmp"));
}

TEST(Checkpoint, RefusesTruncatedOrCorruptedFiles) {
  const auto bytes = serialize_checkpoint(sample());
  for (const size_t cut : {size_t{0}, size_t{10}, bytes.size() / 2, bytes.size() - 1}) {
    EXPECT_FALSE(parse_checkpoint(std::span<const uint8_t>(bytes.data(), cut)).ok()) << cut;
  }
  auto flipped = bytes;
  flipped[flipped.size() / 2] ^= 1;
  EXPECT_FALSE(parse_checkpoint(flipped).ok());
  auto longer = bytes;
  longer.push_back(0);
  EXPECT_FALSE(parse_checkpoint(longer).ok());
  coordinator_test::TempDir dir;
  ASSERT_TRUE(write_file_atomic(dir.path() / "t.ckpt",
                                std::span<const uint8_t>(bytes.data(), bytes.size() - 40))
                  .ok());
  auto r = read_checkpoint(dir.path() / "t.ckpt");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("t.ckpt"), std::string::npos);
}

}  // namespace
}  // namespace coordinator
