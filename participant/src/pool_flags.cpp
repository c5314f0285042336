#include "participant/pool_flags.h"

namespace participant {

using protocol::ErrorCode;
using protocol::make_error;

protocol::Result<std::unique_ptr<WorkerPool>> connect_pool(const PoolFlags& flags,
                                                           PoolOptions base) {
  if (flags.workers.empty() == flags.workers_file.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "give the workers either as a list of endpoints or as a directory file");
  }
  std::vector<protocol::PublicKey> server_keys;
  if (!flags.server_key.empty()) {
    if (!flags.workers_file.empty()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "a workers file names each worker's key itself; drop --server-key");
    }
    for (const auto& path : split_list(flags.server_key)) {
      auto key = protocol::load_public_key(path);
      if (!key) return key.error();
      server_keys.push_back(key.value());
    }
  }
  auto directory = flags.workers_file.empty()
                       ? WorkerDirectory::parse_list(flags.workers, server_keys)
                       : WorkerDirectory::load_file(flags.workers_file);
  if (!directory) return directory.error();
  base.insecure = flags.insecure;
  if (flags.insecure) {
    if (!flags.client_key.empty() || !flags.server_key.empty()) {
      return make_error(ErrorCode::kInvalidArgument, "--insecure takes no keys");
    }
  } else {
    if (flags.client_key.empty()) {
      return make_error(
          ErrorCode::kInvalidArgument,
          "CURVE needs --key PREFIX.key (formerly --client-key), or --insecure on loopback");
    }
    auto pair = protocol::load_key_pair(flags.client_key);
    if (!pair) return pair.error();
    base.client_key = std::move(pair).value();
  }
  return WorkerPool::connect(directory.value(), std::move(base));
}

}  // namespace participant
