// The fhe_worker service: one ROUTER socket, a bounded queue, compute threads.
//
// Threads:
//   - the I/O thread owns every socket (the ROUTER, its monitor, nothing else). It answers
//     ModelInfoRequest and Heartbeat itself, refuses bad requests with typed errors, and queues
//     valid MatmulRequests; when the queue holds max_queue requests, or the queued and in-flight
//     requests hold max_queued_bytes, it answers `overloaded`; a request over a request limit
//     (max_input_values, max_output_values, max_queued_bytes alone) gets a typed refusal.
//   - compute threads take a request from the queue together with the queued requests for the
//     same (layer, projections, direction), up to max_batch_blocks ciphertext blocks, and run
//     them as one GEMM per projection (compute_batch). Replies go back to the I/O thread through
//     a mutex-guarded list and an eventfd it polls next to the ROUTER: no socket is ever used
//     by two threads.
//   - a ZeroMQ socket monitor on the ROUTER reports handshake failures (a client whose key is not
//     allowed, a client without CURVE) and disconnects; each becomes a log line.
// request_stop() (SIGTERM/SIGINT in the executable) makes the worker stop taking requests: new
// MatmulRequests get `overloaded` ("shutting down"), the queued and in-flight ones are finished
// and their replies sent, then the threads end and wait() returns.
#pragma once

#include <spdlog/logger.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "fhe_worker/worker_model.h"
#include "protocol/socket.h"

namespace fhe_worker {

struct WorkerConfig {
  std::string bind = "tcp://127.0.0.1:*";  // ":0" is read as ":*" (any free port)
  bool insecure = false;                   // loopback only (protocol refuses otherwise)
  std::string secret_key_file;             // CURVE: PREFIX.key of `fedctl keygen`
  std::string allow_dir;                   // CURVE: directory of allowed clients' .pub files
  size_t max_queue = 64;                   // queued MatmulRequests before `overloaded`
  unsigned compute_threads = 1;            // requests computed at once
  size_t max_batch_blocks = 8;             // ciphertext blocks one batched GEMM may take
  // Request limits (docs/worker.md): a request over one of them gets a kShapeMismatch reply that
  // names the limit, before anything is allocated for it. Values are ring coefficients (a
  // rows x tokens matrix takes rows x ceil(tokens / n) x n per plane).
  uint64_t max_input_values = uint64_t{1} << 26;   // rows x token slots of one request's input
  uint64_t max_output_values = uint64_t{1} << 27;  // d_out x token slots x 2 planes, per request
  // Estimated bytes of every queued and in-flight request together (matmul.h RequestSize),
  // counted until its reply has been handed to the socket: a request that would pass it waits
  // out as `overloaded`; one that alone exceeds it is refused as too large. The socket also drops
  // any frame over twice the input limit's packed bytes before buffering it.
  uint64_t max_queued_bytes = uint64_t{4} << 30;
  std::string sender_id;  // heartbeat sender id; empty: default_worker_id(bound endpoint)
  protocol::SocketOptions socket;
  std::chrono::milliseconds drain_linger{2000};  // time to deliver the last replies at exit
  std::shared_ptr<spdlog::logger> log;           // null: a console logger "fhe_worker"
};

struct WorkerStats {
  uint64_t received = 0;            // messages read from the socket (malformed ones included)
  uint64_t matmul_replies = 0;      // MatmulReplies sent (results or errors)
  uint64_t error_replies = 0;       // replies that carried an error
  uint64_t overloaded = 0;          // requests refused for a full queue or shutdown
  uint64_t batches = 0;             // GEMM batches run
  uint64_t batched_requests = 0;    // requests that shared a batch with another
  uint64_t handshake_failures = 0;  // refused CURVE handshakes (socket monitor)
  uint64_t disconnects = 0;         // peers that went away (socket monitor)
  uint32_t queued = 0, in_flight = 0;
  uint64_t queued_bytes = 0;  // estimated bytes held by queued and in-flight requests
  uint64_t too_large = 0;     // requests refused for a request limit
  // Products computed without error, by the protocol::ProjectionKind value (1 = q .. 8 = lm_head).
  std::array<uint64_t, 9> products{};
};

// A console logger (stderr) named "fhe_worker", not registered globally.
std::shared_ptr<spdlog::logger> make_console_logger(const std::string& level = "info");

class Worker {
 public:
  // Binds the socket and starts the threads. Throws fhe_worker::WorkerError (bad keys, allow-list,
  // endpoint, or an insecure bind off loopback).
  static std::unique_ptr<Worker> start(std::shared_ptr<const WorkerModel> model,
                                       WorkerConfig config);
  ~Worker();  // request_stop() and wait()
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // The endpoint actually bound, e.g. "tcp://127.0.0.1:41234".
  const std::string& endpoint() const;
  // The CURVE public key clients must use as the server key (empty when insecure).
  std::string public_key_z85() const;

  // Thread-safe; returns at once.
  void request_stop();
  // Blocks until the worker has drained and its threads have ended.
  void wait();

  WorkerStats stats() const;

  // CURVE: reads the --allow directory again and replaces the allow-list (later handshakes;
  // connections already admitted stay open), logging the keys added and removed by file name.
  // A directory that cannot be read, or holds a malformed .pub file, is logged and the old list
  // kept (returns false). Thread-safe; fhe_worker calls it on SIGHUP. Nothing to do (true)
  // without CURVE.
  bool reload_allow_list();

  struct State;

 private:
  explicit Worker(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// The id a worker uses when none is given: "worker-" and its endpoint with every character
// outside [A-Za-z0-9._-] replaced by '-' (tcp://10.0.0.5:5555 -> "worker-tcp---10.0.0.5-5555"),
// cut to the 64 characters an id may have (protocol::coord::is_site_id).
std::string default_worker_id(std::string_view endpoint);

}  // namespace fhe_worker
