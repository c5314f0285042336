// The ZAP handler (ZeroMQ RFC 27) that decides which CURVE clients a server socket accepts.
//
// One ZapHandler serves one zmq::context_t: it binds inproc://zeromq.zap.01 in that context and
// answers authentication requests on its own thread, accepting a CURVE client only when its
// public key is in the allow-list and refusing everything else (other mechanisms included).
// Create it before the server sockets of its context and destroy it after them; its destructor
// stops and joins the thread. A refused client gets no messages through; each decision is
// counted, and each refusal is logged as one line.
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "protocol/keys.h"
#include "protocol/result.h"

namespace protocol {

// The public keys a server accepts.
class AllowList {
 public:
  AllowList() = default;

  // Every `*.pub` file of `dir` (other files are ignored). A malformed .pub file is an error,
  // so a typo never silently locks a peer out; an empty directory is an error too.
  static Result<AllowList> load_directory(const std::string& dir);

  void add(const PublicKey& key) { keys_.insert(key); }
  bool contains(const PublicKey& key) const { return keys_.count(key) != 0; }
  size_t size() const { return keys_.size(); }

 private:
  std::set<PublicKey> keys_;
};

// Receives one line per refused (or malformed) authentication request. Called on the handler's
// thread.
using LogSink = std::function<void(std::string_view line)>;

// Writes the line to stderr with a "protocol: " prefix.
void log_to_stderr(std::string_view line);

class ZapHandler {
 public:
  // Binds the handler in `context` and starts its thread. Fails (kTransport) when the context
  // already has one.
  static Result<std::unique_ptr<ZapHandler>> start(zmq::context_t& context, AllowList allow,
                                                   LogSink log = log_to_stderr);
  ~ZapHandler();

  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  const zmq::context_t& context() const { return *context_; }
  // Replaces the allow-list (thread-safe): later handshakes are decided by the new one;
  // connections already admitted stay open (the coordinator's roster check refuses their
  // messages when their key is gone).
  void set_allow_list(AllowList allow);
  uint64_t accepted() const { return accepted_.load(); }
  uint64_t refused() const { return refused_.load(); }

 private:
  ZapHandler(zmq::context_t& context, zmq::socket_t socket, AllowList allow, LogSink log);
  void run();
  void answer(std::vector<zmq::message_t>& request);

  zmq::context_t* context_;
  zmq::socket_t socket_;  // used only by the thread once it runs
  std::mutex allow_mutex_;
  AllowList allow_;  // guarded by allow_mutex_
  LogSink log_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> accepted_{0}, refused_{0};
  std::thread thread_;
};

}  // namespace protocol
