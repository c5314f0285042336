// check_insecure_allowed: loopback endpoints only.
#include <gtest/gtest.h>

#include "protocol/endpoint.h"

namespace {

TEST(InsecureEndpoints, LoopbackIsAllowed) {
  for (const char* e :
       {"tcp://127.0.0.1:5555", "tcp://127.0.0.1:*", "tcp://127.255.3.4:1", "tcp://localhost:80",
        "tcp://[::1]:65535", "ipc:///tmp/fedlora.sock", "ipc://@abstract", "inproc://worker"}) {
    SCOPED_TRACE(e);
    EXPECT_TRUE(protocol::is_loopback_endpoint(e));
    EXPECT_TRUE(protocol::check_insecure_allowed(e).ok());
  }
}

TEST(InsecureEndpoints, EverythingElseIsRefusedWithAReason) {
  for (const char* e : {"tcp://10.0.0.1:5555",
                        "tcp://0.0.0.0:5555",
                        "tcp://*:5555",
                        "tcp://eth0:5555",
                        "tcp://128.0.0.1:5555",
                        "tcp://127.0.0.1.evil.example:5555",
                        "tcp://127.0.0:5555",
                        "tcp://127.0.0.256:5555",
                        "tcp://127.0.0.1",
                        "tcp://127.0.0.1:",
                        "tcp://127.0.0.1:0",
                        "tcp://127.0.0.1:65536",
                        "tcp://127.0.0.1:55x",
                        "tcp://localhost.example.com:1",
                        "tcp://127.0.0.1:5555;10.0.0.1:5555",
                        "tcp://10.0.0.1:5;127.0.0.1:5555",
                        "tcp://[::]:5555",
                        "tcp://[::2]:5555",
                        "udp://127.0.0.1:5555",
                        "pgm://127.0.0.1:5555",
                        "epgm://eth0;239.192.1.1:5555",
                        "ws://127.0.0.1:80",
                        "inproc://",
                        "ipc://",
                        "",
                        "TCP://127.0.0.1:5555",
                        " tcp://127.0.0.1:5555"}) {
    SCOPED_TRACE(e);
    EXPECT_FALSE(protocol::is_loopback_endpoint(e));
    const auto s = protocol::check_insecure_allowed(e);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, protocol::ErrorCode::kInvalidArgument);
    EXPECT_NE(s.error().message.find("loopback"), std::string::npos);
    EXPECT_EQ(s.error().message.find('\n'), std::string::npos);
  }
}

}  // namespace
