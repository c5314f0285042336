// The SVG line charts of report.html (report.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "report.h"

namespace fedsim {
namespace {

constexpr double kWidth = 640, kHeight = 300;
constexpr double kLeft = 64, kRight = 170, kTop = 34, kBottom = 44;
constexpr const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                    "#9467bd", "#8c564b", "#e377c2", "#17becf"};

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  // Widens an empty or degenerate range so that every point maps inside the plot.
  void settle(double pad_fraction) {
    if (!(hi >= lo)) lo = 0, hi = 1;
    if (hi - lo < 1e-12) {
      const double d = std::max(std::abs(lo) * 0.1, 0.5);
      lo -= d;
      hi += d;
    } else {
      const double d = (hi - lo) * pad_fraction;
      lo -= d;
      hi += d;
    }
  }
};

struct Frame {
  Range x, y;
  double px(double v) const { return kLeft + (v - x.lo) / (x.hi - x.lo) * plot_w(); }
  double py(double v) const { return kTop + (y.hi - v) / (y.hi - y.lo) * plot_h(); }
  static double plot_w() { return kWidth - kLeft - kRight; }
  static double plot_h() { return kHeight - kTop - kBottom; }
};

Frame frame_of(const Chart& c) {
  Frame f;
  for (const auto& s : c.series) {
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      f.x.add(x);
      f.y.add(y);
    }
  }
  for (const auto& rule : c.rules) {
    if (std::isfinite(rule.second)) f.y.add(rule.second);
  }
  if (c.y_from_zero) f.y.add(0);
  f.x.settle(0.02);
  f.y.settle(0.06);
  if (c.y_from_zero && f.y.lo < 0) f.y.lo = 0;
  return f;
}

std::string axes(const Chart& c, const Frame& f) {
  std::string out;
  out += "<rect x=\"" + fmt("%.1f", kLeft) + "\" y=\"" + fmt("%.1f", kTop) + "\" width=\"" +
         fmt("%.1f", Frame::plot_w()) + "\" height=\"" + fmt("%.1f", Frame::plot_h()) +
         "\" fill=\"none\" stroke=\"#999\"/>\n";
  for (int i = 0; i <= 4; ++i) {
    const double v = f.y.lo + (f.y.hi - f.y.lo) * i / 4.0;
    const double y = f.py(v);
    out += "<line x1=\"" + fmt("%.1f", kLeft) + "\" x2=\"" + fmt("%.1f", kLeft + Frame::plot_w()) +
           "\" y1=\"" + fmt("%.1f", y) + "\" y2=\"" + fmt("%.1f", y) + "\" stroke=\"#eee\"/>\n";
    out += "<text x=\"" + fmt("%.1f", kLeft - 6) + "\" y=\"" + fmt("%.1f", y + 4) +
           "\" text-anchor=\"end\">" + fmt("%.4g", v) + "</text>\n";
  }
  const double first = std::ceil(f.x.lo), last = std::floor(f.x.hi);
  const double step = std::max(1.0, std::ceil((last - first + 1) / 12.0));
  for (double r = first; r <= last; r += step) {
    out += "<text x=\"" + fmt("%.1f", f.px(r)) + "\" y=\"" +
           fmt("%.1f", kTop + Frame::plot_h() + 16) + "\" text-anchor=\"middle\">" +
           fmt("%.0f", r + 0.0) + "</text>\n";
  }
  out += "<text x=\"" + fmt("%.1f", kLeft + Frame::plot_w() / 2) + "\" y=\"" +
         fmt("%.1f", kHeight - 8) + "\" text-anchor=\"middle\">round</text>\n";
  out += "<text x=\"14\" y=\"" + fmt("%.1f", kTop + Frame::plot_h() / 2) +
         "\" text-anchor=\"middle\" transform=\"rotate(-90 14 " +
         fmt("%.1f", kTop + Frame::plot_h() / 2) + ")\">" + html_escape(c.y_label) + "</text>\n";
  return out;
}

std::string series_svg(const ChartSeries& s, size_t index, const Frame& f) {
  const std::string colour = kColours[index % std::size(kColours)];
  std::string points, dots;
  for (const auto& [x, y] : s.points) {
    if (!std::isfinite(x) || !std::isfinite(y)) continue;
    const std::string xy = fmt("%.1f", f.px(x)) + "," + fmt("%.1f", f.py(y));
    points += (points.empty() ? "" : " ") + xy;
    dots += "<circle cx=\"" + fmt("%.1f", f.px(x)) + "\" cy=\"" + fmt("%.1f", f.py(y)) +
            "\" r=\"3\" fill=\"" + colour + "\"><title>" + html_escape(s.name) + ", round " +
            fmt("%.0f", x) + ": " + fmt("%.4g", y) + "</title></circle>\n";
  }
  const double ly = kTop + 8 + 18.0 * static_cast<double>(index);
  const double lx = kLeft + Frame::plot_w() + 12;
  return "<polyline class=\"series\" data-series=\"" + html_escape(s.name) +
         "\" fill=\"none\" stroke=\"" + colour + "\" stroke-width=\"2\" points=\"" + points +
         "\"/>\n" + dots + "<rect x=\"" + fmt("%.1f", lx) + "\" y=\"" + fmt("%.1f", ly - 8) +
         "\" width=\"12\" height=\"3\" fill=\"" + colour + "\"/><text class=\"legend\" x=\"" +
         fmt("%.1f", lx + 18) + "\" y=\"" + fmt("%.1f", ly - 3) + "\">" + html_escape(s.name) +
         "</text>\n";
}

std::string rules_svg(const Chart& c, const Frame& f) {
  std::string out;
  for (const auto& [label, value] : c.rules) {
    if (!std::isfinite(value)) continue;
    const double y = f.py(value);
    out += "<line class=\"rule\" x1=\"" + fmt("%.1f", kLeft) + "\" x2=\"" +
           fmt("%.1f", kLeft + Frame::plot_w()) + "\" y1=\"" + fmt("%.1f", y) + "\" y2=\"" +
           fmt("%.1f", y) + "\" stroke=\"#555\" stroke-dasharray=\"5 4\"/><text x=\"" +
           fmt("%.1f", kLeft + Frame::plot_w() - 4) + "\" y=\"" + fmt("%.1f", y - 4) +
           "\" text-anchor=\"end\">" + html_escape(label) + "</text>\n";
  }
  return out;
}

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

std::string chart_svg(const Chart& c) {
  size_t points = 0;
  for (const auto& s : c.series) points += s.points.size();
  if (points == 0) return "";
  const Frame f = frame_of(c);
  std::string out = "<svg id=\"" + html_escape(c.id) +
                    "\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " +
                    fmt("%.0f", kWidth) + " " + fmt("%.0f", kHeight) + "\" width=\"" +
                    fmt("%.0f", kWidth) + "\" height=\"" + fmt("%.0f", kHeight) +
                    "\" font-family=\"sans-serif\" font-size=\"11\" role=\"img\" aria-label=\"" +
                    html_escape(c.title) +
                    "\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n" + "<text x=\"" +
                    fmt("%.1f", kLeft) + "\" y=\"20\" font-size=\"13\" font-weight=\"bold\">" +
                    html_escape(c.title) + "</text>\n" + axes(c, f) + rules_svg(c, f);
  for (size_t i = 0; i < c.series.size(); ++i) out += series_svg(c.series[i], i, f);
  return out + "</svg>\n";
}

std::string render_chart_svg(const Chart& c) {
  const std::string svg = chart_svg(c);
  if (svg.empty()) {
    return "<figure><figcaption>" + html_escape(c.title) +
           "</figcaption>\n<p class=\"empty\">no data yet</p></figure>\n";
  }
  return "<figure>" + svg + "</figure>\n";
}

}  // namespace fedsim
