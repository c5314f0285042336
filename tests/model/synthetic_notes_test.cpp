// The synthetic clinical notes and questions: structure, plausibility, determinism, non-IID
// sites, and questions that the notes answer.
#include "model/synthetic_notes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <numeric>
#include <set>
#include <sstream>
#include <string>

#include "model/dataset.h"
#include "model/error.h"
#include "test_util.h"

namespace {

using model::Specialty;
using model::SyntheticNoteGenerator;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The line starting with `prefix`, or "".
std::string line_with(const std::string& text, const std::string& prefix) {
  for (const auto& line : lines_of(text)) {
    if (line.rfind(prefix, 0) == 0) return line;
  }
  return "";
}

TEST(SyntheticNotes, SameSeedSameNotesOtherSeedOtherNotes) {
  SyntheticNoteGenerator a(42), b(42), c(43);
  int differing = 0;
  for (int i = 0; i < 50; ++i) {
    const auto na = a.site_note(i % 4);
    const auto nb = b.site_note(i % 4);
    EXPECT_EQ(na.text, nb.text);
    EXPECT_EQ(na.specialty, nb.specialty);
    if (c.site_note(i % 4).text != na.text) ++differing;
  }
  EXPECT_EQ(differing, 50);
}

TEST(SyntheticNotes, SectionsInOrderAndServiceMatchesSpecialty) {
  SyntheticNoteGenerator gen(1);
  for (int s = 0; s < model::kSpecialtyCount; ++s) {
    const auto specialty = static_cast<Specialty>(s);
    for (int i = 0; i < 200; ++i) {  // many draws, so every condition of the table is used
      const auto note = gen.note(specialty);
      EXPECT_EQ(note.specialty, specialty);
      const std::string& t = note.text;
      EXPECT_EQ(t.rfind("Service: " + std::string(model::specialty_name(specialty)) + "\n", 0), 0u)
          << t;
      size_t at = 0;
      for (const char* section :
           {"\nHistory: ", "\nVitals: ", "\nMedications:\n", "\nAssessment: ", "\nPlan:\n1. "}) {
        const size_t next = t.find(section, at);
        ASSERT_NE(next, std::string::npos) << section << " missing in\n" << t;
        at = next + 1;
      }
      EXPECT_NE(t.find(". Follow up in "), std::string::npos) << t;
    }
  }
}

TEST(SyntheticNotes, VitalsAgesAndMedicationsArePlausible) {
  SyntheticNoteGenerator gen(9);
  std::set<std::string> drugs;
  for (int i = 0; i < 600; ++i) {
    const auto note = gen.site_note(i % 6);
    const std::string vitals = line_with(note.text, "Vitals: ");
    int sbp = 0, dbp = 0, hr = 0, rr = 0, spo2 = 0;
    double temp = 0;
    ASSERT_EQ(std::sscanf(vitals.c_str(),
                          "Vitals: BP %d/%d mmHg, HR %d bpm, RR %d/min, Temp %lf C, SpO2 %d%%",
                          &sbp, &dbp, &hr, &rr, &temp, &spo2),
              6)
        << vitals;
    EXPECT_TRUE(sbp >= 100 && sbp <= 190) << vitals;
    EXPECT_TRUE(dbp >= 60 && dbp <= 110 && dbp < sbp) << vitals;
    EXPECT_TRUE(hr >= 50 && hr <= 140) << vitals;
    EXPECT_TRUE(rr >= 10 && rr <= 28) << vitals;
    EXPECT_TRUE(temp >= 36.0 && temp <= 40.0) << vitals;
    EXPECT_TRUE(spo2 >= 85 && spo2 <= 100) << vitals;

    int age = 0;
    const std::string history = line_with(note.text, "History: ");
    ASSERT_EQ(std::sscanf(history.c_str(), "History: %d-year-old", &age), 1) << history;
    EXPECT_TRUE(age >= 18 && age <= 95) << history;

    // Every prescription: "- name dose frequency (class)".
    for (const auto& line : lines_of(note.text)) {
      if (line.rfind("- ", 0) != 0 || line == "- none") continue;
      EXPECT_EQ(line.back(), ')') << line;
      EXPECT_NE(line.find(" ("), std::string::npos) << line;
      drugs.insert(line.substr(2, line.find(' ', 2) - 2));
    }
  }
  EXPECT_GT(drugs.size(), 30u);  // the vocabulary is actually used, not one template
}

TEST(SyntheticNotes, SiteWeightsFavourTheHomeSpecialty) {
  for (int site = 0; site < 8; ++site) {
    const auto w = model::site_specialty_weights(site);
    ASSERT_EQ(w.size(), size_t{model::kSpecialtyCount});
    EXPECT_NEAR(std::accumulate(w.begin(), w.end(), 0.0), 1.0, 1e-12);
    EXPECT_DOUBLE_EQ(w[static_cast<size_t>(site % 6)], model::kHomeSpecialtyShare);
    for (double x : w) EXPECT_GT(x, 0.05);
  }
  // Sampled frequencies follow the weights: 6000 notes, home share 0.6 (sd 0.0063).
  SyntheticNoteGenerator gen(3);
  std::vector<int> counts(model::kSpecialtyCount, 0);
  for (int i = 0; i < 6000; ++i) ++counts[static_cast<size_t>(gen.site_note(1).specialty)];
  EXPECT_NEAR(counts[1] / 6000.0, 0.6, 0.03);
  for (int s : {0, 2, 3, 4, 5}) EXPECT_NEAR(counts[static_cast<size_t>(s)] / 6000.0, 0.08, 0.02);
}

TEST(SyntheticNotes, WritesDeterministicNonIidSites) {
  model_test::TempDir dir;
  model::SyntheticDataOptions o;
  o.sites = 3;
  o.records = 400;
  o.heldout_fraction = 0.25;
  o.mcq_count = 20;
  o.seed = 11;
  const auto summaries = model::write_synthetic_dataset(dir / "a", o);
  model::write_synthetic_dataset(dir / "b", o);
  o.seed = 12;
  model::write_synthetic_dataset(dir / "c", o);

  ASSERT_EQ(summaries.size(), 3u);
  std::vector<std::map<std::string, int>> mix(3);
  for (int k = 0; k < 3; ++k) {
    const std::string train = "site" + std::to_string(k) + ".jsonl";
    const std::string held = "site" + std::to_string(k) + ".heldout.jsonl";
    for (const auto& f : {train, held}) {
      const std::string bytes = test_support::slurp(dir / "a" / f);
      EXPECT_EQ(bytes, test_support::slurp(dir / "b" / f)) << f;
      EXPECT_NE(bytes, test_support::slurp(dir / "c" / f)) << f;
    }
    const auto texts = model::read_jsonl_texts(dir / "a" / train);
    const auto held_texts = model::read_jsonl_texts(dir / "a" / held);
    EXPECT_EQ(texts.size(), 300u);
    EXPECT_EQ(held_texts.size(), 100u);
    EXPECT_EQ(summaries[k].train_records, 300);
    EXPECT_EQ(summaries[k].heldout_records, 100);
    for (const auto* set : {&texts, &held_texts}) {
      for (const auto& t : *set) ++mix[k][line_with(t, "Service: ").substr(9)];
    }
    EXPECT_EQ(std::accumulate(summaries[k].specialty_counts.begin(),
                              summaries[k].specialty_counts.end(), int64_t{0}),
              400);
  }
  // Each site is dominated by its own specialty, yet sees the others too.
  const char* home[] = {"Cardiology", "Endocrinology", "Pulmonology"};
  for (int k = 0; k < 3; ++k) {
    EXPECT_GT(mix[k][home[k]], 200) << home[k];
    EXPECT_EQ(mix[k].size(), size_t{model::kSpecialtyCount});
    EXPECT_EQ(mix[k][home[k]], summaries[k].specialty_counts[static_cast<size_t>(k)]);
    for (int other = 0; other < 3; ++other) {
      if (other != k) {
        EXPECT_LT(mix[k][home[other]], 80) << k << " " << home[other];
      }
    }
  }
  EXPECT_EQ(test_support::slurp(dir / "a" / "mcq.jsonl"),
            test_support::slurp(dir / "b" / "mcq.jsonl"));
  EXPECT_EQ(model::read_mcq_jsonl(dir / "a" / "mcq.jsonl").size(), 20u);
}

TEST(SyntheticNotes, RefusesBadOptions) {
  model_test::TempDir dir;
  model::SyntheticDataOptions o;
  o.sites = 0;
  EXPECT_THROW(model::write_synthetic_dataset(dir / "x", o), model::ModelError);
  o = {};
  o.records = 0;
  EXPECT_THROW(model::write_synthetic_dataset(dir / "x", o), model::ModelError);
  o = {};
  o.heldout_fraction = 1.0;
  EXPECT_THROW(model::write_synthetic_dataset(dir / "x", o), model::ModelError);
  o = {};
  o.records = 2;
  o.heldout_fraction = 0.9;  // rounds to 2 of 2 held out
  EXPECT_THROW(model::write_synthetic_dataset(dir / "x", o), model::ModelError);
  o = {};
  o.mcq_count = model::synthetic_mcq_pool_size() + 1;
  EXPECT_THROW(model::write_synthetic_dataset(dir / "x", o), model::ModelError);
  EXPECT_FALSE(std::filesystem::exists(dir / "x"));
}

TEST(SyntheticMcq, WellFormedDistinctAndDeterministic) {
  const int64_t pool = model::synthetic_mcq_pool_size();
  ASSERT_GE(pool, 100);
  const auto qs = model::synthetic_mcq(5, pool);
  EXPECT_EQ(qs, model::synthetic_mcq(5, pool));
  EXPECT_NE(qs, model::synthetic_mcq(6, pool));
  std::set<std::string> questions;
  std::vector<int> answers(4, 0);
  for (const auto& q : qs) {
    EXPECT_TRUE(questions.insert(q.question).second) << q.question;
    ASSERT_EQ(q.options.size(), 4u);
    EXPECT_EQ(std::set<std::string>(q.options.begin(), q.options.end()).size(), 4u);
    ASSERT_TRUE(q.answer >= 0 && q.answer < 4);
    ++answers[static_cast<size_t>(q.answer)];
  }
  for (int n : answers) EXPECT_GT(n, pool / 8);  // the right answer is not always first
  EXPECT_EQ(model::synthetic_mcq(5, 0).size(), 0u);
  EXPECT_THROW(model::synthetic_mcq(5, pool + 1), model::ModelError);
  EXPECT_THROW(model::synthetic_mcq(5, -1), model::ModelError);
}

// The notes answer the questions: the class printed next to a drug and the service of the
// notes whose assessment starts with a condition are the questions' answers.
TEST(SyntheticMcq, NotesAnswerTheQuestions) {
  // drug (first word of its name) -> classes seen
  std::map<std::string, std::set<std::string>> drug_classes;
  std::map<std::string, std::set<std::string>> services;  // condition -> services seen
  SyntheticNoteGenerator gen(2);
  for (int i = 0; i < 3000; ++i) {
    const auto note = gen.site_note(i % 6);
    const std::string service = line_with(note.text, "Service: ").substr(9);
    const std::string assessment = line_with(note.text, "Assessment: ").substr(12);
    // Keyed by the capitalized name, as the assessment prints it.
    services[assessment.substr(0, assessment.find(','))].insert(service);
    for (const auto& line : lines_of(note.text)) {
      if (line.rfind("- ", 0) != 0 || line == "- none") continue;
      const size_t open = line.rfind(" (");
      drug_classes[line.substr(2, line.find(' ', 2) - 2)].insert(
          line.substr(open + 2, line.size() - open - 3));
    }
  }
  int checked_classes = 0, checked_services = 0;
  for (const auto& q : model::synthetic_mcq(1, model::synthetic_mcq_pool_size())) {
    const std::string& answer = q.options[static_cast<size_t>(q.answer)];
    const std::string kClass = "Which drug class does ", kService = "Which service manages ";
    if (q.question.rfind(kClass, 0) == 0) {
      const std::string drug =
          q.question.substr(kClass.size(), q.question.find(" belong") - kClass.size());
      const auto it = drug_classes.find(drug.substr(0, drug.find(' ')));
      if (it == drug_classes.end()) continue;
      EXPECT_EQ(it->second, std::set<std::string>{answer}) << q.question;
      ++checked_classes;
    } else if (q.question.rfind(kService, 0) == 0) {
      std::string condition =
          q.question.substr(kService.size(), q.question.size() - kService.size() - 1);
      condition[0] = static_cast<char>(std::toupper(condition[0]));
      ASSERT_TRUE(services.contains(condition)) << condition;
      EXPECT_EQ(services[condition], std::set<std::string>{answer}) << q.question;
      ++checked_services;
    }
  }
  EXPECT_GT(checked_classes, 35);
  EXPECT_EQ(checked_services, 30);
}

}  // namespace
