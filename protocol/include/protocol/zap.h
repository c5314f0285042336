// The ZAP handler (ZeroMQ RFC 27) that decides which CURVE clients a server socket accepts.
//
// One ZapHandler serves one zmq::context_t: it binds inproc://zeromq.zap.01 in that context and
// answers authentication requests on its own thread, accepting a CURVE client only when its
// public key is in the allow-list and refusing everything else (other mechanisms included).
// Create it before the server sockets of its context and destroy it after them; its destructor
// stops and joins the thread. A refused client gets no messages through; each decision is
// counted, and refusals are logged: one line naming the party when the key has a name in an
// allow-list the handler was given (a site removed from the roster since), else its key; each
// key (and each kind of failed handshake) is logged at most once a minute, with the count of
// refusals left unlogged since. Servers bound with the handler (socket.h) are watched too: a
// client that fails the CURVE handshake itself (it uses another server key) is logged the same
// way, naming the endpoint it reached.
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
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

  // `name` (e.g. "site 'st-mary'", a .pub file's name) is what log lines call the key's owner.
  void add(const PublicKey& key, std::string name = "") {
    keys_.insert(key);
    if (!name.empty()) names_[key] = std::move(name);
  }
  bool contains(const PublicKey& key) const { return keys_.count(key) != 0; }
  size_t size() const { return keys_.size(); }
  const std::set<PublicKey>& keys() const { return keys_; }
  // The names given with the keys (load_directory: "allow-list file NAME.pub").
  const std::map<PublicKey, std::string>& names() const { return names_; }

 private:
  std::set<PublicKey> keys_;
  std::map<PublicKey, std::string> names_;
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
  // The names of the keys it held stay known, so a refusal of a removed key names its owner.
  void set_allow_list(AllowList allow);
  uint64_t accepted() const { return accepted_.load(); }
  uint64_t refused() const { return refused_.load(); }

  // Watches the handshakes of a CURVE server socket of the handler's context (called by
  // Server::bind, on the socket's thread): clients failing the CURVE handshake on `endpoint`
  // are logged (rate-limited as above). Best effort: a socket that cannot be monitored is not.
  void watch(zmq::socket_t& server_socket, const std::string& endpoint) const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Watched {
    zmq::socket_t monitor;  // PAIR on the server socket's monitor
    std::string endpoint;
  };
  ZapHandler(zmq::context_t& context, zmq::socket_t socket, AllowList allow, LogSink log);
  void run();
  void answer(std::vector<zmq::message_t>& request);
  void read_monitor(Watched& w);
  // Logs `line` unless `topic` was logged less than a minute ago (then it is counted).
  void log_limited(const std::string& topic, const std::string& line);

  zmq::context_t* context_;
  zmq::socket_t socket_;  // used only by the thread once it runs
  std::mutex allow_mutex_;
  AllowList allow_;                         // guarded by allow_mutex_
  std::map<PublicKey, std::string> known_;  // every name ever given, guarded by allow_mutex_
  mutable std::mutex watch_mutex_;
  mutable std::vector<std::pair<std::string, std::string>> to_watch_;  // (monitor, endpoint)
  std::vector<Watched> watched_;                                       // the thread's
  struct Logged {
    Clock::time_point at;
    uint64_t unlogged = 0;
  };
  std::map<std::string, Logged> logged_;  // the thread's: by key or handshake failure
  LogSink log_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> accepted_{0}, refused_{0};
  std::thread thread_;
};

}  // namespace protocol
