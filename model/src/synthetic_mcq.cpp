// The multiple-choice questions of synthetic_notes.h.
#include <algorithm>
#include <set>
#include <string>

#include "model/error.h"
#include "model/synthetic_notes.h"
#include "seeded_random.h"
#include "synthetic_vocabulary.h"

namespace model {
namespace {

using detail::capitalized;
using detail::Condition;
using detail::uniform_below;

constexpr int kOptions = 4;

// The question with `correct` and three of `distractors` (distinct, never equal to `correct`)
// in a random order.
McqQuestion make_question(std::mt19937_64& engine, std::string question, std::string correct,
                          std::vector<std::string> distractors) {
  std::sort(distractors.begin(), distractors.end());
  distractors.erase(std::unique(distractors.begin(), distractors.end()), distractors.end());
  std::erase(distractors, correct);
  if (distractors.size() < kOptions - 1) {
    throw ModelError("synthetic questions: too few distractors for '" + question + "'");
  }
  for (size_t i = 0; i < kOptions - 1; ++i) {  // partial Fisher-Yates
    std::swap(distractors[i], distractors[i + uniform_below(engine, distractors.size() - i)]);
  }
  McqQuestion q{std::move(question), {std::move(correct)}, 0};
  q.options.insert(q.options.end(), distractors.begin(), distractors.begin() + kOptions - 1);
  const auto answer = uniform_below(engine, kOptions);
  std::swap(q.options[0], q.options[answer]);
  q.answer = static_cast<int64_t>(answer);
  return q;
}

// Drugs a note of `specialty` can prescribe for a condition of that specialty, and their classes.
void specialty_drugs(Specialty specialty, std::set<std::string>& names,
                     std::set<std::string>& classes) {
  for (const auto& c : detail::condition_table()) {
    if (c.specialty != specialty) continue;
    for (auto d : c.drugs) {
      names.emplace(d);
      classes.emplace(detail::find_drug(d).drug_class);
    }
  }
}

std::vector<McqQuestion> question_pool(std::mt19937_64& engine) {
  std::vector<McqQuestion> pool;
  std::vector<std::string> classes;
  for (const auto& d : detail::drug_table()) classes.emplace_back(d.drug_class);
  for (const auto& d : detail::drug_table()) {
    pool.push_back(make_question(engine, "Medications:\n- " + std::string(d.name) + " (class:",
                                 std::string(d.drug_class), classes));
  }
  for (const Condition& c : detail::condition_table()) {
    const std::string name(c.name);
    std::vector<std::string> services;
    for (int s = 0; s < kSpecialtyCount; ++s) {
      services.emplace_back(specialty_name(static_cast<Specialty>(s)));
    }
    const std::string service(specialty_name(c.specialty));
    const std::string assessment = "Assessment: " + capitalized(name) + ", managed by";
    pool.push_back(make_question(engine, assessment, service, services));

    std::vector<std::string> findings;
    for (const Condition& other : detail::condition_table()) {
      if (other.specialty != c.specialty) findings.emplace_back(other.finding.name);
    }
    pool.push_back(make_question(engine, assessment + " " + service + ", stable; followed by",
                                 std::string(c.finding.name), findings));

    if (c.drugs.empty()) continue;
    // Distractors: drugs that no condition of this specialty uses, of classes none of them has.
    std::set<std::string> own_names, own_classes;
    specialty_drugs(c.specialty, own_names, own_classes);
    for (auto d : c.drugs) own_classes.emplace(detail::find_drug(d).drug_class);
    std::vector<std::string> distractors;
    for (const auto& d : detail::drug_table()) {
      if (!own_names.contains(std::string(d.name)) &&
          !own_classes.contains(std::string(d.drug_class))) {
        distractors.emplace_back(d.name);
      }
    }
    const std::string correct(c.drugs[uniform_below(engine, c.drugs.size())]);
    pool.push_back(
        make_question(engine, "Plan:\n1. For " + name + ", continue", correct, distractors));
  }
  return pool;
}

}  // namespace

int64_t synthetic_mcq_pool_size() {
  std::mt19937_64 engine(0);
  return static_cast<int64_t>(question_pool(engine).size());
}

std::vector<McqQuestion> synthetic_mcq(uint64_t seed, int64_t count) {
  std::mt19937_64 engine(seed);
  std::vector<McqQuestion> pool = question_pool(engine);
  if (count < 0 || count > static_cast<int64_t>(pool.size())) {
    throw ModelError("synthetic questions: count " + std::to_string(count) + " outside [0, " +
                     std::to_string(pool.size()) + "]");
  }
  for (size_t i = 0; i < static_cast<size_t>(count); ++i) {
    std::swap(pool[i], pool[i + uniform_below(engine, pool.size() - i)]);
  }
  pool.resize(static_cast<size_t>(count));
  return pool;
}

}  // namespace model
