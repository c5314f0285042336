// report.html (report.h): the run's events and the sites' own curves, gathered into charts and
// tables.
#include "report.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "base/atomic_file.h"
#include "event_file.h"
#include "round_table.h"

namespace fedsim {
namespace {

using nlohmann::json;

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string cell(const json& v, const char* format) {
  return v.is_number() ? fmt(format, v.get<double>()) : "-";
}

// What the page draws, gathered from the events: the last record of every round (a resumed or
// retried round counts once), the sites in the order they first appear, and the budgets.
struct RunView {
  json started = json::object();         // the last run_started
  std::map<int64_t, json> rounds;        // round -> round_finished (with the sites' losses)
  std::vector<std::string> sites;        // every site named by an event
  std::map<std::string, double> budget;  // site -> epsilon_max
  std::map<int64_t, std::set<std::string>> selected;  // round -> sites invited
  std::map<std::string, int64_t> exhausted;           // site -> round its budget ran out
  json finished = json::object();                     // the last run_finished
};

void add_site(RunView& v, const std::string& site) {
  for (const auto& s : v.sites) {
    if (s == site) return;
  }
  v.sites.push_back(site);
}

RunView view_of(const std::vector<json>& events, const std::filesystem::path& sites_dir) {
  RunView v;
  int64_t last_round = 0;
  for (const auto& e : events) {
    if (!e.is_object()) continue;
    const std::string name = e.value("event", "");
    const std::string site =
        e.value("site", json()).is_string() ? e["site"].get<std::string>() : "";
    const int64_t round =
        e.value("round", json()).is_number_integer() ? e["round"].get<int64_t>() : 0;
    if (name == "run_started") v.started = e;
    if (name == "run_finished") v.finished = e;
    if (name == "participant_selected" && !site.empty()) {
      add_site(v, site);
      v.selected[round].insert(site);
      if (e.value("epsilon_max", json()).is_number()) v.budget[site] = e["epsilon_max"];
    }
    if (name == "budget_exhausted" && !site.empty()) {
      add_site(v, site);
      v.exhausted.emplace(site, last_round);
      if (e.value("epsilon_max", json()).is_number()) v.budget[site] = e["epsilon_max"];
    }
    if (name == "round_finished") {
      v.rounds[round] = with_site_losses(e, sites_dir);
      last_round = round;
      for (const auto& s : e.value("sites", json::array())) {
        if (s.is_string()) add_site(v, s.get<std::string>());
      }
    }
  }
  return v;
}

// A site's own record: the last line of every round in SITE/curves.jsonl.
std::map<int64_t, json> site_curve(const std::filesystem::path& sites_dir,
                                   const std::string& site) {
  std::map<int64_t, json> by_round;
  if (site.find('/') != std::string::npos || site == "." || site == "..") return by_round;
  std::ifstream in(sites_dir / site / "curves.jsonl");
  for (std::string line; std::getline(in, line);) {
    const json c = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (c.is_object() && c.value("round", json()).is_number_integer()) {
      by_round[c["round"].get<int64_t>()] = c;
    }
  }
  return by_round;
}

ChartSeries series_of(const std::string& name, const std::map<int64_t, json>& rows,
                      const char* field) {
  ChartSeries s{name, {}};
  for (const auto& [round, row] : rows) {
    const json v = row.value(field, json());
    if (v.is_number()) s.points.emplace_back(static_cast<double>(round), v.get<double>());
  }
  return s;
}

std::vector<Chart> charts_of(const RunView& v, const std::filesystem::path& sites_dir) {
  Chart pooled{"chart-pooled-loss", "Loss, pooled over the round's sites", "loss", {}, {}};
  pooled.series.push_back(series_of("held-out", v.rounds, "heldout_loss"));
  pooled.series.push_back(series_of("training", v.rounds, "train_loss"));
  Chart heldout{"chart-site-heldout-loss",
                "Held-out loss of each site (its own record)",
                "held-out loss",
                {},
                {}};
  Chart mcq{"chart-mcq-accuracy", "MCQ accuracy", "accuracy", {}, {}, /*y_from_zero=*/true};
  Chart eps{"chart-epsilon", "Privacy spent: epsilon of each site", "epsilon", {}, {}, true};
  const ChartSeries pooled_mcq = series_of("pooled", v.rounds, "mcq_accuracy");
  if (!pooled_mcq.points.empty()) mcq.series.push_back(pooled_mcq);
  std::set<double> budgets;
  for (const auto& site : v.sites) {
    const auto curve = site_curve(sites_dir, site);
    heldout.series.push_back(series_of(site, curve, "heldout_loss"));
    const ChartSeries site_mcq = series_of(site, curve, "mcq_accuracy");
    if (!site_mcq.points.empty()) mcq.series.push_back(site_mcq);
    ChartSeries e{site, {}};
    for (const auto& [round, row] : v.rounds) {
      const json spent = row.value("epsilon", json::object()).value(site, json());
      if (spent.is_number()) e.points.emplace_back(static_cast<double>(round), spent.get<double>());
    }
    eps.series.push_back(std::move(e));
    if (const auto it = v.budget.find(site); it != v.budget.end()) budgets.insert(it->second);
  }
  for (const double b : budgets) eps.rules.emplace_back("budget " + fmt("%.3g", b), b);
  return {pooled, heldout, mcq, eps};
}

// The global model's charts from the evaluation records: a series per site and the pooled one.
std::vector<Chart> evaluation_charts(const std::vector<json>& evaluations) {
  std::map<std::string, std::map<int64_t, json>> by_site;  // "pooled" sorts after "site-..."? no:
  std::vector<std::string> order;                          // first appearance, pooled last
  for (const auto& e : evaluations) {
    if (!e.is_object() || !e.value("site", json()).is_string()) continue;
    if (!e.value("round", json()).is_number_integer()) continue;
    const std::string site = e["site"].get<std::string>();
    if (!by_site.count(site) && site != "pooled") order.push_back(site);
    by_site[site][e["round"].get<int64_t>()] = e;
  }
  if (by_site.empty()) return {};
  if (by_site.count("pooled")) order.push_back("pooled");
  Chart loss{"chart-global-loss",
             "Held-out loss of the global model (round 0: the base model)",
             "held-out loss",
             {},
             {}};
  Chart mcq{"chart-global-mcq", "MCQ accuracy of the global model", "accuracy", {}, {}, true};
  for (const auto& site : order) {
    loss.series.push_back(series_of(site, by_site[site], "heldout_loss"));
    ChartSeries m = series_of(site, by_site[site], "mcq_accuracy");
    if (!m.points.empty()) mcq.series.push_back(std::move(m));
  }
  std::vector<Chart> out = {loss};
  if (!mcq.series.empty()) out.push_back(mcq);
  return out;
}

std::string round_table_html(const RunView& v) {
  std::string out =
      "<table id=\"round-table\"><thead><tr><th>round</th><th>sites</th><th>examples</th>"
      "<th>train loss</th><th>held-out loss</th><th>bytes up</th><th>bytes down</th>"
      "<th>seconds</th><th>epsilon per site</th></tr></thead><tbody>\n";
  for (const auto& [round, e] : v.rounds) {
    std::string eps;
    const json spent_by_site = e.value("epsilon", json::object());
    for (const auto& [site, spent] : spent_by_site.items()) {
      eps += (eps.empty() ? "" : ", ") + html_escape(site) + " " + cell(spent, "%.3f");
    }
    const size_t sites = e.value("sites", json::array()).size();
    out += "<tr><td>" + std::to_string(round) + "</td><td>" + std::to_string(sites) + "</td><td>" +
           cell(e.value("examples", json()), "%.0f") + "</td><td>" +
           cell(e.value("train_loss", json()), "%.4f") + "</td><td>" +
           cell(e.value("heldout_loss", json()), "%.4f") + "</td><td>" +
           cell(e.value("bytes_up", json()), "%.0f") + "</td><td>" +
           cell(e.value("bytes_down", json()), "%.0f") + "</td><td>" +
           cell(e.value("duration_s", json()), "%.1f") + "</td><td>" + eps + "</td></tr>\n";
  }
  return out + "</tbody></table>\n";
}

// One row per site, one column per round: "uploaded" (its delta was averaged), "dropped"
// (invited, no delta in the average), blank (not invited).
std::string participation_html(const RunView& v) {
  std::set<int64_t> rounds;
  for (const auto& [r, e] : v.rounds) rounds.insert(r);
  for (const auto& [r, s] : v.selected) rounds.insert(r);
  std::string out = "<table id=\"participation\"><thead><tr><th>site</th>";
  for (const int64_t r : rounds) out += "<th>" + std::to_string(r) + "</th>";
  out += "</tr></thead><tbody>\n";
  for (const auto& site : v.sites) {
    out += "<tr><th>" + html_escape(site) + "</th>";
    for (const int64_t r : rounds) {
      bool uploaded = false;
      if (const auto it = v.rounds.find(r); it != v.rounds.end()) {
        for (const auto& s : it->second.value("sites", json::array()))
          uploaded |= s.is_string() && s.get_ref<const std::string&>() == site;
      }
      const auto sel = v.selected.find(r);
      const bool invited = sel != v.selected.end() && sel->second.count(site) > 0;
      out += uploaded  ? "<td class=\"up\">uploaded</td>"
             : invited ? "<td class=\"drop\">dropped</td>"
                       : "<td></td>";
    }
    out += "</tr>\n";
  }
  return out + "</tbody></table>\n";
}

constexpr const char* kStyle =
    "body{font-family:sans-serif;margin:2em;color:#222;max-width:1400px}"
    "figure{display:inline-block;margin:0 1.5em 1.5em 0;vertical-align:top}"
    "figcaption{font-weight:bold;margin-bottom:.3em}svg.chart{font-size:11px;background:#fff}"
    "table{border-collapse:collapse;margin-bottom:1.5em}"
    "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}"
    "td.up{background:#d8f0d8}td.drop{background:#f6d8d8}p.empty{color:#888}";

std::string summary_html(const RunView& v) {
  const json& s = v.started;
  std::string out = "<p>run <code>" + html_escape(s.value("run_id", std::string("?"))) +
                    "</code>, strategy " + html_escape(s.value("strategy", std::string("?"))) +
                    ", " + std::to_string(v.rounds.size()) + " rounds completed of " +
                    cell(s.value("rounds", json()), "%.0f") + ", " +
                    std::to_string(v.sites.size()) + " sites";
  if (v.finished.contains("reason")) {
    out += "; ended: " + html_escape(v.finished.value("reason", std::string("?")));
  }
  out += ".</p>\n";
  for (const auto& [site, round] : v.exhausted) {
    out += "<p>" + html_escape(site) + ": privacy budget exhausted after round " +
           std::to_string(round) + ".</p>\n";
  }
  return out;
}

}  // namespace

namespace {

std::vector<Chart> all_charts(const RunView& v, const std::filesystem::path& sites_dir,
                              const std::vector<json>& evaluations) {
  std::vector<Chart> charts = evaluation_charts(evaluations);
  for (auto& c : charts_of(v, sites_dir)) charts.push_back(std::move(c));
  return charts;
}

std::string page_html(const RunView& v, const std::vector<Chart>& charts) {
  std::string page =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<title>fedsim report</title><style>" +
      std::string(kStyle) +
      "</style></head><body>\n<h1>Federated LoRA fine-tuning: run report</h1>\n" + summary_html(v) +
      "<section id=\"charts\">\n";
  for (const auto& chart : charts) page += render_chart_svg(chart);
  page += "</section>\n<h2>Rounds</h2>\n" + round_table_html(v) + "<h2>Participation</h2>\n" +
          participation_html(v) +
          "<p>Losses and MCQ accuracy are each site's own record (SITE/curves.jsonl); the "
          "coordinator never receives them. Epsilon is the coordinator's ledger.</p>\n"
          "</body></html>\n";
  return page;
}

}  // namespace

std::string render_report(const std::vector<json>& events, const std::filesystem::path& sites_dir,
                          const std::vector<json>& evaluations) {
  const RunView v = view_of(events, sites_dir);
  return page_html(v, all_charts(v, sites_dir, evaluations));
}

std::filesystem::path write_report(const std::filesystem::path& run_dir) {
  const RunView v = view_of(read_events(run_dir / "events.jsonl"), run_dir / "sites");
  const auto charts = all_charts(v, run_dir / "sites", read_events(run_dir / "evaluation.jsonl"));
  const auto path = run_dir / "report.html";
  base::write_file_atomic(path, page_html(v, charts));
  for (const auto& chart : charts) {
    const std::string svg = chart_svg(chart);
    if (svg.empty()) continue;
    std::filesystem::create_directories(run_dir / "charts");
    base::write_file_atomic(run_dir / "charts" / (chart.id + ".svg"),
                            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + svg);
  }
  return path;
}

}  // namespace fedsim
