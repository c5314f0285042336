// Checking and computing matmul requests.
#include "fhe_worker/matmul.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fhe/encryptor.h"
#include "fhe/modswitch.h"
#include "fhe/noise.h"
#include "fhe/params.h"
#include "fhe/plane_gemm.h"
#include "fhe/stacked_product.h"
#include "fhe_worker/ciphertext_wire.h"

namespace fhe_worker {

using protocol::ErrorCode;
using protocol::make_error;

protocol::Message matmul_error(uint64_t request_id, protocol::Error error) {
  protocol::MatmulReply reply;
  reply.request_id = request_id;
  reply.outcome = protocol::to_wire(std::move(error));
  return protocol::Message{std::move(reply), {}};
}

protocol::Status check_request(const WorkerModel& model, const protocol::MatmulRequest& r,
                               const protocol::Blob& input, const RequestLimits& limits) {
  if (r.model_id != model.model_id()) {
    return make_error(ErrorCode::kUnknownModel, "this worker serves model '", model.model_id(),
                      "', not '", r.model_id, "'");
  }
  if (r.layer >= model.layer_count()) {
    return make_error(ErrorCode::kUnknownLayer, "layer ", r.layer, " out of range (model has ",
                      model.layer_count(), " layers)");
  }
  const fhe::Params& p = model.context().params();
  if (r.params_id != p.id) {
    return make_error(ErrorCode::kMalformedRequest, "unknown parameter set ", r.params_id,
                      " (this worker uses ", p.name, " = ", p.id, ")");
  }
  for (const protocol::ProjectionKind kind : r.projections) {
    if (!WorkerModel::serves(kind)) {
      return make_error(ErrorCode::kUnknownLayer, "projection ", protocol::projection_name(kind),
                        " is not served by this worker");
    }
    if (r.layer >= model.layers_of(kind)) {
      return make_error(ErrorCode::kUnknownLayer, "projection ", protocol::projection_name(kind),
                        " has no layer ", r.layer, " (the LM head is served as layer 0)");
    }
    if (!model.holds(r.layer, kind)) {
      return make_error(ErrorCode::kUnknownLayer, "this worker holds ", model.holdings(),
                        " of model '", model.model_id(), "', not ", protocol::projection_name(kind),
                        " of layer ", r.layer, ": send it to a worker that holds that layer");
    }
    const model::QuantizedWeight& w = model.weight(r.layer, kind);
    const auto expected = static_cast<uint64_t>(r.transpose ? w.rows : w.cols);
    if (!r.stacked && r.rows != expected) {
      return make_error(ErrorCode::kShapeMismatch, "input has ", r.rows, " rows but ",
                        protocol::projection_name(kind), r.transpose ? "^T" : "", " of layer ",
                        r.layer, " takes ", expected);
    }
  }
  if (r.stacked) {
    if (!r.transpose) {
      return make_error(ErrorCode::kMalformedRequest,
                        "a stacked request must be transposed (it sums W_j^T X_j)");
    }
    const model::QuantizedWeight& first = model.weight(r.layer, r.projections.front());
    uint64_t sum = 0;
    std::string names;
    for (const protocol::ProjectionKind kind : r.projections) {
      const model::QuantizedWeight& w = model.weight(r.layer, kind);
      if (w.cols != first.cols) {
        return make_error(ErrorCode::kShapeMismatch, "stacked projections ",
                          protocol::projection_name(r.projections.front()), " and ",
                          protocol::projection_name(kind), " take ", first.cols, " and ", w.cols,
                          " features: only projections of one input can be stacked");
      }
      sum += static_cast<uint64_t>(w.rows);
      if (!names.empty()) names += '+';
      names += protocol::projection_name(kind);
    }
    if (r.rows != sum) {
      return make_error(ErrorCode::kShapeMismatch, "stacked input has ", r.rows, " rows but ",
                        names, " of layer ", r.layer, " have ", sum,
                        " output rows together (the sum of their d_out)");
    }
  }
  if (r.ranged()) {
    const uint64_t out_rows = output_rows(model, r);
    if (r.row_end > out_rows) {
      return make_error(ErrorCode::kShapeMismatch, "output rows [", r.row_begin, ", ", r.row_end,
                        ") asked for, but the request has ", out_rows, " output rows");
    }
    if (model.device().kind == Device::Kind::kCuda) {
      return make_error(ErrorCode::kShapeMismatch, "the ", model.device().name(),
                        " device computes whole products only (no output row ranges); ask for "
                        "every row");
    }
  }
  // The sizes follow from the header and the served shapes alone: refuse an over-large request
  // here, before it is queued and before anything is allocated for it.
  const RequestSize size = request_size(model, r, input);
  const uint64_t slots = fhe::CiphertextMatrix::blocks_for(r.cols, p.n) * p.n;
  if (size.input_values > limits.max_input_values) {
    return make_error(ErrorCode::kShapeMismatch, "request too large: its input is ", r.rows,
                      " rows x ", slots, " token slots = ", size.input_values,
                      " values, over this worker's limit of ", limits.max_input_values,
                      " (--max-input-values); send fewer tokens per request");
  }
  if (size.output_values > limits.max_output_values) {
    return make_error(ErrorCode::kShapeMismatch, "request too large: its output is ",
                      size.output_values / (2 * slots), " rows x ", slots,
                      " token slots x 2 planes (over its projections) = ", size.output_values,
                      " values, over this worker's limit of ", limits.max_output_values,
                      " (--max-output-values); send fewer tokens or projections per request");
  }
  if (size.bytes > limits.max_request_bytes) {
    return make_error(ErrorCode::kShapeMismatch, "request too large: it needs about ", size.bytes,
                      " bytes, over this worker's limit of ", limits.max_request_bytes,
                      " queued bytes (--max-queued-bytes)");
  }
  if (r.stacked) {
    const uint64_t outputs =
        static_cast<uint64_t>(model.weight(r.layer, r.projections[0]).cols) * r.cols;
    try {
      fhe::check_product(p, r.log2_delta, stacked_bounds(model, r), outputs);
    } catch (const fhe::FheError& e) {
      return make_error(ErrorCode::kNoiseBudget, "stacked product of ", r.projections.size(),
                        " projections (inner dimension ", r.rows, "): ", e.what());
    }
  }
  for (const protocol::ProjectionKind kind : r.projections) {
    const model::QuantizedWeight& w = model.weight(r.layer, kind);
    // The noise budget depends only on the header and the weights' norms: refuse here, before
    // the input is queued or unpacked (compute_batch checks it again against the GEMM).
    const auto outputs = static_cast<uint64_t>(r.transpose ? w.cols : w.rows) * r.cols;
    try {
      fhe::check_product(p, r.log2_delta, model.bounds(r.layer, kind, r.transpose), outputs);
    } catch (const fhe::FheError& e) {
      const bool vocab = kind == protocol::ProjectionKind::kLmHead && r.transpose;
      return make_error(ErrorCode::kNoiseBudget, protocol::projection_name(kind),
                        r.transpose ? "^T" : "", ": ", e.what(),
                        vocab ? " (the inner dimension is the vocabulary, " : "",
                        vocab ? std::to_string(w.rows) + "; compute it locally)" : "");
    }
  }
  const protocol::BlobDesc& d = input.desc;
  if (d.shape.size() != 3 || d.shape[2] != p.n || d.bits != p.log2_q) {
    return make_error(ErrorCode::kShapeMismatch, "input planes must have ring degree ", p.n,
                      " and ", p.log2_q, "-bit coefficients");
  }
  return protocol::ok_status();
}

RequestSize request_size(const WorkerModel& model, const protocol::MatmulRequest& r,
                         const protocol::Blob& input) {
  const fhe::Params& p = model.context().params();
  // rows <= kMaxRows, cols <= kMaxCols and the served dimensions keep every product below 2^60.
  const uint64_t slots = fhe::CiphertextMatrix::blocks_for(r.cols, p.n) * p.n;
  RequestSize s;
  s.input_values = r.rows * slots;
  for (const protocol::ProjectionKind kind : r.projections) {
    const model::QuantizedWeight& w = model.weight(r.layer, kind);
    s.output_values += 2 * static_cast<uint64_t>(r.transpose ? w.cols : w.rows) * slots;
    if (r.stacked) break;  // one result, the sum
  }
  const uint64_t packed = (p.log2_q + 7) / 8;
  s.bytes = input.bytes().size() + 16 * s.input_values + (8 + packed) * s.output_values;
  if (r.stacked && r.projections.size() > 1) s.bytes += 8 * s.output_values;  // a part's product
  return s;
}

bool same_batch(const protocol::MatmulRequest& a, const protocol::MatmulRequest& b) {
  return a.model_id == b.model_id && a.layer == b.layer && a.transpose == b.transpose &&
         a.stacked == b.stacked && a.projections == b.projections && a.row_begin == b.row_begin &&
         a.row_end == b.row_end;
}

uint64_t output_rows(const WorkerModel& model, const protocol::MatmulRequest& r) {
  uint64_t sum = 0;
  for (const protocol::ProjectionKind kind : r.projections) {
    const model::QuantizedWeight& w = model.weight(r.layer, kind);
    sum += static_cast<uint64_t>(r.transpose ? w.cols : w.rows);
    if (r.stacked) break;  // one result, the sum
  }
  return sum;
}

std::optional<std::pair<size_t, size_t>> rows_of_result(const WorkerModel& model,
                                                        const protocol::MatmulRequest& r,
                                                        size_t j) {
  size_t at = 0;
  for (size_t i = 0; i < j && !r.stacked; ++i) {
    const model::QuantizedWeight& w = model.weight(r.layer, r.projections[i]);
    at += static_cast<size_t>(r.transpose ? w.cols : w.rows);
  }
  const model::QuantizedWeight& w = model.weight(r.layer, r.projections[r.stacked ? 0 : j]);
  const size_t rows = static_cast<size_t>(r.transpose ? w.cols : w.rows);
  if (!r.ranged()) return std::pair<size_t, size_t>{0, rows};
  const size_t begin = std::max(at, static_cast<size_t>(r.row_begin));
  const size_t end = std::min(at + rows, static_cast<size_t>(r.row_end));
  if (begin >= end) return std::nullopt;
  return std::pair<size_t, size_t>{begin - at, end - at};
}

fhe::WeightBounds stacked_bounds(const WorkerModel& model, const protocol::MatmulRequest& r) {
  std::vector<fhe::WeightBounds> parts;
  for (const protocol::ProjectionKind kind : r.projections) {
    parts.push_back(model.bounds(r.layer, kind, /*transpose=*/true));
  }
  return fhe::stacked_bounds(parts);
}

size_t input_blocks(const WorkerModel& model, const protocol::MatmulRequest& request) {
  return fhe::CiphertextMatrix::blocks_for(request.cols, model.context().n());
}

namespace {

// The fresh ciphertext of a request, or why it cannot be used.
protocol::Result<fhe::CiphertextMatrix> unpack_input(const WorkerModel& model,
                                                     const MatmulJob& job) {
  const fhe::Context& ctx = model.context();
  const protocol::MatmulRequest& r = job.request;
  auto c0 = unpack_planes(job.input, r.rows, r.cols, ctx.n(), ctx.params().log2_q);
  if (!c0) return c0.error();
  fhe::CiphertextMatrix ct;
  ct.params_id = r.params_id;
  ct.kind = fhe::CtKind::kFresh;
  ct.rows = r.rows;
  ct.cols = r.cols;
  ct.log2_delta = r.log2_delta;
  std::copy(r.seed.begin(), r.seed.end(), ct.seed.begin());
  ct.c0 = std::move(c0).value();
  if (auto valid = protocol::capture(ErrorCode::kMalformedRequest,
                                     "input: ", [&] { fhe::validate(ctx, ct); });
      !valid) {
    return valid.error();
  }
  // Noise budget of every product of this input.
  for (const protocol::ProjectionKind kind : r.projections) {
    const fhe::ProductEvaluator* gemm = nullptr;
    try {
      gemm = &model.gemm(r.layer, kind, r.transpose);
    } catch (const std::exception& e) {
      return make_error(ErrorCode::kShapeMismatch, protocol::projection_name(kind), ": ", e.what());
    }
    try {
      fhe::check_product(ctx.params(), r.log2_delta, gemm->bounds(), gemm->out_dim() * r.cols);
    } catch (const fhe::FheError& e) {
      return make_error(ErrorCode::kNoiseBudget, protocol::projection_name(kind), ": ", e.what());
    }
  }
  if (r.stacked) {
    try {
      fhe::check_product(ctx.params(), r.log2_delta, stacked_bounds(model, r),
                         model.gemm(r.layer, r.projections[0], true).out_dim() * r.cols);
    } catch (const std::exception& e) {
      return make_error(ErrorCode::kNoiseBudget, "stacked product: ", e.what());
    }
  }
  return ct;
}

}  // namespace

namespace {

uint64_t nanos_since(std::chrono::steady_clock::time_point start) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count());
}

}  // namespace

std::vector<protocol::Message> compute_batch(const WorkerModel& model,
                                             std::span<const MatmulJob* const> jobs) {
  const fhe::Context& ctx = model.context();
  const auto batch_start = std::chrono::steady_clock::now();
  std::vector<std::optional<protocol::Message>> replies(jobs.size());
  std::vector<fhe::CiphertextMatrix> inputs(jobs.size());
  std::vector<protocol::MatmulTimings> timings(jobs.size());
  std::vector<size_t> live;  // jobs whose input is usable
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i]->accepted != std::chrono::steady_clock::time_point{}) {
      timings[i].queue_ns = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(batch_start - jobs[i]->accepted)
              .count());
    }
    const auto unpack_start = std::chrono::steady_clock::now();
    auto ct = unpack_input(model, *jobs[i]);
    timings[i].unpack_ns = nanos_since(unpack_start);
    if (!ct) {
      replies[i] = matmul_error(jobs[i]->request.request_id, ct.error());
    } else {
      inputs[i] = std::move(ct).value();
      live.push_back(i);
    }
  }
  if (!live.empty()) {
    const protocol::MatmulRequest& first = jobs[live.front()]->request;
    std::vector<std::vector<protocol::ResultPlanes>> results(jobs.size());
    std::vector<std::vector<protocol::Blob>> blobs(jobs.size());
    try {
      // Adds the GEMM phases of one product to job i's timings.
      const auto add_phases = [&](size_t i, const fhe::GemmPhases& phases) {
        timings[i].seed_expansion_ns += phases.seed_expansion_ns;
        timings[i].gemm_ns += phases.gemm_ns;
        timings[i].recombine_ns +=
            phases.recombine_cpu_ns.load() / static_cast<uint64_t>(std::max(phases.threads, 1));
      };
      // Appends product y (of `kind`, or of the stack when `stacked`) to job i's reply,
      // modulus-switched where asked.
      // `gemm` is the whole matrix's product: a part of the rows (a ranged request) is switched
      // to the modulus the whole product would get, so that the parts are its rows bit for bit.
      const auto add_result = [&](size_t i, protocol::ProjectionKind kind,
                                  const fhe::ProductEvaluator& gemm, fhe::CiphertextMatrix& y,
                                  bool stacked) {
        uint32_t bits = ctx.params().log2_q;
        protocol::PlaneKind plane = protocol::PlaneKind::kProduct;
        if (jobs[i]->request.switch_modulus) {
          const auto switch_start = std::chrono::steady_clock::now();
          const uint32_t b = fhe::switch_reply(
              ctx, y, stacked ? stacked_bounds(model, jobs[i]->request) : gemm.bounds(),
              gemm.out_dim() * y.cols);
          if (b != 0) {
            bits = b;
            plane = protocol::PlaneKind::kSwitched;
          }
          timings[i].switch_ns += nanos_since(switch_start);
        }
        const auto pack_start = std::chrono::steady_clock::now();
        auto c0 = pack_planes(y.c0, y.rows, y.cols, ctx.n(), bits);
        auto c1 = pack_planes(y.c1, y.rows, y.cols, ctx.n(), bits);
        timings[i].pack_ns += nanos_since(pack_start);
        if (!c0 || !c1) throw fhe::FheError((c0 ? c1 : c0).error().message);
        protocol::ResultPlanes r;
        r.projection = kind;
        r.rows = y.rows;
        r.cols = y.cols;
        r.kind = plane;
        r.bits = bits;
        r.log2_delta = y.log2_delta;
        r.log2_modulus = plane == protocol::PlaneKind::kSwitched ? bits : 0;
        r.c0_blob = static_cast<uint32_t>(blobs[i].size());
        r.c1_blob = r.c0_blob + 1;
        blobs[i].push_back(std::move(c0).value());
        blobs[i].push_back(std::move(c1).value());
        results[i].push_back(r);
      };
      if (first.stacked) {
        // One product per request: each part's rows by its W_j^T, added mod q.
        // Each part's output rows of the range (all of them unranged): the same for every job.
        const auto range = rows_of_result(model, first, 0);
        std::vector<std::shared_ptr<const fhe::ProductEvaluator>> parts;
        for (const protocol::ProjectionKind kind : first.projections) {
          parts.push_back(
              model.gemm_rows(first.layer, kind, /*transpose=*/true, range->first, range->second));
        }
        const fhe::ProductEvaluator& whole =
            model.gemm(first.layer, first.projections.front(), true);
        for (const size_t i : live) {
          fhe::CiphertextMatrix acc, part;
          size_t at = 0;
          fhe::GemmPhases phases;
          {
            const fhe::ScopedGemmPhases scope(&phases);
            for (size_t j = 0; j < parts.size(); ++j) {
              parts[j]->multiply_rows_into(inputs[i], at, j == 0 ? acc : part);
              if (j > 0) fhe::add_product_into(ctx, acc, part);
              at += parts[j]->in_dim();
            }
          }
          add_phases(i, phases);
          add_result(i, first.projections.front(), whole, acc, /*stacked=*/true);
        }
      } else {
        for (size_t j = 0; j < first.projections.size(); ++j) {
          const protocol::ProjectionKind kind = first.projections[j];
          const auto range = rows_of_result(model, first, j);
          if (!range) continue;  // no row of this projection asked for
          const fhe::ProductEvaluator& whole = model.gemm(first.layer, kind, first.transpose);
          const std::shared_ptr<const fhe::ProductEvaluator> part =
              model.gemm_rows(first.layer, kind, first.transpose, range->first, range->second);
          const fhe::ProductEvaluator& gemm = *part;
          std::vector<const fhe::CiphertextMatrix*> ins;
          std::vector<fhe::CiphertextMatrix> products(live.size());
          std::vector<fhe::CiphertextMatrix*> outs;
          for (size_t k = 0; k < live.size(); ++k) {
            ins.push_back(&inputs[live[k]]);
            outs.push_back(&products[k]);
          }
          fhe::GemmPhases phases;
          {
            const fhe::ScopedGemmPhases scope(&phases);
            gemm.multiply_batch(ins, outs);
          }
          for (const size_t i : live) add_phases(i, phases);
          for (size_t k = 0; k < live.size(); ++k) {
            add_result(live[k], kind, whole, products[k], /*stacked=*/false);
          }
        }
      }
      for (const size_t i : live) {
        protocol::MatmulReply reply;
        reply.request_id = jobs[i]->request.request_id;
        reply.outcome = std::move(results[i]);
        reply.has_timings = true;
        reply.timings = timings[i];
        replies[i] = protocol::Message{std::move(reply), std::move(blobs[i])};
      }
    } catch (const std::exception& e) {
      // Inputs were validated and budgets checked, so this is a refused shape (a transposed
      // product whose accumulation could overflow) or an internal failure.
      const bool shape = dynamic_cast<const fhe::FheError*>(&e) != nullptr;
      for (const size_t i : live) {
        replies[i] = matmul_error(
            jobs[i]->request.request_id,
            make_error(shape ? ErrorCode::kShapeMismatch : ErrorCode::kInternal, e.what()));
      }
    }
  }
  std::vector<protocol::Message> out;
  out.reserve(jobs.size());
  for (auto& r : replies) out.push_back(std::move(*r));
  return out;
}

}  // namespace fhe_worker
