// The command-line description of a worker pool, shared by the tools that use one
// (`fedctl fhe-matmul --remote`, `fedctl train --workers`):
//   workers       "tcp://A,tcp://B"                 (or)
//   workers_file  a WorkerDirectory file (worker_directory.h)
//   client_key    PREFIX.key of `fedctl keygen`: this participant's CURVE key pair
//   server_key    the workers' .pub file: one for all, or a comma list, one per worker
//   insecure      no CURVE (loopback endpoints only)
#pragma once

#include <memory>
#include <string>

#include "participant/worker_pool.h"
#include "protocol/result.h"

namespace participant {

struct PoolFlags {
  std::string workers;
  std::string workers_file;
  std::string client_key;
  std::string server_key;
  bool insecure = false;
};

// The directory and the pool of `flags` (other options as in `base`). kInvalidArgument for a
// missing or contradictory flag, kIo for an unreadable key or directory file.
protocol::Result<std::unique_ptr<WorkerPool>> connect_pool(const PoolFlags& flags,
                                                           PoolOptions base = {});

}  // namespace participant
