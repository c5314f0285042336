// Server (ROUTER) and Client (DEALER): socket options, CURVE, and whole-message send/receive.
#include "protocol/socket.h"

#include <zmq.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <utility>
#include <vector>

#include "protocol/endpoint.h"

namespace protocol {
namespace {

Error transport_error(std::string_view what, const std::exception& e) {
  return make_error(ErrorCode::kTransport, what, ": ", e.what());
}

bool is_inproc(const std::string& endpoint) {
  return endpoint.rfind("inproc://", 0) == 0;
}

// The security choice of a socket: insecure only on loopback, CURVE never on inproc:// (where
// ZeroMQ runs no handshake, so it would silently authenticate nothing).
Status check_security(const std::string& endpoint, bool insecure) {
  if (insecure) return check_insecure_allowed(endpoint);
  if (is_inproc(endpoint)) {
    return make_error(ErrorCode::kInvalidArgument, "CURVE does not apply to '", endpoint,
                      "' (inproc:// runs no handshake); use an insecure socket there");
  }
  return ok_status();
}

void apply_options(zmq::socket_t& s, const SocketOptions& o) {
  const auto frame_limit = std::max<uint64_t>(o.limits.max_header_bytes, o.limits.max_blob_bytes);
  s.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(frame_limit));
  s.set(zmq::sockopt::sndhwm, o.high_water_mark);
  s.set(zmq::sockopt::rcvhwm,
        o.receive_high_water_mark > 0 ? o.receive_high_water_mark : o.high_water_mark);
  s.set(zmq::sockopt::sndtimeo, static_cast<int>(o.send_timeout.count()));
  s.set(zmq::sockopt::linger, 0);
  if (o.handshake_interval.count() > 0) {
    s.set(zmq::sockopt::handshake_ivl, static_cast<int>(o.handshake_interval.count()));
  }
}

void set_curve_keys(zmq::socket_t& s, const KeyPair& key) {
  s.set(zmq::sockopt::curve_secretkey,
        zmq::const_buffer(key.secret_key.bytes().data(), kCurveKeyBytes));
  s.set(zmq::sockopt::curve_publickey,
        zmq::const_buffer(key.public_key.bytes.data(), kCurveKeyBytes));
}

// Receives one whole multipart message within `timeout`. Parts beyond `max_parts` are read and
// dropped (the message is refused later for its frame count), so the stream stays in step.
// Sets *truncated when that happened.
Result<std::vector<zmq::message_t>> receive_parts(zmq::socket_t& s,
                                                  std::chrono::milliseconds timeout,
                                                  size_t max_parts, bool* truncated) {
  *truncated = false;
  try {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) <= 0) {
      return make_error(ErrorCode::kTimeout, "no message within ", timeout.count(), " ms");
    }
    std::vector<zmq::message_t> parts;
    do {
      zmq::message_t part;
      // A multipart message is delivered whole, so once its first part is here the rest is too.
      if (!s.recv(part, parts.empty() ? zmq::recv_flags::dontwait : zmq::recv_flags::none)) {
        return make_error(ErrorCode::kTimeout, "no message within ", timeout.count(), " ms");
      }
      if (parts.size() < max_parts) {
        parts.push_back(std::move(part));
      } else {
        *truncated = true;
      }
    } while (s.get(zmq::sockopt::rcvmore));
    return parts;
  } catch (const std::exception& e) {
    return transport_error("receive failed", e);
  }
}

// Why a message with more frames than a header and max_blobs blobs was refused.
Error too_many_frames(const Limits& limits) {
  return make_error(ErrorCode::kMalformedRequest, "message has more than ", limits.max_blobs,
                    " blob frames");
}

Status send_parts(zmq::socket_t& s, std::vector<zmq::message_t>& parts) {
  try {
    for (size_t i = 0; i < parts.size(); ++i) {
      const auto flags = i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
      if (!s.send(parts[i], flags)) {
        return make_error(ErrorCode::kTransport, "send timed out (peer queue full)");
      }
    }
    return ok_status();
  } catch (const std::exception& e) {
    return transport_error("send failed", e);
  }
}

}  // namespace

// --- Server --------------------------------------------------------------------------------------

Server::Server(zmq::socket_t socket, std::string endpoint, SocketOptions options)
    : socket_(std::move(socket)), endpoint_(std::move(endpoint)), options_(options) {}

Result<Server> Server::bind(zmq::context_t& context, const ServerConfig& config) {
  if (auto s = check_security(config.endpoint, config.insecure); !s) return s.error();
  if (!config.insecure) {
    if (!config.key) return make_error(ErrorCode::kInvalidArgument, "a CURVE server needs a key");
    if (config.zap == nullptr || &config.zap->context() != &context) {
      return make_error(ErrorCode::kInvalidArgument,
                        "a CURVE server needs the ZAP handler of its context (an allow-list)");
    }
  }
  try {
    zmq::socket_t socket(context, zmq::socket_type::router);
    apply_options(socket, config.options);
    socket.set(zmq::sockopt::router_mandatory, 1);
    if (!config.insecure) {
      socket.set(zmq::sockopt::curve_server, 1);
      set_curve_keys(socket, *config.key);
      socket.set(zmq::sockopt::zap_domain, "fedlora");
    }
    socket.bind(config.endpoint);
    std::string endpoint = socket.get(zmq::sockopt::last_endpoint);
    if (!config.insecure) config.zap->watch(socket, endpoint);
    return Server(std::move(socket), std::move(endpoint), config.options);
  } catch (const std::exception& e) {
    return transport_error("cannot bind " + config.endpoint, e);
  }
}

Result<RawIncoming> Server::receive_frames(std::chrono::milliseconds timeout) {
  bool truncated = false;
  // Routing id + header + blobs, and one more to notice an extra frame.
  auto parts = receive_parts(socket_, timeout, options_.limits.max_blobs + 3, &truncated);
  if (!parts) return parts.error();
  auto& frames = parts.value();
  RawIncoming in{std::string(static_cast<const char*>(frames[0].data()), frames[0].size()), "",
                 make_error(ErrorCode::kMalformedRequest, "message has no header frame")};
  if (frames.size() > 1) {
    // Set by the ZAP handler's reply under CURVE; absent on an insecure socket.
    const char* user = zmq_msg_gets(frames[1].handle(), "User-Id");
    if (user != nullptr) in.user_id = user;
  }
  if (truncated) {
    in.frames = too_many_frames(options_.limits);
  } else if (frames.size() > 1) {
    frames.erase(frames.begin());
    in.frames = std::move(frames);
  }
  return in;
}

Result<Incoming> Server::receive(std::chrono::milliseconds timeout) {
  auto raw = receive_frames(timeout);
  if (!raw) return raw.error();
  auto& in = raw.value();
  if (!in.frames) return Incoming{std::move(in.peer), std::move(in.user_id), in.frames.error()};
  return Incoming{std::move(in.peer), std::move(in.user_id),
                  decode(std::move(in.frames).value(), options_.limits)};
}

Status Server::send_frames(const std::string& peer, std::vector<zmq::message_t>&& frames) {
  std::vector<zmq::message_t> parts;
  try {
    parts.reserve(frames.size() + 1);
    parts.emplace_back(peer.data(), peer.size());
    for (auto& f : frames) parts.push_back(std::move(f));
  } catch (const std::exception& e) {
    return transport_error("send failed", e);
  }
  return send_parts(socket_, parts);
}

Status Server::send(const std::string& peer, Message&& message) {
  auto frames = encode(std::move(message));
  if (!frames) return frames.error();
  return send_frames(peer, std::move(frames).value());
}

// --- Client --------------------------------------------------------------------------------------

Client::Client(zmq::socket_t socket, SocketOptions options, std::optional<Watch> watch)
    : socket_(std::move(socket)), options_(options), watch_(std::move(watch)) {}

std::optional<Error> Client::handshake_failure() {
  if (!watch_) return std::nullopt;
  std::optional<Error> failure;
  for (;;) {
    zmq::message_t event;
    try {
      if (!watch_->monitor.recv(event, zmq::recv_flags::dontwait)) break;
      while (watch_->monitor.get(zmq::sockopt::rcvmore)) {
        zmq::message_t rest;
        (void)watch_->monitor.recv(rest);
      }
    } catch (const zmq::error_t&) {
      break;
    }
    if (event.size() < 6) continue;
    uint16_t id = 0;
    uint32_t value = 0;
    std::memcpy(&id, event.data(), sizeof id);
    std::memcpy(&value, static_cast<const char*>(event.data()) + 2, sizeof value);
    if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      watch_->succeeded = true;
    } else if (failure) {
      continue;  // one error per receive; the rest are the same connection's
    } else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
      failure = make_error(ErrorCode::kHandshake, watch_->refused, "; ZAP status ", value, ")");
    } else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
               id == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
      failure = make_error(ErrorCode::kHandshake, watch_->not_accepted);
    }
  }
  return failure;
}

Result<Client> Client::connect(zmq::context_t& context, const ClientConfig& config) {
  if (auto s = check_security(config.endpoint, config.insecure); !s) return s.error();
  if (!config.insecure && (!config.key || !config.server_key)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "a CURVE client needs its key pair and the server's public key");
  }
  try {
    zmq::socket_t socket(context, zmq::socket_type::dealer);
    apply_options(socket, config.options);
    std::optional<Watch> watch;
    if (!config.insecure) {
      set_curve_keys(socket, *config.key);
      socket.set(zmq::sockopt::curve_serverkey,
                 zmq::const_buffer(config.server_key->bytes.data(), kCurveKeyBytes));
      if (config.watch) {
        // Attached before connecting, so the first handshake's events are seen.
        static std::atomic<uint64_t> next{0};
        const std::string monitor = "inproc://fedlora-client-watch-" + std::to_string(++next);
        const int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                           ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                           ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
        if (zmq_socket_monitor(socket.handle(), monitor.c_str(), events) != 0) {
          return make_error(ErrorCode::kTransport, "cannot monitor the connection to ",
                            config.endpoint, ": ", zmq_strerror(zmq_errno()));
        }
        const HandshakeWords& w = *config.watch;
        watch.emplace(Watch{zmq::socket_t(context, zmq::socket_type::pair),
                            w.server + " at " + config.endpoint + " refused " + w.client +
                                "'s key (public key " + config.key->public_key.z85(),
                            w.server + " at " + config.endpoint +
                                " did not accept the CURVE handshake: " + w.wrong_server_key,
                            false});
        watch->monitor.set(zmq::sockopt::linger, 0);
        watch->monitor.connect(monitor);
      }
    }
    socket.connect(config.endpoint);
    return Client(std::move(socket), config.options, std::move(watch));
  } catch (const std::exception& e) {
    return transport_error("cannot connect to " + config.endpoint, e);
  }
}

Status Client::send_frames(std::vector<zmq::message_t>&& frames) {
  // A connection refused before this send has no pipe left to queue on: say why at once.
  if (auto failure = handshake_failure()) return *std::move(failure);
  Status sent = send_parts(socket_, frames);
  if (!sent) {
    if (auto failure = handshake_failure()) return *std::move(failure);
  }
  return sent;
}

Result<std::vector<zmq::message_t>> Client::receive_frames(std::chrono::milliseconds timeout) {
  bool truncated = false;
  if (watch_) {
    // Waits on the socket and its monitor: a failed handshake ends the wait at once.
    const auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto failure = handshake_failure()) return *std::move(failure);
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0},
                                 {watch_->monitor.handle(), 0, ZMQ_POLLIN, 0}};
      try {
        zmq::poll(items, 2, std::max(left, std::chrono::milliseconds(0)));
      } catch (const std::exception& e) {
        return transport_error("receive failed", e);
      }
      if (items[0].revents & ZMQ_POLLIN) {
        timeout = std::chrono::milliseconds(0);
        break;
      }
      if (!(items[1].revents & ZMQ_POLLIN) && std::chrono::steady_clock::now() >= end) {
        return make_error(ErrorCode::kTimeout, "no message within ", timeout.count(), " ms");
      }
    }
  }
  auto parts = receive_parts(socket_, timeout, options_.limits.max_blobs + 2, &truncated);
  if (!parts) return parts.error();
  if (truncated) return too_many_frames(options_.limits);
  return std::move(parts).value();
}

Status Client::send(Message&& message) {
  auto frames = encode(std::move(message));
  if (!frames) return frames.error();
  return send_frames(std::move(frames).value());
}

Result<Message> Client::receive(std::chrono::milliseconds timeout) {
  auto frames = receive_frames(timeout);
  if (!frames) return frames.error();
  return decode(std::move(frames).value(), options_.limits);
}

}  // namespace protocol
