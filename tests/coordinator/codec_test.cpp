// Coordinator messages: round trips of every message, and refusals of malformed frames.
#include "protocol/coordinator_codec.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "coordinator.capnp.h"
#include "fuzz_one_input.h"
#include "protocol/keys.h"

namespace protocol::coord {
namespace {

AdapterTable table(uint32_t blob = 0) {
  return {{{"a.lora_A.weight", {2, 3}, 0}, {"a.lora_B.weight", {3, 2}, 6}, {"scale", {}, 12}},
          blob};
}

Blob floats(size_t n, float start = 0.5f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + static_cast<float>(i);
  return float_blob(v).value();
}

StatusReply status_reply() {
  StatusReply r;
  r.run_id = "0123456789abcdef0123456789abcdef";
  r.model = "runs/x/model";
  r.round = 3;
  r.rounds = 5;
  r.attempt = 2;
  r.phase = RoundPhase::kCollecting;
  r.deadline_in_ms = 12345;
  r.strategy = "fedavg";
  r.min_participants = 2;
  r.sites.push_back({"site-0", Role::kParticipant, true, 250, 500, 3.189, 8, false, false,
                     SeatStatus::kTraining, "", ""});
  r.sites.push_back({"site-1", Role::kParticipant, false, -1, 400, 0, 8, true, false,
                     SeatStatus::kDropped, "deadline", ""});
  r.sites.push_back({"worker-0", Role::kWorker, true, 90, 0, 0, 0, false, false, SeatStatus::kNone,
                     "", "tcp://127.0.0.1:6000"});
  r.failures.push_back({"participant_dropped", 4000, 2, "site-1", "deadline"});
  r.failures.push_back({"round_failed", 3900, 2, "", ""});
  return r;
}

std::vector<Message> samples() {
  std::vector<Message> out;
  out.push_back({Register{Role::kParticipant, "site-1", 500, 8.0, 1e-5, "", ""}, {}});
  out.push_back({Register{Role::kWorker, "w1", 0, 0, 0, "tcp://10.0.0.2:6000",
                          KeyPair::generate().value().public_key.z85()},
                 {}});
  out.push_back({RegisterReply{true, "", 1000, 3}, {}});
  out.push_back({Heartbeat{"site-1", 123456789}, {}});
  Message inv{RoundInvitation{4,
                              2,
                              {10, 1e-3, 8, 0.02, 1.1, 1.0, 1e-5, 1700000000000, 99},
                              {{"tcp://10.0.0.2:6000", ""}},
                              table(),
                              "0123456789abcdef0123456789abcdef"},
              {}};
  inv.blobs.push_back(floats(13));
  out.push_back(std::move(inv));
  out.push_back({Accept{4, 2, "site-1"}, {}});
  out.push_back({Decline{4, 2, "site-1", DeclineReason::kBudget, "would exceed 8"}, {}});
  out.push_back({Decline{4, 2, "site-1", DeclineReason::kMisconfigured, "model mismatch"}, {}});
  Message up{DeltaUpload{4, 2, "site-1", table(), 77, 2.5, 2.7, 10, 1.25}, {}};
  up.blobs.push_back(floats(13, -1.0f));
  out.push_back(std::move(up));
  Message quiet{DeltaUpload{4, 2, "site-1", table(), 77, NAN, NAN, 10, 1.25}, {}};  // no losses
  quiet.blobs.push_back(floats(13, -1.0f));
  out.push_back(std::move(quiet));
  out.push_back({UploadAck{4, 2, UploadStatus::kLate}, {}});
  out.push_back({RoundResult{4, 3, 2.5, 2.6}, {}});
  out.push_back({RoundResult{4, 3, NAN, NAN}, {}});
  out.push_back({Shutdown{"completed"}, {}});
  out.push_back({ErrorReply{{ErrorCode::kShapeMismatch, "bad table"}}, {}});
  out.push_back({StatusRequest{}, {}});
  out.push_back({status_reply(), {}});
  return out;
}

Message copy(const Message& m) {
  Message c{m.body, {}};
  for (const auto& b : m.blobs) c.blobs.push_back(Blob::copy_of(b.desc, b.bytes()).value());
  return c;
}

TEST(CoordinatorCodec, EveryMessageRoundTrips) {
  for (const auto& m : samples()) {
    auto frames = encode(copy(m));
    ASSERT_TRUE(frames.ok()) << body_name(m.body) << ": " << frames.error().to_string();
    EXPECT_EQ(frames.value().size(), 1 + m.blobs.size());
    auto back = decode(std::move(frames).value());
    ASSERT_TRUE(back.ok()) << body_name(m.body) << ": " << back.error().to_string();
    EXPECT_TRUE(back.value().body == m.body) << body_name(m.body);
    ASSERT_EQ(back.value().blobs.size(), m.blobs.size());
    for (size_t i = 0; i < m.blobs.size(); ++i) {
      EXPECT_EQ(blob_floats(back.value().blobs[i]).value(), blob_floats(m.blobs[i]).value());
    }
  }
}

TEST(CoordinatorCodec, EncoderRefusesInvalidMessages) {
  auto bad_table = table();
  bad_table.tensors[1].offset = 5;  // does not tile
  Message m{DeltaUpload{1, 1, "s", bad_table, 1, 0, 0, 1, 0}, {}};
  m.blobs.push_back(floats(13));
  EXPECT_FALSE(encode(std::move(m)).ok());
  Message wrong_size{DeltaUpload{1, 1, "s", table(), 1, 0, 0, 1, 0}, {}};
  wrong_size.blobs.push_back(floats(12));
  EXPECT_EQ(encode(std::move(wrong_size)).error().code, ErrorCode::kShapeMismatch);
  EXPECT_FALSE(encode({Register{Role::kParticipant, "s", 10, -1, 1e-5, "", ""}, {}}).ok());
  EXPECT_FALSE(encode({Register{Role::kParticipant, "", 10, 1, 1e-5, "", ""}, {}}).ok());
  EXPECT_FALSE(encode({Register{Role::kWorker, "w", 0, 0, 0, "", ""}, {}}).ok());
  EXPECT_FALSE(encode({Register{Role::kWorker, "w", 0, 0, 0, "tcp://x:1", "notakey"}, {}}).ok());
  Message inf{DeltaUpload{1, 1, "s", table(), 1, INFINITY, 0, 1, 0}, {}};  // NaN: not reported
  inf.blobs.push_back(floats(13));
  EXPECT_FALSE(encode(std::move(inf)).ok());
  Message eps_nan{DeltaUpload{1, 1, "s", table(), 1, NAN, NAN, 1, NAN}, {}};  // epsilon is required
  eps_nan.blobs.push_back(floats(13));
  EXPECT_FALSE(encode(std::move(eps_nan)).ok());
  Message dup{DeltaUpload{1, 1, "s", table(), 1, 0, 0, 1, 0}, {}};
  std::get<DeltaUpload>(dup.body).delta.tensors[1].name = "a.lora_A.weight";
  dup.blobs.push_back(floats(13));
  EXPECT_FALSE(encode(std::move(dup)).ok());
  Message extra{Accept{1, 1, "s"}, {}};
  extra.blobs.push_back(floats(2));  // a blob nobody refers to
  EXPECT_FALSE(encode(std::move(extra)).ok());
}

std::vector<zmq::message_t> upload_frames() {
  Message up{DeltaUpload{4, 1, "site-1", table(), 7, 1, 1, 1, 0}, {}};
  up.blobs.push_back(floats(13));
  return encode(std::move(up)).value();
}

TEST(CoordinatorCodec, DecoderRefusesMalformedFrames) {
  {  // a missing blob frame
    auto f = upload_frames();
    f.pop_back();
    EXPECT_EQ(decode(std::move(f)).error().code, ErrorCode::kMalformedRequest);
  }
  {  // an extra frame
    auto f = upload_frames();
    f.emplace_back(4);
    EXPECT_FALSE(decode(std::move(f)).ok());
  }
  {  // a blob frame shorter than its description
    auto f = upload_frames();
    f[1] = zmq::message_t(f[1].data(), f[1].size() - 4);
    EXPECT_EQ(decode(std::move(f)).error().code, ErrorCode::kShapeMismatch);
  }
  {  // garbage, odd lengths, empty
    std::vector<zmq::message_t> f;
    f.emplace_back("garbage!", 8);
    EXPECT_FALSE(decode(std::move(f)).ok());
    std::vector<zmq::message_t> g;
    g.emplace_back("abc", 3);
    EXPECT_FALSE(decode(std::move(g)).ok());
    EXPECT_FALSE(decode({}).ok());
  }
  {  // a worker-protocol header is not a coordinator message
    auto f = upload_frames();
    auto head = std::vector<uint8_t>(static_cast<uint8_t*>(f[0].data()),
                                     static_cast<uint8_t*>(f[0].data()) + f[0].size());
    for (size_t i = 8; i < head.size(); i += 7) head[i] ^= 0x5a;  // corrupt the body
    std::vector<zmq::message_t> g;
    g.emplace_back(head.data(), head.size());
    g.push_back(std::move(f[1]));
    auto r = decode(std::move(g));
    if (!r.ok()) {
      EXPECT_FALSE(r.error().message.empty());
    }
  }
}

// Writes a header by hand (what a hostile peer could send) and decodes it.
template <typename Fill>
Result<Header> decode_built(Fill fill) {
  capnp::MallocMessageBuilder b;
  auto env = b.initRoot<coordwire::CoordEnvelope>();
  fill(env);
  auto words = capnp::messageToFlatArray(b);
  auto bytes = words.asBytes();
  return decode_header({bytes.begin(), bytes.size()});
}

Message invitation(std::string run_id) {
  Message inv{RoundInvitation{1,
                              1,
                              {10, 1e-3, 8, 0.02, 1.1, 1.0, 1e-5, 1700000000000, 99},
                              {},
                              table(),
                              std::move(run_id)},
              {}};
  inv.blobs.push_back(floats(13));
  return inv;
}

TEST(CoordinatorCodec, InvitationNeedsAWellFormedRunId) {
  EXPECT_TRUE(encode(invitation("0123456789abcdef0123456789abcdef")).ok());
  for (const char* bad :
       {"", "0123456789abcdef0123456789abcde", "0123456789ABCDEF0123456789abcdef",
        "0123456789abcdef0123456789abcdeg", "0123456789abcdef0123456789abcdef0"}) {
    auto e = encode(invitation(bad));
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_EQ(e.error().code, ErrorCode::kMalformedRequest);
    EXPECT_NE(e.error().message.find("run id"), std::string::npos) << e.error().message;
  }
  // A hostile or old sender that leaves it out: the decoder refuses the invitation.
  auto missing = decode_built([](auto env) {
    auto r = env.initBody().initRoundInvitation();
    r.setVersion(kProtocolVersion);
    r.setRound(1);
    r.setAttempt(1);
    auto p = r.initPlan();
    p.setLocalSteps(1);
    p.setLearningRate(1e-3);
    p.setSampleRate(0.1);
    p.setNoiseMultiplier(1);
    p.setClipNorm(1);
    p.setDelta(1e-5);
    auto t = r.initAdapter().initTensors(1);
    t[0].setName("x");
    t[0].initShape(1).set(0, 1);
    auto b = env.initBlobs(1);
    b[0].setDtype(wire::DType::FLOAT32);
    b[0].setBits(32);
    b[0].initShape(1).set(0, 1);
    b[0].setCount(1);
    b[0].setByteLength(4);
  });
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("run id"), std::string::npos) << missing.error().message;
}

TEST(CoordinatorCodec, SiteIdsAreASafeCharacterSet) {
  EXPECT_TRUE(is_site_id("st-mary_2.a"));
  EXPECT_TRUE(is_site_id(std::string(64, 'a')));
  EXPECT_FALSE(is_site_id(std::string(65, 'a')));
  EXPECT_FALSE(is_site_id(""));
  const std::vector<std::string> bads = {"a b", "a/b", "caf\xc3\xa9", "x\xff", "a\"b", "a:b"};
  for (const std::string& bad : bads) {
    EXPECT_FALSE(is_site_id(bad)) << bad;
    EXPECT_FALSE(encode({Register{Role::kParticipant, bad, 10, 1, 1e-5, "", ""}, {}}).ok()) << bad;
    EXPECT_FALSE(encode({Heartbeat{bad, 1}, {}}).ok()) << bad;
    EXPECT_FALSE(encode({Accept{1, 1, bad}, {}}).ok()) << bad;
    EXPECT_FALSE(encode({Decline{1, 1, bad, DeclineReason::kBusy, ""}, {}}).ok()) << bad;
  }
  // The decoder applies the same rule to what a hostile peer writes by hand.
  auto ff = decode_built([](auto env) {
    auto h = env.initBody().initHeartbeat();
    h.setVersion(kProtocolVersion);
    h.setSiteId("site\xff");
  });
  ASSERT_FALSE(ff.ok());
  EXPECT_EQ(ff.error().code, ErrorCode::kMalformedRequest);
}

TEST(CoordinatorCodec, DeclineReasonNames) {
  EXPECT_EQ(decline_reason_name(DeclineReason::kMisconfigured), "misconfigured");
  EXPECT_EQ(decline_reason_name(DeclineReason::kNoWorkers), "no_workers");
  auto six = decode_built([](auto env) {
    auto d = env.initBody().initDecline();
    d.setVersion(kProtocolVersion);
    d.setAttempt(1);
    d.setSiteId("s");
    d.setReason(static_cast<coordwire::DeclineReason>(6));
  });
  EXPECT_FALSE(six.ok());
}

TEST(CoordinatorCodec, DecoderRefusesBadFieldsAndVersions) {
  auto v2 = decode_built([](auto env) {
    auto h = env.initBody().initHeartbeat();
    h.setVersion(2);
    h.setSiteId("s");
  });
  ASSERT_FALSE(v2.ok());
  EXPECT_EQ(v2.error().code, ErrorCode::kUnsupportedVersion);
  auto role = decode_built([](auto env) {
    auto r = env.initBody().initRegister();
    r.setVersion(kProtocolVersion);
    r.setSiteId("s");
    r.setRole(static_cast<coordwire::Role>(7));
  });
  EXPECT_EQ(role.error().code, ErrorCode::kMalformedRequest);
  auto missing_blob = decode_built([](auto env) {
    auto u = env.initBody().initDeltaUpload();
    u.setVersion(kProtocolVersion);
    u.setRound(1);
    u.setAttempt(1);
    u.setSiteId("s");
    u.setExampleCount(1);
    auto t = u.initDelta().initTensors(1);
    t[0].setName("x");
    t[0].initShape(1).set(0, 4);
    u.getDelta().setBlob(3);
  });
  EXPECT_EQ(missing_blob.error().code, ErrorCode::kMalformedRequest);
  auto too_many_dims = decode_built([](auto env) {
    auto u = env.initBody().initDeltaUpload();
    u.setVersion(kProtocolVersion);
    u.setAttempt(1);
    u.setSiteId("s");
    u.setExampleCount(1);
    auto t = u.initDelta().initTensors(1);
    t[0].setName("x");
    t[0].initShape(9);
  });
  EXPECT_FALSE(too_many_dims.ok());
  auto ok = decode_built([](auto env) {
    auto h = env.initBody().initHeartbeat();
    h.setVersion(kProtocolVersion);
    h.setSiteId("s");
  });
  EXPECT_TRUE(ok.ok());
}

}  // namespace
}  // namespace protocol::coord

namespace protocol::coord {
namespace {

// The libFuzzer body (tests/protocol/fuzz_one_input.h) on coordinator messages: they decode
// through the coordinator decoder and survive its round trip check.
TEST(CoordinatorCodec, FuzzBodyAcceptsEveryValidMessage) {
  for (auto& m : samples()) {
    const std::string name(body_name(m.body));
    auto frames = encode(std::move(m));
    ASSERT_TRUE(frames.ok());
    std::vector<std::vector<uint8_t>> raw;
    for (const auto& f : frames.value()) {
      const auto* p = static_cast<const uint8_t*>(f.data());
      raw.emplace_back(p, p + f.size());
    }
    const auto input = protocol_test::join_frames(raw);
    const auto out = protocol_test::fuzz_one_input(input.data(), input.size());
    EXPECT_TRUE(out.coord_message_decoded) << name;
    EXPECT_TRUE(out.round_trip_ok) << name;
    EXPECT_TRUE(out.errors_typed) << name;
  }
}

}  // namespace
}  // namespace protocol::coord

namespace protocol::coord {
namespace {

std::vector<uint8_t> status_header() {
  auto frames = encode({status_reply(), {}});
  EXPECT_TRUE(frames.ok());
  const auto* p = static_cast<const uint8_t*>(frames.value()[0].data());
  return {p, p + frames.value()[0].size()};
}

// fedctl status's reply: every truncation of its header is refused with a typed error, as are
// lists, texts and values beyond their bounds (by the encoder, and by the decoder for what a
// hostile coordinator writes by hand).
TEST(CoordinatorCodec, StatusReplyTruncatedAndOversized) {
  const auto header = status_header();
  auto back = decode_header(header);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_TRUE(std::get<StatusReply>(back.value().body) == status_reply());
  for (size_t n = 0; n < header.size(); n += 8) {
    auto cut = decode_header({header.data(), n});
    EXPECT_FALSE(cut.ok()) << n;
  }
  for (size_t n = 1; n < 8; ++n)
    EXPECT_FALSE(decode_header({header.data(), header.size() - n}).ok());

  auto refused = [](StatusReply r) { return !encode({std::move(r), {}}).ok(); };
  StatusReply many = status_reply();
  many.sites.clear();
  for (size_t i = 0; i <= kMaxStatusSites; ++i) {
    std::string id = "s";  // appended: GCC 12 warns (-Wrestrict) on "s" + std::to_string(i)
    id += std::to_string(i);
    many.sites.push_back(
        {id, Role::kParticipant, true, 0, 1, 0, 1, false, false, SeatStatus::kNone, "", ""});
  }
  EXPECT_TRUE(refused(many));
  StatusReply fails = status_reply();
  fails.failures.assign(kMaxStatusFailures + 1, {"site_dead", 1, 1, "site-0", ""});
  EXPECT_TRUE(refused(fails));
  StatusReply dup = status_reply();
  dup.sites[1].site_id = "site-0";
  EXPECT_TRUE(refused(dup));
  StatusReply bad_id = status_reply();
  bad_id.sites[0].site_id = "a b";
  EXPECT_TRUE(refused(bad_id));
  StatusReply nan_eps = status_reply();
  nan_eps.sites[0].epsilon_spent = NAN;
  EXPECT_TRUE(refused(nan_eps));
  StatusReply neg_eps = status_reply();
  neg_eps.sites[0].epsilon_budget = -1;
  EXPECT_TRUE(refused(neg_eps));
  StatusReply age = status_reply();
  age.sites[0].heartbeat_age_ms = -2;
  EXPECT_TRUE(refused(age));
  StatusReply run = status_reply();
  run.run_id = "not-a-run-id";
  EXPECT_TRUE(refused(run));
  StatusReply detail = status_reply();
  detail.failures[0].detail = std::string(kMaxErrorBytes + 1, 'x');
  EXPECT_TRUE(refused(detail));
  StatusReply control = status_reply();
  control.model = "a\nb";
  EXPECT_TRUE(refused(control));
  StatusReply zero = status_reply();
  zero.attempt = 0;
  EXPECT_TRUE(refused(zero));

  // The decoder's own bounds, on headers written by hand.
  auto long_list = decode_built([](auto env) {
    auto r = env.initBody().initStatusReply();
    r.setVersion(kProtocolVersion);
    r.setRunId("0123456789abcdef0123456789abcdef");
    r.setAttempt(1);
    r.setPhase(coordwire::RoundPhase::WAITING);
    r.initFailures(kMaxStatusFailures + 1);
  });
  ASSERT_FALSE(long_list.ok());
  EXPECT_EQ(long_list.error().code, ErrorCode::kMalformedRequest);
  auto long_text = decode_built([](auto env) {
    auto r = env.initBody().initStatusReply();
    r.setVersion(kProtocolVersion);
    r.setRunId("0123456789abcdef0123456789abcdef");
    r.setAttempt(1);
    r.setPhase(coordwire::RoundPhase::WAITING);
    r.setStrategy(std::string(kMaxStatusNameBytes + 1, 'f'));
  });
  ASSERT_FALSE(long_text.ok());
  auto bad_seat = decode_built([](auto env) {
    auto r = env.initBody().initStatusReply();
    r.setVersion(kProtocolVersion);
    r.setRunId("0123456789abcdef0123456789abcdef");
    r.setAttempt(1);
    r.setPhase(coordwire::RoundPhase::WAITING);
    auto s = r.initSites(1);
    s[0].setSiteId("s");
    s[0].setRole(coordwire::Role::PARTICIPANT);
    s[0].setSeat(static_cast<coordwire::SeatState>(6));
  });
  ASSERT_FALSE(bad_seat.ok());
  auto no_phase = decode_built([](auto env) {
    auto r = env.initBody().initStatusReply();
    r.setVersion(kProtocolVersion);
    r.setRunId("0123456789abcdef0123456789abcdef");
    r.setAttempt(1);
  });
  ASSERT_FALSE(no_phase.ok());
  auto request = decode_built(
      [](auto env) { env.initBody().initStatusRequest().setVersion(kProtocolVersion); });
  EXPECT_TRUE(request.ok());
  auto old = decode_built([](auto env) { env.initBody().initStatusRequest().setVersion(2); });
  EXPECT_EQ(old.error().code, ErrorCode::kUnsupportedVersion);
}

}  // namespace
}  // namespace protocol::coord

namespace protocol::coord {
namespace {

// The checked-in seed of protocol_fuzz_decode for fedctl status's reply
// (tests/fuzz/corpus/protocol_fuzz_decode/coord_status_reply): it still encodes as it does today
// and decodes through the fuzz body. FEDLORA_WRITE_FUZZ_SEEDS=DIR writes it to
// DIR/protocol_fuzz_decode instead.
TEST(CoordinatorCodec, CheckedInStatusSeedDecodes) {
  auto frames = encode({status_reply(), {}});
  ASSERT_TRUE(frames.ok());
  std::vector<std::vector<uint8_t>> raw;
  for (const auto& f : frames.value()) {
    const auto* p = static_cast<const uint8_t*>(f.data());
    raw.emplace_back(p, p + f.size());
  }
  const auto bytes = protocol_test::join_frames(raw);
  if (const char* out = std::getenv("FEDLORA_WRITE_FUZZ_SEEDS")) {
    const auto to = std::filesystem::path(out) / "protocol_fuzz_decode";
    std::filesystem::create_directories(to);
    std::ofstream(to / "coord_status_reply", std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    GTEST_SKIP() << "seed written to " << to;
  }
  std::ifstream in(std::filesystem::path(PROTOCOL_FUZZ_SEEDS) / "coord_status_reply",
                   std::ios::binary);
  ASSERT_TRUE(in.good());
  const std::vector<uint8_t> seed((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  EXPECT_EQ(seed, bytes);
  const auto fuzzed = protocol_test::fuzz_one_input(seed.data(), seed.size());
  EXPECT_TRUE(fuzzed.coord_message_decoded);
  EXPECT_TRUE(fuzzed.round_trip_ok);
}

}  // namespace
}  // namespace protocol::coord
