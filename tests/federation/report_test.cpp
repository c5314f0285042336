// report.html (tools/fedsim/report.h): a run's events and sites' curves become charts and tables;
// site names are escaped; the page opens in headless Chromium with its charts in the DOM.
#include <gtest/gtest.h>
#include <array>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "report.h"
#include "test_support/run.h"
#include "test_support/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// The text between `<svg id="ID"` and its `</svg>`.
std::string svg_of(const std::string& page, const std::string& id) {
  const size_t start = page.find("<svg id=\"" + id + "\"");
  if (start == std::string::npos) return "";
  const size_t end = page.find("</svg>", start);
  return page.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override { fs::create_directories(dir_ / "sites"); }

  // Three rounds over sites "a" and "<b>"; "<b>" drops out of round 2. Each site's curve has a
  // round-0 record (the base model) and falls by 0.5 a round.
  std::vector<json> write_run() {
    std::vector<json> events = {
        {{"event", "run_started"}, {"run_id", "r1"}, {"rounds", 3}, {"strategy", "fedavg"}}};
    const std::vector<std::string> sites = {"a", "<b>"};
    for (int round = 1; round <= 3; ++round) {
      json finished = {{"event", "round_finished"}, {"round", round},     {"examples", 100},
                       {"bytes_up", 1000 * round},  {"bytes_down", 2000}, {"duration_s", 1.5}};
      for (const auto& s : sites) {
        events.push_back({{"event", "participant_selected"},
                          {"round", round},
                          {"site", s},
                          {"epsilon_max", 8.0}});
        if (round == 2 && s == "<b>") continue;
        finished["sites"].push_back(s);
        finished["epsilon"][s] = 1.25 * round;
      }
      events.push_back(finished);
    }
    events.push_back({{"event", "run_finished"}, {"reason", "completed"}});
    for (const auto& s : sites) {
      fs::create_directories(dir_ / "sites" / s);
      std::ofstream out(dir_ / "sites" / s / "curves.jsonl");
      for (int round = 0; round <= 3; ++round) {
        out << json{{"round", round},
                    {"train_loss", 6.0 - 0.5 * round},
                    {"heldout_loss", 6.2 - 0.5 * round},
                    {"examples", 50},
                    {"heldout_examples", 5},
                    {"mcq_accuracy", 0.25 + 0.1 * round}}
                   .dump()
            << "\n";
      }
    }
    return events;
  }

  test_support::TempDir tmp_;
  fs::path dir_ = tmp_.path();
};

TEST_F(ReportTest, ChartsTablesAndParticipationComeFromTheRecords) {
  const std::string page = fedsim::render_report(write_run(), dir_ / "sites");
  // One line per series: pooled held-out and training loss; one per site elsewhere, plus the
  // pooled MCQ line only when the coordinator's rounds carry it (they do not here).
  EXPECT_EQ(count(svg_of(page, "chart-pooled-loss"), "<polyline"), 2u);
  EXPECT_EQ(count(svg_of(page, "chart-site-heldout-loss"), "<polyline"), 2u);
  EXPECT_EQ(count(svg_of(page, "chart-mcq-accuracy"), "<polyline"), 2u);
  const std::string eps = svg_of(page, "chart-epsilon");
  EXPECT_EQ(count(eps, "<polyline"), 2u);
  EXPECT_EQ(count(eps, "class=\"rule\""), 1u) << "the budget line";
  EXPECT_NE(eps.find("budget 8"), std::string::npos);
  // Every site curve point is drawn, round 0 included (4 rounds x 2 sites).
  EXPECT_EQ(count(svg_of(page, "chart-site-heldout-loss"), "<circle"), 8u);
  EXPECT_NE(page.find("round 0: 6.2"), std::string::npos);
  // The epsilon series of "<b>" has no point for round 2 (it did not upload).
  EXPECT_EQ(count(eps, "<circle"), 5u);
  // The round table has a row per round, the participation record one cell per site and round.
  EXPECT_EQ(count(page, "<tr><td>"), 3u);
  EXPECT_EQ(count(page, "<td class=\"up\">uploaded</td>"), 5u);
  EXPECT_EQ(count(page, "<td class=\"drop\">dropped</td>"), 1u);
  // A site's name is text, never markup.
  EXPECT_EQ(page.find("<b>"), std::string::npos);
  EXPECT_NE(page.find("&lt;b&gt;"), std::string::npos);
  EXPECT_NE(page.find("ended: completed"), std::string::npos);
}

TEST_F(ReportTest, TheGlobalModelsEvaluationsAreDrawnFromRoundZero) {
  std::vector<json> evaluations;
  for (int round = 0; round <= 3; ++round) {
    for (const char* site : {"a", "<b>", "pooled"}) {
      evaluations.push_back({{"round", round},
                             {"site", site},
                             {"heldout_loss", 6.0 - round},
                             {"mcq_accuracy", 0.25 * (1 + round % 2)}});
    }
  }
  const std::string page = fedsim::render_report(write_run(), dir_ / "sites", evaluations);
  const std::string loss = svg_of(page, "chart-global-loss");
  EXPECT_EQ(count(loss, "<polyline"), 3u) << "two sites and the pooled line";
  EXPECT_EQ(count(loss, "<circle"), 12u) << "rounds 0 to 3";
  EXPECT_NE(loss.find("data-series=\"pooled\""), std::string::npos);
  EXPECT_NE(loss.find("pooled, round 0: 6"), std::string::npos);
  EXPECT_EQ(count(svg_of(page, "chart-global-mcq"), "<polyline"), 3u);
  // The global charts come first.
  EXPECT_LT(page.find("chart-global-loss"), page.find("chart-pooled-loss"));
  // Without evaluation records there are no global charts.
  EXPECT_EQ(fedsim::render_report(write_run(), dir_ / "sites").find("chart-global"),
            std::string::npos);
}

TEST_F(ReportTest, AChartWithoutPointsSaysSo) {
  const std::string page = fedsim::render_report({}, dir_ / "sites");
  EXPECT_EQ(count(page, "<svg"), 0u);
  EXPECT_EQ(count(page, "no data yet"), 4u);
}

TEST_F(ReportTest, WriteReportReadsTheRunDirectory) {
  const std::vector<json> events = write_run();
  {
    std::ofstream out(dir_ / "events.jsonl");
    for (const auto& e : events) out << e.dump() << "\n";
    out << "{\"event\": \"round_fini";  // a line being written: skipped
  }
  const fs::path path = fedsim::write_report(dir_);
  EXPECT_EQ(path, dir_ / "report.html");
  std::ifstream in(path);
  const std::string page((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(page, fedsim::render_report(events, dir_ / "sites"));
  // Every chart with points is also an SVG file of its own, the same <svg> as in the page.
  for (const char* id :
       {"chart-pooled-loss", "chart-site-heldout-loss", "chart-mcq-accuracy", "chart-epsilon"}) {
    std::ifstream svg_in(dir_ / "charts" / (std::string(id) + ".svg"));
    const std::string svg((std::istreambuf_iterator<char>(svg_in)),
                          std::istreambuf_iterator<char>());
    EXPECT_EQ(svg.rfind("<?xml", 0), 0u) << id;
    EXPECT_NE(page.find(svg.substr(svg.find("<svg"))), std::string::npos) << id;
  }
  EXPECT_FALSE(fs::exists(dir_ / "charts" / "chart-global-loss.svg")) << "no evaluations here";
}

std::string chromium() {
  for (const char* c :
       {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"}) {
    if (fs::exists(c)) return c;
  }
  return "";
}

TEST_F(ReportTest, OpensInHeadlessChromiumWithItsCharts) {
  const std::string browser = chromium();
  if (browser.empty()) GTEST_SKIP() << "no Chromium (scripts/install-deps.sh installs it)";
  {
    std::ofstream out(dir_ / "events.jsonl");
    for (const auto& e : write_run()) out << e.dump() << "\n";
  }
  const fs::path page = fedsim::write_report(dir_);
  const std::string flags =
      " --headless --no-sandbox --disable-gpu --no-first-run"
      " --user-data-dir=" +
      (dir_ / "chromium").string() + " ";
  // The DOM as the browser parsed it: every chart an <svg> element with its lines.
  const test_support::RunResult dumped = test_support::run_stdout(
      browser + flags + "--dump-dom file://" + page.string() + " 2>/dev/null");
  ASSERT_EQ(dumped.status, 0) << dumped.out;
  const std::string& dom = dumped.out;
  for (const char* id :
       {"chart-pooled-loss", "chart-site-heldout-loss", "chart-mcq-accuracy", "chart-epsilon"}) {
    const std::string svg = svg_of(dom, id);
    ASSERT_FALSE(svg.empty()) << id << " missing from the DOM";
    EXPECT_GE(count(svg, "<polyline"), 2u) << id;
  }
  EXPECT_NE(dom.find("id=\"round-table\""), std::string::npos);
  EXPECT_NE(dom.find("id=\"participation\""), std::string::npos);
  // A screenshot: a PNG of the page as rendered.
  const fs::path png = dir_ / "report.png";
  const auto shot = test_support::run_stdout(
      browser + flags + "--window-size=1400,1600 --screenshot=" + png.string() + " file://" +
      page.string() + " 2>/dev/null");
  ASSERT_EQ(shot.status, 0);
  ASSERT_TRUE(fs::exists(png));
  std::ifstream in(png, std::ios::binary);
  std::array<char, 8> magic{};
  in.read(magic.data(), magic.size());
  EXPECT_EQ(std::string(magic.data(), 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_GT(fs::file_size(png), 10'000u) << "a blank page compresses to less";
}

}  // namespace
