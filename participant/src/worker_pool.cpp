#include "participant/worker_pool.h"

#include <zmq.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <utility>

#include "protocol/socket.h"

namespace participant {
namespace {

using Clock = std::chrono::steady_clock;
using protocol::ErrorCode;
using protocol::make_error;
using SharedBytes = std::shared_ptr<const std::vector<uint8_t>>;

int64_t now_nanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::chrono::milliseconds until(Clock::time_point t) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(t - Clock::now());
  return std::max(left, std::chrono::milliseconds(0));
}

// Errors another worker might not give: worth a retry elsewhere.
bool retry_elsewhere(ErrorCode code) {
  return code == ErrorCode::kOverloaded || code == ErrorCode::kInternal;
}

// A blob frame over shared bytes, without a copy: the frame holds a reference until ZeroMQ has
// sent it.
protocol::Blob shared_blob(const protocol::BlobDesc& desc, const SharedBytes& bytes) {
  auto hint = std::make_unique<SharedBytes>(bytes);
  zmq::message_t frame(
      const_cast<uint8_t*>(bytes->data()), bytes->size(),
      [](void*, void* h) { delete static_cast<SharedBytes*>(h); }, hint.get());
  hint.release();  // owned by the frame now
  return protocol::Blob{desc, std::move(frame)};
}

// The error a worker sent in place of an answer, if any.
std::optional<protocol::Error> reply_error(const protocol::Message& m) {
  if (const auto* matmul = std::get_if<protocol::MatmulReply>(&m.body)) {
    if (const auto* e = std::get_if<protocol::Error>(&matmul->outcome)) return *e;
  } else if (const auto* info = std::get_if<protocol::ModelInfoReply>(&m.body)) {
    if (const auto* e = std::get_if<protocol::Error>(&info->outcome)) return *e;
  } else if (const auto* failed = std::get_if<protocol::ErrorReply>(&m.body)) {
    return failed->error;
  }
  return std::nullopt;
}

// True when `m` answers the attempt `request_id` of a request of this body kind.
bool answers(const protocol::Body& request, uint64_t request_id, const protocol::Message& m) {
  if (const auto* e = std::get_if<protocol::ErrorReply>(&m.body)) {
    return e->request_id == request_id || e->request_id == 0;
  }
  if (std::holds_alternative<protocol::MatmulRequest>(request)) {
    const auto* r = std::get_if<protocol::MatmulReply>(&m.body);
    return r != nullptr && r->request_id == request_id;
  }
  return std::holds_alternative<protocol::ModelInfoRequest>(request) &&
         std::holds_alternative<protocol::ModelInfoReply>(m.body);
}

}  // namespace

std::string_view health_name(WorkerHealth h) {
  switch (h) {
    case WorkerHealth::kUnknown:
      return "unknown";
    case WorkerHealth::kLive:
      return "live";
    case WorkerHealth::kDead:
      return "dead";
  }
  return "?";
}

struct WorkerPool::Worker {
  WorkerEndpoint where;
  std::optional<protocol::Client> client;
  zmq::socket_t monitor;  // PAIR on the client's socket monitor
  WorkerStatus status;
  ErrorCode last_code = ErrorCode::kTransport;  // of status.last_error
  int missed = 0;                               // heartbeats sent since its last message
  bool handshaken = false;                      // since the last reconnect
  uint32_t outstanding = 0;                     // our requests there
  uint64_t generation = 0;                      // bumped by every reconnect
  Clock::time_point next_beat{};
  Clock::time_point last_used{};
};

WorkerPool::WorkerPool(zmq::context_t context, PoolOptions options)
    : context_(std::move(context)), options_(std::move(options)) {}

WorkerPool::~WorkerPool() {
  // Sockets before the context (declared first, destroyed last).
  for (auto& w : workers_) {
    w->client.reset();
    w->monitor.close();
  }
}

protocol::Result<std::unique_ptr<WorkerPool>> WorkerPool::connect(const WorkerDirectory& directory,
                                                                  PoolOptions options) {
  if (directory.size() == 0) return make_error(ErrorCode::kInvalidArgument, "no workers");
  if (!options.insecure && !options.client_key) {
    return make_error(ErrorCode::kInvalidArgument,
                      "CURVE needs this participant's key pair (--key), or --insecure on "
                      "loopback");
  }
  if (options.heartbeat_interval.count() <= 0 || options.max_missed_heartbeats < 1 ||
      options.probe_interval.count() <= 0 || options.request_timeout.count() <= 0) {
    return make_error(ErrorCode::kInvalidArgument, "pool intervals and counts must be positive");
  }
  std::unique_ptr<WorkerPool> pool(new WorkerPool(zmq::context_t(1), std::move(options)));
  for (const auto& where : directory.workers()) {
    if (!pool->options_.insecure && !where.server_key) {
      return make_error(ErrorCode::kInvalidArgument, "worker ", where.endpoint,
                        " has no server public key (--server-key)");
    }
    auto w = std::make_unique<Worker>();
    w->where = where;
    w->status.endpoint = where.endpoint;
    if (auto s = pool->reconnect(*w); !s) return s.error();
    pool->workers_.push_back(std::move(w));
  }
  pool->maintain();  // first heartbeats
  return pool;
}

size_t WorkerPool::size() const {
  return workers_.size();
}

const std::string& WorkerPool::endpoint(size_t index) const {
  return workers_.at(index)->where.endpoint;
}

std::string WorkerPool::own_key() const {
  return options_.client_key ? options_.client_key->public_key.z85() : "none";
}

std::vector<WorkerStatus> WorkerPool::status() const {
  std::vector<WorkerStatus> out;
  for (const auto& w : workers_) out.push_back(w->status);
  return out;
}

protocol::Status WorkerPool::reconnect(Worker& w) {
  w.client.reset();
  w.monitor.close();
  w.handshaken = false;
  w.missed = 0;
  ++w.generation;
  protocol::ClientConfig c;
  c.endpoint = w.where.endpoint;
  c.insecure = options_.insecure;
  c.key = options_.client_key;
  c.server_key = w.where.server_key;
  c.options.send_timeout = options_.send_timeout;
  auto client = protocol::Client::connect(context_, c);
  if (!client) return client.error();
  w.client.emplace(std::move(client).value());
  // Handshake results and dropped connections, so a refused key or a killed worker is noticed
  // at once rather than after missed heartbeats.
  const std::string endpoint = "inproc://participant-pool-monitor-" +
                               std::to_string(reinterpret_cast<uintptr_t>(this)) + "-" +
                               std::to_string(++generation_);
  const int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                     ZMQ_EVENT_DISCONNECTED;
  if (zmq_socket_monitor(w.client->socket().handle(), endpoint.c_str(), events) != 0) {
    return make_error(ErrorCode::kTransport, "cannot monitor the socket of ", w.where.endpoint,
                      ": ", zmq_strerror(zmq_errno()));
  }
  return protocol::capture(ErrorCode::kTransport, "cannot monitor " + w.where.endpoint + ": ", [&] {
    w.monitor = zmq::socket_t(context_, zmq::socket_type::pair);
    w.monitor.set(zmq::sockopt::linger, 0);
    w.monitor.connect(endpoint);
  });
}

void WorkerPool::mark_dead(Worker& w, const std::string& why) {
  w.status.health = WorkerHealth::kDead;
  ++w.status.deaths;
  w.status.last_error = why;
  w.outstanding = 0;
  // A fresh socket drops whatever was queued for the dead peer; the probe reconnects again.
  if (auto s = reconnect(w); !s) w.status.last_error += "; " + s.error().message;
  w.next_beat = Clock::now() + options_.probe_interval;
}

void WorkerPool::maintain() {
  const auto now = Clock::now();
  for (auto& wp : workers_) {
    Worker& w = *wp;
    if (now < w.next_beat) continue;
    if (w.status.health == WorkerHealth::kDead) {
      if (auto s = reconnect(w); !s) w.status.last_error = s.error().message;
      w.next_beat = now + options_.probe_interval;
    } else if (w.missed >= options_.max_missed_heartbeats) {
      w.last_code = ErrorCode::kTimeout;
      mark_dead(w, "no answer to " + std::to_string(w.missed) + " heartbeats");
      continue;
    } else {
      w.next_beat = now + options_.heartbeat_interval;
    }
    if (!w.client) continue;
    protocol::Heartbeat beat;
    beat.sender_id = options_.sender_id;
    beat.timestamp_nanos = now_nanos();
    if (w.client->send(protocol::Message{beat, {}})) ++w.missed;
  }
}

template <typename OnMessage>
void WorkerPool::poll_once(std::chrono::milliseconds timeout, OnMessage&& on_message) {
  std::vector<zmq::pollitem_t> items;
  std::vector<uint64_t> generations;
  for (const auto& w : workers_) {
    items.push_back({w->client ? w->client->socket().handle() : nullptr, 0, ZMQ_POLLIN, 0});
    items.push_back({w->monitor.handle(), 0, ZMQ_POLLIN, 0});
    generations.push_back(w->generation);
  }
  try {
    zmq::poll(items.data(), items.size(), timeout);
  } catch (const std::exception&) {
    return;  // interrupted: the caller polls again
  }
  for (size_t i = 0; i < workers_.size(); ++i) {
    Worker& w = *workers_[i];
    if (items[2 * i + 1].revents & ZMQ_POLLIN) {
      while (w.generation == generations[i]) {
        zmq::message_t event;
        if (!w.monitor.recv(event, zmq::recv_flags::dontwait)) break;
        while (w.monitor.get(zmq::sockopt::rcvmore)) {
          zmq::message_t rest;
          (void)w.monitor.recv(rest);
        }
        if (event.size() < 2) continue;
        uint16_t id = 0;
        std::memcpy(&id, event.data(), sizeof id);
        if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
          w.handshaken = true;
        } else if (w.status.health == WorkerHealth::kDead) {
          continue;  // already known
        } else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
          w.last_code = ErrorCode::kUnauthorised;
          mark_dead(w, "the worker at " + w.where.endpoint +
                           " refused this site's key (public key " + own_key() +
                           "; not in its allow-list)");
        } else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                   (id == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL && !options_.insecure &&
                    !w.handshaken)) {
          // A connection that ends inside the CURVE handshake: the worker could not read our
          // HELLO, sealed for another server key.
          w.last_code = ErrorCode::kUnauthorised;
          mark_dead(w, "the worker at " + w.where.endpoint +
                           " did not accept the CURVE handshake: the worker's key does not match "
                           "the public key given for it (" +
                           (w.where.server_key ? w.where.server_key->z85() : "none") + ")");
        } else if (id == ZMQ_EVENT_DISCONNECTED && w.handshaken) {
          w.last_code = ErrorCode::kTransport;
          mark_dead(w, "connection lost");
        }
      }
    }
    if (w.generation != generations[i] || !(items[2 * i].revents & ZMQ_POLLIN)) continue;
    while (w.generation == generations[i]) {
      auto m = w.client->receive(std::chrono::milliseconds(0));
      if (!m && m.error().code == ErrorCode::kTimeout) break;
      if (m) {
        w.missed = 0;
        w.status.health = WorkerHealth::kLive;
        if (const auto* beat = std::get_if<protocol::Heartbeat>(&m.value().body)) {
          w.status.queued = beat->queued;
          w.status.in_flight = beat->in_flight;
          w.status.capacity = beat->capacity;
          continue;
        }
      }
      on_message(i, std::move(m));
    }
  }
}

std::optional<size_t> WorkerPool::pick(const std::vector<bool>& tried) const {
  std::optional<size_t> best;
  auto key = [this](size_t i) {
    const Worker& w = *workers_[i];
    const uint64_t load = uint64_t{w.status.queued} + w.status.in_flight + w.outstanding;
    return std::tuple(w.status.health != WorkerHealth::kLive, load, w.last_used);
  };
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (tried[i] || workers_[i]->status.health == WorkerHealth::kDead || !workers_[i]->client) {
      continue;
    }
    if (!best || key(i) < key(*best)) best = i;
  }
  return best;
}

std::string WorkerPool::no_worker_message(const std::vector<bool>& eligible) const {
  const bool some = std::find(eligible.begin(), eligible.end(), false) != eligible.end();
  std::string text = some ? "no fhe_worker could serve the request (of the workers holding its "
                            "layer):"
                          : "no fhe_worker could serve the request:";
  bool first = true;
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (!eligible.empty() && !eligible[i]) continue;
    const Worker& w = *workers_[i];
    text += (first ? " " : "; ") + w.where.endpoint + " (" +
            std::string(health_name(w.status.health)) +
            "): " + (w.status.last_error.empty() ? "not tried" : w.status.last_error);
    first = false;
  }
  return text;
}

void WorkerPool::pump(std::chrono::milliseconds duration) {
  const auto end = Clock::now() + duration;
  do {
    maintain();
    auto next = end;
    for (const auto& w : workers_) next = std::min(next, w->next_beat);
    poll_once(until(next), [](size_t, protocol::Result<protocol::Message>&&) {});
  } while (Clock::now() < end);
}

protocol::Result<protocol::Message> WorkerPool::call(const Request& request,
                                                     const std::vector<bool>& eligible,
                                                     size_t* answered_by) {
  std::optional<protocol::Message> answer;
  auto s = call_many(std::span<const Request>(&request, 1), eligible,
                     [&](size_t, protocol::Message&& m, size_t worker) {
                       answer = std::move(m);
                       if (answered_by != nullptr) *answered_by = worker;
                     });
  if (!s) return s.error();
  return std::move(*answer);
}

protocol::Status WorkerPool::call_many(std::span<const Request> requests,
                                       const std::vector<bool>& eligible,
                                       const OnAnswer& on_answer) {
  for (const Request& request : requests) {
    if (request.blob_descs.size() != request.blob_bytes.size()) {
      return make_error(ErrorCode::kInvalidArgument, "request has ", request.blob_descs.size(),
                        " blob descriptions for ", request.blob_bytes.size(), " blobs");
    }
  }
  if (!eligible.empty() && eligible.size() != workers_.size()) {
    return make_error(ErrorCode::kInvalidArgument, "eligibility for ", eligible.size(),
                      " workers in a pool of ", workers_.size());
  }
  maintain();
  // One attempt of a request at a time; a request waits for none but its own.
  struct Attempt {
    std::vector<bool> tried;  // a worker that may not serve the request counts as tried
    bool done = false;
    bool in_flight = false;
    size_t worker = 0;
    uint64_t generation = 0;
    uint64_t request_id = 0;
    Clock::time_point deadline{};
  };
  std::vector<Attempt> attempts(requests.size());
  for (Attempt& a : attempts) {
    a.tried.assign(workers_.size(), false);
    for (size_t i = 0; i < eligible.size(); ++i) a.tried[i] = !eligible[i];
  }
  // Whatever way this returns (an error, or on_answer throwing), the attempts still in flight
  // no longer count as load; their late answers are dropped (no request id matches them).
  struct Release {
    WorkerPool& pool;
    std::vector<Attempt>& attempts;
    ~Release() {
      for (Attempt& a : attempts) {
        Worker& w = *pool.workers_[a.worker];
        if (a.in_flight && w.generation == a.generation && w.outstanding > 0) --w.outstanding;
        a.in_flight = false;
      }
    }
  } release{*this, attempts};
  auto failed_with = [&](Worker& w, ErrorCode code, const std::string& why) {
    ++w.status.failures;
    w.status.last_error = why;
    w.last_code = code;
  };
  // Ends an attempt that failed (the request is sent again elsewhere).
  auto end_attempt = [&](Attempt& a) {
    Worker& w = *workers_[a.worker];
    if (w.generation == a.generation && w.outstanding > 0) --w.outstanding;
    a.in_flight = false;
  };
  size_t left = requests.size();
  while (left > 0) {
    // Sends every request not in flight to the least-loaded worker it has not tried: the ones
    // in flight count as load, so parallel requests spread over the idle workers first.
    for (size_t r = 0; r < requests.size(); ++r) {
      Attempt& a = attempts[r];
      while (!a.done && !a.in_flight) {
        // A worker computing another request of this call is taken only when no other is left
        // (heartbeat loads lag behind: they may still count requests that are done).
        std::vector<bool> busy = a.tried;
        for (const Attempt& other : attempts) {
          if (other.in_flight) busy[other.worker] = true;
        }
        std::optional<size_t> picked = pick(busy);
        if (!picked) picked = pick(a.tried);
        if (!picked) {
          std::optional<ErrorCode> common_code;
          bool mixed_codes = false;
          for (size_t i = 0; i < workers_.size(); ++i) {
            if (!eligible.empty() && !eligible[i]) continue;
            const ErrorCode c = workers_[i]->last_code;
            if (common_code && *common_code != c) mixed_codes = true;
            common_code = c;
          }
          return make_error(mixed_codes || !common_code ? ErrorCode::kTransport : *common_code,
                            no_worker_message(eligible));
        }
        const size_t index = *picked;
        a.tried[index] = true;
        Worker& w = *workers_[index];
        const uint64_t generation = w.generation;
        const Request& request = requests[r];
        protocol::Message message{request.body, {}};
        const uint64_t request_id = next_request_id_++;
        if (auto* m = std::get_if<protocol::MatmulRequest>(&message.body)) {
          m->request_id = request_id;
        }
        auto built = protocol::capture(ErrorCode::kTransport, "cannot build the request: ", [&] {
          for (size_t b = 0; b < request.blob_descs.size(); ++b) {
            message.blobs.push_back(shared_blob(request.blob_descs[b], request.blob_bytes[b]));
          }
        });
        if (!built) return built.error();
        if (auto s = w.client->send(std::move(message)); !s) {
          if (!protocol::is_wire_code(s.error().code) && s.error().code != ErrorCode::kTransport) {
            return s.error();  // our own request is bad: no worker would take it
          }
          // No connection yet: a refused CURVE handshake may be why, and its monitor event may
          // still be on its way. Give it the send timeout again so the error says so.
          const auto grace = Clock::now() + options_.send_timeout;
          while (!w.handshaken && w.generation == generation && Clock::now() < grace) {
            poll_once(std::chrono::milliseconds(20),
                      [](size_t, protocol::Result<protocol::Message>&&) {});
          }
          if (w.generation != generation) continue;  // marked dead: mark_dead said why
          failed_with(w, ErrorCode::kTransport, "send failed: " + s.error().message);
          continue;
        }
        ++w.outstanding;
        w.last_used = Clock::now();
        a.in_flight = true;
        a.worker = index;
        a.generation = generation;
        a.request_id = request_id;
        a.deadline = Clock::now() + options_.request_timeout;
      }
    }
    // Waits for answers, deaths and deadlines; every failed attempt goes back to be sent again.
    auto next = Clock::time_point::max();
    for (const Attempt& a : attempts) {
      if (a.in_flight) next = std::min(next, a.deadline);
    }
    for (const auto& other : workers_) next = std::min(next, other->next_beat);
    std::optional<protocol::Error> refusal;
    std::vector<std::pair<size_t, protocol::Message>> answered;  // request, answer
    poll_once(until(next), [&](size_t i, protocol::Result<protocol::Message>&& m) {
      if (!m) {
        // Garbage from worker i: every attempt there fails (a retry goes elsewhere).
        for (Attempt& a : attempts) {
          if (!a.in_flight || a.worker != i || a.generation != workers_[i]->generation) continue;
          failed_with(*workers_[i], ErrorCode::kMalformedRequest,
                      "sent a message that does not decode: " + m.error().message);
          end_attempt(a);
        }
        return;
      }
      for (size_t r = 0; r < attempts.size(); ++r) {
        Attempt& a = attempts[r];
        if (!a.in_flight || a.worker != i || a.generation != workers_[i]->generation) continue;
        if (!answers(requests[r].body, a.request_id, m.value())) continue;
        end_attempt(a);
        answered.emplace_back(r, std::move(m).value());
        return;
      }
    });
    maintain();
    for (auto& [r, answer] : answered) {
      Attempt& a = attempts[r];
      Worker& w = *workers_[a.worker];
      if (auto error = reply_error(answer)) {
        if (retry_elsewhere(error->code)) {
          failed_with(w, error->code, "answered " + error->to_string());
          continue;
        }
        return protocol::Error{error->code, w.where.endpoint + ": " + error->message};
      }
      ++w.status.served;
      a.done = true;
      --left;
      on_answer(r, std::move(answer), a.worker);
    }
    const auto now = Clock::now();
    for (Attempt& a : attempts) {
      if (!a.in_flight) continue;
      Worker& w = *workers_[a.worker];
      if (w.generation != a.generation) {
        a.in_flight = false;  // it died: mark_dead said why (and zeroed its load)
      } else if (now >= a.deadline) {
        failed_with(w, ErrorCode::kTimeout,
                    "no answer within " + std::to_string(options_.request_timeout.count()) + " ms");
        end_attempt(a);
      }
    }
  }
  return protocol::ok_status();
}

}  // namespace participant
