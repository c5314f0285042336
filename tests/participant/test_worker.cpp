#include "test_worker.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "fhe/modswitch.h"
#include "fhe/serialize.h"
#include "participant/worker_products.h"

namespace participant_test {
namespace {

using namespace std::chrono_literals;

const model::ProjectionKind kKinds[] = {
    model::ProjectionKind::kQ,    model::ProjectionKind::kK,     model::ProjectionKind::kV,
    model::ProjectionKind::kO,    model::ProjectionKind::kGate,  model::ProjectionKind::kUp,
    model::ProjectionKind::kDown, model::ProjectionKind::kLmHead};

protocol::Blob blob(protocol::BlobDesc desc, std::vector<uint8_t> bytes) {
  auto b = protocol::Blob::adopt(std::move(desc), std::move(bytes));
  if (!b) throw std::runtime_error(b.error().to_string());
  return std::move(b).value();
}

}  // namespace

TestWorker::TestWorker(std::shared_ptr<const model::LlamaWeights> weights, std::string model_id,
                       std::optional<protocol::KeyPair> key, protocol::AllowList allow)
    : weights_(std::move(weights)), model_id_(std::move(model_id)), ctx_(fhe::Context::create()) {
  products_ = std::make_unique<model::LocalEncryptedProducts>(*weights_, ctx_);
  protocol::ServerConfig c;
  c.endpoint = "tcp://127.0.0.1:*";
  c.insecure = !key;
  if (key) {
    auto zap = protocol::ZapHandler::start(context_, std::move(allow), [](std::string_view) {});
    if (!zap) throw std::runtime_error(zap.error().to_string());
    zap_ = std::move(zap).value();
    c.key = key;
    c.zap = zap_.get();
  }
  auto server = protocol::Server::bind(context_, c);
  if (!server) throw std::runtime_error(server.error().to_string());
  server_.emplace(std::move(server).value());
  endpoint_ = server_->endpoint();
  thread_ = std::thread([this] { run(); });
}

TestWorker::~TestWorker() {
  stop_ = true;
  thread_.join();
  server_.reset();
  zap_.reset();
}

void TestWorker::run() {
  while (!stop_) {
    auto in = server_->receive(20ms);
    if (!in || !in.value().message) continue;
    const std::string peer = in.value().peer;
    const protocol::Message& m = in.value().message.value();
    if (silent_) continue;
    std::optional<protocol::Message> reply = answer(m);
    if (!reply) continue;
    (void)server_->send(peer, std::move(*reply));
  }
}

std::optional<protocol::Message> TestWorker::answer(const protocol::Message& m) {
  if (std::holds_alternative<protocol::Heartbeat>(m.body)) {
    return protocol::Message{protocol::Heartbeat{"test-worker", 0, 0, 1, 0}, {}};
  }
  if (std::holds_alternative<protocol::ModelInfoRequest>(m.body)) return model_info();
  const auto* r = std::get_if<protocol::MatmulRequest>(&m.body);
  if (r == nullptr) return std::nullopt;
  if (overloaded_) {
    return protocol::Message{
        protocol::MatmulReply{r->request_id,
                              protocol::Error{protocol::ErrorCode::kOverloaded, "busy"}},
        {}};
  }
  if (r->projections[0] == protocol::ProjectionKind::kLmHead) {
    ++lm_head_requests_[r->transpose];
    const int refuse = refuse_lm_head_t_;
    if (r->transpose && refuse != 0) {
      return protocol::Message{
          protocol::MatmulReply{r->request_id,
                                protocol::Error{static_cast<protocol::ErrorCode>(refuse),
                                                "lm_head^T: vocabulary too large"}},
          {}};
    }
  }
  ++served_;
  return matmul(*r, m.blobs[r->input_blob]);
}

protocol::Message TestWorker::model_info() const {
  const model::LlamaConfig& c = weights_->config;
  protocol::ModelInfo info;
  info.model_id = model_id_;
  info.layer_count = static_cast<uint32_t>(c.num_hidden_layers);
  protocol::Message m;
  for (const auto kind : kKinds) {
    const bool lm_head = kind == model::ProjectionKind::kLmHead;
    if (lm_head && !lists_lm_head_) continue;
    const auto dims = model::projection_dims(c, kind);
    protocol::ProjectionInfo p;
    p.kind = participant::to_protocol(kind);
    p.rows = static_cast<uint64_t>(dims.d_out);
    p.cols = static_cast<uint64_t>(dims.d_in);
    p.scales_blob = static_cast<uint32_t>(m.blobs.size());
    std::vector<uint8_t> scales;
    const uint32_t layers = lm_head ? 1 : info.layer_count;  // the LM head is layer 0 only
    for (int64_t l = 0; l < layers; ++l) {
      const model::ProjectionId id{kind, l};
      const auto s = products_->scales(id);
      const auto* bytes = reinterpret_cast<const uint8_t*>(s.data());
      scales.insert(scales.end(), bytes, bytes + s.size() * sizeof(float));
      const auto f = products_->bounds(id, false), t = products_->bounds(id, true);
      p.norms.push_back({static_cast<uint32_t>(l), f.max_row_l1,
                         static_cast<uint64_t>(std::llround(f.max_row_l2 * f.max_row_l2)),
                         t.max_row_l1,
                         static_cast<uint64_t>(std::llround(t.max_row_l2 * t.max_row_l2))});
    }
    m.blobs.push_back(
        blob(protocol::BlobDesc::make(protocol::DType::kFloat32, 32, {layers, p.rows}).value(),
             std::move(scales)));
    info.projections.push_back(std::move(p));
  }
  m.body = protocol::ModelInfoReply{std::move(info)};
  return m;
}

protocol::Message TestWorker::matmul(const protocol::MatmulRequest& r,
                                     const protocol::Blob& input) {
  const size_t n = ctx_->n();
  fhe::CiphertextMatrix fresh;
  fresh.params_id = r.params_id;
  fresh.kind = fhe::CtKind::kFresh;
  fresh.rows = r.rows;
  fresh.cols = r.cols;
  fresh.log2_delta = r.log2_delta;
  fresh.seed = r.seed;
  fresh.c0.resize(fresh.blocks(n) * r.rows * n);
  fhe::unpack_coefficients(input.bytes().data(), fresh.c0.size(), input.desc.bits, fresh.c0.data());
  // Every listed projection; a stacked request has one result, the sum (worker.capnp).
  std::vector<model::ProjectionId> ids;
  for (const protocol::ProjectionKind p : r.projections) {
    model::ProjectionKind kind = model::ProjectionKind::kQ;
    for (const auto k : kKinds) {
      if (participant::to_protocol(k) == p) kind = k;
    }
    ids.push_back({kind, static_cast<int64_t>(r.layer)});
  }
  protocol::Message m;
  std::vector<fhe::CiphertextMatrix> ys;
  try {
    if (r.stacked) {
      ys.push_back(products_->multiply_stacked(ids, fresh));
    } else {
      for (const model::ProjectionId id : ids)
        ys.push_back(products_->multiply(id, r.transpose, fresh));
    }
  } catch (const std::exception& e) {
    m.body = protocol::MatmulReply{r.request_id,
                                   protocol::Error{protocol::ErrorCode::kShapeMismatch, e.what()}};
    return m;
  }
  std::vector<protocol::ResultPlanes> results;
  uint64_t at = 0;  // output rows before result k (a ranged request's rows, worker.capnp)
  for (size_t k = 0; k < ys.size(); ++k) {
    fhe::CiphertextMatrix& y = ys[k];
    const uint64_t rows = y.rows;
    uint64_t begin = 0, end = rows;
    if (r.ranged()) {
      begin = std::max(at, r.row_begin) - at;
      end = std::min(at + rows, r.row_end);
      end = end > at ? end - at : 0;
    }
    at += rows;
    if (begin >= end) continue;  // no row of this result asked for
    uint32_t bits = ctx_->params().log2_q;
    const auto c0_blob = static_cast<uint32_t>(m.blobs.size());
    protocol::ResultPlanes planes{
        r.projections[k], y.rows,     y.cols, protocol::PlaneKind::kProduct, bits, y.log2_delta, 0,
        c0_blob,          c0_blob + 1};
    if (r.switch_modulus) {
      const fhe::WeightBounds bounds =
          r.stacked ? products_->stacked_bounds(ids) : products_->bounds(ids[k], r.transpose);
      const uint32_t b = fhe::switch_reply(*ctx_, y, bounds, y.rows * y.cols);
      if (b != 0) {
        bits = b;
        planes.kind = protocol::PlaneKind::kSwitched;
        planes.bits = b;
        planes.log2_modulus = b;
      }
    }
    if (end - begin != rows) {  // rows [begin, end) of every block
      fhe::CiphertextMatrix part = y;
      part.rows = end - begin;
      const size_t blocks = y.blocks(n), count = static_cast<size_t>(part.rows) * n;
      part.c0.resize(blocks * count);
      part.c1.resize(blocks * count);
      for (size_t b = 0; b < blocks; ++b) {
        std::copy_n(y.c0.data() + (b * rows + begin) * n, count, part.c0.data() + b * count);
        std::copy_n(y.c1.data() + (b * rows + begin) * n, count, part.c1.data() + b * count);
      }
      y = std::move(part);
      planes.rows = y.rows;
    }
    for (const auto* plane : {&y.c0, &y.c1}) {
      auto desc = protocol::BlobDesc::planes(y.blocks(n), y.rows, n, bits).value();
      std::vector<uint8_t> bytes(desc.byte_length);
      fhe::pack_coefficients(plane->data(), plane->size(), bits, bytes.data());
      m.blobs.push_back(blob(std::move(desc), std::move(bytes)));
    }
    results.push_back(planes);
  }
  m.body = protocol::MatmulReply{r.request_id, std::move(results)};
  return m;
}

}  // namespace participant_test
