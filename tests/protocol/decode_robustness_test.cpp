// The decoder against hostile input: random bytes, truncated headers, missing and extra frames,
// lengths that disagree with shapes, absurd shapes, oversized frames, Cap'n Proto limits, other
// versions, and hundreds of fixed-seed mutations of valid messages. Each must give a typed error
// (a wire code and one line) and leave the next valid message decodable.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "fuzz_one_input.h"
#include "protocol/codec.h"
#include "raw_header.h"
#include "sample_messages.h"

namespace {

using protocol::ErrorCode;
using protocol::Limits;
using protocol::Message;
using Bytes = std::vector<uint8_t>;

std::vector<Bytes> frames_of(const Message& m) {
  auto frames = protocol::encode(protocol_test::clone(m));
  EXPECT_TRUE(frames.ok());
  std::vector<Bytes> out;
  for (const auto& f : frames.value()) {
    const auto* p = static_cast<const uint8_t*>(f.data());
    out.emplace_back(p, p + f.size());
  }
  return out;
}

protocol::Result<Message> decode_bytes(const std::vector<Bytes>& frames,
                                       const Limits& limits = {}) {
  std::vector<zmq::message_t> msgs;
  for (const auto& f : frames) msgs.emplace_back(f.data(), f.size());
  return protocol::decode(std::move(msgs), limits);
}

// The refusal is typed and readable, and a valid message decodes right after it.
void expect_refused(const protocol::Result<Message>& r, std::optional<ErrorCode> code = {}) {
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(protocol::is_wire_code(r.error().code)) << r.error().to_string();
  EXPECT_FALSE(r.error().message.empty());
  EXPECT_EQ(r.error().message.find('\n'), std::string::npos) << r.error().message;
  if (code) {
    EXPECT_EQ(r.error().code, *code) << r.error().to_string();
  }
  static const Message valid = protocol_test::matmul_request(1, 2, 3, 8);
  auto next = decode_bytes(frames_of(valid));
  ASSERT_TRUE(next.ok());
  EXPECT_TRUE(protocol_test::same(next.value(), valid));
}

TEST(DecodeRobustness, RandomBytesAreRefused) {
  std::mt19937_64 g(20240601);  // test data only
  for (int i = 0; i < 400; ++i) {
    Bytes header(g() % 600);
    for (auto& b : header) b = static_cast<uint8_t>(g());
    if (i % 2 == 1 && header.size() >= 16) {
      // A plausible single-segment table, so the Cap'n Proto reader gets past it.
      header.resize(header.size() / 8 * 8);
      const uint32_t words = static_cast<uint32_t>(header.size() / 8 - 1);
      std::memset(header.data(), 0, 4);
      std::memcpy(header.data() + 4, &words, 4);
    }
    std::vector<Bytes> frames{header};
    for (uint64_t extra = g() % 3; extra > 0; --extra) frames.push_back(Bytes(g() % 64, 0xab));
    expect_refused(decode_bytes(frames));
  }
}

TEST(DecodeRobustness, EveryTruncationOfEveryHeaderIsRefused) {
  for (const auto& m : protocol_test::all_samples()) {
    SCOPED_TRACE(std::string(protocol::body_name(m.body)));
    auto frames = frames_of(m);
    const Bytes header = frames[0];
    for (size_t cut = 0; cut < header.size(); ++cut) {
      frames[0].assign(header.begin(), header.begin() + cut);
      expect_refused(decode_bytes(frames), ErrorCode::kMalformedRequest);
    }
  }
}

TEST(DecodeRobustness, MissingAndExtraBlobFramesAreRefused) {
  const auto frames = frames_of(protocol_test::matmul_reply(5, 2, 70, 64, false));
  ASSERT_EQ(frames.size(), 5u);
  for (size_t drop = 1; drop < frames.size(); ++drop) {
    auto fewer = frames;
    fewer.erase(fewer.begin() + drop);
    expect_refused(decode_bytes(fewer), ErrorCode::kMalformedRequest);
  }
  auto more = frames;
  more.push_back(frames[1]);
  expect_refused(decode_bytes(more), ErrorCode::kMalformedRequest);
  expect_refused(decode_bytes({frames[0]}), ErrorCode::kMalformedRequest);
  expect_refused(decode_bytes({}), ErrorCode::kMalformedRequest);
}

TEST(DecodeRobustness, BlobLengthMustMatchItsShape) {
  const auto frames = frames_of(protocol_test::matmul_request(5, 3, 70, 64));
  for (const long delta : {-1L, 1L, -6L, 6L}) {
    auto bad = frames;
    bad[1].resize(bad[1].size() + delta);
    expect_refused(decode_bytes(bad), ErrorCode::kShapeMismatch);
  }
  // Declared count and byte length consistent with each other but not with the frame.
  auto bad = frames;
  bad[0] = protocol_test::tweak_header(frames[0], [](auto env) {
    auto b = env.getBlobs()[0];
    b.setByteLength(b.getByteLength() + 1);
  });
  expect_refused(decode_bytes(bad), ErrorCode::kShapeMismatch);
}

TEST(DecodeRobustness, AbsurdShapesAreRefused) {
  const auto frames = frames_of(protocol_test::matmul_request(5, 3, 70, 64));
  using Tweak = protocol_test::EnvelopeTweak;
  const auto set_shape = [](std::vector<uint64_t> shape, uint64_t count, uint64_t bytes) {
    return Tweak([=](protocol::wire::Envelope::Builder env) {
      auto b = env.getBlobs()[0];
      auto s = b.initShape(shape.size());
      for (size_t i = 0; i < shape.size(); ++i) s.set(i, shape[i]);
      b.setCount(count);
      b.setByteLength(bytes);
    });
  };
  const Tweak tweaks[] = {
      // The product wraps to 0 modulo 2^64; the frame is empty to match.
      set_shape({1ull << 33, 1ull << 31}, 0, 0),
      // The product wraps to a small number.
      set_shape({(1ull << 63) + 1, 2, 1}, 2, 12),
      set_shape({1ull << 32, 1ull << 32, 1ull << 32}, 1, 6),
      set_shape({~0ull, ~0ull, 64}, 64, 384),
      // Count fits, byte length (48 bits each) does not.
      set_shape({1ull << 60, 1, 1}, 1ull << 60, 6ull << 60),
      set_shape({}, 0, 0),
      set_shape({1, 1, 1, 1, 1}, 1, 6),
      set_shape({0, 3, 64}, 0, 0),
      [](auto env) { env.getBlobs()[0].setBits(0); },
      [](auto env) { env.getBlobs()[0].setBits(65); },
      [](auto env) { env.getBlobs()[0].setDtype(static_cast<protocol::wire::DType>(9)); },
      [](auto env) { env.getBlobs()[0].setDtype(protocol::wire::DType::FLOAT32); },
      [](auto env) { env.getBody().getMatmulRequest().setRows(~0ull); },
      [](auto env) { env.getBody().getMatmulRequest().setCols(0); },
      [](auto env) { env.getBody().getMatmulRequest().setInputBlob(1); },
      [](auto env) { env.getBody().getMatmulRequest().setInputBlob(~0u); },
  };
  for (size_t i = 0; i < std::size(tweaks); ++i) {
    SCOPED_TRACE(i);
    auto bad = frames;
    bad[0] = protocol_test::tweak_header(frames[0], tweaks[i]);
    if (i == 0) bad[1].clear();
    expect_refused(decode_bytes(bad));
  }
}

TEST(DecodeRobustness, OversizedFramesAreRefused) {
  const auto frames = frames_of(protocol_test::matmul_request(5, 3, 70, 64));  // blob: 2304 B
  Limits small;
  small.max_blob_bytes = 2000;
  expect_refused(decode_bytes(frames, small), ErrorCode::kMalformedRequest);
  small = {};
  small.max_total_bytes = 2304;  // the header does not fit on top
  expect_refused(decode_bytes(frames, small), ErrorCode::kMalformedRequest);
  small = {};
  small.max_header_bytes = frames[0].size() - 8;
  expect_refused(decode_bytes(frames, small), ErrorCode::kMalformedRequest);
  small = {};
  small.max_blobs = 3;
  expect_refused(decode_bytes(frames_of(protocol_test::matmul_reply(5, 2, 70, 64, false)), small),
                 ErrorCode::kMalformedRequest);
  // The same messages pass under the default limits.
  EXPECT_TRUE(decode_bytes(frames).ok());
}

TEST(DecodeRobustness, CapnProtoTraversalAndNestingLimitsHold) {
  const auto frames = frames_of(protocol_test::model_info_reply());
  Limits tight;
  tight.traversal_limit_words = 16;
  expect_refused(decode_bytes(frames, tight), ErrorCode::kMalformedRequest);
  tight = {};
  tight.nesting_limit = 2;
  expect_refused(decode_bytes(frames, tight), ErrorCode::kMalformedRequest);
  EXPECT_TRUE(decode_bytes(frames).ok());
}

TEST(DecodeRobustness, OtherProtocolVersionsAreRefused) {
  for (const auto& m : protocol_test::all_samples()) {
    SCOPED_TRACE(std::string(protocol::body_name(m.body)));
    auto frames = frames_of(m);
    for (const uint16_t version : {0, 2, 65535}) {
      auto bad = frames;
      bad[0] = protocol_test::tweak_header(frames[0], [version](auto env) {
        auto body = env.getBody();
        switch (body.which()) {
          case protocol::wire::Envelope::Body::MODEL_INFO_REQUEST:
            return body.getModelInfoRequest().setVersion(version);
          case protocol::wire::Envelope::Body::MODEL_INFO_REPLY:
            return body.getModelInfoReply().setVersion(version);
          case protocol::wire::Envelope::Body::MATMUL_REQUEST:
            return body.getMatmulRequest().setVersion(version);
          case protocol::wire::Envelope::Body::MATMUL_REPLY:
            return body.getMatmulReply().setVersion(version);
          case protocol::wire::Envelope::Body::HEARTBEAT:
            return body.getHeartbeat().setVersion(version);
          case protocol::wire::Envelope::Body::ERROR_REPLY:
            return body.getErrorReply().setVersion(version);
        }
      });
      expect_refused(decode_bytes(bad), ErrorCode::kUnsupportedVersion);
    }
  }
}

TEST(DecodeRobustness, OutOfRangeFieldsAreRefused) {
  const auto request = frames_of(protocol_test::matmul_request(5, 3, 70, 64));
  const auto reply = frames_of(protocol_test::matmul_reply(5, 2, 70, 64, true));
  const auto info = frames_of(protocol_test::model_info_reply());
  struct Case {
    const std::vector<Bytes>* frames;
    protocol_test::EnvelopeTweak tweak;
  };
  using Env = protocol::wire::Envelope::Builder;
  const Case cases[] = {
      {&request,
       [](Env e) {
         e.getBody().getMatmulRequest().getProjections().set(
             1, static_cast<protocol::wire::ProjectionKind>(42));
       }},
      {&request,
       [](Env e) {
         e.getBody().getMatmulRequest().getProjections().set(1,
                                                             protocol::wire::ProjectionKind::UNSET);
       }},
      {&request, [](Env e) { e.getBody().getMatmulRequest().initSeed(31); }},
      {&request, [](Env e) { e.getBody().getMatmulRequest().initProjections(0); }},
      {&request, [](Env e) { e.getBody().getMatmulRequest().initProjections(9); }},
      {&request, [](Env e) { e.getBody().getMatmulRequest().setModelId(""); }},
      {&request, [](Env e) { e.getBody().getMatmulRequest().setModelId(std::string(300, 'm')); }},
      {&request, [](Env e) { e.getBody().getMatmulRequest().setModelId("a\nb"); }},
      {&request, [](Env e) { e.getBody().getMatmulRequest().setLog2Delta(64); }},
      {&request, [](Env e) { e.getBody().getMatmulRequest().setParamsId(0); }},
      // Output row ranges: empty, reversed, half-set, past any matrix.
      {&request,
       [](Env e) {
         e.getBody().getMatmulRequest().setRowBegin(4);
         e.getBody().getMatmulRequest().setRowEnd(4);
       }},
      {&request,
       [](Env e) {
         e.getBody().getMatmulRequest().setRowBegin(5);
         e.getBody().getMatmulRequest().setRowEnd(2);
       }},
      {&request, [](Env e) { e.getBody().getMatmulRequest().setRowBegin(1); }},
      {&request, [](Env e) { e.getBody().getMatmulRequest().setRowEnd(protocol::kMaxRows + 1); }},
      {&reply,
       [](Env e) {
         e.getBody().getMatmulReply().getResults()[0].setKind(
             static_cast<protocol::wire::PlaneKind>(3));
       }},
      {&reply, [](Env e) { e.getBody().getMatmulReply().getResults()[0].setBits(48); }},
      {&reply, [](Env e) { e.getBody().getMatmulReply().getResults()[1].setC0Blob(0); }},
      {&reply,
       [](Env e) {
         e.getBody().getMatmulReply().initError().setCode(
             static_cast<protocol::wire::ErrorCode>(100));
       }},
      {&info, [](Env e) { e.getBody().getModelInfoReply().getInfo().initModelHash(31); }},
      // Norms for layers 0-2 of a model said to have 2 (a layer-sharded worker may list fewer
      // layers than the model has, never a layer past its end).
      {&info, [](Env e) { e.getBody().getModelInfoReply().getInfo().setLayerCount(2); }},
      {&info,
       [](Env e) {
         e.getBody().getModelInfoReply().getInfo().getProjections()[0].getNorms()[1].setLayer(2);
       }},
      {&info,
       [](Env e) {
         e.getBody().getModelInfoReply().getInfo().getProjections()[1].setKind(
             protocol::wire::ProjectionKind::Q);
       }},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    auto bad = *cases[i].frames;
    bad[0] = protocol_test::tweak_header(bad[0], cases[i].tweak);
    expect_refused(decode_bytes(bad));
  }
}

// The checked-in seeds of protocol_fuzz_decode (tests/fuzz/corpus/protocol_fuzz_decode, which
// scripts/fuzz.sh starts it from) still decode and round-trip; among them a ranged matmul
// request (row_begin/row_end), so the fuzzer mutates those fields from the start. With
// FEDLORA_WRITE_FUZZ_SEEDS=DIR the seeds are written to DIR/protocol_fuzz_decode instead.
TEST(DecodeRobustness, CheckedInSeedsDecode) {
  const std::filesystem::path dir = PROTOCOL_FUZZ_SEEDS;
  const std::pair<const char*, Message> seeds[] = {
      {"matmul_ranged_request", protocol_test::matmul_ranged_request(44, 3, 70, 64)}};
  if (const char* out = std::getenv("FEDLORA_WRITE_FUZZ_SEEDS")) {
    const std::filesystem::path to = std::filesystem::path(out) / "protocol_fuzz_decode";
    std::filesystem::create_directories(to);
    for (const auto& [name, m] : seeds) {
      const Bytes b = protocol_test::join_frames(frames_of(m));
      std::ofstream(to / name, std::ios::binary)
          .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    }
    GTEST_SKIP() << "seeds written to " << to;
  }
  for (const auto& [name, m] : seeds) {
    SCOPED_TRACE(name);
    std::ifstream in(dir / name, std::ios::binary);
    ASSERT_TRUE(in.good()) << (dir / name);
    const Bytes b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(b, protocol_test::join_frames(frames_of(m)));  // what the sample encodes to today
    const auto out = protocol_test::fuzz_one_input(b.data(), b.size());
    EXPECT_TRUE(out.message_decoded);
    EXPECT_TRUE(out.round_trip_ok);
  }
}

// The corpus the libFuzzer target starts from, run under GoogleTest: every sample, and
// fixed-seed mutations of it (bit flips, byte overwrites, truncations, insertions, frame
// shuffles). Whatever decodes must round-trip; whatever does not must fail with a typed error.
TEST(DecodeRobustness, MutationCorpus) {
  const auto start = std::chrono::steady_clock::now();
  std::mt19937_64 g(7);  // test data only
  size_t runs = 0, refused = 0, decoded = 0;
  for (const auto& m : protocol_test::all_samples()) {
    const auto frames = frames_of(m);
    const Bytes base = protocol_test::join_frames(frames);
    const auto seed_out = protocol_test::fuzz_one_input(base.data(), base.size());
    EXPECT_TRUE(seed_out.message_decoded) << protocol::body_name(m.body);
    EXPECT_TRUE(seed_out.round_trip_ok);
    EXPECT_TRUE(protocol_test::fuzz_one_input(frames[0].data(), frames[0].size()).header_decoded);
    for (int i = 0; i < 80; ++i) {
      Bytes x = base;
      const size_t header_end = 1 + 2 * (frames.size() > 1) + frames[0].size();
      switch (g() % 5) {
        case 0:  // flip bits in the header
          for (int k = 0; k < 1 + static_cast<int>(g() % 4); ++k) {
            x[1 + g() % (header_end - 1)] ^= static_cast<uint8_t>(1u << (g() % 8));
          }
          break;
        case 1:  // overwrite a header byte with an extreme value
          x[1 + g() % (header_end - 1)] = (g() % 2) ? 0xff : 0x00;
          break;
        case 2:  // truncate anywhere
          x.resize(g() % x.size());
          break;
        case 3:  // insert bytes anywhere
          x.insert(x.begin() + g() % x.size(), 1 + g() % 9, static_cast<uint8_t>(g()));
          break;
        case 4:  // change the frame count
          x[0] = static_cast<uint8_t>(g());
          break;
      }
      const auto out = protocol_test::fuzz_one_input(x.data(), x.size());
      ++runs;
      EXPECT_TRUE(out.errors_typed);
      EXPECT_TRUE(out.round_trip_ok);
      (out.message_decoded ? decoded : refused) += 1;
    }
  }
  EXPECT_EQ(runs, 10u * 80);
  EXPECT_GT(refused, runs / 2);  // most mutations must be caught...
  EXPECT_GT(decoded, 0u);        // ...and some (blob bytes, unchecked values) legitimately pass
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
}

}  // namespace
