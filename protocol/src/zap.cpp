#include "protocol/zap.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace protocol {
namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";

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
    list.add(key.value());
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
      log_(std::move(log)),
      thread_([this] { run(); }) {}

ZapHandler::~ZapHandler() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void ZapHandler::set_allow_list(AllowList allow) {
  std::lock_guard<std::mutex> lock(allow_mutex_);
  allow_ = std::move(allow);
}

void ZapHandler::run() {
  // Polls with a short timeout so that the destructor's stop flag is seen promptly.
  while (!stop_.load()) {
    try {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(50)) <= 0) continue;
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
  socket_.close();
}

// RFC 27: request = version, request id, domain, address, identity, mechanism, credentials...;
// reply = version, request id, status code, status text, user id, metadata.
void ZapHandler::answer(std::vector<zmq::message_t>& request) {
  const std::string request_id = request.size() > 1 ? frame_text(request[1]) : "";
  std::string status = "400", text = "refused", user_id;
  std::string why;
  if (request.size() < 6 || frame_text(request[0]) != "1.0") {
    why = "malformed ZAP request";
  } else if (frame_text(request[5]) != "CURVE" || request.size() != 7 ||
             request[6].size() != kCurveKeyBytes) {
    why = "mechanism " + frame_text(request[5]) + " is not CURVE";
  } else {
    PublicKey key;
    std::memcpy(key.bytes.data(), request[6].data(), kCurveKeyBytes);
    bool allowed = false;
    {
      std::lock_guard<std::mutex> lock(allow_mutex_);
      allowed = allow_.contains(key);
    }
    if (allowed) {
      status = "200";
      text = "OK";
      user_id = key.z85();
    } else {
      why = "client key " + key.z85() + " is not in the allow-list";
    }
  }
  if (status == "200") {
    accepted_.fetch_add(1);
  } else {
    refused_.fetch_add(1);
    if (log_) {
      const std::string address = request.size() > 3 ? frame_text(request[3]) : "?";
      log_("refused a connection from " + address + ": " + why);
    }
  }
  const std::string reply[] = {"1.0", request_id, status, text, user_id, ""};
  for (size_t i = 0; i < 6; ++i) {
    socket_.send(zmq::buffer(reply[i]),
                 i + 1 < 6 ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

}  // namespace protocol
