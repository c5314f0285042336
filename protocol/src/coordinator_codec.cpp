// Coordinator traffic: the Cap'n Proto side (CoordEnvelope <-> plain values) and the frame checks,
// following codec.cpp / envelope_*.cpp for worker traffic.
#include "protocol/coordinator_codec.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <algorithm>
#include <cstring>
#include <exception>

#include "coordinator.capnp.h"
#include "protocol/codec.h"
#include "protocol/keys.h"

namespace protocol::coord {
namespace {

namespace cw = ::protocol::coordwire;
namespace ww = ::protocol::wire;

constexpr ErrorCode kMalformed = ErrorCode::kMalformedRequest;

struct FieldError {
  Error error;
};

[[noreturn]] void refuse(Error e) {
  throw FieldError{std::move(e)};
}

std::string one_line(std::string text) {
  return text.substr(0, std::min(text.find('\n'), size_t{200}));
}

// --- Reading -------------------------------------------------------------------------------------

void check_version(uint16_t version, std::string_view what) {
  if (version != kProtocolVersion) {
    refuse(make_error(ErrorCode::kUnsupportedVersion, what, " has protocol version ", version,
                      ", this build speaks ", kProtocolVersion));
  }
}

template <typename Enum, typename WireEnum>
Enum read_enum(WireEnum v, uint16_t max, std::string_view what) {
  const auto raw = static_cast<uint16_t>(v);
  if (raw == 0 || raw > max) refuse(make_error(kMalformed, "unknown ", what, " ", raw));
  return static_cast<Enum>(raw);
}

std::string read_text(capnp::Text::Reader text, size_t max, std::string_view what) {
  if (text.size() > max) {
    refuse(make_error(kMalformed, what, " has ", text.size(), " bytes (at most ", max, ")"));
  }
  return std::string(text.cStr(), text.size());
}

BlobDesc read_blob(ww::BlobDesc::Reader r) {
  BlobDesc d;
  d.dtype = read_enum<DType>(r.getDtype(), 4, "blob dtype");
  d.bits = r.getBits();
  auto shape = r.getShape();
  if (shape.size() == 0 || shape.size() > kMaxBlobRank) {
    refuse(make_error(kMalformed, "blob has ", shape.size(), " dimensions (1 to ", kMaxBlobRank,
                      " allowed)"));
  }
  for (const uint64_t dim : shape) d.shape.push_back(dim);
  d.count = r.getCount();
  d.byte_length = r.getByteLength();
  return d;
}

AdapterTable read_adapter(cw::Adapter::Reader r) {
  AdapterTable a;
  auto tensors = r.getTensors();
  if (tensors.size() > kMaxAdapterTensors) {
    refuse(make_error(kMalformed, "adapter lists ", tensors.size(), " tensors"));
  }
  a.tensors.reserve(tensors.size());
  for (auto t : tensors) {
    TensorEntry e;
    e.name = read_text(t.getName(), kMaxIdBytes, "tensor name");
    auto shape = t.getShape();
    if (shape.size() > kMaxTensorRank) {
      refuse(make_error(kMalformed, "tensor has ", shape.size(), " dimensions"));
    }
    for (const uint64_t d : shape) e.shape.push_back(d);
    e.offset = t.getOffset();
    a.tensors.push_back(std::move(e));
  }
  a.blob = r.getBlob();
  return a;
}

Register read(cw::Register::Reader r) {
  check_version(r.getVersion(), "register");
  Register m;
  m.role = read_enum<Role>(r.getRole(), 2, "role");
  m.site_id = read_text(r.getSiteId(), kMaxIdBytes, "site id");
  m.dataset_size = r.getDatasetSize();
  m.epsilon_max = r.getEpsilonMax();
  m.delta = r.getDelta();
  m.compute_endpoint = read_text(r.getComputeEndpoint(), kMaxEndpointBytes, "compute endpoint");
  m.public_key = read_text(r.getPublicKey(), kCurveKeyZ85Chars + 8, "public key");
  return m;
}

RegisterReply read(cw::RegisterReply::Reader r) {
  check_version(r.getVersion(), "registerReply");
  return {r.getAccepted(), read_text(r.getReason(), kMaxErrorBytes, "reason"),
          r.getHeartbeatIntervalMs(), r.getNextRound()};
}

Heartbeat read(cw::Heartbeat::Reader r) {
  check_version(r.getVersion(), "heartbeat");
  return {read_text(r.getSiteId(), kMaxIdBytes, "site id"), r.getTimestampNanos()};
}

RoundInvitation read(cw::RoundInvitation::Reader r) {
  check_version(r.getVersion(), "roundInvitation");
  RoundInvitation m;
  m.round = r.getRound();
  m.attempt = r.getAttempt();
  auto p = r.getPlan();
  m.plan = {p.getLocalSteps(),    p.getLearningRate(),    p.getBatchSize(),
            p.getSampleRate(),    p.getNoiseMultiplier(), p.getClipNorm(),
            p.getDelta(),         p.getDeadlineUnixMs(),  p.getSeed(),
            p.getParticipantDp(), p.getParticipantClip(), p.getParticipantSigma()};
  auto workers = r.getWorkers();
  if (workers.size() > kMaxWorkers) {
    refuse(make_error(kMalformed, "worker directory lists ", workers.size(), " workers"));
  }
  for (auto w : workers) {
    m.workers.push_back(
        WorkerEntry{read_text(w.getEndpoint(), kMaxEndpointBytes, "worker endpoint"),
                    read_text(w.getPublicKey(), kCurveKeyZ85Chars + 8, "worker key")});
  }
  m.adapter = read_adapter(r.getAdapter());
  m.run_id = read_text(r.getRunId(), kRunIdChars, "run id");
  return m;
}

Accept read(cw::Accept::Reader r) {
  check_version(r.getVersion(), "accept");
  return {r.getRound(), r.getAttempt(), read_text(r.getSiteId(), kMaxIdBytes, "site id")};
}

Decline read(cw::Decline::Reader r) {
  check_version(r.getVersion(), "decline");
  return {r.getRound(), r.getAttempt(), read_text(r.getSiteId(), kMaxIdBytes, "site id"),
          read_enum<DeclineReason>(r.getReason(), 5, "decline reason"),
          read_text(r.getDetail(), kMaxErrorBytes, "decline detail")};
}

DeltaUpload read(cw::DeltaUpload::Reader r) {
  check_version(r.getVersion(), "deltaUpload");
  DeltaUpload m;
  m.round = r.getRound();
  m.attempt = r.getAttempt();
  m.site_id = read_text(r.getSiteId(), kMaxIdBytes, "site id");
  m.delta = read_adapter(r.getDelta());
  m.example_count = r.getExampleCount();
  m.train_loss = r.getTrainLoss();
  m.heldout_loss = r.getHeldoutLoss();
  m.steps = r.getSteps();
  m.epsilon_spent = r.getEpsilonSpent();
  return m;
}

UploadAck read(cw::UploadAck::Reader r) {
  check_version(r.getVersion(), "uploadAck");
  return {r.getRound(), r.getAttempt(), read_enum<UploadStatus>(r.getStatus(), 4, "upload status")};
}

RoundResult read(cw::RoundResult::Reader r) {
  check_version(r.getVersion(), "roundResult");
  return {r.getRound(), r.getSites(), r.getTrainLoss(), r.getHeldoutLoss()};
}

Shutdown read(cw::Shutdown::Reader r) {
  check_version(r.getVersion(), "shutdown");
  return {read_text(r.getReason(), kMaxErrorBytes, "shutdown reason")};
}

ErrorReply read(cw::CoordError::Reader r) {
  check_version(r.getVersion(), "errorReply");
  auto e = r.getError();
  return {
      Error{read_enum<ErrorCode>(e.getCode(), static_cast<uint16_t>(ErrorCode::kUnsupportedVersion),
                                 "error code"),
            read_text(e.getMessage(), kMaxErrorBytes, "error message")}};
}

Header read_envelope(cw::CoordEnvelope::Reader env, const Limits& limits) {
  Header h;
  auto blobs = env.getBlobs();
  if (blobs.size() > limits.max_blobs) {
    refuse(make_error(kMalformed, "header announces ", blobs.size(), " blobs (at most ",
                      limits.max_blobs, ")"));
  }
  for (auto b : blobs) h.blobs.push_back(read_blob(b));
  auto body = env.getBody();
  using B = cw::CoordEnvelope::Body;
  switch (body.which()) {
    case B::REGISTER:
      h.body = read(body.getRegister());
      break;
    case B::REGISTER_REPLY:
      h.body = read(body.getRegisterReply());
      break;
    case B::HEARTBEAT:
      h.body = read(body.getHeartbeat());
      break;
    case B::ROUND_INVITATION:
      h.body = read(body.getRoundInvitation());
      break;
    case B::ACCEPT:
      h.body = read(body.getAccept());
      break;
    case B::DECLINE:
      h.body = read(body.getDecline());
      break;
    case B::DELTA_UPLOAD:
      h.body = read(body.getDeltaUpload());
      break;
    case B::UPLOAD_ACK:
      h.body = read(body.getUploadAck());
      break;
    case B::ROUND_RESULT:
      h.body = read(body.getRoundResult());
      break;
    case B::SHUTDOWN:
      h.body = read(body.getShutdown());
      break;
    case B::ERROR:
      h.body = read(body.getError());
      break;
    default:
      refuse(make_error(kMalformed, "unknown message type ", static_cast<unsigned>(body.which())));
  }
  return h;
}

// --- Writing -------------------------------------------------------------------------------------

capnp::Text::Reader text(const std::string& s) {
  return capnp::Text::Reader(s.data(), s.size());
}

void write_adapter(cw::Adapter::Builder b, const AdapterTable& a) {
  auto tensors = b.initTensors(a.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const auto& t = a.tensors[i];
    auto tb = tensors[i];
    tb.setName(text(t.name));
    auto shape = tb.initShape(t.shape.size());
    for (size_t d = 0; d < t.shape.size(); ++d) shape.set(d, t.shape[d]);
    tb.setOffset(t.offset);
  }
  b.setBlob(a.blob);
}

void write(cw::CoordEnvelope::Body::Builder b, const Register& m) {
  auto w = b.initRegister();
  w.setVersion(kProtocolVersion);
  w.setRole(static_cast<cw::Role>(m.role));
  w.setSiteId(text(m.site_id));
  w.setDatasetSize(m.dataset_size);
  w.setEpsilonMax(m.epsilon_max);
  w.setDelta(m.delta);
  w.setComputeEndpoint(text(m.compute_endpoint));
  w.setPublicKey(text(m.public_key));
}

void write(cw::CoordEnvelope::Body::Builder b, const RegisterReply& m) {
  auto w = b.initRegisterReply();
  w.setVersion(kProtocolVersion);
  w.setAccepted(m.accepted);
  w.setReason(text(m.reason));
  w.setHeartbeatIntervalMs(m.heartbeat_interval_ms);
  w.setNextRound(m.next_round);
}

void write(cw::CoordEnvelope::Body::Builder b, const Heartbeat& m) {
  auto w = b.initHeartbeat();
  w.setVersion(kProtocolVersion);
  w.setSiteId(text(m.site_id));
  w.setTimestampNanos(m.timestamp_nanos);
}

void write(cw::CoordEnvelope::Body::Builder b, const RoundInvitation& m) {
  auto w = b.initRoundInvitation();
  w.setVersion(kProtocolVersion);
  w.setRound(m.round);
  w.setAttempt(m.attempt);
  auto p = w.initPlan();
  p.setLocalSteps(m.plan.local_steps);
  p.setLearningRate(m.plan.learning_rate);
  p.setBatchSize(m.plan.batch_size);
  p.setSampleRate(m.plan.sample_rate);
  p.setNoiseMultiplier(m.plan.noise_multiplier);
  p.setClipNorm(m.plan.clip_norm);
  p.setDelta(m.plan.delta);
  p.setDeadlineUnixMs(m.plan.deadline_unix_ms);
  p.setSeed(m.plan.seed);
  p.setParticipantDp(m.plan.participant_dp);
  p.setParticipantClip(m.plan.participant_clip);
  p.setParticipantSigma(m.plan.participant_sigma);
  auto workers = w.initWorkers(m.workers.size());
  for (size_t i = 0; i < m.workers.size(); ++i) {
    workers[i].setEndpoint(text(m.workers[i].endpoint));
    workers[i].setPublicKey(text(m.workers[i].public_key));
  }
  write_adapter(w.initAdapter(), m.adapter);
  w.setRunId(text(m.run_id));
}

void write(cw::CoordEnvelope::Body::Builder b, const Accept& m) {
  auto w = b.initAccept();
  w.setVersion(kProtocolVersion);
  w.setRound(m.round);
  w.setAttempt(m.attempt);
  w.setSiteId(text(m.site_id));
}

void write(cw::CoordEnvelope::Body::Builder b, const Decline& m) {
  auto w = b.initDecline();
  w.setVersion(kProtocolVersion);
  w.setRound(m.round);
  w.setAttempt(m.attempt);
  w.setSiteId(text(m.site_id));
  w.setReason(static_cast<cw::DeclineReason>(m.reason));
  w.setDetail(text(m.detail));
}

void write(cw::CoordEnvelope::Body::Builder b, const DeltaUpload& m) {
  auto w = b.initDeltaUpload();
  w.setVersion(kProtocolVersion);
  w.setRound(m.round);
  w.setAttempt(m.attempt);
  w.setSiteId(text(m.site_id));
  write_adapter(w.initDelta(), m.delta);
  w.setExampleCount(m.example_count);
  w.setTrainLoss(m.train_loss);
  w.setHeldoutLoss(m.heldout_loss);
  w.setSteps(m.steps);
  w.setEpsilonSpent(m.epsilon_spent);
}

void write(cw::CoordEnvelope::Body::Builder b, const UploadAck& m) {
  auto w = b.initUploadAck();
  w.setVersion(kProtocolVersion);
  w.setRound(m.round);
  w.setAttempt(m.attempt);
  w.setStatus(static_cast<cw::UploadStatus>(m.status));
}

void write(cw::CoordEnvelope::Body::Builder b, const RoundResult& m) {
  auto w = b.initRoundResult();
  w.setVersion(kProtocolVersion);
  w.setRound(m.round);
  w.setSites(m.sites);
  w.setTrainLoss(m.train_loss);
  w.setHeldoutLoss(m.heldout_loss);
}

void write(cw::CoordEnvelope::Body::Builder b, const Shutdown& m) {
  auto w = b.initShutdown();
  w.setVersion(kProtocolVersion);
  w.setReason(text(m.reason));
}

void write(cw::CoordEnvelope::Body::Builder b, const ErrorReply& m) {
  auto w = b.initError();
  w.setVersion(kProtocolVersion);
  auto e = w.initError();
  e.setCode(static_cast<ww::ErrorCode>(m.error.code));
  e.setMessage(text(m.error.message));
}

}  // namespace

Result<std::vector<uint8_t>> encode_header(const Body& body, std::span<const BlobDesc> blobs) {
  if (auto s = coord::validate(body, blobs); !s) return s.error();
  try {
    capnp::MallocMessageBuilder builder;
    auto env = builder.initRoot<cw::CoordEnvelope>();
    std::visit([&env](const auto& m) { write(env.initBody(), m); }, body);
    auto list = env.initBlobs(blobs.size());
    for (size_t i = 0; i < blobs.size(); ++i) {
      auto b = list[i];
      b.setDtype(static_cast<ww::DType>(blobs[i].dtype));
      b.setBits(static_cast<uint8_t>(blobs[i].bits));
      auto shape = b.initShape(blobs[i].shape.size());
      for (size_t d = 0; d < blobs[i].shape.size(); ++d) shape.set(d, blobs[i].shape[d]);
      b.setCount(blobs[i].count);
      b.setByteLength(blobs[i].byte_length);
    }
    auto words = capnp::messageToFlatArray(builder);
    auto bytes = words.asBytes();
    return std::vector<uint8_t>(bytes.begin(), bytes.end());
  } catch (const kj::Exception& e) {
    return make_error(ErrorCode::kInternal,
                      "cannot encode a header: ", one_line(e.getDescription().cStr()));
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kInternal, "cannot encode a header: ", e.what());
  }
}

Result<Header> decode_header(std::span<const uint8_t> frame, const Limits& limits) {
  if (frame.empty()) return make_error(kMalformed, "empty header frame");
  if (frame.size() > limits.max_header_bytes) {
    return make_error(kMalformed, "header frame has ", frame.size(), " bytes (limit ",
                      limits.max_header_bytes, ")");
  }
  if (frame.size() % sizeof(capnp::word) != 0) {
    return make_error(kMalformed, "header frame has ", frame.size(),
                      " bytes, not a whole number of 8-byte words");
  }
  Header header;
  try {
    auto words = kj::heapArray<capnp::word>(frame.size() / sizeof(capnp::word));
    std::memcpy(words.begin(), frame.data(), frame.size());
    capnp::ReaderOptions options;
    options.traversalLimitInWords = limits.traversal_limit_words;
    options.nestingLimit = limits.nesting_limit;
    capnp::FlatArrayMessageReader reader(words, options);
    if (reader.getEnd() != words.end()) {
      return make_error(kMalformed, "header frame has bytes after its message");
    }
    header = read_envelope(reader.getRoot<cw::CoordEnvelope>(), limits);
  } catch (const FieldError& e) {
    return e.error;
  } catch (const kj::Exception& e) {
    return make_error(kMalformed, "header does not parse: ", one_line(e.getDescription().cStr()));
  } catch (const std::exception& e) {
    return make_error(kMalformed, "header does not parse: ", e.what());
  }
  if (auto s = coord::validate(header.body, header.blobs); !s) return s.error();
  return header;
}

Result<std::vector<zmq::message_t>> encode(Message&& message) {
  std::vector<BlobDesc> descs;
  descs.reserve(message.blobs.size());
  for (size_t i = 0; i < message.blobs.size(); ++i) {
    const Blob& b = message.blobs[i];
    if (b.data.size() != b.desc.byte_length) {
      return make_error(ErrorCode::kShapeMismatch, "blob ", i, " holds ", b.data.size(),
                        " bytes, its description says ", b.desc.byte_length);
    }
    descs.push_back(b.desc);
  }
  auto header = coord::encode_header(message.body, descs);
  if (!header) return header.error();
  try {
    std::vector<zmq::message_t> frames;
    frames.reserve(1 + message.blobs.size());
    frames.emplace_back(header.value().data(), header.value().size());
    for (auto& b : message.blobs) frames.push_back(std::move(b.data));
    return frames;
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kInternal, "cannot build frames: ", e.what());
  }
}

Result<Message> decode(std::vector<zmq::message_t>&& frames, const Limits& limits) {
  if (frames.empty()) return make_error(kMalformed, "message has no frames");
  const auto& head = frames.front();
  auto header =
      coord::decode_header({static_cast<const uint8_t*>(head.data()), head.size()}, limits);
  if (!header) return header.error();
  std::vector<uint64_t> sizes;
  for (size_t i = 1; i < frames.size(); ++i) sizes.push_back(frames[i].size());
  // The blob checks are the worker codec's (they look only at the descriptions).
  const protocol::Header as_worker{protocol::Heartbeat{}, header.value().blobs};
  if (auto s = check_blob_frames(as_worker, head.size(), sizes, limits); !s) return s.error();
  try {
    Message m{std::move(header.value().body), {}};
    m.blobs.reserve(frames.size() - 1);
    for (size_t i = 1; i < frames.size(); ++i) {
      m.blobs.push_back(Blob{std::move(header.value().blobs[i - 1]), std::move(frames[i])});
    }
    return m;
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kInternal, "cannot assemble a message: ", e.what());
  }
}

}  // namespace protocol::coord
