#include "model/synthetic_notes.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "atomic_write.h"
#include "model/error.h"
#include "seeded_random.h"
#include "synthetic_vocabulary.h"

namespace model {
namespace {

using detail::capitalized;
using detail::Condition;
using detail::Drug;
using detail::uniform_below;
using detail::uniform_between;
using detail::VitalsPattern;

// At most one random draw per expression: the operands of `+` are unsequenced, and two draws in
// one expression would make the text depend on the compiler.

constexpr std::string_view kNoSymptoms = "no symptoms";
constexpr uint64_t kMcqStream = uint64_t{1} << 40;  // site streams are 0 .. 999

template <class T>
const T& pick(std::mt19937_64& engine, const std::vector<T>& items) {
  return items[uniform_below(engine, items.size())];
}

bool coin(std::mt19937_64& engine, double p) {
  return detail::uniform_unit(engine) < p;
}

std::string fixed(double value, int decimals) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

std::vector<const Condition*> conditions_of(Specialty specialty) {
  std::vector<const Condition*> out;
  for (const auto& c : detail::condition_table()) {
    if (c.specialty == specialty) out.push_back(&c);
  }
  return out;
}

// Up to `n` distinct items of `items`, in a random order.
template <class T>
std::vector<T> sample(std::mt19937_64& engine, std::vector<T> items, size_t n) {
  for (size_t i = 0; i < items.size() && i < n; ++i) {
    std::swap(items[i], items[i + uniform_below(engine, items.size() - i)]);
  }
  items.resize(std::min(n, items.size()));
  return items;
}

std::string history(std::mt19937_64& engine, const Condition& primary, const Condition* comorbidity,
                    int age, bool male) {
  std::string s = "History: " + std::to_string(age) + "-year-old " + (male ? "man" : "woman") +
                  " with a history of " + std::string(primary.name);
  if (comorbidity) s += " and " + std::string(comorbidity->name);
  std::vector<std::string_view> symptoms;
  for (auto symptom : primary.symptoms) {
    if (symptom != kNoSymptoms) symptoms.push_back(symptom);
  }
  const bool routine = primary.symptoms.size() > symptoms.size() && coin(engine, 0.5);
  if (routine) {
    s += " presenting for routine follow-up with no new complaints.";
  } else {
    symptoms = sample(engine, symptoms, 1 + uniform_below(engine, 2));
    s += " presenting with " + std::string(symptoms[0]);
    if (symptoms.size() > 1) s += " and " + std::string(symptoms[1]);
    static const std::vector<std::string_view> kUnits = {"days", "weeks", "months"};
    const int64_t count = uniform_between(engine, 2, 10);
    const bool acute = primary.vitals == VitalsPattern::kFebrile;  // an infection: days
    s += " for " + std::to_string(count) + " " +
         std::string(acute ? "days" : pick(engine, kUnits)) + ".";
  }
  static const std::vector<std::string_view> kSocial = {
      "Never smoker.",
      "Former smoker, quit 10 years ago.",
      "Current smoker, 1 pack per day.",
      "Drinks alcohol socially.",
      "Lives with spouse; independent in daily activities.",
      "Lives alone; retired teacher.",
      "Works as a truck driver."};
  return s + " " + std::string(pick(engine, kSocial)) + "\n";
}

std::string vitals(std::mt19937_64& engine, VitalsPattern pattern) {
  int sbp = uniform_between(engine, 108, 138), dbp = uniform_between(engine, 64, 86);
  int hr = uniform_between(engine, 58, 92), rr = uniform_between(engine, 12, 18);
  double temp = uniform_between(engine, 364, 372) / 10.0;
  int spo2 = uniform_between(engine, 95, 99);
  std::string support = "on room air";
  switch (pattern) {
    case VitalsPattern::kNormal:
      break;
    case VitalsPattern::kHypertensive:
      sbp = uniform_between(engine, 145, 182);
      dbp = uniform_between(engine, 88, 108);
      break;
    case VitalsPattern::kTachycardic:
      hr = uniform_between(engine, 102, 138);
      break;
    case VitalsPattern::kHypoxic:
      spo2 = uniform_between(engine, 86, 92);
      rr = uniform_between(engine, 20, 26);
      if (coin(engine, 0.4)) support = "on 2 L nasal cannula";
      break;
    case VitalsPattern::kFebrile:
      temp = uniform_between(engine, 382, 396) / 10.0;
      hr = uniform_between(engine, 96, 118);
      rr = uniform_between(engine, 20, 26);
      spo2 = uniform_between(engine, 90, 95);
      break;
  }
  return "Vitals: BP " + std::to_string(sbp) + "/" + std::to_string(dbp) + " mmHg, HR " +
         std::to_string(hr) + " bpm, RR " + std::to_string(rr) + "/min, Temp " + fixed(temp, 1) +
         " C, SpO2 " + std::to_string(spo2) + "% " + support + ", Weight " +
         std::to_string(uniform_between(engine, 52, 118)) + " kg.\n";
}

struct Prescription {
  const Drug* drug;
  std::string dose;
  const Condition* condition;  // the condition it treats
};

std::string prescription_line(const Prescription& p) {
  return std::string(p.drug->name) + " " + p.dose + " " + std::string(p.drug->frequency);
}

std::string finding(std::mt19937_64& engine, const detail::Finding& f) {
  const int64_t scale = f.decimals == 0 ? 1 : f.decimals == 1 ? 10 : 100;
  const auto lo = static_cast<int64_t>(std::llround(f.low * scale));
  const auto hi = static_cast<int64_t>(std::llround(f.high * scale));
  const double value = static_cast<double>(uniform_between(engine, lo, hi)) / scale;
  return std::string(f.name) + " " + fixed(value, f.decimals) + std::string(f.unit);
}

std::string status(std::mt19937_64& engine) {
  static const std::vector<std::string_view> kStatus = {"stable", "not at goal", "improving",
                                                        "newly diagnosed", "worsening"};
  return std::string(pick(engine, kStatus));
}

}  // namespace

std::string_view specialty_name(Specialty specialty) {
  switch (specialty) {
    case Specialty::kCardiology:
      return "Cardiology";
    case Specialty::kEndocrinology:
      return "Endocrinology";
    case Specialty::kPulmonology:
      return "Pulmonology";
    case Specialty::kNephrology:
      return "Nephrology";
    case Specialty::kNeurology:
      return "Neurology";
    case Specialty::kGastroenterology:
      return "Gastroenterology";
  }
  throw ModelError("synthetic notes: unknown specialty");
}

std::vector<double> site_specialty_weights(int site) {
  if (site < 0) throw ModelError("synthetic notes: negative site " + std::to_string(site));
  std::vector<double> w(kSpecialtyCount, (1.0 - kHomeSpecialtyShare) / (kSpecialtyCount - 1));
  w[static_cast<size_t>(site % kSpecialtyCount)] = kHomeSpecialtyShare;
  return w;
}

SyntheticNote SyntheticNoteGenerator::note(Specialty specialty) {
  auto& e = engine_;
  const Condition& primary = *pick(e, conditions_of(specialty));
  const Condition* comorbidity = nullptr;
  if (coin(e, 0.5)) {
    const auto all = detail::condition_table();
    const Condition& other = all[uniform_below(e, all.size())];
    if (other.name != primary.name) comorbidity = &other;
  }
  const int age = static_cast<int>(uniform_between(e, 24, 89));
  const bool male = coin(e, 0.5);

  std::vector<Prescription> meds;
  auto prescribe = [&](std::string_view name, const Condition& condition) {
    for (const auto& m : meds) {
      if (m.drug->name == name) return;
    }
    const Drug& drug = detail::find_drug(name);
    meds.push_back({&drug, std::string(pick(e, drug.doses)), &condition});
  };
  for (auto name : sample(e, primary.drugs, 1 + uniform_below(e, 3))) prescribe(name, primary);
  if (comorbidity && !comorbidity->drugs.empty()) {
    prescribe(pick(e, comorbidity->drugs), *comorbidity);
  }

  static const std::vector<std::string_view> kEncounters = {
      "outpatient follow-up", "new patient consultation", "inpatient consultation",
      "telehealth visit"};
  std::string text = "Service: " + std::string(specialty_name(specialty)) +
                     "\nEncounter: " + std::string(pick(e, kEncounters)) + "\n\n";
  text += history(e, primary, comorbidity, age, male) + "\n";
  text += vitals(e, primary.vitals) + "\n";
  text += "Medications:\n";
  if (meds.empty()) text += "- none\n";
  for (const auto& m : meds) {
    text += "- " + std::string(m.drug->name) + " (class: " + std::string(m.drug->drug_class) +
            ") " + m.dose + " " + std::string(m.drug->frequency) + "\n";
  }
  const std::string primary_status = status(e);
  text += "\nAssessment: " + capitalized(primary.name) + ", managed by " +
          std::string(specialty_name(primary.specialty)) + ", " + primary_status +
          "; followed by " + finding(e, primary.finding) + ".";
  if (comorbidity) {
    text += " " + capitalized(comorbidity->name) + ", managed by " +
            std::string(specialty_name(comorbidity->specialty)) + ", " + status(e) + ".";
  }
  text += "\n\nPlan:\n";
  int item = 1;
  if (!meds.empty()) {
    static const std::vector<std::string_view> kActions = {"continue", "start", "continue"};
    text += std::to_string(item++) + ". For " + std::string(meds[0].condition->name) + ", " +
            std::string(pick(e, kActions)) + " " + prescription_line(meds[0]) + ".\n";
  }
  for (auto p : sample(e, primary.plan_items, 2)) {
    text += std::to_string(item++) + ". " + capitalized(p) + ".\n";
  }
  static const std::vector<int> kWeeks = {2, 4, 6, 8, 12};
  text += std::to_string(item) + ". Follow up in " + std::to_string(pick(e, kWeeks)) + " weeks.\n";
  return {specialty, std::move(text)};
}

SyntheticNote SyntheticNoteGenerator::site_note(int site) {
  const std::vector<double> w = site_specialty_weights(site);
  double u = detail::uniform_unit(engine_);
  int s = 0;
  while (s + 1 < kSpecialtyCount && u >= w[static_cast<size_t>(s)]) {
    u -= w[static_cast<size_t>(s)];
    ++s;
  }
  return note(static_cast<Specialty>(s));
}

namespace {

void validate(const SyntheticDataOptions& o) {
  if (o.sites < 1 || o.sites > 1000) {
    throw ModelError("sites must be between 1 and 1000, got " + std::to_string(o.sites));
  }
  if (o.records < 1 || o.records > 10'000'000) {
    throw ModelError("records must be between 1 and 10000000, got " + std::to_string(o.records));
  }
  if (!(o.heldout_fraction >= 0.0 && o.heldout_fraction < 1.0)) {
    throw ModelError("heldout fraction must be in [0, 1), got " +
                     std::to_string(o.heldout_fraction));
  }
  const auto heldout = std::llround(static_cast<double>(o.records) * o.heldout_fraction);
  if (heldout >= o.records) {
    throw ModelError("holding out " + std::to_string(heldout) + " of " + std::to_string(o.records) +
                     " records leaves none for training");
  }
  if (o.mcq_count < 0 || o.mcq_count > synthetic_mcq_pool_size()) {
    throw ModelError("mcq count must be between 0 and " +
                     std::to_string(synthetic_mcq_pool_size()) + ", got " +
                     std::to_string(o.mcq_count));
  }
}

}  // namespace

std::vector<SyntheticSiteSummary> write_synthetic_dataset(const std::filesystem::path& dir,
                                                          const SyntheticDataOptions& options) {
  validate(options);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw ModelError(dir.string() + ": cannot create directory: " + ec.message());

  const int64_t heldout =
      std::llround(static_cast<double>(options.records) * options.heldout_fraction);
  std::vector<SyntheticSiteSummary> summaries;
  for (int site = 0; site < options.sites; ++site) {
    SyntheticNoteGenerator generator(detail::mix_seed(options.seed, static_cast<uint64_t>(site)));
    SyntheticSiteSummary summary;
    summary.train_file = dir / ("site" + std::to_string(site) + ".jsonl");
    summary.heldout_file = dir / ("site" + std::to_string(site) + ".heldout.jsonl");
    summary.train_records = options.records - heldout;
    summary.heldout_records = heldout;
    summary.specialty_counts.assign(kSpecialtyCount, 0);
    std::string train, held;
    for (int64_t i = 0; i < options.records; ++i) {
      const SyntheticNote note = generator.site_note(site);
      ++summary.specialty_counts[static_cast<size_t>(note.specialty)];
      (i < summary.train_records ? train : held) +=
          nlohmann::json{{"text", note.text}}.dump() + "\n";
    }
    detail::write_text_file(summary.train_file, train);
    detail::write_text_file(summary.heldout_file, held);
    summaries.push_back(std::move(summary));
  }

  std::string mcq;
  for (const auto& q :
       synthetic_mcq(detail::mix_seed(options.seed, kMcqStream), options.mcq_count)) {
    mcq += nlohmann::json{{"question", q.question}, {"options", q.options}, {"answer", q.answer}}
               .dump() +
           "\n";
  }
  detail::write_text_file(dir / "mcq.jsonl", mcq);
  return summaries;
}

}  // namespace model
