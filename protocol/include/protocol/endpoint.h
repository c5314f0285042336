// Which endpoints may go without CurveZMQ.
//
// Every socket uses CURVE unless it is explicitly insecure, and an insecure socket is only
// allowed on endpoints no other machine can reach: tcp://127.a.b.c:PORT, tcp://localhost:PORT,
// tcp://[::1]:PORT, ipc://... and inproc://... . Anything else (another address, a wildcard,
// an interface name, a source;destination pair, another transport) is refused.
#pragma once

#include <string_view>

#include "protocol/result.h"

namespace protocol {

// True when `endpoint` is one of the loopback forms above.
bool is_loopback_endpoint(std::string_view endpoint);

// ok for a loopback endpoint; otherwise kInvalidArgument with a line that says why.
Status check_insecure_allowed(std::string_view endpoint);

}  // namespace protocol
