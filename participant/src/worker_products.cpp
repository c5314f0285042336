#include "participant/worker_products.h"

#include <algorithm>
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

using model::ModelError;

fhe::WeightBounds make_bounds(uint64_t l1, uint64_t l2_squared, uint64_t inner_dim) {
  return {l1, std::sqrt(static_cast<double>(l2_squared)), inner_dim};
}

std::string kind_name(model::ProjectionKind kind) {
  return model::projection_module_name(kind);
}

model::ProjectionKind to_model_kind(protocol::ProjectionKind kind) {
  for (int k = 0; k <= static_cast<int>(model::ProjectionKind::kLmHead); ++k) {
    const auto candidate = static_cast<model::ProjectionKind>(k);
    if (to_protocol(candidate) == kind) return candidate;
  }
  throw ModelError("a worker lists an unknown projection kind");
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
  throw ModelError("unknown projection kind");
}

WorkerProducts::WorkerProducts(std::shared_ptr<WorkerPool> pool, const model::LlamaConfig& config,
                               RemoteOptions options, const model::LlamaWeights* local_weights)
    : pool_(std::move(pool)),
      config_(config),
      options_(std::move(options)),
      ctx_(fhe::Context::create()),
      local_weights_(local_weights) {
  if (!pool_) throw ModelError("remote encrypted backend: no worker pool");
  const auto ids = model::llama_projections(config_);
  projections_.resize(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    projections_[i].dims = model::projection_dims(config_, ids[i].kind);
    projections_[i].holders.assign(pool_->size(), false);
  }
  // Every worker's ModelInfo: a layer-sharded pool holds the model in parts. The first
  // request goes to any worker (a refusal every worker would repeat, such as an unknown key,
  // comes back at once), then each other worker is asked in turn.
  Request request;
  request.body = protocol::ModelInfoRequest{options_.model_id};
  size_t first = 0;
  auto reply = pool_->call(request, {}, &first);
  if (!reply && reply.error().code == protocol::ErrorCode::kUnauthorised) {
    throw WorkersRefusedError("remote encrypted backend: model info of '" + options_.model_id +
                              "': " + reply.error().to_string());
  }
  if (!reply) {
    throw ModelError("remote encrypted backend: model info of '" + options_.model_id +
                     "': " + reply.error().to_string());
  }
  add_worker_info(first, reply.value());
  std::string silent;  // the workers that gave no info, and why
  for (size_t w = 0; w < pool_->size(); ++w) {
    if (w == first) continue;
    std::vector<bool> only(pool_->size(), false);
    only[w] = true;
    auto other = pool_->call(request, only);
    if (!other) {
      silent += (silent.empty() ? "" : "; ") + other.error().to_string();
      continue;
    }
    add_worker_info(w, other.value());
  }
  // Every decoder projection must be served by some worker; the LM head may stay local.
  std::vector<bool> uncovered(static_cast<size_t>(config_.num_hidden_layers), false);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!projections_[i].served && ids[i].kind != model::ProjectionKind::kLmHead) {
      uncovered[static_cast<size_t>(ids[i].layer)] = true;
    }
  }
  std::string missing;  // "layers 2-3, 7"
  for (size_t l = 0; l < uncovered.size(); ++l) {
    if (!uncovered[l] || (l > 0 && uncovered[l - 1])) continue;
    size_t last = l;
    while (last + 1 < uncovered.size() && uncovered[last + 1]) ++last;
    missing += missing.empty() ? "layers " : ", ";
    missing += std::to_string(l);
    if (last > l) {
      missing += '-';
      missing += std::to_string(last);
    }
  }
  if (!missing.empty()) {
    std::string held;
    for (const auto& [endpoint, what] : holdings_) held += "; " + endpoint + " holds " + what;
    const std::string text = "remote encrypted backend: the worker pool does not cover " + missing +
                             " of model '" + options_.model_id + "'" + held +
                             (silent.empty() ? "" : "; no info from: " + silent);
    // Only when every worker answered is this the pool's configuration, not an outage.
    if (silent.empty()) throw ModelMismatchError(text);
    throw ModelError(text);
  }
}

void WorkerProducts::add_worker_info(size_t worker, const protocol::Message& m) {
  const auto& outcome = std::get<protocol::ModelInfoReply>(m.body).outcome;
  const auto& info = std::get<protocol::ModelInfo>(outcome);
  const std::string where = "remote encrypted backend: worker " + pool_->endpoint(worker) +
                            "'s model '" + info.model_id + "'";
  if (info.model_id != options_.model_id) {
    throw ModelMismatchError(where + " is not the model asked for, '" + options_.model_id + "'");
  }
  if (info.layer_count != static_cast<uint64_t>(config_.num_hidden_layers)) {
    throw ModelMismatchError(where + " has " + std::to_string(info.layer_count) +
                             " layers, the local config " +
                             std::to_string(config_.num_hidden_layers));
  }
  if (options_.model_hash && info.model_hash != *options_.model_hash) {
    throw ModelMismatchError(where + " has weights of hash " +
                             model::model_hash_hex(info.model_hash) + ", this site's model has " +
                             model::model_hash_hex(*options_.model_hash) +
                             ": the workers and this site do not hold the same checkpoint");
  }
  if (info_.model_id.empty()) {
    info_ = info;  // the first answer stands for the pool (id, layer count, hash)
  } else if (info.model_hash != info_.model_hash) {
    throw ModelMismatchError(where + " has weights of hash " +
                             model::model_hash_hex(info.model_hash) + ", another worker " +
                             model::model_hash_hex(info_.model_hash));
  }
  std::string held;
  for (const protocol::ProjectionInfo& pi : info.projections) {
    const model::ProjectionKind kind = to_model_kind(pi.kind);
    const model::ProjectionDims dims = model::projection_dims(config_, kind);
    if (pi.rows != static_cast<uint64_t>(dims.d_out) ||
        pi.cols != static_cast<uint64_t>(dims.d_in)) {
      throw ModelMismatchError(where + ": " + kind_name(kind) + " is " + std::to_string(pi.rows) +
                               " x " + std::to_string(pi.cols) + ", the local config says " +
                               std::to_string(dims.d_out) + " x " + std::to_string(dims.d_in));
    }
    // Scales: float32 [norm entries, rows], row j for layer norms[j].layer (checked by the
    // decoder, which also checked that the layers increase and stay inside the model).
    const protocol::Blob& blob = m.blobs[pi.scales_blob];
    const auto rows = static_cast<size_t>(pi.rows);
    for (size_t j = 0; j < pi.norms.size(); ++j) {
      const protocol::LayerNorms& n = pi.norms[j];
      const model::ProjectionId id{kind, static_cast<int64_t>(n.layer)};
      Projection& p = projections_[model::projection_index(config_, id)];
      std::vector<float> scales(rows);
      std::memcpy(scales.data(), blob.bytes().data() + j * rows * sizeof(float),
                  rows * sizeof(float));
      for (const float v : scales) {
        if (!std::isfinite(v) || v <= 0) {
          throw ModelError(where + ": " + model::projection_name(id) +
                           " has a scale that is not a finite positive number");
        }
      }
      const fhe::WeightBounds forward = make_bounds(n.forward_l1, n.forward_l2_squared, pi.cols);
      const fhe::WeightBounds transposed =
          make_bounds(n.transpose_l1, n.transpose_l2_squared, pi.rows);
      if (!p.served) {
        p.scales = std::move(scales);
        p.forward = forward;
        p.transposed = transposed;
        p.served = true;
      } else if (p.scales != scales || p.forward.max_row_l1 != forward.max_row_l1 ||
                 p.transposed.max_row_l1 != transposed.max_row_l1) {
        throw ModelMismatchError(where + ": " + model::projection_name(id) +
                                 " differs from another worker's");
      }
      p.holders[worker] = true;
    }
    if (kind == model::ProjectionKind::kLmHead) {
      held += std::string(held.empty() ? "" : ", ") + "the LM head";
    } else if (kind == model::ProjectionKind::kQ && !pi.norms.empty()) {
      const uint32_t first = pi.norms.front().layer, last = pi.norms.back().layer;
      held += std::string(held.empty() ? "" : ", ") +
              (first == last ? "layer " + std::to_string(first)
                             : "layers " + std::to_string(first) + "-" + std::to_string(last));
    }
  }
  holdings_.emplace_back(pool_->endpoint(worker), held.empty() ? "nothing" : held);
}

WorkerProducts::~WorkerProducts() = default;

const WorkerProducts::Projection& WorkerProducts::at(model::ProjectionId id) const {
  const Projection& p = projections_[model::projection_index(config_, id)];
  if (!p.served) {
    throw ModelError("remote encrypted backend: the workers' model '" + info_.model_id +
                     "' has no " + model::projection_name(id));
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
    throw ModelError("the ciphertext has " + std::to_string(fresh.rows) + " rows, " +
                     model::projection_name(id) + (transpose ? "^T" : "") + " takes " +
                     std::to_string(in_rows));
  }
  RemoteProduct call{options_.model_id, static_cast<uint32_t>(id.layer), to_protocol(id.kind),
                     transpose, options_.switch_modulus};
  call.eligible = p.holders;
  split_call(call);
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

// The request of a group of projections sharing one input: the protocol kinds, and each
// part's dims, checked against `in_rows` (the ciphertext's rows).
std::vector<protocol::ProjectionKind> WorkerProducts::group_call(
    std::span<const model::ProjectionId> ids, bool transpose, const fhe::CiphertextMatrix& fresh,
    std::vector<uint64_t>& out_rows) const {
  std::vector<protocol::ProjectionKind> kinds;
  uint64_t in_rows = 0;
  for (const model::ProjectionId id : ids) {
    if (id.kind == model::ProjectionKind::kLmHead || id.layer != ids[0].layer) {
      throw ModelError("a projection group is of one decoder layer, not " +
                       model::projection_name(id));
    }
    const Projection& p = at(id);
    kinds.push_back(to_protocol(id.kind));
    out_rows.push_back(static_cast<uint64_t>(transpose ? p.dims.d_in : p.dims.d_out));
    in_rows = transpose ? in_rows + static_cast<uint64_t>(p.dims.d_out)
                        : static_cast<uint64_t>(p.dims.d_in);
  }
  if (fresh.rows != in_rows) {
    throw ModelError("the ciphertext has " + std::to_string(fresh.rows) + " rows, the group from " +
                     model::projection_name(ids[0]) + (transpose ? "^T" : "") + " takes " +
                     std::to_string(in_rows));
  }
  return kinds;
}

std::vector<bool> WorkerProducts::group_holders(std::span<const model::ProjectionId> ids) const {
  std::vector<bool> holders = at(ids[0]).holders;
  for (const model::ProjectionId id : ids) {
    const std::vector<bool>& h = at(id).holders;
    for (size_t w = 0; w < holders.size(); ++w) holders[w] = holders[w] && h[w];
  }
  return holders;
}

std::vector<fhe::CiphertextMatrix> WorkerProducts::multiply_group(
    std::span<const model::ProjectionId> ids, const fhe::CiphertextMatrix& fresh) {
  std::vector<uint64_t> out_rows;
  RemoteProduct call{options_.model_id, static_cast<uint32_t>(ids[0].layer),
                     to_protocol(ids[0].kind), /*transpose=*/false, options_.switch_modulus};
  call.group = group_call(ids, /*transpose=*/false, fresh, out_rows);
  call.eligible = group_holders(ids);
  split_call(call);
  return remote_products(*pool_, *ctx_, call, fresh, out_rows, &last_bytes_, stats_);
}

fhe::CiphertextMatrix WorkerProducts::multiply_stacked(std::span<const model::ProjectionId> ids,
                                                       const fhe::CiphertextMatrix& fresh) {
  std::vector<uint64_t> out_rows;
  RemoteProduct call{options_.model_id, static_cast<uint32_t>(ids[0].layer),
                     to_protocol(ids[0].kind), /*transpose=*/true, options_.switch_modulus};
  call.group = group_call(ids, /*transpose=*/true, fresh, out_rows);
  call.eligible = group_holders(ids);
  call.stacked = true;
  split_call(call);
  out_rows.resize(1);  // one result: the sum
  try {
    return std::move(
        remote_products(*pool_, *ctx_, call, fresh, out_rows, &last_bytes_, stats_).front());
  } catch (const RemoteProductError& e) {
    // A worker whose device does not stack (or an older one) refuses the shape: the backend
    // then sends the parts one at a time, with the same result.
    if (e.code() == protocol::ErrorCode::kShapeMismatch)
      throw model::StackedProductRefused(e.what());
    throw;
  }
}

void WorkerProducts::split_call(RemoteProduct& call) {
  call.split = options_.split_products && !split_refused_;
  call.min_split_rows = options_.min_split_rows;
  call.split_refused = &split_refused_;
}

fhe::CiphertextMatrix remote_product(WorkerPool& pool, const fhe::Context& ctx,
                                     const RemoteProduct& call, const fhe::CiphertextMatrix& fresh,
                                     uint64_t out_rows, WireBytes* bytes_out, RemoteStats* stats) {
  RemoteProduct single = call;
  single.group.clear();
  single.stacked = false;
  const uint64_t rows[] = {out_rows};
  return std::move(remote_products(pool, ctx, single, fresh, rows, bytes_out, stats).front());
}

namespace {

using Clock = std::chrono::steady_clock;

uint64_t nanos(Clock::time_point a, Clock::time_point b) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

// One result of a reply as a ciphertext, checked: its projection, `rows` (unless 0), the token
// count, the scale and the bit width. It keeps the reply's planes as received (one segment of
// fhe::CiphertextMatrix::packed, `held` owning them): the decryptor unpacks each row and checks
// every coefficient's range as it reads it.
fhe::CiphertextMatrix unpack_result(const fhe::Context& ctx, const RemoteProduct& call,
                                    const fhe::CiphertextMatrix& fresh,
                                    const std::shared_ptr<const protocol::Message>& held,
                                    const protocol::ResultPlanes& r,
                                    protocol::ProjectionKind projection, uint64_t rows,
                                    uint64_t& reply_bytes) {
  const protocol::Message& m = *held;
  const fhe::Params& params = ctx.params();
  if (r.projection != projection) {
    throw ModelError("the worker answered with other projections than asked for");
  }
  if ((rows != 0 && r.rows != rows) || r.cols != fresh.cols || r.log2_delta != fresh.log2_delta) {
    throw ModelError("the worker's product is " + std::to_string(r.rows) + " x " +
                     std::to_string(r.cols) + " at scale 2^" + std::to_string(r.log2_delta) +
                     ", expected " + (rows ? std::to_string(rows) : std::string("?")) + " x " +
                     std::to_string(fresh.cols) + " at 2^" + std::to_string(fresh.log2_delta));
  }
  if (r.kind == protocol::PlaneKind::kProduct && r.bits != params.log2_q) {
    throw ModelError("the worker's product has " + std::to_string(r.bits) + "-bit coefficients");
  }
  if (r.kind == protocol::PlaneKind::kSwitched &&
      (!call.switch_modulus || r.bits < fhe::kMinSwitchBits || r.bits > fhe::kMaxSwitchBits)) {
    throw ModelError("the worker's reply is switched to 2^" + std::to_string(r.bits) +
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
  // The decoder checked each blob's shape and exact byte length against r; validate checks the
  // layout again.
  fhe::PackedRows planes;
  planes.rows = r.rows;
  planes.c0 = m.blobs[r.c0_blob].bytes().data();
  planes.c1 = m.blobs[r.c1_blob].bytes().data();
  planes.c0_bytes = m.blobs[r.c0_blob].bytes().size();
  planes.c1_bytes = m.blobs[r.c1_blob].bytes().size();
  planes.owner = held;
  y.packed.push_back(std::move(planes));
  y.packed_bits = r.bits;
  reply_bytes += y.packed.back().c0_bytes + y.packed.back().c1_bytes;
  fhe::validate(ctx, y, /*check_range=*/false);
  return y;
}

void add_reply_stats(RemoteStats* stats, const protocol::Message& m) {
  if (stats == nullptr) return;
  const auto& mr = std::get<protocol::MatmulReply>(m.body);
  ++stats->requests;
  if (!mr.has_timings) return;
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

}  // namespace

size_t split_parts(uint64_t rows, size_t live_workers, uint64_t min_rows) {
  if (live_workers < 2) return 1;
  return static_cast<size_t>(std::max<uint64_t>(
      1, std::min<uint64_t>(live_workers, rows / std::max<uint64_t>(min_rows, 1))));
}

std::vector<fhe::CiphertextMatrix> remote_products(WorkerPool& pool, const fhe::Context& ctx,
                                                   const RemoteProduct& call,
                                                   const fhe::CiphertextMatrix& fresh,
                                                   std::span<const uint64_t> out_rows,
                                                   WireBytes* bytes_out, RemoteStats* stats) {
  const auto pack_start = Clock::now();
  const fhe::Params& params = ctx.params();
  fhe::validate(ctx, fresh, /*check_range=*/false);
  if (fresh.kind != fhe::CtKind::kFresh) throw ModelError("only fresh ciphertexts can be sent");
  const size_t n = ctx.n();
  const uint64_t blocks = fresh.blocks(n);

  auto desc = protocol::BlobDesc::planes(blocks, fresh.rows, n, params.log2_q);
  if (!desc) throw ModelError("input planes: " + desc.error().to_string());
  auto bytes = std::make_shared<std::vector<uint8_t>>(desc.value().byte_length);
  fhe::pack_coefficients(fresh.c0.data(), fresh.c0.size(), params.log2_q, bytes->data());
  const uint64_t input_bytes = bytes->size();

  protocol::MatmulRequest body;
  body.model_id = call.model_id;
  body.layer = call.layer;
  body.projections =
      call.group.empty() ? std::vector<protocol::ProjectionKind>{call.kind} : call.group;
  body.stacked = call.stacked;
  const size_t expected = call.stacked ? 1 : body.projections.size();
  if (out_rows.size() != expected) {
    throw ModelError("remote product: " + std::to_string(out_rows.size()) + " result shapes for " +
                     std::to_string(expected) + " results");
  }
  body.transpose = call.transpose;
  body.params_id = fresh.params_id;
  body.seed = fresh.seed;
  body.log2_delta = fresh.log2_delta;
  body.rows = fresh.rows;
  body.cols = fresh.cols;
  body.switch_modulus = call.switch_modulus;
  body.input_blob = 0;

  // The parts: output rows [bounds[p], bounds[p + 1]) of the results concatenated.
  uint64_t total_rows = 0;
  bool known = true;
  for (const uint64_t r : out_rows) {
    total_rows += r;
    known = known && r != 0;
  }
  size_t parts = 1;
  if (call.split && known) {
    size_t live = 0;
    const std::vector<WorkerStatus> workers = pool.status();
    for (size_t w = 0; w < workers.size(); ++w) {
      if ((call.eligible.empty() || call.eligible[w]) && workers[w].health == WorkerHealth::kLive) {
        ++live;
      }
    }
    parts = split_parts(total_rows, live, call.min_split_rows);
  }
  std::vector<uint64_t> bounds(parts + 1);
  for (size_t p = 0; p <= parts; ++p) bounds[p] = total_rows * p / parts;
  std::vector<Request> requests(parts);
  for (size_t p = 0; p < parts; ++p) {
    requests[p].body = body;
    if (parts > 1) {
      auto& b = std::get<protocol::MatmulRequest>(requests[p].body);
      b.row_begin = bounds[p];
      b.row_end = bounds[p + 1];
    }
    requests[p].blob_descs = {desc.value()};
    requests[p].blob_bytes = {bytes};  // shared by every part: one copy of the input
  }

  std::vector<fhe::CiphertextMatrix> out(expected);
  std::vector<uint64_t> filled(expected, 0);  // rows of each result received
  uint64_t reply_bytes = 0, unpack_ns = 0;
  const auto call_start = Clock::now();
  // Unpacks and checks part p's reply while the other parts still compute.
  auto on_answer = [&](size_t p, protocol::Message&& received, size_t) {
    const auto unpack_start = Clock::now();
    const auto held = std::make_shared<const protocol::Message>(std::move(received));
    const protocol::Message& m = *held;
    const auto& results = std::get<std::vector<protocol::ResultPlanes>>(
        std::get<protocol::MatmulReply>(m.body).outcome);
    if (parts == 1 && results.size() != expected) {
      throw ModelError("the worker answered with " + std::to_string(results.size()) +
                       " products, " + std::to_string(expected) + " asked for");
    }
    // The results intersecting [bounds[p], bounds[p + 1]), in order.
    size_t k = 0;
    uint64_t at = 0;
    for (size_t j = 0; j < expected; ++j) {
      const uint64_t rows = out_rows[j];
      const uint64_t begin = parts > 1 ? std::max(at, bounds[p]) : at;
      const uint64_t end = parts > 1 ? std::min(at + rows, bounds[p + 1]) : at + rows;
      at += rows;
      if (parts > 1 && begin >= end) continue;
      if (k == results.size()) {
        at = total_rows + 1;  // too few results: refused below
        break;
      }
      fhe::CiphertextMatrix y = unpack_result(ctx, call, fresh, held, results[k++],
                                              body.projections[j], end - begin, reply_bytes);
      if (parts == 1) {
        out[j] = std::move(y);
        filled[j] = out[j].rows;
        continue;
      }
      fhe::CiphertextMatrix& whole = out[j];
      if (filled[j] == 0) {
        whole.params_id = y.params_id;
        whole.kind = y.kind;
        whole.rows = rows;
        whole.cols = y.cols;
        whole.log2_delta = y.log2_delta;
        whole.log2_modulus = y.log2_modulus;
        whole.seed = y.seed;
        whole.packed_bits = y.packed_bits;
      } else if (whole.kind != y.kind || whole.log2_modulus != y.log2_modulus ||
                 whole.packed_bits != y.packed_bits) {
        throw ModelError("the workers answered parts of one product at different moduli");
      }
      // The part's planes become a segment of the whole product, without a copy.
      const uint64_t first = begin - (at - rows), count = end - begin;
      y.packed.front().row_begin = first;
      whole.packed.push_back(std::move(y.packed.front()));
      filled[j] += count;
    }
    if (k != results.size() || at != total_rows) {
      throw ModelError("the worker answered a part of rows [" + std::to_string(bounds[p]) + ", " +
                       std::to_string(bounds[p + 1]) + ") with " + std::to_string(results.size()) +
                       " products, not the ones that range intersects");
    }
    add_reply_stats(stats, m);
    unpack_ns += nanos(unpack_start, Clock::now());
  };
  auto status = pool.call_many(requests, call.eligible, on_answer);
  if (!status && parts > 1 && status.error().code == protocol::ErrorCode::kShapeMismatch) {
    // A worker that takes whole products only (the CUDA device) refuses a range: ask for the
    // whole product, and when that is served let the caller stop splitting (a refusal of the
    // whole product, such as a shape the GEMM cannot accumulate, is passed on as it is).
    RemoteProduct whole = call;
    whole.split = false;
    auto products = remote_products(pool, ctx, whole, fresh, out_rows, bytes_out, stats);
    if (call.split_refused != nullptr) *call.split_refused = true;
    return products;
  }
  const auto call_done = Clock::now();
  if (!status) throw RemoteProductError(status.error().code, status.error().to_string());
  for (size_t j = 0; j < expected; ++j) {
    if (filled[j] != out_rows[j] && out_rows[j] != 0) {
      throw ModelError("the workers' parts hold " + std::to_string(filled[j]) + " of " +
                       std::to_string(out_rows[j]) + " rows of a product");
    }
    // Parts arrive in any order; the segments go in row order (validate checks they tile).
    std::sort(out[j].packed.begin(), out[j].packed.end(),
              [](const fhe::PackedRows& a, const fhe::PackedRows& b) {
                return a.row_begin < b.row_begin;
              });
    fhe::validate(ctx, out[j], /*check_range=*/false);
  }
  const uint64_t request_bytes = input_bytes * parts;  // each part carries the whole input
  if (bytes_out != nullptr) {
    bytes_out->request = request_bytes;
    bytes_out->reply = reply_bytes;
  }
  if (stats != nullptr) {
    stats->request_bytes += request_bytes;
    stats->reply_bytes += reply_bytes;
    stats->pack_ns += nanos(pack_start, call_start);
    // The round trip less the unpacking done while other parts were computing.
    stats->call_ns +=
        nanos(call_start, call_done) - std::min(unpack_ns, nanos(call_start, call_done));
    stats->unpack_ns += unpack_ns;
  }
  return out;
}

}  // namespace participant
