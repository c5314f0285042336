// Answering MatmulRequests: the checks against the served model and the products themselves.
//
// check_request runs on the I/O thread before a request is queued and costs nothing (model id,
// layer, projections, parameter set, shapes). compute_batch runs on a compute thread: it unpacks
// every input into a fresh fhe::CiphertextMatrix, checks its coefficients and noise budget, runs
// the products (one GEMM per projection over the inputs of every request in the batch), switches
// the modulus where asked, and packs the result planes. Each request gets its own reply: a
// failure of one never fails another.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "fhe_worker/worker_model.h"
#include "protocol/messages.h"
#include "protocol/result.h"

namespace fhe_worker {

// A queued request with its input blob and who asked.
struct MatmulJob {
  std::string peer;
  protocol::MatmulRequest request;
  protocol::Blob input;
};

// Typed refusals: kUnknownModel, kUnknownLayer (also for a projection this worker does not
// serve, and for the LM head at a layer other than 0), kMalformedRequest (another parameter set),
// kShapeMismatch (rows, ring degree, bits), kNoiseBudget (the request's scale and token count do
// not decrypt exactly with these weights' norms: for the transposed LM head, whose inner
// dimension is the vocabulary, a large vocabulary may leave no scale at all; the participant then
// computes that product locally).
protocol::Status check_request(const WorkerModel& model, const protocol::MatmulRequest& request,
                               const protocol::Blob& input);

// Requests that may share GEMMs: the same layer, projections and direction.
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
