// The vocabularies of the synthetic clinical notes (private to the model library): drugs with
// their classes and usual doses, and per specialty the conditions with their symptoms, the
// drugs that treat them, the finding followed for them and typical plan items. Invented for
// test data from textbook-level knowledge; not medical advice.
#pragma once

#include <cctype>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/synthetic_notes.h"

namespace model::detail {

struct Drug {
  std::string_view name;
  std::string_view drug_class;
  std::vector<std::string_view> doses;  // e.g. "50 mg"; one is chosen per prescription
  std::string_view frequency;           // e.g. "twice daily"
};

// How a condition shifts the vital signs away from the normal ranges.
enum class VitalsPattern { kNormal, kHypertensive, kTachycardic, kHypoxic, kFebrile };

// A laboratory or functional finding with a plausible range for the condition.
struct Finding {
  std::string_view name;  // "HbA1c"
  double low = 0;
  double high = 0;
  int decimals = 0;
  std::string_view unit;  // "%", " mg/dL" (with its leading space where one belongs)
};

struct Condition {
  std::string_view name;
  Specialty specialty;
  std::vector<std::string_view> symptoms;
  std::vector<std::string_view> drugs;  // names from drug_table(); may be empty
  Finding finding;
  std::vector<std::string_view> plan_items;
  VitalsPattern vitals = VitalsPattern::kNormal;
};

std::span<const Drug> drug_table();
std::span<const Condition> condition_table();
// `s` with its first letter upper-cased, as a note starts a sentence with a condition's name.
inline std::string capitalized(std::string_view s) {
  std::string out(s);
  if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}

// The drug called `name`; throws model::ModelError if the tables disagree (a bug).
const Drug& find_drug(std::string_view name);

}  // namespace model::detail
