#include "participant/releases.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "base/atomic_file.h"
#include "privacy/stream_key.h"

namespace participant {
namespace coord = protocol::coord;
namespace {

static_assert(std::endian::native == std::endian::little, "release contexts are little-endian");

// SHA-256 over appended fields; every variable-length field is length-prefixed so that the
// encoding is unambiguous.
class Hasher {
 public:
  Hasher() : ctx_(EVP_MD_CTX_new()) {
    if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
      throw std::runtime_error("SHA-256 is not available");
    }
  }
  ~Hasher() { EVP_MD_CTX_free(ctx_); }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void bytes(const void* data, size_t size) {
    if (EVP_DigestUpdate(ctx_, data, size) != 1) throw std::runtime_error("SHA-256 failed");
  }
  void u64(uint64_t v) { bytes(&v, sizeof v); }
  void f64(double v) { u64(std::bit_cast<uint64_t>(v)); }
  void text(std::string_view s) {
    u64(s.size());
    bytes(s.data(), s.size());
  }
  Digest finish() {
    Digest d{};
    unsigned len = 0;
    if (EVP_DigestFinal_ex(ctx_, d.data(), &len) != 1 || len != d.size()) {
      throw std::runtime_error("SHA-256 failed");
    }
    return d;
  }

 private:
  EVP_MD_CTX* ctx_;
};

std::string hex(std::span<const uint8_t> bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (const uint8_t b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

}  // namespace

Digest site_digest(const std::string& site_id, const std::filesystem::path& train_file,
                   int64_t seq_len, const model::LoraConfig& lora) {
  Hasher h;
  h.text("fedlora/site/v1");
  h.text(site_id);
  std::ifstream in(train_file, std::ios::binary);
  if (!in) throw std::runtime_error(train_file.string() + ": cannot read the training file");
  std::vector<char> buf(size_t{1} << 16);
  uint64_t total = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = static_cast<size_t>(in.gcount());
    h.bytes(buf.data(), n);
    total += n;
  }
  h.u64(total);
  h.u64(static_cast<uint64_t>(seq_len));
  h.u64(static_cast<uint64_t>(lora.rank));
  h.f64(lora.alpha);
  h.u64(lora.targets.size());
  for (const model::ProjectionKind k : lora.targets) h.u64(static_cast<uint64_t>(k));
  h.u64(lora.freeze_a ? 1 : 0);
  return h.finish();
}

Release::~Release() {
  OPENSSL_cleanse(key.data(), key.size());
}

Release derive_release(const privacy::Seed& site_seed, const coord::RoundInvitation& inv,
                       std::span<const float> global_values, const Digest& site) {
  Hasher h;
  h.text("fedlora/release/v1");
  h.bytes(site.data(), site.size());
  h.text(inv.run_id);
  h.u64(inv.round);
  h.u64(inv.attempt);
  const coord::TrainingPlan& p = inv.plan;  // every field but the deadline
  h.u64(p.local_steps);
  h.f64(p.learning_rate);
  h.u64(p.batch_size);
  h.f64(p.sample_rate);
  h.f64(p.noise_multiplier);
  h.f64(p.clip_norm);
  h.f64(p.delta);
  h.u64(p.seed);
  h.u64(p.participant_dp ? 1 : 0);
  h.f64(p.participant_clip);
  h.f64(p.participant_sigma);
  h.u64(inv.adapter.tensors.size());
  for (const coord::TensorEntry& t : inv.adapter.tensors) {
    h.text(t.name);
    h.u64(t.shape.size());
    for (const uint64_t d : t.shape) h.u64(d);
    h.u64(t.offset);
  }
  h.u64(global_values.size());
  h.bytes(global_values.data(), global_values.size() * sizeof(float));
  const Digest context = h.finish();
  Release r;
  r.key = privacy::derive_seed(site_seed, "fedlora/dp-streams/v1", context);
  const privacy::Seed id = privacy::derive_seed(site_seed, "fedlora/release-id/v1", context);
  r.id = privacy::seed_hex(id);
  return r;
}

std::string delta_sha256(std::span<const float> values) {
  Hasher h;
  h.bytes(values.data(), values.size() * sizeof(float));
  const Digest d = h.finish();
  return hex(d);
}

// --- ledger --------------------------------------------------------------------------------------

ReleaseLedger ReleaseLedger::open(const std::filesystem::path& state_dir) {
  ReleaseLedger ledger;
  ledger.file_ = state_dir / "releases.json";
  if (!std::filesystem::exists(ledger.file_)) return ledger;
  const std::string where = ledger.file_.string();
  std::ifstream in(ledger.file_, std::ios::binary);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
    if (j.at("version").get<int>() != 1) throw std::runtime_error("unknown version");
    for (const auto& e : j.at("releases")) {
      Entry entry;
      entry.id = e.at("id").get<std::string>();
      entry.run_id = e.at("run_id").get<std::string>();
      entry.round = e.at("round").get<uint32_t>();
      entry.attempt = e.at("attempt").get<uint32_t>();
      entry.delta_sha256 = e.at("delta_sha256").get<std::string>();
      if (entry.id.size() != 64) throw std::runtime_error("a release id is not 64 hex digits");
      ledger.entries_.push_back(std::move(entry));
    }
  } catch (const std::exception& e) {
    throw std::runtime_error(where + " is not a release ledger: " + e.what());
  }
  return ledger;
}

const ReleaseLedger::Entry* ReleaseLedger::find(const std::string& id) const {
  for (const Entry& e : entries_) {
    if (e.id == id) return &e;
  }
  return nullptr;
}

void ReleaseLedger::add(Entry entry) {
  if (find(entry.id) != nullptr) return;
  entries_.push_back(std::move(entry));
  save();
}

bool ReleaseLedger::bind_delta(const std::string& id, const std::string& sha256) {
  for (Entry& e : entries_) {
    if (e.id != id) continue;
    if (!e.delta_sha256.empty()) return e.delta_sha256 == sha256;
    e.delta_sha256 = sha256;
    save();
    return true;
  }
  throw std::runtime_error("release " + id + " was never charged");
}

void ReleaseLedger::save() const {
  nlohmann::json list = nlohmann::json::array();
  for (const Entry& e : entries_) {
    list.push_back({{"id", e.id},
                    {"run_id", e.run_id},
                    {"round", e.round},
                    {"attempt", e.attempt},
                    {"delta_sha256", e.delta_sha256}});
  }
  const nlohmann::json j = {{"version", 1}, {"releases", list}};
  base::write_file_atomic(file_, j.dump(1) + "\n", 0600);
}

// --- the cached last delta -----------------------------------------------------------------------

void save_cached_delta(const std::filesystem::path& state_dir, const CachedDelta& d) {
  const coord::DeltaUpload& u = d.upload;
  nlohmann::json tensors = nlohmann::json::array();
  for (const coord::TensorEntry& t : u.delta.tensors) {
    tensors.push_back({{"name", t.name}, {"shape", t.shape}, {"offset", t.offset}});
  }
  const auto finite_or_null = [](double v) {
    return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json();
  };
  const nlohmann::json meta = {{"version", 1},
                               {"release_id", d.release_id},
                               {"round", u.round},
                               {"attempt", u.attempt},
                               {"site_id", u.site_id},
                               {"example_count", u.example_count},
                               {"train_loss", finite_or_null(u.train_loss)},
                               {"heldout_loss", finite_or_null(u.heldout_loss)},
                               {"steps", u.steps},
                               {"epsilon_spent", u.epsilon_spent},
                               {"tensors", tensors},
                               {"values", d.values.size()},
                               {"values_sha256", delta_sha256(d.values)}};
  // Values first: the metadata names their hash, so a crash between the two writes leaves a
  // cache that does not read back (ignored) rather than a wrong one.
  base::write_file_atomic(
      state_dir / "last_delta.f32",
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(d.values.data()),
                               d.values.size() * sizeof(float)),
      0600);
  base::write_file_atomic(state_dir / "last_delta.json", meta.dump(1) + "\n", 0600);
}

std::optional<CachedDelta> load_cached_delta(const std::filesystem::path& state_dir) {
  const auto meta_file = state_dir / "last_delta.json";
  const auto values_file = state_dir / "last_delta.f32";
  if (!std::filesystem::exists(meta_file) || !std::filesystem::exists(values_file)) {
    return std::nullopt;
  }
  try {
    std::ifstream in(meta_file, std::ios::binary);
    const nlohmann::json j = nlohmann::json::parse(in);
    if (j.at("version").get<int>() != 1) return std::nullopt;
    CachedDelta d;
    d.release_id = j.at("release_id").get<std::string>();
    coord::DeltaUpload& u = d.upload;
    u.round = j.at("round").get<uint32_t>();
    u.attempt = j.at("attempt").get<uint32_t>();
    u.site_id = j.at("site_id").get<std::string>();
    u.example_count = j.at("example_count").get<uint64_t>();
    const auto loss = [](const nlohmann::json& v) {
      return v.is_number() ? v.get<double>() : std::nan("");
    };
    u.train_loss = loss(j.at("train_loss"));
    u.heldout_loss = loss(j.at("heldout_loss"));
    u.steps = j.at("steps").get<uint32_t>();
    u.epsilon_spent = j.at("epsilon_spent").get<double>();
    for (const auto& t : j.at("tensors")) {
      u.delta.tensors.push_back({t.at("name").get<std::string>(),
                                 t.at("shape").get<std::vector<uint64_t>>(),
                                 t.at("offset").get<uint64_t>()});
    }
    const auto count = j.at("values").get<uint64_t>();
    if (count != u.delta.total() ||
        std::filesystem::file_size(values_file) != count * sizeof(float)) {
      return std::nullopt;
    }
    d.values.resize(count);
    std::ifstream v(values_file, std::ios::binary);
    v.read(reinterpret_cast<char*>(d.values.data()),
           static_cast<std::streamsize>(count * sizeof(float)));
    if (!v || delta_sha256(d.values) != j.at("values_sha256").get<std::string>())
      return std::nullopt;
    return d;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace participant
