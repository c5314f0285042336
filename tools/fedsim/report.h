// RUN/report.html: one self-contained page of a run (inline SVG charts, no script, no network),
// for a person who would rather look than read events.jsonl:
//   - held-out and training loss over rounds, pooled over the round's sites;
//   - each site's own held-out loss over rounds (from SITE/curves.jsonl, which only fedsim can
//     read: the coordinator never sees a site's losses);
//   - MCQ accuracy per site and pooled, when the records carry it (`mcq_accuracy`);
//   - each site's epsilon over rounds, with its budget drawn as a line;
//   - the round table (the one fedsim prints, plus wire bytes) and the participation record
//     (which site was selected and which uploaded, per round).
// Every figure comes from the run directory's files, so the page can be made again at any time
// (`write_report`), and a resumed run's page covers all of its rounds.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace fedsim {

// One series of a chart: a name and its (x, y) points in x order.
struct ChartSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;
};

struct Chart {
  std::string id;  // the <svg> element's id, e.g. "chart-heldout-loss"
  std::string title;
  std::string y_label;
  std::vector<ChartSeries> series;
  // Horizontal reference lines (e.g. a privacy budget), each with its label.
  std::vector<std::pair<std::string, double>> rules;
  bool y_from_zero = false;  // the y axis starts at 0 (epsilon, accuracy)
};

// The chart as one <svg> line chart (rounds on x, its title inside), a valid SVG file on its
// own; "" when it has no points. Names and labels are escaped.
std::string chart_svg(const Chart& chart);
// The chart as a <figure> of the page; a chart without points says so in its place instead of
// drawing empty axes.
std::string render_chart_svg(const Chart& chart);

// The whole page from a run's events (events.jsonl parsed, in order) and its sites' state
// directories (`sites_dir`/SITE/curves.jsonl; a missing one only leaves its series out).
// `evaluations`: RUN/evaluation.jsonl's records (sim_eval.h), drawn first as the global model's
// held-out loss and MCQ accuracy per site and pooled, from round 0 (none: those charts are left
// out).
std::string render_report(const std::vector<nlohmann::json>& events,
                          const std::filesystem::path& sites_dir,
                          const std::vector<nlohmann::json>& evaluations = {});

// Renders RUN/events.jsonl, RUN/evaluation.jsonl and RUN/sites into RUN/report.html, and each
// chart with points into RUN/charts/ID.svg (all written atomically); returns the page's path.
// Throws base::IoError when a file cannot be written.
std::filesystem::path write_report(const std::filesystem::path& run_dir);

// &, <, >, " and ' as entities: text from a file or a peer placed into HTML.
std::string html_escape(const std::string& text);

}  // namespace fedsim
