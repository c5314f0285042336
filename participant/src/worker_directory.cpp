#include "participant/worker_directory.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace participant {
namespace {

using protocol::ErrorCode;
using protocol::make_error;

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

protocol::Status check_unique(const std::vector<WorkerEndpoint>& workers) {
  if (workers.empty()) return make_error(ErrorCode::kInvalidArgument, "no worker endpoints");
  std::set<std::string> seen;
  for (const auto& w : workers) {
    if (w.endpoint.empty()) return make_error(ErrorCode::kInvalidArgument, "empty worker endpoint");
    if (!seen.insert(w.endpoint).second) {
      return make_error(ErrorCode::kInvalidArgument, "worker endpoint '", w.endpoint,
                        "' is listed twice");
    }
  }
  return protocol::ok_status();
}

}  // namespace

std::vector<std::string> split_list(std::string_view list) {
  std::vector<std::string> items;
  while (true) {
    const size_t comma = list.find(',');
    items.emplace_back(trim(list.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return items;
}

protocol::Result<WorkerDirectory> WorkerDirectory::parse_list(
    std::string_view endpoints, const std::vector<protocol::PublicKey>& server_keys) {
  std::vector<WorkerEndpoint> workers;
  for (auto& e : split_list(endpoints)) workers.push_back({std::move(e), std::nullopt});
  if (!server_keys.empty()) {
    if (server_keys.size() != 1 && server_keys.size() != workers.size()) {
      return make_error(ErrorCode::kInvalidArgument, server_keys.size(), " server keys for ",
                        workers.size(), " workers (give one for all, or one per worker)");
    }
    for (size_t i = 0; i < workers.size(); ++i) {
      workers[i].server_key = server_keys[server_keys.size() == 1 ? 0 : i];
    }
  }
  if (auto s = check_unique(workers); !s) return s.error();
  return WorkerDirectory(std::move(workers));
}

protocol::Result<WorkerDirectory> WorkerDirectory::load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error(ErrorCode::kIo, path, ": cannot read the worker directory");
  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  std::vector<WorkerEndpoint> workers;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string_view text = trim(line);
    if (text.empty() || text.front() == '#') continue;
    std::istringstream fields{std::string(text)};
    std::string endpoint, key, extra;
    fields >> endpoint >> key >> extra;
    const std::string where = path + ":" + std::to_string(number) + ": ";
    if (!extra.empty()) {
      return make_error(ErrorCode::kInvalidArgument, where, "expected `ENDPOINT [SERVER_KEY]`");
    }
    WorkerEndpoint w{endpoint, std::nullopt};
    if (!key.empty()) {
      auto parsed = key.size() == protocol::kCurveKeyZ85Chars
                        ? protocol::parse_public_key(key, "server key")
                        : protocol::load_public_key(std::filesystem::path(key).is_absolute()
                                                        ? key
                                                        : (folder / key).string());
      if (!parsed) return make_error(ErrorCode::kInvalidArgument, where, parsed.error().message);
      w.server_key = parsed.value();
    }
    workers.push_back(std::move(w));
  }
  if (auto s = check_unique(workers); !s) {
    return make_error(ErrorCode::kInvalidArgument, path, ": ", s.error().message);
  }
  return WorkerDirectory(std::move(workers));
}

}  // namespace participant
