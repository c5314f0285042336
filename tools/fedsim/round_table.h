// The per-round table fedsim prints, read from the coordinator's dashboard log (events.jsonl),
// so that the table and the log always agree.
#pragma once

#include <cstdio>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace fedsim {

// One row per round_finished event, formatted: round, sites, train loss, held-out loss, epsilon
// of each site spent so far, seconds.
std::string table_header();
std::string table_row(const nlohmann::json& round_finished);

// Follows an events.jsonl file as it grows and prints a row to `out` for every round_finished
// line (and one line for budget_exhausted / run_finished events), from the offset the file had
// when the watcher started (earlier rounds of a resumed run are not repeated).
class EventWatcher {
 public:
  EventWatcher(std::filesystem::path file, std::FILE* out);
  ~EventWatcher();  // stops after reading what is there
  // Reads what is left and stops.
  void finish();
  std::vector<nlohmann::json> rounds() const;

 private:
  void poll();
  std::filesystem::path file_;
  std::FILE* out_;
  uint64_t offset_ = 0;
  std::string partial_;
  mutable std::mutex mutex_;
  std::vector<nlohmann::json> rounds_;
  bool header_printed_ = false;
  std::jthread thread_;
};

}  // namespace fedsim
