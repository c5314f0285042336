// Synthetic clinical notes and multiple-choice questions: the test data of `fedctl make-data`.
//
// Every note is generated from a templated grammar over fixed vocabularies (conditions,
// symptoms, drugs with their classes and doses, laboratory findings, vital signs drawn from
// plausible ranges, ages, plans). Nothing comes from real patients. A note reads like this
// (the sections are always History, Vitals, Medications, Assessment, Plan, in that order):
//
//   Service: Cardiology
//   Encounter: outpatient follow-up
//
//   History: 67-year-old man with a history of atrial fibrillation and hyperlipidemia
//   presenting with palpitations and lightheadedness for 2 weeks. Former smoker.
//
//   Vitals: BP 138/84 mmHg, HR 112 bpm, RR 16/min, Temp 36.8 C, SpO2 97% on room air.
//
//   Medications:
//   - apixaban (class: direct oral anticoagulant) 5 mg twice daily
//   ...
//
//   Assessment: Atrial fibrillation, managed by Cardiology, stable; followed by HR 112 bpm.
//   Hyperlipidemia, managed by Endocrinology, not at goal.
//
//   Plan:
//   1. For atrial fibrillation, continue apixaban 5 mg twice daily.
//   ...
//
// Sites are non-IID: site k draws most of its notes (kHomeSpecialtyShare) from specialty
// k mod kSpecialtyCount and spreads the rest evenly over the other specialties, so every site
// still sees every specialty.
//
// Randomness: a seeded std::mt19937_64 with integer arithmetic of our own on its raw output
// (not std::uniform_int_distribution, whose results differ between standard libraries), so the
// same seed gives byte-identical data everywhere. This is test data: the seed is not a secret
// and the generator is not meant to be unpredictable.
#pragma once

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "model/dataset.h"

namespace model {

enum class Specialty {
  kCardiology,
  kEndocrinology,
  kPulmonology,
  kNephrology,
  kNeurology,
  kGastroenterology,
};
inline constexpr int kSpecialtyCount = 6;

// "Cardiology", "Endocrinology", ...: the spelling of a note's "Service:" line.
std::string_view specialty_name(Specialty specialty);

// Share of a site's notes drawn from its home specialty; the rest is split evenly.
inline constexpr double kHomeSpecialtyShare = 0.6;

// The probability of each specialty (indexed by the enum value) at site `site`.
std::vector<double> site_specialty_weights(int site);

struct SyntheticNote {
  Specialty specialty = Specialty::kCardiology;
  std::string text;
};

// A deterministic stream of notes.
class SyntheticNoteGenerator {
 public:
  explicit SyntheticNoteGenerator(uint64_t seed) : engine_(seed) {}

  // One note of `specialty`.
  SyntheticNote note(Specialty specialty);
  // One note of a specialty drawn from site_specialty_weights(site).
  SyntheticNote site_note(int site);

 private:
  std::mt19937_64 engine_;
};

// `count` distinct questions drawn from the generator's vocabularies, each answerable from the
// notes: a drug's class (printed next to every prescription), the service that manages a
// condition and the finding followed for it (the assessment), a medication used for a condition
// (the plan's first item). Each stem is written the way the notes state the fact, cut just before
// it ("Medications:\n- apixaban (class:", "Assessment: Atrial fibrillation, managed by", ...,
// "Plan:\n1. For atrial fibrillation, continue"), so that a small language model is asked what
// the notes taught it rather than to read an English question; options are shuffled so the
// answer index is uniform. Throws model::ModelError when `count` is negative or
// exceeds synthetic_mcq_pool_size().
std::vector<McqQuestion> synthetic_mcq(uint64_t seed, int64_t count);
int64_t synthetic_mcq_pool_size();

struct SyntheticDataOptions {
  int sites = 3;
  int64_t records = 1000;         // notes per site, held-out ones included
  double heldout_fraction = 0.1;  // round(records * heldout_fraction) notes per site held out
  int64_t mcq_count = 100;
  uint64_t seed = 0;
};

// What write_synthetic_dataset wrote for one site.
struct SyntheticSiteSummary {
  std::filesystem::path train_file;
  std::filesystem::path heldout_file;
  int64_t train_records = 0;
  int64_t heldout_records = 0;
  std::vector<int64_t> specialty_counts;  // over all of the site's notes, by enum value
};

// Writes, creating `dir` if needed:
//   site{k}.jsonl, site{k}.heldout.jsonl   for k in [0, sites): {"text": note} per line (the
//                                          layout Hugging Face `datasets` reads as JSON lines);
//                                          the held-out file is empty when none is held out
//   mcq.jsonl                              {"question", "options", "answer"} per line
// Each file goes through a temporary file renamed into place. Throws model::ModelError for bad
// options (sites outside [1, 1000], records outside [1, 10^7], heldout_fraction outside
// [0, 1), a split that leaves no training note, a bad mcq_count) or an I/O failure.
std::vector<SyntheticSiteSummary> write_synthetic_dataset(const std::filesystem::path& dir,
                                                          const SyntheticDataOptions& options);

}  // namespace model
