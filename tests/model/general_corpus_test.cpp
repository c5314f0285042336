// The general-text corpus: determinism, bounds, plain ASCII of bounded length, variety of
// documents and layout, no clinical content, and speed.
#include "model/general_corpus.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "model/error.h"
#include "synthetic_vocabulary.h"

namespace {

using model::general_corpus;

std::string lowercase(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

TEST(GeneralCorpus, SameSeedSameBytesOtherSeedOtherDocuments) {
  const auto a = general_corpus(42, 300);
  const auto b = general_corpus(42, 300);
  const auto c = general_corpus(43, 300);
  ASSERT_EQ(a.size(), 300u);
  ASSERT_EQ(c.size(), 300u);
  EXPECT_EQ(a, b);
  int differing = 0;
  for (size_t i = 0; i < a.size(); ++i) differing += a[i] != c[i] ? 1 : 0;
  EXPECT_GE(differing, 295);
  // A shorter call is a prefix of a longer one.
  const auto prefix = general_corpus(42, 50);
  EXPECT_TRUE(std::equal(prefix.begin(), prefix.end(), a.begin()));
}

TEST(GeneralCorpus, CountBounds) {
  EXPECT_TRUE(general_corpus(1, 0).empty());
  EXPECT_EQ(general_corpus(1, 1).size(), 1u);
  EXPECT_THROW(general_corpus(1, -1), model::ModelError);
  EXPECT_THROW(general_corpus(1, model::kGeneralCorpusMaxCount + 1), model::ModelError);
  EXPECT_EQ(model::kGeneralCorpusMaxCount, 10'000'000);
}

TEST(GeneralCorpus, PlainAsciiWithinTheLengthRange) {
  for (uint64_t seed : {0u, 1u, 99u}) {
    for (const auto& doc : general_corpus(seed, 2000)) {
      EXPECT_GE(doc.size(), model::kGeneralDocumentMinBytes) << doc;
      EXPECT_LE(doc.size(), model::kGeneralDocumentMaxBytes) << doc;
      for (char ch : doc) {
        const auto u = static_cast<unsigned char>(ch);
        ASSERT_TRUE(u == '\n' || (u >= 0x20 && u < 0x7f)) << "byte " << int{u} << " in\n" << doc;
      }
      EXPECT_EQ(doc.back(), '\n') << doc;
      EXPECT_FALSE(std::isspace(static_cast<unsigned char>(doc.front()))) << doc;
      EXPECT_EQ(doc.find("\n\n\n"), std::string::npos) << doc;
    }
  }
}

TEST(GeneralCorpus, DocumentsAndWordsAreVaried) {
  const auto docs = general_corpus(5, 1000);
  std::set<std::string> first_lines;
  for (size_t i = 0; i < 200; ++i) first_lines.insert(docs[i].substr(0, docs[i].find('\n')));
  EXPECT_GE(first_lines.size(), 8u);
  EXPECT_GE(first_lines.size(), 100u);  // the headings name cities, dishes, products, ...

  EXPECT_EQ(std::set<std::string>(docs.begin(), docs.end()).size(), docs.size());

  std::set<std::string> words;
  for (const auto& doc : docs) {
    std::string word;
    for (char ch : doc + " ") {
      if (std::isalpha(static_cast<unsigned char>(ch))) {
        word += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      } else if (!word.empty()) {
        words.insert(word);
        word.clear();
      }
    }
  }
  EXPECT_GE(words.size(), 300u);
}

TEST(GeneralCorpus, EveryKindOfDocumentAndLayoutAppears) {
  const auto docs = general_corpus(11, 1000);
  // One marker per template: each must occur in some document.
  const std::vector<std::string> kinds = {"Ingredients:\n- ",
                                          "Weather report for ",
                                          "Travel itinerary: ",
                                          " league, round ",
                                          "Subtotal: ",
                                          "\n\n",
                                          "Subject: ",
                                          "School timetable - Class ",
                                          "Rating: ",
                                          "See also: ",
                                          "Q: ",
                                          "Meeting notes: ",
                                          "Bus line ",
                                          "Dear diary",
                                          "For rent: "};
  for (const auto& marker : kinds) {
    EXPECT_TRUE(std::any_of(docs.begin(), docs.end(), [&](const std::string& d) {
      return d.find(marker) != d.npos;
    })) << marker;
  }
  // The layout a base model should know: numbered and bulleted lists, labels, times, decimals,
  // percentages, parentheses, slashes, dates.
  const std::vector<std::regex> layouts = {std::regex("\n1\\. [A-Z]"),
                                           std::regex("\n- [a-z]"),
                                           std::regex("\n[A-Z][a-z]+: \\S"),
                                           std::regex("[0-2][0-9]:[0-5][0-9]"),
                                           std::regex("[0-9]\\.[0-9]"),
                                           std::regex("[0-9]+%"),
                                           std::regex("\\([^)]+\\)"),
                                           std::regex("[0-9]/[0-9]"),
                                           std::regex("[0-9]{4}-[0-9]{2}-[0-9]{2}"),
                                           std::regex("Q: [^\n]+\\?\nA: [^\n]+\\.\n"),
                                           std::regex("Temp -?[0-9]+\\.[0-9] C, wind [0-9]+ km/h")};
  for (size_t i = 0; i < layouts.size(); ++i) {
    EXPECT_TRUE(std::any_of(docs.begin(), docs.end(),
                            [&](const std::string& d) { return std::regex_search(d, layouts[i]); }))
        << "layout " << i;
  }
}

TEST(GeneralCorpus, DatesAndSumsAreRight) {
  const std::vector<std::string> weekdays = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                             "Thursday", "Friday", "Saturday"};
  const std::vector<std::string> months = {"January",   "February", "March",    "April",
                                           "May",       "June",     "July",     "August",
                                           "September", "October",  "November", "December"};
  const std::regex dated("(\\w+day), ([0-9]+) (\\w+) ([0-9]{4})\n");
  const std::regex sum("Q: What is ([0-9]+) \\+ ([0-9]+)\\?\nA: ([0-9]+)\\.");
  int dates = 0, sums = 0;
  for (const auto& doc : general_corpus(17, 3000)) {
    std::smatch m;
    if (std::regex_search(doc, m, dated)) {
      const auto month = std::find(months.begin(), months.end(), m[3].str()) - months.begin();
      ASSERT_LT(month, 12) << doc;
      const std::chrono::year_month_day ymd{
          std::chrono::year{std::stoi(m[4].str())},
          std::chrono::month{static_cast<unsigned>(month + 1)},
          std::chrono::day{static_cast<unsigned>(std::stoi(m[2].str()))}};
      const std::chrono::weekday wd{std::chrono::sys_days{ymd}};
      EXPECT_EQ(m[1].str(), weekdays[wd.c_encoding()]) << doc;
      ++dates;
    }
    for (auto it = std::sregex_iterator(doc.begin(), doc.end(), sum); it != std::sregex_iterator();
         ++it) {
      EXPECT_EQ(std::stoi((*it)[1].str()) + std::stoi((*it)[2].str()), std::stoi((*it)[3].str()))
          << doc;
      ++sums;
    }
  }
  EXPECT_GT(dates, 50);
  EXPECT_GT(sums, 50);
}

TEST(GeneralCorpus, NoClinicalContent) {
  // Headings of the clinical notes (case-sensitive).
  const std::vector<std::string> headings = {
      "History:", "Medications:", "Assessment:", "Plan:", "Vitals:", "Service:", "Encounter:"};
  // Words of the clinical domain (lower case, matched anywhere in the lowercased text).
  std::vector<std::string> banned = {
      "patient", "diagnos", "symptom", "medic",     "hospital", "clinic",   "doctor", "nurse",
      "pharmac", "disease", "therap",  "treatment", "prescri",  "mmhg",     "bpm",    "spo2",
      "vital",   "dosage",  "blood",   "surgery",   "illness",  "follow-up"};
  size_t clinical_words = 0;
  for (const auto& drug : model::detail::drug_table()) {
    banned.push_back(lowercase(std::string(drug.name)));
    banned.push_back(lowercase(std::string(drug.drug_class)));
    clinical_words += 2;
  }
  for (const auto& condition : model::detail::condition_table()) {
    banned.push_back(lowercase(std::string(condition.name)));
    banned.push_back(lowercase(std::string(condition.finding.name)));
    clinical_words += 2;
    for (auto symptom : condition.symptoms) {
      banned.push_back(lowercase(std::string(symptom)));
      ++clinical_words;
    }
  }
  ASSERT_GE(clinical_words, 100u);  // the tables were read
  for (const auto& doc : general_corpus(3, 3000)) {
    for (const auto& h : headings) EXPECT_EQ(doc.find(h), std::string::npos) << h << " in\n" << doc;
    const std::string lower = lowercase(doc);
    for (const auto& word : banned) {
      EXPECT_EQ(lower.find(word), std::string::npos) << "'" << word << "' in\n" << doc;
    }
  }
}

TEST(GeneralCorpus, TwentyThousandDocumentsInWellUnderASecond) {
  const auto start = std::chrono::steady_clock::now();
  const auto docs = general_corpus(7, 20000);
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  size_t bytes = 0;
  for (const auto& d : docs) bytes += d.size();
  EXPECT_EQ(docs.size(), 20000u);
  EXPECT_GT(bytes, 20000u * model::kGeneralDocumentMinBytes);
  EXPECT_LT(elapsed.count(), 1.0) << bytes << " bytes";
}

}  // namespace
