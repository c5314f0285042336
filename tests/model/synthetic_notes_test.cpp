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

    // Every prescription: "- name (class: class) dose frequency".
    for (const auto& line : lines_of(note.text)) {
      if (line.rfind("- ", 0) != 0 || line == "- none") continue;
      EXPECT_NE(line.find(" (class: "), std::string::npos) << line;
      EXPECT_NE(line.find(") "), std::string::npos) << line;
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

// The notes answer the questions: each stem is the notes' own wording cut before the fact, and
// every note that states the fact gives the question's answer, never a distractor: the class
// printed next to a drug, the service that manages a condition and the finding followed for it
// (the assessment), the drug the plan continues for a condition.
TEST(SyntheticMcq, NotesAnswerTheQuestions) {
  std::map<std::string, std::set<std::string>> drug_classes;  // drug -> classes seen
  std::map<std::string, std::set<std::string>> services;      // condition -> services seen
  std::map<std::string, std::set<std::string>> followed;      // condition -> "HR 112 bpm." ...
  std::map<std::string, std::set<std::string>> plan_drugs;    // condition -> plan lines' rest
  SyntheticNoteGenerator gen(2);
  for (int i = 0; i < 3000; ++i) {
    const auto note = gen.site_note(i % 6);
    const std::string service = line_with(note.text, "Service: ").substr(9);
    const std::string assessment = line_with(note.text, "Assessment: ").substr(12);
    const size_t managed = assessment.find(", managed by ");
    ASSERT_NE(managed, std::string::npos) << assessment;
    const std::string condition = assessment.substr(0, managed);
    const size_t after = managed + 13;
    services[condition].insert(assessment.substr(after, assessment.find(',', after) - after));
    EXPECT_EQ(assessment.substr(after, service.size()), service) << note.text;
    const size_t by = assessment.find("; followed by ");
    ASSERT_NE(by, std::string::npos) << assessment;
    followed[condition].insert(assessment.substr(by + 14));
    for (const auto& line : lines_of(note.text)) {
      if (line.rfind("- ", 0) == 0 && line != "- none") {
        const size_t open = line.find(" (class: ");
        ASSERT_NE(open, std::string::npos) << line;
        const size_t close = line.find(')', open);
        drug_classes[line.substr(2, open - 2)].insert(line.substr(open + 9, close - open - 9));
      }
      if (line.rfind("1. For ", 0) == 0) {
        const size_t comma = line.find(", ");
        const size_t verb = line.find(' ', comma + 2);
        plan_drugs[line.substr(7, comma - 7)].insert(line.substr(verb + 1));
      }
    }
  }
  const auto starts = [](const std::string& s, const std::string& prefix) {
    return s.rfind(prefix, 0) == 0;
  };
  int classes = 0, service_questions = 0, findings = 0, medications = 0;
  for (const auto& q : model::synthetic_mcq(1, model::synthetic_mcq_pool_size())) {
    const std::string& answer = q.options[static_cast<size_t>(q.answer)];
    const std::string kDrug = "Medications:\n- ",
                      kAssessment = "Assessment: ", kPlan = "Plan:\n1. For ";
    if (starts(q.question, kDrug)) {
      const std::string drug =
          q.question.substr(kDrug.size(), q.question.size() - kDrug.size() - 8);
      ASSERT_TRUE(q.question.ends_with(" (class:")) << q.question;
      const auto it = drug_classes.find(drug);
      if (it == drug_classes.end()) continue;  // a drug these 3000 notes did not prescribe
      EXPECT_EQ(it->second, std::set<std::string>{answer}) << q.question;
      ++classes;
    } else if (starts(q.question, kAssessment)) {
      const size_t managed = q.question.find(", managed by");
      const std::string condition =
          q.question.substr(kAssessment.size(), managed - kAssessment.size());
      ASSERT_TRUE(services.contains(condition)) << condition;
      if (q.question.ends_with(", managed by")) {
        EXPECT_EQ(services[condition], std::set<std::string>{answer}) << q.question;
        ++service_questions;
      } else {
        ASSERT_TRUE(q.question.ends_with("; followed by")) << q.question;
        for (const std::string& seen : followed[condition]) {
          EXPECT_TRUE(starts(seen, answer + " ")) << q.question << " / " << seen;
          for (const std::string& option : q.options) {
            if (option != answer) {
              EXPECT_FALSE(starts(seen, option + " ")) << option;
            }
          }
        }
        ++findings;
      }
    } else {
      ASSERT_TRUE(starts(q.question, kPlan)) << q.question;
      ASSERT_TRUE(q.question.ends_with(", continue")) << q.question;
      const std::string condition =
          q.question.substr(kPlan.size(), q.question.size() - kPlan.size() - 10);
      ASSERT_TRUE(plan_drugs.contains(condition)) << condition;
      bool answer_seen = false;
      for (const std::string& seen : plan_drugs[condition]) {
        answer_seen = answer_seen || starts(seen, answer + " ");
        for (const std::string& option : q.options) {
          if (option != answer) {
            EXPECT_FALSE(starts(seen, option + " ")) << option << " / " << seen;
          }
        }
      }
      EXPECT_TRUE(answer_seen) << q.question;
      ++medications;
    }
  }
  EXPECT_GT(classes, 35);
  EXPECT_EQ(service_questions, 30);
  EXPECT_EQ(findings, 30);
  EXPECT_GT(medications, 20);
}

}  // namespace
