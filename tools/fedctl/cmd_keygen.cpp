// fedctl keygen: make a CurveZMQ key pair for a participant, worker or coordinator socket.
//
//   fedctl keygen --out site1        # writes site1.key (secret, mode 0600) and site1.pub
//
// Both files hold one line of Z85 text. Copy PREFIX.pub into the allow-list directory of every
// server this process must reach; PREFIX.key never leaves the machine. Existing files are kept
// unless --force is given. Prints {"secret": ..., "public": ..., "public_key": ...} on success;
// bad input prints one line on stderr and exits with status 2.
#include <cstdio>
#include <stdexcept>
#include <string>

#include "cli.h"
#include "protocol/keys.h"

namespace fedctl {
namespace {

// `text` as a JSON string literal.
std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

int cmd_keygen(int argc, char** argv) {
  po::options_description o("options");
  o.add_options()("out", po::value<std::string>()->required(),
                  "path prefix: writes PREFIX.key and PREFIX.pub")("force",
                                                                   "replace existing key files");
  return run_command(
      "keygen", "--out PREFIX [--force]", o, argc, argv, [](const po::variables_map& vm) {
        const auto prefix = vm["out"].as<std::string>();
        auto pair = protocol::KeyPair::generate();
        if (!pair) throw std::runtime_error(pair.error().message);
        const auto s = protocol::write_key_pair(pair.value(), prefix, vm.count("force") > 0);
        if (!s) throw std::runtime_error(s.error().message);
        const auto key = json_string(prefix + ".key"), pub = json_string(prefix + ".pub");
        std::printf("{\"secret\": %s, \"public\": %s, \"public_key\": \"%s\"}\n", key.c_str(),
                    pub.c_str(), pair.value().public_key.z85().c_str());
        return 0;
      });
}

}  // namespace fedctl
