#include "protocol/endpoint.h"

#include <charconv>

namespace protocol {
namespace {

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// A port: decimal 1..65535, or "*" (any free port, for bind).
bool valid_port(std::string_view port) {
  if (port == "*") return true;
  if (port.empty() || port.size() > 5) return false;
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  return ec == std::errc() && end == port.data() + port.size() && value >= 1 && value <= 65535;
}

// 127.a.b.c with every part a decimal 0..255.
bool loopback_ipv4(std::string_view host) {
  int parts = 0;
  while (true) {
    const size_t dot = host.find('.');
    const std::string_view part = host.substr(0, dot);
    if (part.empty() || part.size() > 3) return false;
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (ec != std::errc() || end != part.data() + part.size() || value > 255) return false;
    if (parts == 0 && value != 127) return false;
    ++parts;
    if (dot == std::string_view::npos) break;
    host.remove_prefix(dot + 1);
  }
  return parts == 4;
}

}  // namespace

bool is_loopback_endpoint(std::string_view endpoint) {
  if (starts_with(endpoint, "inproc://")) return endpoint.size() > 9;
  if (starts_with(endpoint, "ipc://")) return endpoint.size() > 6;
  if (!starts_with(endpoint, "tcp://")) return false;
  const std::string_view rest = endpoint.substr(6);
  const size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos) return false;
  const std::string_view host = rest.substr(0, colon);
  if (!valid_port(rest.substr(colon + 1))) return false;
  return host == "localhost" || host == "[::1]" || loopback_ipv4(host);
}

Status check_insecure_allowed(std::string_view endpoint) {
  if (is_loopback_endpoint(endpoint)) return ok_status();
  return make_error(ErrorCode::kInvalidArgument, "--insecure refused for '", endpoint,
                    "': without CURVE only loopback endpoints are allowed (tcp://127.x.x.x:PORT, "
                    "tcp://localhost:PORT, tcp://[::1]:PORT, ipc://, inproc://)");
}

}  // namespace protocol
