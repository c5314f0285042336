// Answering MatmulRequests: the checks against the served model and the products themselves.
//
// check_request runs on the I/O thread before a request is queued and costs nothing (model id,
// layer, projections, parameter set, shapes). compute_batch runs on a compute thread: it unpacks
// every input into a fresh fhe::CiphertextMatrix, checks its coefficients and noise budget, runs
// the products (one GEMM per projection over the inputs of every request in the batch; for a
// stacked request each part's rows by its W_j^T, summed mod q into one product), switches
// the modulus where asked, and packs the result planes. Every successful reply carries its
// MatmulTimings (queue, unpack, seed expansion, GEMM, recombination, switch, pack; the GEMM
// phases are the batch's). A ranged request (row_begin/row_end, worker.capnp) computes only its
// output rows, each projection's part by WorkerModel::gemm_rows (the weights' rows, or columns,
// read in place), switched to the whole product's modulus: the parts are the whole product's
// rows bit for bit. Each request gets its own reply: a failure of one never fails another.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "fhe/noise.h"
#include "fhe_worker/worker_model.h"
#include "protocol/messages.h"
#include "protocol/result.h"

namespace fhe_worker {

// A queued request with its input blob and who asked.
struct MatmulJob {
  std::string peer;
  protocol::MatmulRequest request;
  protocol::Blob input;
  uint64_t bytes = 0;  // RequestSize::bytes, counted against WorkerConfig::max_queued_bytes
  std::chrono::steady_clock::time_point accepted{};  // when queued: the reply's queue time
};

// Bounds on what one request may make the worker allocate (WorkerConfig; docs/worker.md,
// "Request limits"). Values are ring coefficients: a matrix of `rows` rows over `cols` tokens
// takes rows x ceil(cols / n) x n of them per plane.
struct RequestLimits {
  uint64_t max_input_values = UINT64_MAX;   // rows x token slots of the input (one plane)
  uint64_t max_output_values = UINT64_MAX;  // d_out x token slots x 2 planes, over projections
  uint64_t max_request_bytes = UINT64_MAX;  // RequestSize::bytes
};

// What a request holds while it is queued and computed: its coefficient counts and an estimate
// of the bytes (the input frame, the unpacked input and its expanded mask, the product planes
// and their packed reply frames).
struct RequestSize {
  uint64_t input_values = 0, output_values = 0, bytes = 0;
};

// The size of a request whose layer and projections check_request has accepted.
RequestSize request_size(const WorkerModel& model, const protocol::MatmulRequest& request,
                         const protocol::Blob& input);

// Typed refusals: kUnknownModel, kUnknownLayer (also for a projection this worker does not
// serve, and for the LM head at a layer other than 0), kMalformedRequest (another parameter set),
// kShapeMismatch (rows, ring degree, bits), kNoiseBudget (the request's scale and token count do
// not decrypt exactly with these weights' norms: for the transposed LM head, whose inner
// dimension is the vocabulary, a large vocabulary may leave no scale at all; the participant then
// computes that product locally), kShapeMismatch for a request over `limits` (checked before
// the noise budget; the message names the limit's flag). A stacked request (worker.capnp) is
// refused with kMalformedRequest unless transposed, kShapeMismatch unless its rows are the sum of
// its projections' d_out and they share d_in, kNoiseBudget when the stacked product does not
// decrypt exactly. Nothing is allocated for the request.
protocol::Status check_request(const WorkerModel& model, const protocol::MatmulRequest& request,
                               const protocol::Blob& input, const RequestLimits& limits = {});

// The bounds of a stacked request's product (fhe::stacked_bounds of its projections' transposed
// bounds): what its noise budget and reply modulus are checked with.
fhe::WeightBounds stacked_bounds(const WorkerModel& model, const protocol::MatmulRequest& request);

// The output rows of a request (which row_begin/row_end index): the one result's for a stacked
// request, the sum over its projections otherwise. The request must have passed the
// projection checks of check_request.
uint64_t output_rows(const WorkerModel& model, const protocol::MatmulRequest& request);

// The rows [first, second) of result j's matrix (projection j, or the stack) that the request
// asks for: all of them unranged, the intersection with the row range otherwise, nullopt when
// it has none (that projection is left out of the reply).
std::optional<std::pair<size_t, size_t>> rows_of_result(const WorkerModel& model,
                                                        const protocol::MatmulRequest& request,
                                                        size_t j);

// Requests that may share GEMMs: the same layer, projections, direction, stacking and rows.
bool same_batch(const protocol::MatmulRequest& a, const protocol::MatmulRequest& b);

// Blocks of n tokens in a request's input (its batching weight).
size_t input_blocks(const WorkerModel& model, const protocol::MatmulRequest& request);

// One MatmulReply message per job, in order. All jobs must satisfy same_batch with the first and
// have passed check_request. Never throws: every failure becomes that job's error reply
// (kNoiseBudget, kMalformedRequest for coefficients out of range, kShapeMismatch for a transposed
// product the implementation refuses, kInternal otherwise).
std::vector<protocol::Message> compute_batch(const WorkerModel& model,
                                             std::span<const MatmulJob* const> jobs);

// A MatmulReply carrying an error (error.code must be a wire code; see protocol::to_wire).
protocol::Message matmul_error(uint64_t request_id, protocol::Error error);

}  // namespace fhe_worker
