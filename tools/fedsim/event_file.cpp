#include "event_file.h"

#include <fstream>
#include <thread>

namespace fedsim {

std::vector<nlohmann::json> read_events(const std::filesystem::path& file, uint64_t offset) {
  std::vector<nlohmann::json> events;
  std::ifstream in(file, std::ios::binary);
  if (!in) return events;
  in.seekg(static_cast<std::streamoff>(offset));
  std::string line;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no newline yet: a line still being written
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object()) events.push_back(std::move(j));
  }
  return events;
}

std::vector<nlohmann::json> events_named(const std::filesystem::path& file, const std::string& name,
                                         uint64_t offset) {
  std::vector<nlohmann::json> out;
  for (auto& e : read_events(file, offset)) {
    if (e.value("event", "") == name) out.push_back(std::move(e));
  }
  return out;
}

uint64_t event_file_size(const std::filesystem::path& file) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  return ec ? 0 : size;
}

std::optional<std::vector<nlohmann::json>> wait_for_events(const std::filesystem::path& file,
                                                           const EventsPredicate& done,
                                                           std::chrono::milliseconds timeout,
                                                           uint64_t offset,
                                                           const std::function<bool()>& give_up) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto events = read_events(file, offset);
    if (done(events)) return events;
    if (std::chrono::steady_clock::now() >= end || (give_up && give_up())) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace fedsim
