// fedsim's progress line: every site's step, tokens per second and the round's ETA, read from
// the progress files the sites publish (participant/progress.h; fedsim turns them on for every
// site, RUN/sites/ID/progress.json). On a terminal it is ONE line, redrawn in place ('\r' and
// clear-to-end-of-line) every half second:
//
//   round 3 | site-0 7/10 1.2k tok/s | site-1 10/10 done | site-2 5/10 | ETA 12 s
//
// otherwise (stdout a file or a pipe) a plain line at most every `plain_every_s` seconds, and
// only when it changed:
//
//   progress: round 3: site-0 step 7/10 (1.2k tok/s), site-1 step 10/10 (done), site-2 step 5/10,
//   ETA 12 s
//
// The round table (round_table.h) prints through the same Console, which erases the progress
// line before a row and redraws it after, so rows are never garbled.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "participant/progress.h"
#include "sim_setup.h"

namespace fedsim {

struct SiteProgress {
  std::string site;
  participant::TrainingProgress progress;
};

// "850", "1.2k", "3.4M" (tokens per second).
std::string rate_text(double per_second);
// "12 s", "3m07s", "1h02m".
std::string eta_text(double seconds);

// The line for the sites' progress (in their order), for a terminal (`tty`) or a plain file;
// empty when there is no site. The round is the latest any site is in; a site still on an
// earlier one is "waiting". A training site shows step/steps and its rate, a site whose steps
// are all taken "uploading" or "done"; the ETA is the slowest training site's.
std::string progress_line(const std::vector<SiteProgress>& sites, bool tty);

// fedsim's stdout, shared by the round table and the progress line.
class Console {
 public:
  // `tty`: redraw the progress line in place (stdout is a terminal); otherwise print it as a line.
  Console(std::FILE* out, bool tty);
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  bool tty() const { return tty_; }
  // Whole lines (`text` ends with '\n'): on a terminal the progress line is erased first and
  // drawn again after them.
  void print(const std::string& text);
  // The progress line: on a terminal it replaces the one shown (cut to the terminal's width);
  // otherwise it is printed as a line of its own.
  void progress(const std::string& line);
  // Erases the progress line (terminal) and forgets it.
  void clear_progress();
  // Whole lines for another file descriptor showing on the same terminal (stderr): written
  // there between erasing the progress line and drawing it again.
  void print_to(int fd, std::string_view text);

 private:
  void draw();  // with mutex_ held
  std::mutex mutex_;
  std::FILE* out_;
  bool tty_;
  std::string shown_;  // the progress line on screen (terminal)
};

// While it lives, file descriptor 2 is a pipe whose lines it passes on to the stderr it
// replaced through Console::print_to: the parties' log lines (threads, and child processes that
// inherit it) then never land in the middle of the progress line. For a terminal that shows both
// stdout and stderr; spdlog's colours are lost (its sinks see a pipe). Throws base::IoError when
// the pipe cannot be made.
class StderrRelay {
 public:
  explicit StderrRelay(Console& console);
  ~StderrRelay();  // restores stderr, passing on what is left
  StderrRelay(const StderrRelay&) = delete;
  StderrRelay& operator=(const StderrRelay&) = delete;

 private:
  void loop(std::stop_token stop);
  Console& console_;
  int saved_ = -1;     // the original stderr
  int read_end_ = -1;  // of the pipe now at fd 2
  std::jthread thread_;
};

// Polls the sites' progress files and shows progress_line through a Console: on a terminal
// every `poll`, otherwise every `plain_every_s` seconds (the first after that long) when the
// line changed. Unreadable, partial or missing files are left out. On a terminal that also shows
// stderr, stderr goes through a StderrRelay while the watcher runs.
class ProgressWatcher {
 public:
  struct Site {
    std::string id;
    std::filesystem::path progress_file;
  };
  ProgressWatcher(std::vector<Site> sites, Console& console, double plain_every_s,
                  std::chrono::milliseconds poll = std::chrono::milliseconds(500));
  ~ProgressWatcher();  // finish()
  ProgressWatcher(const ProgressWatcher&) = delete;
  ProgressWatcher& operator=(const ProgressWatcher&) = delete;

  // Stops polling and erases the progress line.
  void finish();
  // The sites' progress now (those with a readable file).
  std::vector<SiteProgress> read() const;

 private:
  void loop(std::stop_token stop);
  std::vector<Site> sites_;
  Console& console_;
  std::chrono::duration<double> plain_every_;
  std::chrono::milliseconds poll_;
  std::mutex mutex_;
  std::condition_variable_any wake_;
  std::unique_ptr<StderrRelay> relay_;
  std::jthread thread_;
};

// Every site's progress file in `layout` (SimLayout::progress_file).
std::vector<ProgressWatcher::Site> progress_sites(const SimLayout& layout);

}  // namespace fedsim
