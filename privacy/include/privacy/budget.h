// A participant's privacy budget: an (epsilon_max, delta) limit and the phases spent against it.
//
// Before a round the participant (and the coordinator, which keeps the same figures) asks
// whether the planned phase fits; after the round it commits the phase; the ledger is persisted
// atomically after each commit so that a crash never loses or double-counts spent privacy.
//
//   privacy::Budget budget(/*epsilon_max=*/8.0, /*delta=*/1e-5);
//   privacy::Phase round{.q = 0.01, .sigma = 1.0, .steps = 200};
//   std::string why;
//   if (budget.would_exceed(round, &why)) { refuse(why); }
//   budget.commit(round);
//   budget.save("budget.json");
//
// File format: one JSON object {"format": "fedlora-privacy-budget", "version": 1,
// "epsilon_max", "delta", "accountant": {...}, "checksum": "fnv1a64:<16 hex digits>"}, the
// checksum covering the compact dump of every other field, so that a truncated or corrupted file
// is detected on load instead of silently resetting the budget.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "privacy/accountant.h"
#include "privacy/error.h"

namespace privacy {

class Budget {
 public:
  // A fresh budget; throws PrivacyError unless epsilon_max is finite and > 0 and delta is in (0, 1).
  Budget(double epsilon_max, double delta);
  // A budget with phases already spent (e.g. restored from elsewhere).
  Budget(double epsilon_max, double delta, RdpAccountant accountant);

  double epsilon_max() const { return epsilon_max_; }
  double delta() const { return delta_; }
  const RdpAccountant& accountant() const { return accountant_; }

  // epsilon spent so far at delta() (0 before the first commit).
  double spent() const;
  // epsilon_max() - spent(), never below 0.
  double remaining() const;
  // epsilon that would be spent after also running `planned`.
  double epsilon_after(const Phase& planned) const;

  // True when running `planned` would take the spent epsilon above epsilon_max(). When `why`
  // is given it receives a one-line explanation either way, e.g. "phase (q=0.01, sigma=1,
  // steps=200) would raise epsilon from 1.23 to 9.87, above the limit 8 at delta=1e-05".
  bool would_exceed(const Phase& planned, std::string* why = nullptr) const;

  // Records `phase` as spent; throws PrivacyError (with would_exceed's explanation) and records nothing
  // if it would exceed the limit.
  void commit(const Phase& phase);

  // Writes the budget to `file` atomically, with mode 0600, through base::write_file_atomic:
  // `file`.tmp, fsync, rename over `file`, fsync of the directory. Throws PrivacyError on any I/O
  // failure (the previous file, if any, is then left intact).
  void save(const std::filesystem::path& file) const;
  // Reads a file written by save(); throws PrivacyError naming the file for a missing, truncated,
  // corrupt or invalid one.
  static Budget load(const std::filesystem::path& file);

  // The file contents save() writes, and their parser (throws PrivacyError like load()).
  std::string to_json() const;
  static Budget from_json(std::string_view json);

 private:
  double epsilon_max_;
  double delta_;
  RdpAccountant accountant_;
};

}  // namespace privacy
