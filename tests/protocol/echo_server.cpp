#include "echo_server.h"

#include <chrono>

namespace protocol_test {

protocol::Message echo_reply(const protocol::Message& request) {
  const auto& r = std::get<protocol::MatmulRequest>(request.body);
  const auto& input = request.blobs[r.input_blob];
  protocol::Message reply;
  std::vector<protocol::ResultPlanes> results;
  for (const auto kind : r.projections) {
    protocol::ResultPlanes p;
    p.projection = kind;
    p.rows = r.rows;
    p.cols = r.cols;
    p.kind = protocol::PlaneKind::kProduct;
    p.bits = input.desc.bits;
    p.log2_delta = r.log2_delta;
    p.c0_blob = static_cast<uint32_t>(reply.blobs.size());
    reply.blobs.push_back(protocol::Blob::copy_of(input.desc, input.bytes()).value());
    p.c1_blob = static_cast<uint32_t>(reply.blobs.size());
    reply.blobs.push_back(protocol::Blob::copy_of(input.desc, input.bytes()).value());
    results.push_back(p);
  }
  reply.body = protocol::MatmulReply{r.request_id, std::move(results)};
  return reply;
}

EchoServer::EchoServer(protocol::Server server)
    : server_(std::move(server)), endpoint_(server_.endpoint()), thread_([this] { run(); }) {}

EchoServer::~EchoServer() {
  stop_.store(true);
  thread_.join();
}

std::vector<uint64_t> EchoServer::request_ids() const {
  std::lock_guard lock(mu_);
  return request_ids_;
}

std::vector<std::string> EchoServer::user_ids() const {
  std::lock_guard lock(mu_);
  return user_ids_;
}

void EchoServer::run() {
  while (!stop_.load()) {
    auto in = server_.receive(std::chrono::milliseconds(20));
    if (in.ok()) handle(in.value());
  }
}

void EchoServer::handle(protocol::Incoming& in) {
  if (!in.message.ok()) {
    refused_.fetch_add(1);  // before the reply, as for served_
    (void)server_.send(
        in.peer,
        protocol::Message{protocol::ErrorReply{0, protocol::to_wire(in.message.error())}, {}});
    return;
  }
  const auto& m = in.message.value();
  const auto* request = std::get_if<protocol::MatmulRequest>(&m.body);
  if (request == nullptr) return;
  {
    std::lock_guard lock(mu_);
    request_ids_.push_back(request->request_id);
    user_ids_.push_back(in.user_id);
  }
  served_.fetch_add(1);  // before the reply, so a client that has it sees the count
  (void)server_.send(in.peer, echo_reply(m));
}

}  // namespace protocol_test
