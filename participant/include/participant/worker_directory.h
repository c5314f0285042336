// WorkerDirectory: the fhe_workers a participant may use, each an endpoint and (under CurveZMQ)
// the worker's public key.
//
// Two sources:
//   - a flag list: "tcp://10.0.0.5:5555,tcp://10.0.0.6:5555" with one server key for all of
//     them, or one per endpoint (same order);
//   - a file, one worker per line: `ENDPOINT [SERVER_KEY]`, where SERVER_KEY is the worker's
//     public key as Z85 text (40 characters) or the path of its .pub file (relative paths are
//     taken from the file's folder). Blank lines and lines starting with '#' are ignored.
// A directory is never empty, and an endpoint appears at most once.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/keys.h"
#include "protocol/result.h"

namespace participant {

struct WorkerEndpoint {
  std::string endpoint;                           // e.g. "tcp://10.0.0.5:5555"
  std::optional<protocol::PublicKey> server_key;  // required unless the pool is insecure
};

class WorkerDirectory {
 public:
  WorkerDirectory() = default;
  explicit WorkerDirectory(std::vector<WorkerEndpoint> workers) : workers_(std::move(workers)) {}

  // "A,B,C" (commas, surrounding spaces ignored); `server_keys` empty (insecure), one key for
  // every endpoint, or one per endpoint. kInvalidArgument for an empty list or entry, a repeated
  // endpoint, or a key count that fits neither.
  static protocol::Result<WorkerDirectory> parse_list(
      std::string_view endpoints, const std::vector<protocol::PublicKey>& server_keys);

  // The file format above: kIo when it cannot be read, kInvalidArgument naming the line otherwise.
  static protocol::Result<WorkerDirectory> load_file(const std::string& path);

  const std::vector<WorkerEndpoint>& workers() const { return workers_; }
  size_t size() const { return workers_.size(); }

 private:
  std::vector<WorkerEndpoint> workers_;
};

// Splits "a,b , c" into {"a", "b", "c"}; an empty item is kept as "" (callers refuse it).
std::vector<std::string> split_list(std::string_view list);

}  // namespace participant
