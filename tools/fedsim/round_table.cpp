#include "round_table.h"

#include <chrono>
#include <fstream>

namespace fedsim {
namespace {

std::string number(const nlohmann::json& v, const char* format) {
  if (!v.is_number()) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v.get<double>());
  return buf;
}

}  // namespace

nlohmann::json with_site_losses(const nlohmann::json& e, const std::filesystem::path& sites_dir) {
  if (e.value("heldout_loss", nlohmann::json()).is_number()) return e;
  const auto round = e.value("round", nlohmann::json());
  double train = 0, train_w = 0, heldout = 0, heldout_w = 0;
  for (const auto& site : e.value("sites", nlohmann::json::array())) {
    if (!site.is_string()) continue;
    std::ifstream in(sites_dir / site.get<std::string>() / "curves.jsonl");
    nlohmann::json last;
    for (std::string line; std::getline(in, line);) {
      const auto c = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (c.is_object() && c.value("round", nlohmann::json()) == round) last = c;
    }
    if (!last.is_object()) continue;
    const auto add = [&](const char* field, const char* weight, double& sum, double& w) {
      const auto v = last.value(field, nlohmann::json());
      const double n = last.value(weight, 0.0);
      if (v.is_number() && n > 0) {
        sum += v.get<double>() * n;
        w += n;
      }
    };
    add("train_loss", "examples", train, train_w);
    add("heldout_loss", "heldout_examples", heldout, heldout_w);
  }
  nlohmann::json out = e;
  if (train_w > 0) out["train_loss"] = train / train_w;
  if (heldout_w > 0) out["heldout_loss"] = heldout / heldout_w;
  if (train_w > 0 || heldout_w > 0) out["losses_from"] = "sites";
  return out;
}

std::string table_header() {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%5s  %5s  %10s  %12s  %8s  %s", "round", "sites", "train_loss",
                "heldout_loss", "seconds", "epsilon per site");
  return buf;
}

std::string table_row(const nlohmann::json& e) {
  const size_t sites = e.contains("sites") && e["sites"].is_array() ? e["sites"].size() : 0;
  std::string eps;
  if (e.contains("epsilon") && e["epsilon"].is_object()) {
    for (const auto& [site, value] : e["epsilon"].items()) {
      if (!eps.empty()) eps += ", ";
      eps += site + " " + number(value, "%.3f");
    }
  }
  char buf[512];
  std::snprintf(buf, sizeof buf, "%5s  %5zu  %10s  %12s  %8s  %s",
                e.value("round", nlohmann::json()).dump().c_str(), sites,
                number(e.value("train_loss", nlohmann::json()), "%.4f").c_str(),
                number(e.value("heldout_loss", nlohmann::json()), "%.4f").c_str(),
                number(e.value("duration_s", nlohmann::json()), "%.1f").c_str(), eps.c_str());
  return buf;
}

EventWatcher::EventWatcher(std::filesystem::path file, std::filesystem::path sites_dir,
                           std::FILE* out, AfterRound after_round)
    : file_(std::move(file)),
      sites_dir_(std::move(sites_dir)),
      own_console_(std::make_unique<Console>(out, false)),
      console_(own_console_.get()),
      after_round_(std::move(after_round)) {
  follow();
}

EventWatcher::EventWatcher(std::filesystem::path file, std::filesystem::path sites_dir,
                           Console& console, AfterRound after_round)
    : file_(std::move(file)),
      sites_dir_(std::move(sites_dir)),
      console_(&console),
      after_round_(std::move(after_round)) {
  follow();
}

void EventWatcher::follow() {
  std::error_code ec;
  const auto size = std::filesystem::file_size(file_, ec);
  offset_ = ec ? 0 : size;
  thread_ = std::jthread([this](std::stop_token stop) {
    while (!stop.stop_requested()) {
      poll();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
}

EventWatcher::~EventWatcher() {
  finish();
}

void EventWatcher::finish() {
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
  poll();
}

std::vector<nlohmann::json> EventWatcher::rounds() const {
  std::lock_guard lock(mutex_);
  return rounds_;
}

void EventWatcher::poll() {
  std::lock_guard lock(mutex_);
  std::ifstream in(file_, std::ios::binary);
  if (!in) return;
  in.seekg(static_cast<std::streamoff>(offset_));
  std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  offset_ += chunk.size();
  partial_ += chunk;
  size_t start = 0;
  for (size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
    const std::string line = partial_.substr(start, nl - start);
    const nlohmann::json e = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!e.is_object()) continue;
    const std::string kind = e.value("event", "");
    if (kind == "round_finished") {
      const nlohmann::json row = with_site_losses(e, sites_dir_);
      std::string text;
      if (!header_printed_) {
        if (row.value("losses_from", "") == "sites") {
          text +=
              "losses: each site's own record (STATE/curves.jsonl); the coordinator never sees "
              "them\n";
        }
        text += table_header() + "\n";
        header_printed_ = true;
      }
      console_->print(text + table_row(row) + "\n");
      rounds_.push_back(row);
      if (after_round_) {
        if (const auto note = after_round_(row)) console_->print(*note + "\n");
      }
    } else if (kind == "budget_exhausted") {
      console_->print("       budget exhausted: " + e.value("site", std::string("?")) + "\n");
    }
  }
  partial_.erase(0, start);
}

}  // namespace fedsim
