#include "protocol/zap.h"

#include <zmq.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace protocol {
namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr auto kLogEvery = std::chrono::seconds(60);
constexpr size_t kMaxLoggedTopics = 4096;  // beyond: forgotten (logged again)

std::string frame_text(const zmq::message_t& m) {
  return std::string(static_cast<const char*>(m.data()), m.size());
}

}  // namespace

void log_to_stderr(std::string_view line) {
  std::fprintf(stderr, "protocol: %.*s\n", static_cast<int>(line.size()), line.data());
}

Result<AllowList> AllowList::load_directory(const std::string& dir) {
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() == ".pub") files.push_back(it->path());
  }
  if (ec) {
    return make_error(ErrorCode::kIo, "cannot read allow-list directory ", dir, ": ", ec.message());
  }
  if (files.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "allow-list directory ", dir,
                      " has no .pub files");
  }
  std::sort(files.begin(), files.end());
  AllowList list;
  for (const auto& f : files) {
    auto key = load_public_key(f.string());
    if (!key) return key.error();
    list.add(key.value(), "allow-list file " + f.filename().string());
  }
  return list;
}

Result<std::unique_ptr<ZapHandler>> ZapHandler::start(zmq::context_t& context, AllowList allow,
                                                      LogSink log) {
  try {
    zmq::socket_t socket(context, zmq::socket_type::rep);
    socket.set(zmq::sockopt::linger, 0);
    socket.bind(kZapEndpoint);
    return std::unique_ptr<ZapHandler>(
        new ZapHandler(context, std::move(socket), std::move(allow), std::move(log)));
  } catch (const zmq::error_t& e) {
    return make_error(ErrorCode::kTransport, "cannot start the ZAP handler on ", kZapEndpoint, ": ",
                      e.what());
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kInternal, "cannot start the ZAP handler: ", e.what());
  }
}

ZapHandler::ZapHandler(zmq::context_t& context, zmq::socket_t socket, AllowList allow, LogSink log)
    : context_(&context),
      socket_(std::move(socket)),
      allow_(std::move(allow)),
      known_(allow_.names()),
      log_(std::move(log)),
      thread_([this] { run(); }) {}

ZapHandler::~ZapHandler() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void ZapHandler::set_allow_list(AllowList allow) {
  std::lock_guard<std::mutex> lock(allow_mutex_);
  for (const auto& [key, name] : allow.names()) known_[key] = name;
  allow_ = std::move(allow);
}

void ZapHandler::watch(zmq::socket_t& server_socket, const std::string& endpoint) const {
  static std::atomic<uint64_t> next{0};
  const std::string monitor = "inproc://fedlora-zap-watch-" + std::to_string(++next);
  if (zmq_socket_monitor(server_socket.handle(), monitor.c_str(),
                         ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) != 0) {
    return;
  }
  std::lock_guard<std::mutex> lock(watch_mutex_);
  to_watch_.emplace_back(monitor, endpoint);
}

void ZapHandler::log_limited(const std::string& topic, const std::string& line) {
  if (!log_) return;
  const auto now = Clock::now();
  auto it = logged_.find(topic);
  if (it != logged_.end() && now - it->second.at < kLogEvery) {
    ++it->second.unlogged;
    return;
  }
  std::string text = line;
  if (it == logged_.end()) {
    text += " (repeats are logged once a minute)";
  } else if (it->second.unlogged > 0) {
    text += " (" + std::to_string(it->second.unlogged) + " more since the last such line)";
  }
  if (logged_.size() >= kMaxLoggedTopics) logged_.clear();
  logged_[topic] = Logged{now, 0};
  log_(text);
}

// One monitor event: a client that failed the CURVE handshake on a watched server.
void ZapHandler::read_monitor(Watched& w) {
  for (;;) {
    zmq::message_t event;
    if (!w.monitor.recv(event, zmq::recv_flags::dontwait)) return;
    while (w.monitor.get(zmq::sockopt::rcvmore)) {
      zmq::message_t rest;
      (void)w.monitor.recv(rest);
    }
    if (event.size() < 6) continue;
    uint16_t id = 0;
    uint32_t value = 0;
    std::memcpy(&id, event.data(), sizeof id);
    std::memcpy(&value, static_cast<const char*>(event.data()) + 2, sizeof value);
    if (id != ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) continue;
    char code[16];
    std::snprintf(code, sizeof code, "0x%08x", value);
    const std::string why =
        value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC
            ? "its HELLO does not decrypt: the client was given another server key than this "
              "server's public key"
            : std::string("ZMTP protocol error ") + code;
    log_limited("handshake " + w.endpoint + " " + code,
                "a client on " + w.endpoint + " failed the CURVE handshake: " + why);
  }
}

void ZapHandler::run() {
  // Polls with a short timeout so that the destructor's stop flag is seen promptly.
  while (!stop_.load()) {
    try {
      {
        std::lock_guard<std::mutex> lock(watch_mutex_);
        for (auto& [monitor, endpoint] : to_watch_) {
          Watched w{zmq::socket_t(*context_, zmq::socket_type::pair), endpoint};
          w.monitor.set(zmq::sockopt::linger, 0);
          w.monitor.connect(monitor);
          watched_.push_back(std::move(w));
        }
        to_watch_.clear();
      }
      std::vector<zmq::pollitem_t> items{{socket_.handle(), 0, ZMQ_POLLIN, 0}};
      for (auto& w : watched_) items.push_back({w.monitor.handle(), 0, ZMQ_POLLIN, 0});
      if (zmq::poll(items.data(), items.size(), std::chrono::milliseconds(50)) <= 0) continue;
      for (size_t i = 1; i < items.size(); ++i) {
        if (items[i].revents & ZMQ_POLLIN) read_monitor(watched_[i - 1]);
      }
      if (!(items[0].revents & ZMQ_POLLIN)) continue;
      std::vector<zmq::message_t> request;
      do {
        zmq::message_t part;
        if (!socket_.recv(part, zmq::recv_flags::none)) break;
        if (request.size() < 16) request.push_back(std::move(part));
      } while (socket_.get(zmq::sockopt::rcvmore));
      answer(request);
    } catch (const std::exception& e) {
      if (log_) log_(std::string("ZAP handler: ") + e.what());
      if (stop_.load()) break;
    }
  }
  for (auto& w : watched_) w.monitor.close();
  socket_.close();
}

// RFC 27: request = version, request id, domain, address, identity, mechanism, credentials...;
// reply = version, request id, status code, status text, user id, metadata.
void ZapHandler::answer(std::vector<zmq::message_t>& request) {
  const std::string request_id = request.size() > 1 ? frame_text(request[1]) : "";
  std::string status = "400", text = "refused", user_id;
  std::string why, topic;
  if (request.size() < 6 || frame_text(request[0]) != "1.0") {
    why = "malformed ZAP request";
  } else if (frame_text(request[5]) != "CURVE" || request.size() != 7 ||
             request[6].size() != kCurveKeyBytes) {
    why = "mechanism " + frame_text(request[5]) + " is not CURVE";
  } else {
    PublicKey key;
    std::memcpy(key.bytes.data(), request[6].data(), kCurveKeyBytes);
    bool allowed = false;
    std::string name;
    {
      std::lock_guard<std::mutex> lock(allow_mutex_);
      allowed = allow_.contains(key);
      if (auto it = known_.find(key); !allowed && it != known_.end()) name = it->second;
    }
    topic = key.z85();
    if (allowed) {
      status = "200";
      text = "OK";
      user_id = key.z85();
    } else if (!name.empty()) {
      why = "client key " + key.z85() + " of " + name +
            " is no longer in the allow-list (it was removed)";
    } else {
      why = "client key " + key.z85() + " is not in the allow-list";
    }
  }
  if (status == "200") {
    accepted_.fetch_add(1);
  } else {
    refused_.fetch_add(1);
    const std::string address = request.size() > 3 ? frame_text(request[3]) : "?";
    log_limited(topic.empty() ? why : topic, "refused a connection from " + address + ": " + why);
  }
  const std::string reply[] = {"1.0", request_id, status, text, user_id, ""};
  for (size_t i = 0; i < 6; ++i) {
    socket_.send(zmq::buffer(reply[i]),
                 i + 1 < 6 ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

}  // namespace protocol
