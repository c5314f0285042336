#include "progress_line.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "base/error.h"

namespace fedsim {
namespace {

constexpr const char* kEraseLine = "\r\033[K";

// One site's part of the line.
std::string site_text(const SiteProgress& s, uint32_t round, bool tty) {
  const participant::TrainingProgress& p = s.progress;
  if (p.round < round) return s.site + " waiting";
  const std::string steps = std::to_string(p.step) + "/" + std::to_string(p.steps);
  std::string state;
  if (p.phase == "training") {
    if (p.tokens_per_s > 0) state = rate_text(p.tokens_per_s) + " tok/s";
  } else {
    state = p.phase == "uploading" ? "uploading" : "done";
  }
  if (tty) return s.site + " " + steps + (state.empty() ? "" : " " + state);
  return s.site + " step " + steps + (state.empty() ? "" : " (" + state + ")");
}

}  // namespace

std::string rate_text(double per_second) {
  char buf[32];
  if (!(per_second < 999.5)) {
    if (per_second < 999.95e3) {
      std::snprintf(buf, sizeof buf, "%.1fk", per_second / 1e3);
    } else {
      std::snprintf(buf, sizeof buf, "%.1fM", per_second / 1e6);
    }
  } else {
    std::snprintf(buf, sizeof buf, "%.0f", std::max(0.0, per_second));
  }
  return buf;
}

std::string eta_text(double seconds) {
  const auto s = static_cast<long long>(std::llround(std::max(0.0, seconds)));
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%lld s", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s / 60 % 60);
  }
  return buf;
}

std::string progress_line(const std::vector<SiteProgress>& sites, bool tty) {
  if (sites.empty()) return "";
  uint32_t round = 0;
  for (const SiteProgress& s : sites) round = std::max(round, s.progress.round);
  const char* separator = tty ? " | " : ", ";
  std::string line =
      (tty ? "round " : "progress: round ") + std::to_string(round) + (tty ? " | " : ": ");
  double eta = -1;
  for (size_t i = 0; i < sites.size(); ++i) {
    if (i > 0) line += separator;
    line += site_text(sites[i], round, tty);
    const participant::TrainingProgress& p = sites[i].progress;
    if (p.round == round && p.phase == "training" && p.step > 0) eta = std::max(eta, p.eta_s);
  }
  if (eta >= 0) line += std::string(separator) + "ETA " + eta_text(eta);
  return line;
}

Console::Console(std::FILE* out, bool tty) : out_(out), tty_(tty) {}

void Console::print(const std::string& text) {
  std::lock_guard lock(mutex_);
  const bool redraw = tty_ && !shown_.empty();
  if (redraw) std::fputs(kEraseLine, out_);
  std::fputs(text.c_str(), out_);
  if (redraw) draw();
  std::fflush(out_);
}

void Console::progress(const std::string& line) {
  std::lock_guard lock(mutex_);
  if (!tty_) {
    if (line.empty()) return;
    std::fprintf(out_, "%s\n", line.c_str());
    std::fflush(out_);
    return;
  }
  shown_ = line;
  // Cut to the terminal's width: a wrapped line could not be redrawn in place.
  winsize ws{};
  const int fd = ::fileno(out_);
  if (fd >= 0 && ::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && shown_.size() >= ws.ws_col) {
    shown_.resize(ws.ws_col - 1u);
  }
  std::fputs(kEraseLine, out_);
  draw();
  std::fflush(out_);
}

void Console::clear_progress() {
  std::lock_guard lock(mutex_);
  if (!tty_ || shown_.empty()) return;
  std::fputs(kEraseLine, out_);
  std::fflush(out_);
  shown_.clear();
}

void Console::print_to(int fd, std::string_view text) {
  std::lock_guard lock(mutex_);
  const bool redraw = tty_ && !shown_.empty();
  if (redraw) {
    std::fputs(kEraseLine, out_);
    std::fflush(out_);
  }
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.remove_prefix(static_cast<size_t>(n));
  }
  if (redraw) draw();
  std::fflush(out_);
}

void Console::draw() {
  std::fputs(shown_.c_str(), out_);
}

StderrRelay::StderrRelay(Console& console) : console_(console) {
  std::fflush(stderr);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw base::IoError(std::string("stderr relay: pipe: ") + std::strerror(errno));
  }
  saved_ = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
  if (saved_ < 0 || ::dup2(fds[1], STDERR_FILENO) < 0) {  // fd 2 itself is inherited
    const int e = errno;
    if (saved_ >= 0) ::close(saved_);
    ::close(fds[0]);
    ::close(fds[1]);
    throw base::IoError(std::string("stderr relay: ") + std::strerror(e));
  }
  ::close(fds[1]);
  read_end_ = fds[0];
  thread_ = std::jthread([this](std::stop_token stop) { loop(stop); });
}

StderrRelay::~StderrRelay() {
  std::fflush(stderr);
  ::dup2(saved_, STDERR_FILENO);  // closes this process's write end of the pipe
  thread_.request_stop();
  thread_.join();  // after what is left in the pipe
  ::close(saved_);
  ::close(read_end_);
}

void StderrRelay::loop(std::stop_token stop) {
  std::string pending;
  char buf[4096];
  for (;;) {
    pollfd p{read_end_, POLLIN, 0};
    const int ready = ::poll(&p, 1, 100);
    if (ready < 0 && errno == EINTR) continue;
    ssize_t n = 0;
    if (ready > 0) {
      n = ::read(read_end_, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n > 0) pending.append(buf, static_cast<size_t>(n));
    }
    // Whole lines only: the progress line is drawn again after each batch.
    const size_t end = pending.rfind('\n');
    if (end != std::string::npos) {
      console_.print_to(saved_, std::string_view(pending).substr(0, end + 1));
      pending.erase(0, end + 1);
    }
    // Done at the end of the pipe, or once stopped and nothing is left to read (a child that
    // outlived fedsim may keep a write end open).
    if (ready > 0 && n <= 0) break;
    if (stop.stop_requested() && ready == 0) break;
  }
  if (!pending.empty()) console_.print_to(saved_, pending + "\n");
}

ProgressWatcher::ProgressWatcher(std::vector<Site> sites, Console& console, double plain_every_s,
                                 std::chrono::milliseconds poll)
    : sites_(std::move(sites)),
      console_(console),
      plain_every_(std::max(0.0, plain_every_s)),
      poll_(poll) {
  if (console_.tty() && ::isatty(STDERR_FILENO) != 0) {
    relay_ = std::make_unique<StderrRelay>(console_);
  }
  if (!console_.tty()) {
    const auto every = std::chrono::duration_cast<std::chrono::milliseconds>(plain_every_);
    poll_ = std::clamp(every, std::chrono::milliseconds(10), poll_);
  }
  thread_ = std::jthread([this](std::stop_token stop) { loop(stop); });
}

ProgressWatcher::~ProgressWatcher() {
  finish();
}

void ProgressWatcher::finish() {
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
  console_.clear_progress();
  relay_.reset();
}

std::vector<SiteProgress> ProgressWatcher::read() const {
  std::vector<SiteProgress> out;
  for (const Site& s : sites_) {
    if (auto p = participant::read_progress(s.progress_file)) out.push_back({s.id, std::move(*p)});
  }
  return out;
}

void ProgressWatcher::loop(std::stop_token stop) {
  using Clock = std::chrono::steady_clock;
  Clock::time_point last_plain = Clock::now();
  std::string last;
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, stop, poll_, [] { return false; }) && !stop.stop_requested()) {
    const std::string line = progress_line(read(), console_.tty());
    if (line.empty() || line == last) continue;
    if (!console_.tty()) {
      const Clock::time_point now = Clock::now();
      if (now - last_plain < plain_every_) continue;
      last_plain = now;
    }
    console_.progress(line);
    last = line;
  }
}

std::vector<ProgressWatcher::Site> progress_sites(const SimLayout& layout) {
  std::vector<ProgressWatcher::Site> sites;
  for (uint32_t k = 0; k < layout.site_count(); ++k) {
    sites.push_back({layout.site_id(k), layout.progress_file(k)});
  }
  return sites;
}

}  // namespace fedsim
