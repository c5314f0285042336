// A synthetic general-text English corpus: the pretraining data of a tiny byte-level base model.
//
// Every document is generated from one of many templates over fixed word lists, all from
// everyday, non-medical domains: recipes, weather reports, travel itineraries, sports results,
// shop receipts, short news, letters and e-mails, school timetables, product reviews,
// encyclopedia-like facts, question-and-answer sheets, meeting notes, bus timetables, diary
// entries and flat listings. The documents mix prose with semi-structured layout ("Label:
// value" lines, numbered and bulleted lists, times, dates, prices, percentages and units), so a
// model trained on them learns English spelling, punctuation, numbers and layout in general,
// and nothing of the clinical domain (no drugs, conditions, vital signs or note sections):
// fine-tuning on the synthetic clinical notes (synthetic_notes.h) then meets a new domain.
// A document reads like this:
//
//   Weather report for Lisbon, Tuesday 14 May
//
//   Morning: light rain, Temp 12.5 C, wind 14 km/h from the NW.
//   Afternoon: sunny spells, Temp 18.0 C, wind 9 km/h from the W.
//   Humidity: 64%
//   Rain: 3.2 mm
//
//   Outlook: drier and warmer towards the weekend.
//
// Randomness: a std::mt19937_64 seeded from `seed`, with integer arithmetic of our own on its
// raw output (as the clinical generator), so the same seed gives byte-identical documents on
// every platform. This is test data: the seed is not a secret.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace model {

// The shortest and longest document general_corpus produces, in bytes.
inline constexpr size_t kGeneralDocumentMinBytes = 200;
inline constexpr size_t kGeneralDocumentMaxBytes = 700;
// The most documents one call produces.
inline constexpr int64_t kGeneralCorpusMaxCount = 10'000'000;
// Bumped whenever the documents change: pretrained base models cached by recipe
// (pretrained_base.h) name it in their recipe, so a changed corpus never reuses a stale model.
inline constexpr int kGeneralCorpusVersion = 1;

// A deterministic stream of `count` general (non-clinical) English documents, each plain
// printable ASCII (with '\n' line breaks) of kGeneralDocumentMinBytes to
// kGeneralDocumentMaxBytes bytes. The first n documents of a longer call equal those of a call
// with count n. Throws model::ModelError when `count` is negative or exceeds
// kGeneralCorpusMaxCount.
std::vector<std::string> general_corpus(uint64_t seed, int64_t count);

}  // namespace model
