// The per-round table fedsim prints, read from the coordinator's dashboard log (events.jsonl),
// so that the table and the log always agree. Sites do not send their losses to the coordinator
// (they are not DP-noised); each keeps them in its own STATE/curves.jsonl, and fedsim, which
// runs every site of the simulation, reads them from there for the loss columns.
#pragma once

#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "progress_line.h"

namespace fedsim {

// One row per round_finished event, formatted: round, sites, train loss, held-out loss, epsilon
// of each site spent so far, seconds.
std::string table_header();
std::string table_row(const nlohmann::json& round_finished);

// The event with train_loss and heldout_loss filled in, when the coordinator's log has none,
// from the curves of the round's sites under `sites_dir` (SITE/curves.jsonl; the last record of
// that round per site), weighted by each site's example counts; "losses_from": "sites" marks
// them. An event that carries losses (sites run with --report-losses) is returned as it is.
nlohmann::json with_site_losses(const nlohmann::json& round_finished,
                                const std::filesystem::path& sites_dir);

// Follows an events.jsonl file as it grows and prints a row to `out` for every round_finished
// line (and one line for budget_exhausted / run_finished events), from the offset the file had
// when the watcher started (earlier rounds of a resumed run are not repeated).
class EventWatcher {
 public:
  // Called after a round's row is printed; a line it returns is printed under the row.
  using AfterRound = std::function<std::optional<std::string>(const nlohmann::json& row)>;
  // `sites_dir`: the sites' state directories, for with_site_losses.
  EventWatcher(std::filesystem::path file, std::filesystem::path sites_dir, std::FILE* out,
               AfterRound after_round = {});
  // Prints through `console` (shared with the progress line; outlives the watcher).
  EventWatcher(std::filesystem::path file, std::filesystem::path sites_dir, Console& console,
               AfterRound after_round = {});
  ~EventWatcher();  // stops after reading what is there
  // Reads what is left and stops.
  void finish();
  std::vector<nlohmann::json> rounds() const;  // with_site_losses applied

 private:
  void follow();  // starts the thread at the end of the file
  void poll();
  std::filesystem::path file_;
  std::filesystem::path sites_dir_;
  std::unique_ptr<Console> own_console_;  // with a FILE*
  Console* console_;
  uint64_t offset_ = 0;
  std::string partial_;
  mutable std::mutex mutex_;
  std::vector<nlohmann::json> rounds_;
  bool header_printed_ = false;
  AfterRound after_round_;
  std::jthread thread_;
};

}  // namespace fedsim
