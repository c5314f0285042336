// The two ends of a connection: a Server (ZeroMQ ROUTER, bound; a worker's compute socket, the
// coordinator's) and a Client (DEALER, connected; a participant, a worker registering).
//
// Both send and receive whole messages (codec.h) and report every failure as a value: a receive
// that times out, a socket error, a malformed message. Sockets are configured with bounded
// frame size (ZMQ_MAXMSGSIZE, from Limits), bounded queues (SNDHWM/RCVHWM), a send timeout,
// LINGER 0, and CURVE:
//   - a CURVE server needs its key pair and the ZapHandler of its context (zap.h), which admits
//     only the allow-listed client keys;
//   - a CURVE client needs its own key pair and the server's public key;
//   - `insecure` (no CURVE) is refused unless the endpoint is loopback (endpoint.h). inproc://
//     connections never run a ZeroMQ security handshake, so an inproc:// socket must be
//     insecure (both ends are in one process anyway).
// Sockets are not thread-safe: use each from one thread at a time.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "protocol/codec.h"
#include "protocol/keys.h"
#include "protocol/limits.h"
#include "protocol/result.h"
#include "protocol/zap.h"

namespace protocol {

struct SocketOptions {
  Limits limits;
  int high_water_mark = 64;  // messages queued each way per peer
  // How long a send waits for room in a full peer queue; 0: never (kTransport at once), so one
  // peer that does not read cannot delay the sender's other peers.
  std::chrono::milliseconds send_timeout{5000};
  int receive_high_water_mark = 0;  // > 0: inbound messages queued per peer (else the above)
  // > 0: ZMQ_HANDSHAKE_IVL, a connection that has not completed its (CURVE) handshake within
  // this is closed (ZeroMQ's default is 30 s); bounds idle unauthenticated connections.
  std::chrono::milliseconds handshake_interval{0};
};

struct ServerConfig {
  std::string endpoint;  // e.g. "tcp://0.0.0.0:5555", "tcp://127.0.0.1:*" (any free port)
  bool insecure = false;
  std::optional<KeyPair> key;       // CURVE: required
  const ZapHandler* zap = nullptr;  // CURVE: required, of the same context
  SocketOptions options;
};

// How a client names the two ends when its CURVE handshake fails (ClientConfig::watch).
struct HandshakeWords {
  std::string server = "the server";   // e.g. "the coordinator"
  std::string client = "this client";  // e.g. "this site": "... refused this site's key"
  // Said when the server did not accept the handshake (it has another key than the one given).
  std::string wrong_server_key = "is the server key the server's public key?";
};

struct ClientConfig {
  std::string endpoint;
  bool insecure = false;
  std::optional<KeyPair> key;           // CURVE: required
  std::optional<PublicKey> server_key;  // CURVE: required
  SocketOptions options;
  // CURVE: watch the handshakes (zmq_socket_monitor). Every handshake that fails then ends the
  // receive() waiting at that moment (or the next send()) with kHandshake and one line: "<server>
  // at <endpoint> refused <client>'s key (public key K; ZAP status 400)" when the server's ZAP
  // handler refused it, "<server> at <endpoint> did not accept the CURVE handshake:
  // <wrong_server_key>" when the connection ended inside the handshake (what a wrong server key
  // looks like to a client).
  std::optional<HandshakeWords> watch;
};

// One message received by a server, with who sent it.
struct Incoming {
  std::string peer;         // ROUTER routing id: pass it back to send() to reply
  std::string user_id;      // the client's public key (Z85) under CURVE, "" when insecure
  Result<Message> message;  // the decoded message, or why it was refused
};

// One multipart message received by a server, not decoded (for protocols with their own codec,
// e.g. coordinator_codec.h). `frames` excludes the routing id; it holds the error when the
// message had more than max_blobs + 1 frames or no header frame.
struct RawIncoming {
  std::string peer;
  std::string user_id;
  Result<std::vector<zmq::message_t>> frames;
};

class Server {
 public:
  static Result<Server> bind(zmq::context_t& context, const ServerConfig& config);

  // The endpoint actually bound (with the port chosen for "*").
  const std::string& endpoint() const { return endpoint_; }

  // Waits up to `timeout` for one message. The outer error is kTimeout or kTransport; a message
  // that arrived but failed to decode is an Incoming whose `message` holds the error, so the
  // caller can answer the peer with an ErrorReply.
  Result<Incoming> receive(std::chrono::milliseconds timeout);

  // Sends a message to a peer; kTransport if the peer is gone or its queue is full.
  Status send(const std::string& peer, Message&& message);

  // Raw whole messages (the frames after the routing id), for another codec
  // (coordinator_codec.h). receive_frames reads at most max_blobs + 1 frames per message (the
  // rest are dropped and the message is refused in RawIncoming::frames).
  Result<RawIncoming> receive_frames(std::chrono::milliseconds timeout);
  Status send_frames(const std::string& peer, std::vector<zmq::message_t>&& frames);

  // The underlying ROUTER socket, for polling it together with other sockets and attaching a
  // socket monitor (zmq_socket_monitor). Same thread rule as the Server itself.
  zmq::socket_t& socket() { return socket_; }

 private:
  Server(zmq::socket_t socket, std::string endpoint, SocketOptions options);
  zmq::socket_t socket_;
  std::string endpoint_;
  SocketOptions options_;
};

class Client {
 public:
  static Result<Client> connect(zmq::context_t& context, const ClientConfig& config);

  // Queues a message (waits at most the send timeout when the queue is full).
  Status send(Message&& message);

  // Waits up to `timeout` for one message: kTimeout, kTransport, or a decoding error.
  Result<Message> receive(std::chrono::milliseconds timeout);

  // Raw whole messages, for another codec (see Server::receive_frames).
  Status send_frames(std::vector<zmq::message_t>&& frames);
  Result<std::vector<zmq::message_t>> receive_frames(std::chrono::milliseconds timeout);

  // The socket, to wait on several clients at once (zmq::poll) or to attach a monitor; send and
  // receive through the methods above.
  zmq::socket_ref socket() { return socket_; }

  // Under ClientConfig::watch: whether a handshake with the server has succeeded yet.
  bool handshake_succeeded() const { return watch_ && watch_->succeeded; }

 private:
  struct Watch {
    zmq::socket_t monitor;              // PAIR on the socket's monitor
    std::string refused, not_accepted;  // the error lines (ZAP status appended to `refused`)
    bool succeeded = false;
  };
  Client(zmq::socket_t socket, SocketOptions options, std::optional<Watch> watch);
  // Reads the monitor's events (never waits); the error of the first failed handshake, if any.
  std::optional<Error> handshake_failure();
  zmq::socket_t socket_;
  SocketOptions options_;
  std::optional<Watch> watch_;
};

}  // namespace protocol
