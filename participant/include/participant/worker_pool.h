// WorkerPool: a participant's connections to the fhe_workers of its directory.
//
// One protocol::Client (DEALER) per worker. call() sends one request to the least-loaded live
// worker, where load = the queue and in-flight count of its latest heartbeat + the requests this
// pool has outstanding there (ties go to the worker used least recently), and waits for its
// answer (call_many: several at once, on different workers). While it waits it keeps the pool's
// bookkeeping going on the same thread:
//   - heartbeats: every worker gets a Heartbeat each heartbeat_interval and answers with its own
//     (queued, in_flight, capacity); any message from a worker proves it alive;
//   - a worker that misses max_missed_heartbeats in a row, whose connection drops, or whose
//     handshake is refused is marked dead; its socket is replaced by a fresh one (dropping what
//     was queued for it) and it is probed with a heartbeat every probe_interval; the first
//     answer makes it live again (a restarted worker is used again);
//   - a request whose worker dies, times out (request_timeout), answers garbage, or answers
//     "overloaded" / "internal" is sent again to another worker: requests are pure, so a retry
//     is safe; every attempt carries a fresh request id and late answers are dropped. Each
//     worker is tried at most once per request.
// When no worker is left to try, call() returns an error (code kTransport, or the last error a
// worker sent) that names every worker and why it could not serve. Deterministic refusals of a
// request (unknown model or layer, shape mismatch, noise budget, malformed, unauthorised) come
// back at once: another worker would refuse them too.
//
// Nothing runs between calls (no thread of its own): liveness is measured in heartbeats sent, so
// an idle pool does not mistake silence for death. pump() exchanges heartbeats without a request.
// Not thread-safe: one caller at a time.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "participant/worker_directory.h"
#include "protocol/keys.h"
#include "protocol/messages.h"
#include "protocol/result.h"

namespace participant {

struct PoolOptions {
  bool insecure = false;                        // no CURVE: loopback endpoints only
  std::optional<protocol::KeyPair> client_key;  // CURVE: this participant's key pair
  std::string sender_id = "participant";        // in our heartbeats
  std::chrono::milliseconds heartbeat_interval{1000};
  int max_missed_heartbeats = 5;
  std::chrono::milliseconds probe_interval{2000};  // heartbeats to a dead worker
  std::chrono::milliseconds request_timeout{300000};
  std::chrono::milliseconds send_timeout{1000};
};

// A request as the pool sends it: a body (ModelInfoRequest or MatmulRequest; the pool sets a
// MatmulRequest's request_id) and its blobs. The bytes are shared, not copied, by every attempt.
struct Request {
  protocol::Body body;
  std::vector<protocol::BlobDesc> blob_descs;
  std::vector<std::shared_ptr<const std::vector<uint8_t>>> blob_bytes;
};

enum class WorkerHealth { kUnknown, kLive, kDead };

struct WorkerStatus {
  std::string endpoint;
  WorkerHealth health = WorkerHealth::kUnknown;
  uint32_t queued = 0, in_flight = 0, capacity = 0;  // from its latest heartbeat
  uint64_t served = 0;                               // requests it answered for this pool
  uint64_t failures = 0;                             // attempts that failed there
  uint64_t deaths = 0;                               // times it was marked dead
  std::string last_error;                            // why it last failed or died
};

class WorkerPool {
 public:
  // Creates one client per worker and sends each a first heartbeat. kInvalidArgument for a
  // missing key (CURVE) or an endpoint --insecure refuses.
  static protocol::Result<std::unique_ptr<WorkerPool>> connect(const WorkerDirectory& directory,
                                                               PoolOptions options);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Sends `request` and returns the answer (MatmulReply, ModelInfoReply), or an error as above.
  // With `eligible` (one flag per worker, in directory order) only the workers it marks are
  // tried, and retried: those holding the request's layer in a layer-sharded pool, or one
  // worker alone. `answered_by`, when given, receives the index of the worker that answered.
  protocol::Result<protocol::Message> call(const Request& request,
                                           const std::vector<bool>& eligible = {},
                                           size_t* answered_by = nullptr);

  // Several requests in flight at once (the parts of one product, say): each is sent at once to
  // the least-loaded worker it may use and has not tried, the requests of this call in flight
  // counting as load, so that they spread over the idle workers first; while they compute,
  // on_answer(request index, answer, worker index) is called for each answer as it arrives
  // (in any order), on this thread. Each request is retried elsewhere and fails exactly as in
  // call(): the first request that no worker can serve, or that a worker refuses
  // deterministically, ends the call with that error (and the answers of the others still
  // in flight are dropped); so does an exception from on_answer, which propagates. ok when
  // every request was answered.
  using OnAnswer = std::function<void(size_t request, protocol::Message&& answer, size_t worker)>;
  protocol::Status call_many(std::span<const Request> requests, const std::vector<bool>& eligible,
                             const OnAnswer& on_answer);

  // Exchanges heartbeats and probes for `duration`, without a request.
  void pump(std::chrono::milliseconds duration);

  std::vector<WorkerStatus> status() const;
  size_t size() const;
  // The endpoint of worker `index` (directory order).
  const std::string& endpoint(size_t index) const;

 private:
  struct Worker;
  WorkerPool(zmq::context_t context, PoolOptions options);

  protocol::Status reconnect(Worker& w);
  void mark_dead(Worker& w, const std::string& why);
  void maintain();  // heartbeats and probes that are due
  // Polls every socket up to `timeout`, handles heartbeats and monitor events, and hands any
  // other message to `on_message` (its worker's index).
  template <typename OnMessage>
  void poll_once(std::chrono::milliseconds timeout, OnMessage&& on_message);
  std::optional<size_t> pick(const std::vector<bool>& tried) const;
  std::string no_worker_message(const std::vector<bool>& eligible) const;

  zmq::context_t context_;  // declared first: destroyed after every socket
  PoolOptions options_;
  std::vector<std::unique_ptr<Worker>> workers_;
  uint64_t next_request_id_ = 1;
  uint64_t generation_ = 0;     // names monitor endpoints uniquely
  std::string own_key() const;  // this participant's public key (Z85), for refusal messages
};

std::string_view health_name(WorkerHealth h);

}  // namespace participant
