// WorkerProducts: the worker's half of every encrypted projection (model::EncryptedProducts),
// computed by the fhe_workers of a WorkerPool.
//
// On construction it asks every worker of the pool for the model's info (ModelInfoRequest) and
// checks each against the local config: the model id, the layer count, the shape of every
// projection it lists, and the model hash when the options carry the participant's own
// (ModelMismatchError names both hashes). A layer-sharded pool (fhe_worker --layers) has workers
// that each list some layers: every request then goes only to the workers holding its layer,
// and is retried among them. The pool must cover every decoder projection of every layer
// (ModelMismatchError names what is missing and what each worker holds; a plain model::ModelError
// when some worker did not answer, which may be an outage); workers must agree where they
// overlap. A worker that gave no info at construction is not used by this object. When no
// worker lists the LM head it is computed from local weights, below, or fails on use without
// them. The info gives what
// the participant needs and the ciphertext does not carry: each projection's per output channel
// int8 scales (to dequantize) and its largest row norms in both directions (to choose the
// encryption scale from the real weights).
//
// A worker may refuse the transposed LM head (its inner dimension is the vocabulary) with a typed
// noiseBudget or shapeMismatch error; with local weights that product is then computed in this
// process (model::LocalEncryptedProducts, the in-process EncryptedBackend's own products), with
// the same exact result; a shapeMismatch refusal is remembered, so later products of that
// direction stay local without asking again.
//
// multiply() sends the fresh ciphertext's c0 plane (packed to 48 bits) and seed as a
// MatmulRequest and turns the reply into a product ciphertext, after checking its projection,
// shape, scale and bit width; the product keeps the reply's packed planes, and decryption checks
// that every coefficient is below its modulus as it unpacks each row. With
// switch_modulus, workers round their replies to the smallest modulus that still decrypts
// exactly (a smaller reply, one more NTT per row on each side); the decrypted results are the
// same. A group of projections (multiply_group, multiply_stacked) is ONE request listing them
// all, stacked for the backward sum. When two or more live workers hold a product (and
// RemoteOptions::split_products, the default), its output rows are split between them: one
// ranged request per worker, all in flight at once, each reply's planes kept as one row segment
// of the same product (no copy), bit for bit (RemoteProduct::split). Nothing here holds or sends
// the secret key.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fhe/context.h"
#include "model/encrypted_products.h"
#include "model/error.h"
#include "model/llama_config.h"
#include "participant/worker_pool.h"
#include "protocol/messages.h"

namespace participant {

// Where the LM head runs (RemoteEncryptedBackend). kAuto: in this process when the
// participant holds the model's weights and the vocabulary has at least kLocalLmHeadVocab
// tokens, on the workers otherwise. In this process it is the same int8 product without
// encryption (the weights are public and the participant holds them: encrypting its own input
// to itself would protect nothing), so the results stay bit for bit those of the int8 backend.
// A large vocabulary on the workers costs 12 B per logit down (1.5 MB per token at 128256) and
// a transposed product whose inner dimension is the vocabulary, which the noise bound may
// refuse; in this process it costs one int8 GEMM of vocab x hidden per token each way.
enum class LmHeadPlacement { kAuto, kLocal, kRemote };
inline constexpr int64_t kLocalLmHeadVocab = 32768;

// The fewest output rows of a part of a split product: a smaller product is not split (each
// part costs a whole input on the wire and its seed expansion on its worker).
inline constexpr uint64_t kMinSplitRows = 256;

// Into how many parts a product of `rows` output rows is split over `live_workers` workers: one
// per worker, as long as every part keeps kMinSplitRows rows; 1 (not split) below two workers.
size_t split_parts(uint64_t rows, size_t live_workers, uint64_t min_rows = kMinSplitRows);

struct RemoteOptions {
  std::string model_id;         // as the workers serve it (fhe_worker --model-id)
  bool switch_modulus = false;  // ask for modulus-switched replies
  LmHeadPlacement lm_head = LmHeadPlacement::kAuto;
  // The hash of the participant's own model (model::quantized_model_hash): when set, workers
  // that publish another model_hash are refused (same shapes, other weights included).
  std::optional<protocol::Hash> model_hash = std::nullopt;
  // Split each product's output rows over the live workers that hold it (RemoteProduct::split).
  bool split_products = true;
  uint64_t min_split_rows = kMinSplitRows;  // tests split tiny products with fewer
};

// The workers serve another model than the participant's (id, layer count, a shape, or the
// weights' hash): a configuration error that every retry would repeat.
class ModelMismatchError : public model::ModelError {
 public:
  using model::ModelError::ModelError;
};

// No worker would talk to this participant: each refused its key, or its CURVE handshake (the
// key given for it is not its own). Thrown by the constructor of RemoteEncryptedBackend.
class WorkersRefusedError : public model::ModelError {
 public:
  using model::ModelError::ModelError;
};

// The protocol's name of a projection kind.
protocol::ProjectionKind to_protocol(model::ProjectionKind kind);

// One encrypted product to ask the workers for.
struct RemoteProduct {
  std::string model_id;
  uint32_t layer = 0;
  protocol::ProjectionKind kind = protocol::ProjectionKind::kQ;
  bool transpose = false;
  bool switch_modulus = false;
  // A group of projections sharing the input (remote_products): when not empty, the request
  // lists these instead of `kind`. With `stacked` (and transpose) the input's rows are their
  // d_out stacked in this order and the one result is the sum of their transposed products.
  std::vector<protocol::ProjectionKind> group = {};
  bool stacked = false;
  std::vector<bool> eligible = {};  // the pool's workers that hold this layer (empty: all)
  // Split the output rows (of the results concatenated, in order) into split_parts(rows, live
  // eligible workers) contiguous, balanced parts, one ranged request each (MatmulRequest
  // row_begin/row_end), all in flight at once (WorkerPool::call_many); each reply is checked as
  // it arrives and its planes become row segments of the whole products (packed, no copy), bit
  // for bit those of one request. A worker that refuses ranges (shapeMismatch: a CUDA device) gets
  // the whole request instead, and *split_refused (when given) is set so the caller stops
  // splitting.
  bool split = false;
  uint64_t min_split_rows = kMinSplitRows;
  bool* split_refused = nullptr;
};

// A product no worker served: the pool's error (its code: the workers' typed refusal, or
// kTransport / kTimeout when none could be reached) as a model::ModelError.
class RemoteProductError : public model::ModelError {
 public:
  RemoteProductError(protocol::ErrorCode code, const std::string& message)
      : model::ModelError(message), code_(code) {}
  protocol::ErrorCode code() const { return code_; }

 private:
  protocol::ErrorCode code_;
};

// Ciphertext bytes of one product on the wire: the request's c0 plane (once per part of a split
// product: every part carries the whole input), the reply's planes (summed over the parts).
struct WireBytes {
  uint64_t request = 0, reply = 0;
};

// Where the time and bytes of remote products go, for benchmarks: summed over every request
// since the sink was set (WorkerProducts::set_stats). Wall-clock nanoseconds on this side:
// pack_ns (c0 packed to 48 bits), call_ns (the pool's round trip: send, the worker's part,
// the reply's transfer and decoding; of a split product, until its last part is in, less the
// checks below), unpack_ns (the replies' planes checked and kept as received, a split product's
// parts as they arrive, while the others compute: they are unpacked and range-checked row by
// row as they are decrypted, in the decryption's time); `requests` counts replies (one per part)
// and `worker` sums the MatmulTimings the workers report (zero from a worker that sends none).
struct RemoteStats {
  uint64_t requests = 0, request_bytes = 0, reply_bytes = 0;
  uint64_t pack_ns = 0, call_ns = 0, unpack_ns = 0;
  uint64_t worker_reports = 0;  // replies that carried timings
  protocol::MatmulTimings worker;
};

// Sends `fresh` (c0 packed to 48 bits, and its seed) through the pool and returns the product
// ciphertext, checked: the projection, out_rows (unless 0), the token count, the scale and the
// bit width. Its planes stay packed as received (fhe::CiphertextMatrix::packed); the decryptor
// checks every coefficient's range as it unpacks the row. Throws RemoteProductError for a request
// no worker served (the pool's message and code), model::ModelError for a reply that does not fit
// the request, fhe::FheError for a malformed ciphertext. Fills *bytes when given.
fhe::CiphertextMatrix remote_product(WorkerPool& pool, const fhe::Context& ctx,
                                     const RemoteProduct& call, const fhe::CiphertextMatrix& fresh,
                                     uint64_t out_rows, WireBytes* bytes = nullptr,
                                     RemoteStats* stats = nullptr);

// The same for a call with a group: ONE request, and its products in order, each checked like
// remote_product's (result j of projection group[j], or of group[0] when stacked, with
// out_rows[j] rows unless 0): one per projection forward, one (the sum) when stacked.
std::vector<fhe::CiphertextMatrix> remote_products(WorkerPool& pool, const fhe::Context& ctx,
                                                   const RemoteProduct& call,
                                                   const fhe::CiphertextMatrix& fresh,
                                                   std::span<const uint64_t> out_rows,
                                                   WireBytes* bytes = nullptr,
                                                   RemoteStats* stats = nullptr);

class WorkerProducts : public model::EncryptedProducts {
 public:
  // Throws model::ModelError when no worker answers, or the info does not fit `config`. With
  // `local_weights` (which must outlive this object), an LM head the workers do not list, or a
  // transposed LM head product they refuse, is computed in this process from those weights
  // (model::LocalEncryptedProducts, built on first use), with the same results; without, using
  // an unlisted LM head throws model::ModelError and a refusal is passed on.
  WorkerProducts(std::shared_ptr<WorkerPool> pool, const model::LlamaConfig& config,
                 RemoteOptions options, const model::LlamaWeights* local_weights = nullptr);
  ~WorkerProducts() override;

  model::ProjectionDims dims(model::ProjectionId id) const override;
  std::span<const float> scales(model::ProjectionId id) const override;
  fhe::WeightBounds bounds(model::ProjectionId id, bool transpose) override;
  // Throws model::ModelError for a refused or failed request, fhe::FheError for a malformed
  // product.
  fhe::CiphertextMatrix multiply(model::ProjectionId id, bool transpose,
                                 const fhe::CiphertextMatrix& fresh) override;
  // One request for the whole group (the LM head is never part of one).
  std::vector<fhe::CiphertextMatrix> multiply_group(std::span<const model::ProjectionId> ids,
                                                    const fhe::CiphertextMatrix& fresh) override;
  fhe::CiphertextMatrix multiply_stacked(std::span<const model::ProjectionId> ids,
                                         const fhe::CiphertextMatrix& fresh) override;

  const protocol::ModelInfo& model_info() const { return info_; }
  WorkerPool& pool() { return *pool_; }

  // Bytes of the last remote request's input plane and of its reply's planes.
  uint64_t last_request_bytes() const { return last_bytes_.request; }
  uint64_t last_reply_bytes() const { return last_bytes_.reply; }
  // Adds every remote product's bytes and phases to *sink (null: none, the default).
  void set_stats(RemoteStats* sink) { stats_ = sink; }

  // True when the workers list the LM head (products go to them, unless refused).
  bool workers_serve_lm_head() const;
  // Products computed in this process so far: of an LM head the workers do not list, or that
  // they refused.
  uint64_t local_products() const { return local_products_; }

 private:
  struct Projection {
    bool served = false;
    std::vector<bool> holders;  // per pool worker: it listed this projection
    model::ProjectionDims dims;
    std::vector<float> scales;
    fhe::WeightBounds forward, transposed;
  };
  // Checks one worker's ModelInfo against the config, the options and the other workers'
  // and records what it holds. Throws ModelMismatchError or model::ModelError.
  void add_worker_info(size_t worker, const protocol::Message& reply);
  // The workers holding every projection of `ids` (one layer's).
  std::vector<bool> group_holders(std::span<const model::ProjectionId> ids) const;
  const Projection& at(model::ProjectionId id) const;
  std::vector<protocol::ProjectionKind> group_call(std::span<const model::ProjectionId> ids,
                                                   bool transpose,
                                                   const fhe::CiphertextMatrix& fresh,
                                                   std::vector<uint64_t>& out_rows) const;
  bool is_local(model::ProjectionId id) const;
  model::LocalEncryptedProducts& local() const;

  std::shared_ptr<WorkerPool> pool_;
  model::LlamaConfig config_;
  RemoteOptions options_;
  std::shared_ptr<const fhe::Context> ctx_;
  protocol::ModelInfo info_;                                   // the first worker's that answered
  std::vector<std::pair<std::string, std::string>> holdings_;  // endpoint, what it holds
  std::vector<Projection> projections_;                        // indexed by model::projection_index
  const model::LlamaWeights* local_weights_ = nullptr;
  mutable std::unique_ptr<model::LocalEncryptedProducts> local_;  // the LM head, on first use
  bool lm_head_refused_[2] = {false, false};  // by transpose: the workers refused its shape
  bool split_refused_ = false;                // a worker refused a row range: stop splitting
  void split_call(RemoteProduct& call);
  uint64_t local_products_ = 0;
  WireBytes last_bytes_;
  RemoteStats* stats_ = nullptr;
};

}  // namespace participant
