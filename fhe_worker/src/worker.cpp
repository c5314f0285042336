// The service: the I/O thread, the compute threads, the queue between them.
#include "fhe_worker/worker.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <zmq.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "fhe/params.h"
#include "fhe_worker/error.h"
#include "fhe_worker/matmul.h"
#include "protocol/log_format.h"
#include "protocol/zap.h"
#include "wake_fd.h"

namespace fhe_worker {

using protocol::ErrorCode;
using protocol::make_error;
using namespace std::chrono_literals;

std::shared_ptr<spdlog::logger> make_console_logger(const std::string& level) {
  auto log = std::make_shared<spdlog::logger>(
      "fhe_worker", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  protocol::use_log_format(*log);
  log->set_level(spdlog::level::from_str(level));
  log->flush_on(spdlog::level::info);
  return log;
}

struct Worker::State {
  std::shared_ptr<const WorkerModel> model;
  WorkerConfig config;
  std::shared_ptr<spdlog::logger> log;
  zmq::context_t context;  // before zap: destroyed after it
  std::unique_ptr<protocol::ZapHandler> zap;
  std::mutex allow_mutex;     // guards allow (reload_allow_list)
  protocol::AllowList allow;  // the list zap decides with
  std::optional<protocol::KeyPair> key;
  std::string endpoint, sender_id;
  WakeFd wake;
  std::atomic<bool> stopping{false};

  // The queue between the I/O thread and the compute threads.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<MatmulJob>> queue;
  bool exit = false;
  std::atomic<uint32_t> in_flight{0};
  // Estimated bytes of the queued and in-flight requests and of their replies not yet sent
  // (RequestSize::bytes, added when a request is queued, taken off when its reply is sent).
  std::atomic<uint64_t> queued_bytes{0};
  RequestLimits limits;

  // Replies on their way back to the I/O thread, with the bytes their requests were counted for.
  struct Outgoing {
    std::string peer;
    protocol::Message message;
    uint64_t bytes = 0;
  };
  std::mutex out_mu;
  std::vector<Outgoing> outgoing;

  std::atomic<uint64_t> received{0}, matmul_replies{0}, error_replies{0}, overloaded{0}, batches{0},
      batched_requests{0}, handshake_failures{0}, disconnects{0}, too_large{0};
  std::array<std::atomic<uint64_t>, 9> products{};  // by protocol::ProjectionKind value

  std::thread io;
  std::vector<std::thread> compute;
  std::mutex join_mu;

  void run_io(std::promise<protocol::Result<std::string>>& bound);
  void run_compute();
  void handle(protocol::Server& server, protocol::Incoming&& in);
  void enqueue(protocol::Server& server, const std::string& peer, protocol::Message&& message);
  void send(protocol::Server& server, const std::string& peer, protocol::Message&& message);
  void flush(protocol::Server& server);
  void read_monitor(zmq::socket_t& monitor);
  protocol::Heartbeat heartbeat();
};

namespace {

bool carries_error(const protocol::Message& m) {
  if (std::holds_alternative<protocol::ErrorReply>(m.body)) return true;
  if (const auto* r = std::get_if<protocol::MatmulReply>(&m.body)) {
    return std::holds_alternative<protocol::Error>(r->outcome);
  }
  if (const auto* r = std::get_if<protocol::ModelInfoReply>(&m.body)) {
    return std::holds_alternative<protocol::Error>(r->outcome);
  }
  return false;
}

protocol::Message error_reply(uint64_t request_id, protocol::Error error) {
  return protocol::Message{protocol::ErrorReply{request_id, protocol::to_wire(std::move(error))},
                           {}};
}

// "tcp://host:0" binds any free port, like "tcp://host:*".
std::string normalise_bind(std::string endpoint) {
  if (endpoint.starts_with("tcp://") && endpoint.ends_with(":0")) {
    endpoint.replace(endpoint.size() - 1, 1, "*");
  }
  return endpoint;
}

std::string peer_hex(const std::string& peer) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (const char c : peer) {
    s += digits[static_cast<uint8_t>(c) >> 4];
    s += digits[static_cast<uint8_t>(c) & 15];
  }
  return s;
}

}  // namespace

protocol::Heartbeat Worker::State::heartbeat() {
  protocol::Heartbeat h;
  h.sender_id = sender_id;
  {
    std::lock_guard lock(mu);
    h.queued = static_cast<uint32_t>(queue.size());
  }
  h.in_flight = in_flight.load();
  h.capacity = config.compute_threads;
  h.timestamp_nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  return h;
}

void Worker::State::send(protocol::Server& server, const std::string& peer,
                         protocol::Message&& message) {
  const bool error = carries_error(message);
  const bool matmul = std::holds_alternative<protocol::MatmulReply>(message.body);
  if (const auto s = server.send(peer, std::move(message)); !s) {
    log->warn("reply to peer {} not sent: {}", peer_hex(peer), s.error().to_string());
    return;
  }
  if (error) ++error_replies;
  if (matmul) ++matmul_replies;
}

void Worker::State::flush(protocol::Server& server) {
  std::vector<Outgoing> ready;
  {
    std::lock_guard lock(out_mu);
    ready.swap(outgoing);
  }
  for (auto& r : ready) {
    queued_bytes -= r.bytes;  // the reply's frames are handed to the socket now
    send(server, r.peer, std::move(r.message));
  }
}

void Worker::State::enqueue(protocol::Server& server, const std::string& peer,
                            protocol::Message&& message) {
  auto& request = std::get<protocol::MatmulRequest>(message.body);
  const uint64_t id = request.request_id;
  if (stopping.load()) {
    ++overloaded;
    return send(server, peer,
                matmul_error(id, make_error(ErrorCode::kOverloaded, "worker is shutting down")));
  }
  protocol::Blob& input = message.blobs.at(request.input_blob);
  if (const auto s = check_request(*model, request, input, limits); !s) {
    if (s.error().message.starts_with("request too large")) ++too_large;
    log->info("request {} refused: {}", id, s.error().to_string());
    return send(server, peer, matmul_error(id, s.error()));
  }
  const uint64_t bytes = request_size(*model, request, input).bytes;
  auto job = std::make_unique<MatmulJob>(MatmulJob{peer, std::move(request), std::move(input)});
  job->bytes = bytes;
  job->accepted = std::chrono::steady_clock::now();
  uint64_t held = 0;
  {
    std::lock_guard lock(mu);
    held = queued_bytes.load();
    if (queue.size() < config.max_queue && held + bytes <= config.max_queued_bytes) {
      queued_bytes += bytes;
      queue.push_back(std::move(job));
      cv.notify_one();
      return;
    }
  }
  ++overloaded;
  if (held + bytes > config.max_queued_bytes) {
    log->warn("request {} refused: {} bytes queued, {} more would pass --max-queued-bytes {}", id,
              held, bytes, config.max_queued_bytes);
    return send(
        server, peer,
        matmul_error(id, make_error(ErrorCode::kOverloaded, "queued requests hold ", held,
                                    " bytes; this one needs about ", bytes,
                                    ", over this worker's limit of ", config.max_queued_bytes,
                                    " (--max-queued-bytes); retry later or elsewhere")));
  }
  log->warn("request {} refused: queue full ({} requests)", id, config.max_queue);
  send(server, peer,
       matmul_error(id, make_error(ErrorCode::kOverloaded, "queue full (", config.max_queue,
                                   " requests); retry later or elsewhere")));
}

void Worker::State::handle(protocol::Server& server, protocol::Incoming&& in) {
  ++received;
  if (!in.message) {
    log->warn("malformed message from peer {}{}: {}", peer_hex(in.peer),
              in.user_id.empty() ? "" : " (key " + in.user_id + ")",
              in.message.error().to_string());
    return send(server, in.peer, error_reply(0, in.message.error()));
  }
  protocol::Message& message = in.message.value();
  if (const auto* r = std::get_if<protocol::ModelInfoRequest>(&message.body)) {
    if (r->model_id != model->model_id()) {
      return send(server, in.peer,
                  protocol::Message{protocol::ModelInfoReply{make_error(
                                        ErrorCode::kUnknownModel, "this worker serves model '",
                                        model->model_id(), "', not '", r->model_id, "'")},
                                    {}});
    }
    return send(server, in.peer, model->info_message());
  }
  if (std::holds_alternative<protocol::MatmulRequest>(message.body)) {
    return enqueue(server, in.peer, std::move(message));
  }
  if (std::holds_alternative<protocol::Heartbeat>(message.body)) {
    return send(server, in.peer, protocol::Message{heartbeat(), {}});
  }
  send(server, in.peer,
       error_reply(0, make_error(ErrorCode::kMalformedRequest, "a worker does not accept ",
                                 protocol::body_name(message.body), " messages")));
}

void Worker::State::read_monitor(zmq::socket_t& monitor) {
  while (true) {
    zmq::message_t event, address;
    if (!monitor.recv(event, zmq::recv_flags::dontwait)) return;
    if (!monitor.get(zmq::sockopt::rcvmore) || !monitor.recv(address)) return;
    if (event.size() < 6) continue;
    uint16_t id = 0;
    uint32_t value = 0;
    std::memcpy(&id, event.data(), 2);
    std::memcpy(&value, static_cast<const uint8_t*>(event.data()) + 2, 4);
    const std::string where = address.to_string();
    switch (id) {
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        ++handshake_failures;
        log->warn("handshake refused from {}: client not authorised (ZAP status {})", where, value);
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        ++handshake_failures;
        log->warn("handshake failed from {}: protocol error {} (wrong security mechanism?)", where,
                  value);
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        ++handshake_failures;
        log->warn("handshake failed from {} (errno {})", where, value);
        break;
      case ZMQ_EVENT_DISCONNECTED:
        ++disconnects;
        log->info("peer disconnected ({})", where);
        break;
      case ZMQ_EVENT_ACCEPTED:
        log->debug("connection accepted on {}", where);
        break;
      default:
        break;
    }
  }
}

void Worker::State::run_io(std::promise<protocol::Result<std::string>>& bound) {
  protocol::ServerConfig sc;
  sc.endpoint = normalise_bind(config.bind);
  sc.insecure = config.insecure;
  sc.key = key;
  sc.zap = zap.get();
  sc.options = config.socket;
  auto bound_server = protocol::Server::bind(context, sc);
  if (!bound_server) {
    bound.set_value(bound_server.error());
    return;
  }
  protocol::Server server = std::move(bound_server).value();
  const std::string monitor_address =
      "inproc://fhe_worker-monitor-" + std::to_string(reinterpret_cast<uintptr_t>(this));
  std::optional<zmq::socket_t> monitor;
  auto monitored = protocol::capture(ErrorCode::kTransport, "socket monitor: ", [&] {
    const int events = ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                       ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_DISCONNECTED |
                       ZMQ_EVENT_ACCEPTED;
    if (zmq_socket_monitor(server.socket().handle(), monitor_address.c_str(), events) != 0) {
      throw zmq::error_t();
    }
    monitor.emplace(context, zmq::socket_type::pair);
    monitor->set(zmq::sockopt::linger, 0);
    monitor->connect(monitor_address);
  });
  if (!monitored) {
    bound.set_value(monitored.error());
    return;
  }
  endpoint = server.endpoint();
  bound.set_value(endpoint);

  zmq::pollitem_t items[3] = {{server.socket().handle(), 0, ZMQ_POLLIN, 0},
                              {monitor->handle(), 0, ZMQ_POLLIN, 0},
                              {nullptr, wake.fd(), ZMQ_POLLIN, 0}};
  while (true) {
    try {
      zmq::poll(items, 3, 250ms);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) log->error("poll failed: {}", e.what());
    }
    if (items[2].revents & ZMQ_POLLIN) wake.drain();
    if (items[1].revents & ZMQ_POLLIN) read_monitor(*monitor);
    if (items[0].revents & ZMQ_POLLIN) {
      // At most a bounded number per round, so replies are never starved.
      for (int i = 0; i < 64; ++i) {
        auto in = server.receive(0ms);
        if (!in) {
          if (in.error().code != ErrorCode::kTimeout) {
            log->error("receive failed: {}", in.error().to_string());
          }
          break;
        }
        handle(server, std::move(in).value());
      }
    }
    bool idle = false;
    if (stopping.load()) {
      std::lock_guard lock(mu);
      idle = queue.empty() && in_flight.load() == 0;
    }
    flush(server);  // after the idle check: every reply made before it goes out now
    if (idle) break;
  }
  {
    std::lock_guard lock(mu);
    exit = true;
  }
  cv.notify_all();
  // Give the last replies time to leave before the socket closes.
  server.socket().set(zmq::sockopt::linger, static_cast<int>(config.drain_linger.count()));
  zmq_socket_monitor(server.socket().handle(), nullptr, 0);
  std::string served;
  for (size_t k = 1; k < products.size(); ++k) {
    if (k > 1) served += ", ";
    served += protocol::projection_name(static_cast<protocol::ProjectionKind>(k));
    served += ' ';
    served += std::to_string(products[k].load());
  }
  log->info("stopped: {} messages received, {} matmul replies ({} errors overall); products: {}",
            received.load(), matmul_replies.load(), error_replies.load(), served);
}

void Worker::State::run_compute() {
  while (true) {
    std::vector<std::unique_ptr<MatmulJob>> batch;
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return exit || !queue.empty(); });
      if (queue.empty()) return;
      batch.push_back(std::move(queue.front()));
      queue.pop_front();
      size_t blocks = input_blocks(*model, batch.front()->request);
      for (auto it = queue.begin(); it != queue.end();) {
        const size_t b = input_blocks(*model, (*it)->request);
        if (same_batch(batch.front()->request, (*it)->request) &&
            blocks + b <= config.max_batch_blocks) {
          blocks += b;
          batch.push_back(std::move(*it));
          it = queue.erase(it);
        } else {
          ++it;
        }
      }
      in_flight += static_cast<uint32_t>(batch.size());
    }
    std::vector<const MatmulJob*> jobs;
    for (const auto& j : batch) jobs.push_back(j.get());
    const auto start = std::chrono::steady_clock::now();
    std::vector<protocol::Message> replies;
    try {
      replies = compute_batch(*model, jobs);
    } catch (const std::exception& e) {
      replies.clear();
      for (const auto* j : jobs) {
        replies.push_back(
            matmul_error(j->request.request_id, make_error(ErrorCode::kInternal, e.what())));
      }
    }
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    ++batches;
    if (batch.size() > 1) batched_requests += batch.size();
    std::string kinds;
    for (const protocol::ProjectionKind kind : batch.front()->request.projections) {
      if (!kinds.empty()) kinds += ',';
      kinds += protocol::projection_name(kind);
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      if (carries_error(replies[i])) continue;
      for (const protocol::ProjectionKind kind : batch[i]->request.projections) {
        ++products[static_cast<size_t>(kind) % products.size()];
      }
    }
    log->debug("batch of {} request(s) for {} of layer {} ({}) computed in {:.1f} ms", batch.size(),
               kinds, batch.front()->request.layer, batch.front()->request.transpose ? "W^T" : "W",
               ms);
    {
      std::lock_guard lock(out_mu);
      for (size_t i = 0; i < batch.size(); ++i) {
        outgoing.push_back({std::move(batch[i]->peer), std::move(replies[i]), batch[i]->bytes});
      }
    }
    in_flight -= static_cast<uint32_t>(batch.size());
    wake.signal();
  }
}

Worker::Worker(std::unique_ptr<State> state) : state_(std::move(state)) {}

std::unique_ptr<Worker> Worker::start(std::shared_ptr<const WorkerModel> model,
                                      WorkerConfig config) {
  if (!model) throw WorkerError("no model to serve");
  if (config.compute_threads == 0) throw WorkerError("compute threads must be at least 1");
  if (config.max_queue == 0) throw WorkerError("max queue must be at least 1");
  if (config.max_input_values == 0 || config.max_output_values == 0 ||
      config.max_queued_bytes == 0) {
    throw WorkerError("request limits must be at least 1");
  }
  // A frame of more than twice the largest input allowed is dropped by ZeroMQ before it is
  // buffered (and that connection with it); smaller over-large inputs get the typed refusal.
  const fhe::Params& params = model->context().params();
  const uint64_t max_input_bytes = (config.max_input_values / 8 + 1) * params.log2_q;
  const uint64_t frame_limit =
      max_input_bytes > (uint64_t{1} << 40) ? UINT64_MAX : 2 * max_input_bytes + (1u << 20);
  config.socket.limits.max_blob_bytes = std::min(config.socket.limits.max_blob_bytes, frame_limit);
  auto state = std::make_unique<State>();
  state->model = std::move(model);
  state->log = config.log ? config.log : make_console_logger();
  state->config = std::move(config);
  State& s = *state;
  s.limits = RequestLimits{s.config.max_input_values, s.config.max_output_values,
                           s.config.max_queued_bytes};
  if (!s.config.insecure) {
    if (s.config.secret_key_file.empty() || s.config.allow_dir.empty()) {
      throw WorkerError("a CURVE worker needs --key and --allow-dir (or --insecure on loopback)");
    }
    auto key = protocol::load_key_pair(s.config.secret_key_file);
    if (!key) throw WorkerError(key.error().message);
    s.key = std::move(key).value();
    auto allow = protocol::AllowList::load_directory(s.config.allow_dir);
    if (!allow) throw WorkerError(allow.error().message);
    const size_t allowed = allow.value().size();
    s.allow = allow.value();
    auto log = s.log;
    auto zap = protocol::ZapHandler::start(
        s.context, std::move(allow).value(),
        [log](std::string_view line) { log->warn("authentication: {}", line); });
    if (!zap) throw WorkerError(zap.error().message);
    s.zap = std::move(zap).value();
    s.log->info("CURVE on, {} allowed client key(s) from {}", allowed, s.config.allow_dir);
  } else {
    s.log->warn("insecure mode: no CURVE encryption or authentication (loopback only)");
  }
  std::promise<protocol::Result<std::string>> bound;
  auto bound_future = bound.get_future();
  s.io = std::thread([&s, &bound] { s.run_io(bound); });
  auto endpoint = bound_future.get();
  if (!endpoint) {
    s.io.join();
    throw WorkerError(endpoint.error().message);
  }
  s.sender_id =
      s.config.sender_id.empty() ? default_worker_id(endpoint.value()) : s.config.sender_id;
  for (unsigned i = 0; i < s.config.compute_threads; ++i) {
    s.compute.emplace_back([&s] { s.run_compute(); });
  }
  s.log->info(
      "listening on {} ({} compute thread(s), queue {} requests / {} bytes; per request at most "
      "{} input and {} output values)",
      endpoint.value(), s.config.compute_threads, s.config.max_queue, s.config.max_queued_bytes,
      s.config.max_input_values, s.config.max_output_values);
  return std::unique_ptr<Worker>(new Worker(std::move(state)));
}

Worker::~Worker() {
  request_stop();
  wait();
}

const std::string& Worker::endpoint() const {
  return state_->endpoint;
}

std::string Worker::public_key_z85() const {
  return state_->key ? state_->key->public_key.z85() : std::string();
}

void Worker::request_stop() {
  if (!state_->stopping.exchange(true)) {
    state_->log->info("stopping: no new requests; finishing the queued and in-flight ones");
  }
  state_->wake.signal();
}

void Worker::wait() {
  std::lock_guard lock(state_->join_mu);
  if (state_->io.joinable()) state_->io.join();
  for (auto& t : state_->compute) {
    if (t.joinable()) t.join();
  }
}

namespace {

// "a.pub, b.pub" for the keys of `of` that `other` lacks (by their allow-list names).
std::string keys_missing_from(const protocol::AllowList& of, const protocol::AllowList& other) {
  std::string out;
  for (const auto& key : of.keys()) {
    if (other.contains(key)) continue;
    const auto it = of.names().find(key);
    if (!out.empty()) out += ", ";
    out += it != of.names().end() ? it->second : key.z85();
  }
  return out.empty() ? "none" : out;
}

}  // namespace

bool Worker::reload_allow_list() {
  State& s = *state_;
  if (!s.zap) return true;
  std::lock_guard lock(s.allow_mutex);
  auto loaded = protocol::AllowList::load_directory(s.config.allow_dir);
  if (!loaded) {
    s.log->error("allow-list {} refused, keeping the previous one ({} key(s)): {}",
                 s.config.allow_dir, s.allow.size(), loaded.error().message);
    return false;
  }
  const std::string added = keys_missing_from(loaded.value(), s.allow);
  const std::string removed = keys_missing_from(s.allow, loaded.value());
  s.allow = loaded.value();
  s.zap->set_allow_list(std::move(loaded).value());
  s.log->info("allow-list {} reloaded: {} key(s); added: {}; removed: {}", s.config.allow_dir,
              s.allow.size(), added, removed);
  return true;
}

WorkerStats Worker::stats() const {
  const State& s = *state_;
  WorkerStats st;
  st.received = s.received.load();
  st.matmul_replies = s.matmul_replies.load();
  st.error_replies = s.error_replies.load();
  st.overloaded = s.overloaded.load();
  st.batches = s.batches.load();
  st.batched_requests = s.batched_requests.load();
  st.handshake_failures = s.handshake_failures.load();
  st.disconnects = s.disconnects.load();
  {
    std::lock_guard lock(state_->mu);
    st.queued = static_cast<uint32_t>(s.queue.size());
  }
  st.in_flight = s.in_flight.load();
  st.queued_bytes = s.queued_bytes.load();
  st.too_large = s.too_large.load();
  for (size_t k = 0; k < st.products.size(); ++k) st.products[k] = s.products[k].load();
  return st;
}

std::string default_worker_id(std::string_view endpoint) {
  std::string id = "worker-";
  for (const char c : endpoint) {
    const bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
    id += safe ? c : '-';
  }
  if (id.size() > 64) id.resize(64);
  return id;
}

}  // namespace fhe_worker
