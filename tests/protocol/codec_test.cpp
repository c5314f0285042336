// Encoding and decoding of every message: exact round trips, and the encoder refusing what the
// decoder would refuse.
#include <gtest/gtest.h>

#include <type_traits>

#include "protocol/codec.h"
#include "sample_messages.h"

namespace {

using protocol::ErrorCode;
using protocol::Message;
using protocol_test::clone;
using protocol_test::same;

Message round_trip(const Message& m) {
  auto frames = protocol::encode(clone(m));
  EXPECT_TRUE(frames.ok()) << frames.error().to_string();
  EXPECT_EQ(frames.value().size(), 1 + m.blobs.size());
  auto back = protocol::decode(std::move(frames).value());
  EXPECT_TRUE(back.ok()) << back.error().to_string();
  return std::move(back).value();
}

TEST(Codec, EveryMessageRoundTripsExactly) {
  const auto samples = protocol_test::all_samples();
  ASSERT_EQ(samples.size(), 10u);
  for (const auto& m : samples) {
    SCOPED_TRACE(std::string(protocol::body_name(m.body)));
    const Message back = round_trip(m);
    EXPECT_TRUE(same(back, m));
  }
}

TEST(Codec, StackedFlagRoundTrips) {
  Message m = protocol_test::matmul_request(11, 5, 3, 2048);
  auto& r = std::get<protocol::MatmulRequest>(m.body);
  EXPECT_FALSE(r.stacked);  // the default
  r.transpose = true;
  r.stacked = true;
  const Message back = round_trip(m);
  EXPECT_TRUE(std::get<protocol::MatmulRequest>(back.body).stacked);
  EXPECT_TRUE(same(back, m));
}

TEST(Codec, RowRangeRoundTrips) {
  Message m = protocol_test::matmul_request(11, 5, 3, 2048);
  auto& r = std::get<protocol::MatmulRequest>(m.body);
  EXPECT_FALSE(r.ranged());  // the default: every row
  r.row_begin = 7;
  r.row_end = 300;
  const Message back = round_trip(m);
  const auto& b = std::get<protocol::MatmulRequest>(back.body);
  EXPECT_EQ(b.row_begin, 7u);
  EXPECT_EQ(b.row_end, 300u);
  EXPECT_TRUE(b.ranged());
  EXPECT_TRUE(same(back, m));
}

TEST(Codec, RoundTripKeepsEveryField) {
  const Message m = protocol_test::matmul_request(0xfedcba9876543210ull, 5, 4097, 2048);
  const Message back = round_trip(m);
  const auto& r = std::get<protocol::MatmulRequest>(back.body);
  EXPECT_EQ(r.request_id, 0xfedcba9876543210ull);
  EXPECT_EQ(r.model_id, "llama-3.2-1b");
  EXPECT_EQ(r.layer, 3u);
  EXPECT_EQ(r.projections, (std::vector<protocol::ProjectionKind>{protocol::ProjectionKind::kQ,
                                                                  protocol::ProjectionKind::kK,
                                                                  protocol::ProjectionKind::kV}));
  EXPECT_FALSE(r.transpose);
  EXPECT_EQ(r.params_id, 1u);
  EXPECT_EQ(r.seed[0], 1);
  EXPECT_EQ(r.seed[31], 31 * 7 + 1);
  EXPECT_EQ(r.log2_delta, 20u);
  EXPECT_EQ(r.rows, 5u);
  EXPECT_EQ(r.cols, 4097u);
  EXPECT_TRUE(r.switch_modulus);
  ASSERT_EQ(back.blobs.size(), 1u);
  EXPECT_EQ(back.blobs[0].desc.shape, (std::vector<uint64_t>{3, 5, 2048}));
  EXPECT_EQ(back.blobs[0].desc.byte_length, 3u * 5 * 2048 * 6);
  EXPECT_TRUE(same(back, m));

  const Message info = round_trip(protocol_test::model_info_reply());
  const auto& mi =
      std::get<protocol::ModelInfo>(std::get<protocol::ModelInfoReply>(info.body).outcome);
  EXPECT_EQ(mi.layer_count, 3u);
  ASSERT_EQ(mi.projections.size(), 2u);
  EXPECT_EQ(mi.projections[1].kind, protocol::ProjectionKind::kDown);
  EXPECT_EQ(mi.projections[1].norms[2].transpose_l2_squared, 80002u);
  EXPECT_EQ(info.blobs[1].desc.dtype, protocol::DType::kFloat32);

  const Message hb = round_trip(protocol_test::heartbeat());
  EXPECT_EQ(std::get<protocol::Heartbeat>(hb.body).timestamp_nanos, 1700000000123456789);
}

TEST(Codec, ErrorRepliesCarryTheirCode) {
  const Message back = round_trip(protocol_test::matmul_error_reply(9));
  const auto& reply = std::get<protocol::MatmulReply>(back.body);
  EXPECT_EQ(reply.request_id, 9u);
  const auto& e = std::get<protocol::Error>(reply.outcome);
  EXPECT_EQ(e.code, ErrorCode::kNoiseBudget);
  EXPECT_EQ(e.to_string(), "noiseBudget: inner dimension 9000 is too large for P48 at this scale");
}

TEST(Codec, EveryWireErrorCodeRoundTrips) {
  for (uint16_t c = 1; c <= 9; ++c) {
    Message m{protocol::ErrorReply{5, {static_cast<ErrorCode>(c), "x"}}, {}};
    const Message back = round_trip(m);
    EXPECT_EQ(std::get<protocol::ErrorReply>(back.body).error.code, static_cast<ErrorCode>(c));
  }
}

TEST(Codec, EncoderRefusesInvalidMessages) {
  {  // a local error code never goes on the wire...
    Message m{protocol::ErrorReply{1, {ErrorCode::kTimeout, "late"}}, {}};
    auto r = protocol::encode(std::move(m));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kMalformedRequest);
    // ...unless converted first.
    const auto wire = protocol::to_wire({ErrorCode::kTimeout, "late\nsecond line"});
    EXPECT_EQ(wire.code, ErrorCode::kInternal);
    EXPECT_EQ(wire.message, "timeout: late");
  }
  {  // a blob nobody refers to
    Message m = protocol_test::heartbeat();
    m.blobs.push_back(std::move(protocol_test::matmul_request(1, 1, 1, 8).blobs[0]));
    auto r = protocol::encode(std::move(m));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("not referred to"), std::string::npos);
  }
  {  // a blob whose shape disagrees with the request's rows
    Message m = protocol_test::matmul_request(1, 4, 100, 64);
    std::get<protocol::MatmulRequest>(m.body).rows = 5;
    auto r = protocol::encode(std::move(m));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kShapeMismatch);
  }
  {  // repeated projection
    Message m = protocol_test::matmul_request(1, 4, 100, 64);
    std::get<protocol::MatmulRequest>(m.body).projections = {protocol::ProjectionKind::kQ,
                                                             protocol::ProjectionKind::kQ};
    EXPECT_FALSE(protocol::encode(std::move(m)).ok());
  }
  {  // a switched reply whose modulus is not its bit width
    Message m = protocol_test::matmul_reply(1, 2, 70, 64, true);
    std::get<std::vector<protocol::ResultPlanes>>(
        std::get<protocol::MatmulReply>(m.body).outcome)[0]
        .log2_modulus = 36;
    EXPECT_FALSE(protocol::encode(std::move(m)).ok());
  }
  {  // blob data of the wrong length
    Message m = protocol_test::matmul_request(1, 4, 100, 64);
    m.blobs[0].data = zmq::message_t(size_t{7});
    auto r = protocol::encode(std::move(m));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kShapeMismatch);
  }
}

TEST(Codec, BlobDescriptionsCheckTheirArithmetic) {
  auto ok = protocol::BlobDesc::planes(2, 3, 2048, 35);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.value().count, 2u * 3 * 2048);
  EXPECT_EQ(ok.value().byte_length, (2u * 3 * 2048 * 35 + 7) / 8);
  // Odd counts round up to whole bytes.
  EXPECT_EQ(protocol::BlobDesc::make(protocol::DType::kPackedUnsigned, 5, {3}).value().byte_length,
            2u);
  // Products that overflow 64 bits are refused, not wrapped.
  auto big = protocol::BlobDesc::make(protocol::DType::kUint8, 8, {1ull << 32, 1ull << 32});
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, ErrorCode::kShapeMismatch);
  // A count that fits but whose byte length does not.
  auto wide = protocol::BlobDesc::make(protocol::DType::kPackedUnsigned, 64, {1ull << 62});
  ASSERT_FALSE(wide.ok());
  EXPECT_FALSE(protocol::BlobDesc::make(protocol::DType::kFloat32, 8, {4}).ok());
  EXPECT_FALSE(protocol::BlobDesc::make(protocol::DType::kPackedUnsigned, 65, {4}).ok());
  EXPECT_FALSE(protocol::BlobDesc::make(protocol::DType::kUint8, 8, {4, 0}).ok());
  EXPECT_FALSE(protocol::BlobDesc::make(protocol::DType::kUint8, 8, {}).ok());
  EXPECT_FALSE(protocol::BlobDesc::make(protocol::DType::kUint8, 8, {1, 1, 1, 1, 1}).ok());
  uint64_t out = 0;
  EXPECT_TRUE(protocol::packed_byte_length(~uint64_t{0}, 8, &out));
  EXPECT_EQ(out, ~uint64_t{0});
  EXPECT_FALSE(protocol::packed_byte_length(~uint64_t{0}, 9, &out));
}

// The LM head is one matrix, listed as layer 0: validate() accepts exactly a [1, vocab] scales
// blob and one norm entry (layer 0) for it, and still holds every other kind to [layers, rows].
struct LmHeadShape {
  uint64_t scale_rows = 1;  // first dimension of its scales blob
  uint64_t vocab_in_blob = 300;
  std::vector<uint32_t> norm_layers = {0};
  uint64_t q_scale_rows = 3;
};

Message model_info_with_lm_head(const LmHeadShape& shape) {
  protocol::ModelInfo info;
  info.model_id = "llama";
  info.layer_count = 3;
  Message m;
  const auto add = [&](protocol::ProjectionKind kind, uint64_t rows, uint64_t cols,
                       uint64_t blob_rows, uint64_t blob_cols, std::vector<uint32_t> layers) {
    protocol::ProjectionInfo p;
    p.kind = kind;
    p.rows = rows;
    p.cols = cols;
    p.scales_blob = static_cast<uint32_t>(m.blobs.size());
    auto desc = protocol::BlobDesc::make(protocol::DType::kFloat32, 32, {blob_rows, blob_cols});
    EXPECT_TRUE(desc.ok());
    std::vector<uint8_t> bytes(desc.value().byte_length, 0);
    m.blobs.push_back(protocol::Blob::adopt(std::move(desc).value(), std::move(bytes)).value());
    for (const uint32_t l : layers) p.norms.push_back({l, 10, 20, 30, 40});
    info.projections.push_back(std::move(p));
  };
  add(protocol::ProjectionKind::kQ, 8, 6, shape.q_scale_rows, 8, {0, 1, 2});
  add(protocol::ProjectionKind::kLmHead, 300, 6, shape.scale_rows, shape.vocab_in_blob,
      shape.norm_layers);
  m.body = protocol::ModelInfoReply{std::move(info)};
  return m;
}

protocol::Status validate(const Message& m) {
  std::vector<protocol::BlobDesc> descs;
  for (const auto& b : m.blobs) descs.push_back(b.desc);
  return protocol::validate(m.body, descs);
}

TEST(Codec, ModelInfoListsTheLmHeadAsOneLayer) {
  const Message good = model_info_with_lm_head({});
  ASSERT_TRUE(validate(good).ok()) << validate(good).error().to_string();
  const Message back = round_trip(good);
  EXPECT_TRUE(same(back, good));
  const auto& info =
      std::get<protocol::ModelInfo>(std::get<protocol::ModelInfoReply>(back.body).outcome);
  ASSERT_EQ(info.projections.size(), 2u);
  EXPECT_EQ(info.projections[1].kind, protocol::ProjectionKind::kLmHead);
  ASSERT_EQ(info.projections[1].norms.size(), 1u);
  EXPECT_EQ(back.blobs[1].desc.shape, (std::vector<uint64_t>{1, 300}));

  struct Bad {
    const char* what;
    LmHeadShape shape;
    ErrorCode code;
  };
  const Bad bad[] = {
      {"lm_head scales per layer", {3, 300, {0}, 3}, ErrorCode::kShapeMismatch},
      {"lm_head norms per layer", {1, 300, {0, 1, 2}, 3}, ErrorCode::kShapeMismatch},
      {"lm_head without norms", {1, 300, {}, 3}, ErrorCode::kShapeMismatch},
      {"lm_head norm for layer 1", {1, 300, {1}, 3}, ErrorCode::kMalformedRequest},
      {"lm_head scales of another vocabulary", {1, 299, {0}, 3}, ErrorCode::kShapeMismatch},
      {"q with one row of scales", {1, 300, {0}, 1}, ErrorCode::kShapeMismatch},
  };
  for (const auto& b : bad) {
    const auto s = validate(model_info_with_lm_head(b.shape));
    ASSERT_FALSE(s.ok()) << b.what;
    EXPECT_EQ(s.error().code, b.code) << b.what << ": " << s.error().to_string();
    EXPECT_FALSE(protocol::encode(model_info_with_lm_head(b.shape)).ok()) << b.what;
  }
}

// A layer-sharded worker lists only the layers it holds: increasing, inside the model, with one
// row of scales per listed layer.
TEST(Codec, ModelInfoOfALayerShardListsItsLayersOnly) {
  protocol::ModelInfo info;
  info.model_id = "llama";
  info.layer_count = 4;
  const auto message = [&](std::vector<uint32_t> layers, uint64_t blob_rows) {
    protocol::ModelInfo i = info;
    protocol::ProjectionInfo p;
    p.kind = protocol::ProjectionKind::kQ;
    p.rows = 8;
    p.cols = 6;
    p.scales_blob = 0;
    for (const uint32_t l : layers) p.norms.push_back({l, 10, 20, 30, 40});
    i.projections.push_back(p);
    Message m;
    auto desc = protocol::BlobDesc::make(protocol::DType::kFloat32, 32, {blob_rows, 8});
    EXPECT_TRUE(desc.ok());
    std::vector<uint8_t> bytes(desc.value().byte_length, 0);
    m.blobs.push_back(protocol::Blob::adopt(std::move(desc).value(), std::move(bytes)).value());
    m.body = protocol::ModelInfoReply{std::move(i)};
    return m;
  };
  const Message shard = message({1, 2}, 2);
  ASSERT_TRUE(validate(shard).ok()) << validate(shard).error().to_string();
  EXPECT_TRUE(same(round_trip(shard), shard));
  EXPECT_FALSE(validate(message({2, 1}, 2)).ok());  // not increasing
  EXPECT_FALSE(validate(message({1, 1}, 2)).ok());  // twice
  EXPECT_FALSE(validate(message({3, 4}, 2)).ok());  // past the model
  EXPECT_FALSE(validate(message({1, 2}, 4)).ok());  // scales for other layers
  EXPECT_FALSE(validate(message({}, 1)).ok());      // nothing held
}

}  // namespace

TEST(Codec, MatmulTimingsRoundTripAndAreOptional) {
  Message m = protocol_test::matmul_reply(4, 2, 70, 64, false);
  auto& reply = std::get<protocol::MatmulReply>(m.body);
  reply.has_timings = true;
  reply.timings = {1, 2, 3, 4, 5, 6, 7};
  const Message back = round_trip(m);
  const auto& r = std::get<protocol::MatmulReply>(back.body);
  ASSERT_TRUE(r.has_timings);
  EXPECT_EQ(r.timings, (protocol::MatmulTimings{1, 2, 3, 4, 5, 6, 7}));

  // A reply without them (as an older worker sends) decodes with none.
  const Message plain = round_trip(protocol_test::matmul_reply(5, 2, 70, 64, false));
  EXPECT_FALSE(std::get<protocol::MatmulReply>(plain.body).has_timings);
  EXPECT_EQ(std::get<protocol::MatmulReply>(plain.body).timings, protocol::MatmulTimings{});
}

// protocol::Result is base::Result over protocol::Error; a worker's code maps onto a general one.
TEST(ProtocolResult, WireCodesMapOntoGeneralCodes) {
  static_assert(std::is_same_v<protocol::Status, base::Result<void, protocol::Error>>);
  EXPECT_EQ(protocol::to_base_code(ErrorCode::kMalformedRequest), base::Code::kCorrupt);
  EXPECT_EQ(protocol::to_base_code(ErrorCode::kUnknownModel), base::Code::kNotFound);
  EXPECT_EQ(protocol::to_base_code(ErrorCode::kUnknownLayer), base::Code::kNotFound);
  EXPECT_EQ(protocol::to_base_code(ErrorCode::kNoiseBudget), base::Code::kExhausted);
  EXPECT_EQ(protocol::to_base_code(ErrorCode::kOverloaded), base::Code::kExhausted);
  EXPECT_EQ(protocol::to_base_code(ErrorCode::kUnauthorised), base::Code::kUnauthorised);
  EXPECT_EQ(protocol::to_base_code(ErrorCode::kTimeout), base::Code::kTimeout);
  EXPECT_EQ(protocol::to_base_code(ErrorCode::kTransport), base::Code::kUnavailable);
  EXPECT_EQ(protocol::to_base_code(ErrorCode::kIo), base::Code::kIo);
  EXPECT_EQ(protocol::to_base_code(ErrorCode::kInternal), base::Code::kInternal);
  const base::Error e =
      protocol::to_base(protocol::make_error(ErrorCode::kUnknownLayer, "layer ", 17));
  EXPECT_EQ(e.code, base::Code::kNotFound);
  EXPECT_EQ(e.message, "unknownLayer: layer 17");
}
