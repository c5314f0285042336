// fedctl make-data: synthetic clinical notes per site and multiple-choice questions (library:
// model, synthetic_notes.h).
#include <cstdint>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "cli.h"
#include "model/synthetic_notes.h"

namespace fedctl {

int cmd_make_data(int argc, char** argv) {
  std::string out;
  int64_t sites = 0, records = 0, mcq = 0;
  uint64_t seed = 0;
  double heldout = 0;
  po::options_description options("make-data options");
  options.add_options()("out", po::value(&out)->required(),
                        "directory to write (created if missing)")(
      "sites", po::value(&sites)->required(), "number of sites (1 to 1000)")(
      "records", po::value(&records)->required(),
      "notes per site, held-out ones included (1 to 10000000)")(
      "seed", po::value(&seed)->default_value(0),
      "seed of the generator (test data: not a secret)")(
      "heldout-fraction", po::value(&heldout)->default_value(0.1, "0.1"),
      "share of each site's notes written to site{k}.heldout.jsonl, in [0, 1)")(
      "mcq", po::value(&mcq)->default_value(100), "multiple-choice questions in mcq.jsonl");
  return run_command(
      "make-data", "--sites S --records R --out DIR [--seed N] [--heldout-fraction F] [--mcq Q]",
      options, argc, argv, [&](const po::variables_map&) {
        if (sites < 1 || sites > 1000) {
          throw std::invalid_argument("--sites must be between 1 and 1000, got " +
                                      std::to_string(sites));
        }
        if (records < 1 || records > 10'000'000) {
          throw std::invalid_argument("--records must be between 1 and 10000000, got " +
                                      std::to_string(records));
        }
        if (!(heldout >= 0.0 && heldout < 1.0)) {
          throw std::invalid_argument("--heldout-fraction must be in [0, 1), got " +
                                      std::to_string(heldout));
        }
        if (mcq < 0 || mcq > model::synthetic_mcq_pool_size()) {
          throw std::invalid_argument("--mcq must be between 0 and " +
                                      std::to_string(model::synthetic_mcq_pool_size()) + ", got " +
                                      std::to_string(mcq));
        }
        model::SyntheticDataOptions o;
        o.sites = static_cast<int>(sites);
        o.records = records;
        o.heldout_fraction = heldout;
        o.mcq_count = mcq;
        o.seed = seed;
        const auto summaries = model::write_synthetic_dataset(out, o);

        nlohmann::json report = {{"out", out}, {"seed", seed}, {"mcq", mcq}};
        for (const auto& s : summaries) {
          nlohmann::json mix = nlohmann::json::object();
          for (int k = 0; k < model::kSpecialtyCount; ++k) {
            mix[std::string(model::specialty_name(static_cast<model::Specialty>(k)))] =
                s.specialty_counts[static_cast<size_t>(k)];
          }
          report["sites"].push_back({{"train", s.train_file.string()},
                                     {"heldout", s.heldout_file.string()},
                                     {"train_records", s.train_records},
                                     {"heldout_records", s.heldout_records},
                                     {"specialties", mix}});
        }
        std::cout << report.dump(2) << "\n";
        return 0;
      });
}

}  // namespace fedctl
