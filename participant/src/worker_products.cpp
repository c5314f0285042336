#include "participant/worker_products.h"

#include <chrono>
#include <cmath>
#include <cstring>

#include "fhe/encryptor.h"
#include "fhe/modswitch.h"
#include "fhe/serialize.h"
#include "model/error.h"
#include "model/model_hash.h"

namespace participant {
namespace {

using model::Error;

fhe::WeightBounds make_bounds(uint64_t l1, uint64_t l2_squared, uint64_t inner_dim) {
  return {l1, std::sqrt(static_cast<double>(l2_squared)), inner_dim};
}

std::string kind_name(model::ProjectionKind kind) {
  return model::projection_module_name(kind);
}

}  // namespace

protocol::ProjectionKind to_protocol(model::ProjectionKind kind) {
  switch (kind) {
    case model::ProjectionKind::kQ:
      return protocol::ProjectionKind::kQ;
    case model::ProjectionKind::kK:
      return protocol::ProjectionKind::kK;
    case model::ProjectionKind::kV:
      return protocol::ProjectionKind::kV;
    case model::ProjectionKind::kO:
      return protocol::ProjectionKind::kO;
    case model::ProjectionKind::kGate:
      return protocol::ProjectionKind::kGate;
    case model::ProjectionKind::kUp:
      return protocol::ProjectionKind::kUp;
    case model::ProjectionKind::kDown:
      return protocol::ProjectionKind::kDown;
    case model::ProjectionKind::kLmHead:
      return protocol::ProjectionKind::kLmHead;
  }
  throw Error("unknown projection kind");
}

WorkerProducts::WorkerProducts(std::shared_ptr<WorkerPool> pool, const model::LlamaConfig& config,
                               RemoteOptions options, const model::LlamaWeights* local_weights)
    : pool_(std::move(pool)),
      config_(config),
      options_(std::move(options)),
      ctx_(fhe::Context::create()),
      local_weights_(local_weights) {
  if (!pool_) throw Error("remote encrypted backend: no worker pool");
  Request request;
  request.body = protocol::ModelInfoRequest{options_.model_id};
  auto reply = pool_->call(request);
  if (!reply) {
    throw Error("remote encrypted backend: model info of '" + options_.model_id +
                "': " + reply.error().to_string());
  }
  const protocol::Message& m = reply.value();
  const auto& outcome = std::get<protocol::ModelInfoReply>(m.body).outcome;
  info_ = std::get<protocol::ModelInfo>(outcome);
  const std::string where = "remote encrypted backend: the workers' model '" + info_.model_id + "'";
  if (info_.model_id != options_.model_id) {
    throw ModelMismatchError(where + " is not the model asked for, '" + options_.model_id + "'");
  }
  if (info_.layer_count != static_cast<uint64_t>(config_.num_hidden_layers)) {
    throw ModelMismatchError(where + " has " + std::to_string(info_.layer_count) +
                             " layers, the local config " +
                             std::to_string(config_.num_hidden_layers));
  }
  if (options_.model_hash && info_.model_hash != *options_.model_hash) {
    throw ModelMismatchError(where + " has weights of hash " +
                             model::model_hash_hex(info_.model_hash) +
                             ", this site's model has " +
                             model::model_hash_hex(*options_.model_hash) +
                             ": the workers and this site do not hold the same checkpoint");
  }
  const auto ids = model::llama_projections(config_);
  projections_.resize(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const model::ProjectionId id = ids[i];
    Projection& p = projections_[i];
    p.dims = model::projection_dims(config_, id.kind);
    const protocol::ProjectionInfo* pi = nullptr;
    for (const auto& candidate : info_.projections) {
      if (candidate.kind == to_protocol(id.kind)) pi = &candidate;
    }
    if (pi == nullptr) {
      if (id.kind != model::ProjectionKind::kLmHead) {
        throw ModelMismatchError(where + " has no " + kind_name(id.kind) + " projection");
      }
      continue;  // an older worker: local weights, or it fails on use
    }
    if (pi->rows != static_cast<uint64_t>(p.dims.d_out) ||
        pi->cols != static_cast<uint64_t>(p.dims.d_in)) {
      throw ModelMismatchError(where + ": " + kind_name(id.kind) + " is " + std::to_string(pi->rows) + " x " +
                  std::to_string(pi->cols) + ", the local config says " +
                  std::to_string(p.dims.d_out) + " x " + std::to_string(p.dims.d_in));
    }
    // Scales: float32 [layers, rows] ([1, rows] for the LM head, layer 0), checked by the decoder.
    const protocol::Blob& blob = m.blobs[pi->scales_blob];
    const auto rows = static_cast<size_t>(pi->rows);
    p.scales.resize(rows);
    std::memcpy(p.scales.data(), blob.bytes().data() + static_cast<size_t>(id.layer) * rows * 4,
                rows * sizeof(float));
    for (const float s : p.scales) {
      if (!std::isfinite(s) || s <= 0) {
        throw Error(where + ": " + model::projection_name(id) +
                    " has a scale that is not a finite"
                    " positive number");
      }
    }
    const protocol::LayerNorms& n = pi->norms[static_cast<size_t>(id.layer)];
    p.forward = make_bounds(n.forward_l1, n.forward_l2_squared, pi->cols);
    p.transposed = make_bounds(n.transpose_l1, n.transpose_l2_squared, pi->rows);
    p.served = true;
  }
}

WorkerProducts::~WorkerProducts() = default;

const WorkerProducts::Projection& WorkerProducts::at(model::ProjectionId id) const {
  const Projection& p = projections_[model::projection_index(config_, id)];
  if (!p.served) {
    throw Error("remote encrypted backend: the workers' model '" + info_.model_id + "' has no " +
                model::projection_name(id));
  }
  return p;
}

bool WorkerProducts::is_local(model::ProjectionId id) const {
  return local_weights_ != nullptr && !projections_[model::projection_index(config_, id)].served;
}

bool WorkerProducts::workers_serve_lm_head() const {
  return projections_[model::projection_index(config_, model::ProjectionId::lm_head())].served;
}

model::LocalEncryptedProducts& WorkerProducts::local() const {
  if (!local_) {
    local_ = std::make_unique<model::LocalEncryptedProducts>(
        *local_weights_, ctx_, std::vector<model::ProjectionKind>{model::ProjectionKind::kLmHead});
  }
  return *local_;
}

model::ProjectionDims WorkerProducts::dims(model::ProjectionId id) const {
  return projections_[model::projection_index(config_, id)].dims;
}

std::span<const float> WorkerProducts::scales(model::ProjectionId id) const {
  if (is_local(id)) return local().scales(id);
  return at(id).scales;
}

fhe::WeightBounds WorkerProducts::bounds(model::ProjectionId id, bool transpose) {
  if (is_local(id)) return local().bounds(id, transpose);
  const Projection& p = at(id);
  return transpose ? p.transposed : p.forward;
}

fhe::CiphertextMatrix WorkerProducts::multiply(model::ProjectionId id, bool transpose,
                                               const fhe::CiphertextMatrix& fresh) {
  const bool lm_head = id.kind == model::ProjectionKind::kLmHead;
  if (is_local(id) || (lm_head && lm_head_refused_[transpose] && local_weights_ != nullptr)) {
    ++local_products_;
    return local().multiply(id, transpose, fresh);
  }
  const Projection& p = at(id);
  const uint64_t in_rows = static_cast<uint64_t>(transpose ? p.dims.d_out : p.dims.d_in);
  const uint64_t out_rows = static_cast<uint64_t>(transpose ? p.dims.d_in : p.dims.d_out);
  if (fresh.rows != in_rows) {
    throw Error("the ciphertext has " + std::to_string(fresh.rows) + " rows, " +
                model::projection_name(id) + (transpose ? "^T" : "") + " takes " +
                std::to_string(in_rows));
  }
  RemoteProduct call{options_.model_id, static_cast<uint32_t>(id.layer), to_protocol(id.kind),
                     transpose, options_.switch_modulus};
  try {
    return remote_product(*pool_, *ctx_, call, fresh, out_rows, &last_bytes_, stats_);
  } catch (const RemoteProductError& e) {
    // The LM head's inner dimension is the vocabulary when transposed: a worker may refuse it
    // (noise budget, or a shape its GEMM cannot accumulate) where the local product works.
    const bool typed = e.code() == protocol::ErrorCode::kNoiseBudget ||
                       e.code() == protocol::ErrorCode::kShapeMismatch;
    if (!lm_head || !typed || local_weights_ == nullptr) throw;
    if (e.code() == protocol::ErrorCode::kShapeMismatch) lm_head_refused_[transpose] = true;
  }
  ++local_products_;
  return local().multiply(id, transpose, fresh);
}

fhe::CiphertextMatrix remote_product(WorkerPool& pool, const fhe::Context& ctx,
                                     const RemoteProduct& call, const fhe::CiphertextMatrix& fresh,
                                     uint64_t out_rows, WireBytes* bytes_out, RemoteStats* stats) {
  using Clock = std::chrono::steady_clock;
  const auto nanos = [](Clock::time_point a, Clock::time_point b) {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
  };
  const auto pack_start = Clock::now();
  const fhe::Params& params = ctx.params();
  fhe::validate(ctx, fresh, /*check_range=*/false);
  if (fresh.kind != fhe::CtKind::kFresh) throw Error("only fresh ciphertexts can be sent");
  const size_t n = ctx.n();
  const uint64_t blocks = fresh.blocks(n);

  auto desc = protocol::BlobDesc::planes(blocks, fresh.rows, n, params.log2_q);
  if (!desc) throw Error("input planes: " + desc.error().to_string());
  auto bytes = std::make_shared<std::vector<uint8_t>>(desc.value().byte_length);
  fhe::pack_coefficients(fresh.c0.data(), fresh.c0.size(), params.log2_q, bytes->data());
  const uint64_t request_bytes = bytes->size();

  protocol::MatmulRequest body;
  body.model_id = call.model_id;
  body.layer = call.layer;
  body.projections = {call.kind};
  body.transpose = call.transpose;
  body.params_id = fresh.params_id;
  body.seed = fresh.seed;
  body.log2_delta = fresh.log2_delta;
  body.rows = fresh.rows;
  body.cols = fresh.cols;
  body.switch_modulus = call.switch_modulus;
  body.input_blob = 0;
  Request request{body, {std::move(desc).value()}, {std::move(bytes)}};

  const auto call_start = Clock::now();
  auto reply = pool.call(request);
  const auto call_done = Clock::now();
  if (!reply) throw RemoteProductError(reply.error().code, reply.error().to_string());
  const protocol::Message& m = reply.value();
  const auto& results = std::get<std::vector<protocol::ResultPlanes>>(
      std::get<protocol::MatmulReply>(m.body).outcome);
  if (results.size() != 1 || results[0].projection != call.kind) {
    throw Error("the worker answered with other projections than asked for");
  }
  const protocol::ResultPlanes& r = results[0];
  if ((out_rows != 0 && r.rows != out_rows) || r.cols != fresh.cols ||
      r.log2_delta != fresh.log2_delta) {
    throw Error("the worker's product is " + std::to_string(r.rows) + " x " +
                std::to_string(r.cols) + " at scale 2^" + std::to_string(r.log2_delta) +
                ", expected " + (out_rows ? std::to_string(out_rows) : std::string("?")) + " x " +
                std::to_string(fresh.cols) + " at 2^" + std::to_string(fresh.log2_delta));
  }
  if (r.kind == protocol::PlaneKind::kProduct && r.bits != params.log2_q) {
    throw Error("the worker's product has " + std::to_string(r.bits) + "-bit coefficients");
  }
  if (r.kind == protocol::PlaneKind::kSwitched &&
      (!call.switch_modulus || r.bits < fhe::kMinSwitchBits || r.bits > fhe::kMaxSwitchBits)) {
    throw Error("the worker's reply is switched to 2^" + std::to_string(r.bits) +
                (call.switch_modulus ? ", out of range" : " unasked"));
  }
  fhe::CiphertextMatrix y;
  y.params_id = fresh.params_id;
  y.kind =
      r.kind == protocol::PlaneKind::kSwitched ? fhe::CtKind::kSwitched : fhe::CtKind::kProduct;
  y.rows = r.rows;
  y.cols = r.cols;
  y.log2_delta = r.log2_delta;
  y.log2_modulus = r.log2_modulus;
  y.seed = fresh.seed;
  const size_t count = static_cast<size_t>(blocks * r.rows * n);
  y.c0.resize(count);
  y.c1.resize(count);
  // The decoder checked each blob's shape and exact byte length against r.
  fhe::unpack_coefficients(m.blobs[r.c0_blob].bytes().data(), count, r.bits, y.c0.data());
  fhe::unpack_coefficients(m.blobs[r.c1_blob].bytes().data(), count, r.bits, y.c1.data());
  if (bytes_out != nullptr) {
    bytes_out->request = request_bytes;
    bytes_out->reply = m.blobs[r.c0_blob].bytes().size() + m.blobs[r.c1_blob].bytes().size();
  }
  fhe::validate(ctx, y);  // every coefficient below its modulus
  if (stats != nullptr) {
    const auto& mr = std::get<protocol::MatmulReply>(m.body);
    ++stats->requests;
    stats->request_bytes += request_bytes;
    stats->reply_bytes += m.blobs[r.c0_blob].bytes().size() + m.blobs[r.c1_blob].bytes().size();
    stats->pack_ns += nanos(pack_start, call_start);
    stats->call_ns += nanos(call_start, call_done);
    stats->unpack_ns += nanos(call_done, Clock::now());
    if (mr.has_timings) {
      ++stats->worker_reports;
      protocol::MatmulTimings& w = stats->worker;
      w.queue_ns += mr.timings.queue_ns;
      w.unpack_ns += mr.timings.unpack_ns;
      w.seed_expansion_ns += mr.timings.seed_expansion_ns;
      w.gemm_ns += mr.timings.gemm_ns;
      w.recombine_ns += mr.timings.recombine_ns;
      w.switch_ns += mr.timings.switch_ns;
      w.pack_ns += mr.timings.pack_ns;
    }
  }
  return y;
}

}  // namespace participant
