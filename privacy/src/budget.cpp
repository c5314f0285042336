#include "privacy/budget.h"

#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "base/atomic_file.h"
#include "base/error.h"
#include "format.h"

namespace privacy {
namespace {

constexpr const char* kFormat = "fedlora-privacy-budget";
constexpr int kVersion = 1;
constexpr const char* kChecksumPrefix = "fnv1a64:";

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// FNV-1a, 64 bits: detects accidental corruption (not tampering).
std::string checksum(std::string_view bytes) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%016" PRIx64, kChecksumPrefix, h);
  return buf;
}

std::string errno_text() {
  return std::strerror(errno);
}

void check_limit(double epsilon_max, double delta) {
  if (!(epsilon_max > 0 && std::isfinite(epsilon_max))) {
    throw PrivacyError("budget epsilon_max must be finite and > 0, got " + num(epsilon_max));
  }
  check_delta(delta);
}

std::string describe(const Phase& p) {
  return "phase (q=" + internal::format_number(p.q) +
         ", sigma=" + internal::format_number(p.sigma) + ", steps=" + std::to_string(p.steps) + ")";
}

}  // namespace

Budget::Budget(double epsilon_max, double delta) : Budget(epsilon_max, delta, RdpAccountant()) {}

Budget::Budget(double epsilon_max, double delta, RdpAccountant accountant)
    : epsilon_max_(epsilon_max), delta_(delta), accountant_(std::move(accountant)) {
  check_limit(epsilon_max_, delta_);
}

double Budget::spent() const {
  return accountant_.spent(delta_).epsilon;
}

double Budget::remaining() const {
  const double left = epsilon_max_ - spent();
  return left > 0 ? left : 0;
}

double Budget::epsilon_after(const Phase& planned) const {
  return accountant_.spent_with(planned, delta_).epsilon;
}

bool Budget::would_exceed(const Phase& planned, std::string* why) const {
  const double before = spent();
  const double after = epsilon_after(planned);
  const bool exceeds = !(after <= epsilon_max_);
  if (why != nullptr) {
    *why = describe(planned) + " would raise epsilon from " + num(before) + " to " + num(after) +
           (exceeds ? ", above" : ", within") + " the limit " + num(epsilon_max_) +
           " at delta=" + num(delta_);
  }
  return exceeds;
}

void Budget::commit(const Phase& phase) {
  std::string why;
  if (would_exceed(phase, &why)) throw PrivacyError("privacy budget exceeded: " + why);
  accountant_.add(phase);
}

std::string Budget::to_json() const {
  nlohmann::json j = {{"format", kFormat},
                      {"version", kVersion},
                      {"epsilon_max", epsilon_max_},
                      {"delta", delta_},
                      {"accountant", nlohmann::json::parse(accountant_.to_json())}};
  j["checksum"] = checksum(j.dump());
  return j.dump() + "\n";
}

Budget Budget::from_json(std::string_view json) {
  if (json.empty()) throw PrivacyError("budget state is empty (truncated?)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json);
  } catch (const nlohmann::json::exception& e) {
    throw PrivacyError(std::string("budget state is truncated or corrupt (not valid JSON): ") + e.what());
  }
  if (!j.is_object() || !j.contains("format") || j["format"] != kFormat) {
    throw PrivacyError("budget state is not a fedlora privacy budget (no \"format\": \"" +
                std::string(kFormat) + "\")");
  }
  if (!j.contains("version") || j["version"] != kVersion) {
    throw PrivacyError("budget state has an unsupported version (this build reads version " +
                std::to_string(kVersion) + ")");
  }
  if (!j.contains("checksum") || !j["checksum"].is_string()) {
    throw PrivacyError("budget state has no checksum");
  }
  const std::string stored = j["checksum"].get<std::string>();
  j.erase("checksum");
  if (stored != checksum(j.dump())) {
    throw PrivacyError("budget state is corrupt: checksum mismatch");
  }
  if (!j.contains("epsilon_max") || !j["epsilon_max"].is_number() || !j.contains("delta") ||
      !j["delta"].is_number() || !j.contains("accountant") || !j["accountant"].is_object()) {
    throw PrivacyError("budget state lacks epsilon_max, delta or accountant");
  }
  return Budget(j["epsilon_max"].get<double>(), j["delta"].get<double>(),
                RdpAccountant::from_json(j["accountant"].dump()));
}

void Budget::save(const std::filesystem::path& file) const {
  try {
    // 0600, as the file always had: a site's spending is nobody else's business.
    base::write_file_atomic(file, to_json(), 0600);
  } catch (const base::IoError& e) {
    throw PrivacyError(e.what());
  }
}

Budget Budget::load(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw PrivacyError("cannot open budget file " + file.string() + ": " + errno_text());
  std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw PrivacyError("cannot read budget file " + file.string());
  try {
    return from_json(contents);
  } catch (const PrivacyError& e) {
    throw PrivacyError("budget file " + file.string() + ": " + e.what());
  }
}

}  // namespace privacy
