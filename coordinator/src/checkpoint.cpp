#include "coordinator/checkpoint.h"

#include <openssl/sha.h>

#include <cstring>

#include <nlohmann/json.hpp>

#include "coordinator/files.h"

namespace coordinator {
namespace {

using base::make_error;
using json = nlohmann::json;

constexpr char kMagic[8] = {'F', 'L', 'C', 'K', 'P', 'T', '0', '1'};
constexpr size_t kDigest = SHA256_DIGEST_LENGTH;

void put_u64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void put_floats(std::vector<uint8_t>& out, const std::vector<float>& v) {
  const auto* p = reinterpret_cast<const uint8_t*>(v.data());
  out.insert(out.end(), p, p + v.size() * sizeof(float));
}

base::Error bad(std::string_view why) {
  return make_error(base::Code::kInvalidArgument, "checkpoint: ", why);
}

}  // namespace

std::vector<uint8_t> serialize_checkpoint(const Checkpoint& c) {
  json tensors = json::array();
  for (const auto& t : c.global.tensors) {
    tensors.push_back({{"name", t.name}, {"shape", t.shape}, {"offset", t.offset}});
  }
  json buffers = json::array();
  for (const auto& b : c.strategy_state.buffers) buffers.push_back(b.size());
  json meta = {{"format", "fedlora-coordinator-checkpoint"},
               {"version", 1},
               {"round", c.round},
               {"drbg", c.drbg_state},
               {"tensors", tensors},
               {"adapter_values", c.global.values.size()},
               {"adapter_config", c.adapter_config},
               {"strategy", c.strategy},
               {"strategy_steps", c.strategy_state.steps},
               {"buffers", buffers},
               {"registry", json::parse(c.registry_json)}};
  if (!c.run_id.empty()) meta["run_id"] = c.run_id;
  if (c.next_attempt != 1) meta["next_attempt"] = c.next_attempt;
  if (!c.participant_accountant_json.empty()) {
    meta["participant_accountant"] = json::parse(c.participant_accountant_json);
  }
  const std::string text = meta.dump(-1, ' ', false, json::error_handler_t::replace);
  std::vector<uint8_t> out(kMagic, kMagic + 8);
  put_u64(out, text.size());
  out.insert(out.end(), text.begin(), text.end());
  put_floats(out, c.global.values);
  for (const auto& b : c.strategy_state.buffers) put_floats(out, b);
  uint8_t digest[kDigest];
  SHA256(out.data(), out.size(), digest);
  out.insert(out.end(), digest, digest + kDigest);
  return out;
}

namespace {

// The metadata's fields into `c`; `sizes` gets the float counts of the adapter, then of each
// strategy buffer. Throws (nlohmann::json) for a missing field or a wrong type.
base::Status parse_meta(const json& meta, Checkpoint& c, std::vector<uint64_t>& sizes) {
  if (meta.at("format") != "fedlora-coordinator-checkpoint" || meta.at("version") != 1) {
    return bad("unknown format or version");
  }
  c.round = meta.at("round").get<uint32_t>();
  c.drbg_state = meta.at("drbg").get<std::string>();
  uint64_t next = 0;
  for (const auto& t : meta.at("tensors")) {
    protocol::coord::TensorEntry e{t.at("name").get<std::string>(),
                                   t.at("shape").get<std::vector<uint64_t>>(),
                                   t.at("offset").get<uint64_t>()};
    if (e.offset != next || e.count() == 0) return bad("tensor table does not tile the data");
    next += e.count();
    c.global.tensors.push_back(std::move(e));
  }
  const auto values = meta.at("adapter_values").get<uint64_t>();
  if (values != next) return bad("adapter size disagrees with its tensor table");
  c.adapter_config = meta.at("adapter_config").get<std::string>();
  c.strategy = meta.at("strategy").get<std::string>();
  c.strategy_state.steps = meta.at("strategy_steps").get<uint64_t>();
  sizes = {values};
  for (const auto& b : meta.at("buffers")) sizes.push_back(b.get<uint64_t>());
  c.registry_json = meta.at("registry").dump();
  if (meta.contains("run_id")) {
    c.run_id = meta.at("run_id").get<std::string>();
    if (!protocol::coord::is_run_id(c.run_id)) return bad("run id is not 32 lowercase hex digits");
  }
  if (meta.contains("next_attempt")) {
    c.next_attempt = meta.at("next_attempt").get<uint32_t>();
    if (c.next_attempt == 0) return bad("next attempt is 0");
  }
  if (meta.contains("participant_accountant")) {
    c.participant_accountant_json = meta.at("participant_accountant").dump();
  }
  return base::ok_status();
}

// The float arrays of `sizes` from bytes [pos, body): the adapter, then the strategy buffers.
base::Status parse_data(std::span<const uint8_t> bytes, size_t pos, size_t body,
                        const std::vector<uint64_t>& sizes, Checkpoint& c) {
  for (size_t k = 0; k < sizes.size(); ++k) {
    if (sizes[k] > (body - pos) / sizeof(float)) return bad("data shorter than announced");
    std::vector<float> v(sizes[k]);
    if (!v.empty()) std::memcpy(v.data(), bytes.data() + pos, sizes[k] * sizeof(float));
    pos += sizes[k] * sizeof(float);
    if (k == 0) {
      c.global.values = std::move(v);
    } else {
      c.strategy_state.buffers.push_back(std::move(v));
    }
  }
  if (pos != body) return bad("bytes after the data");
  return base::ok_status();
}

}  // namespace

base::Result<Checkpoint> parse_checkpoint(std::span<const uint8_t> bytes) {
  if (bytes.size() < 16 + kDigest || std::memcmp(bytes.data(), kMagic, 8) != 0) {
    return bad("not a checkpoint file (or truncated)");
  }
  const size_t body = bytes.size() - kDigest;
  uint8_t digest[kDigest];
  SHA256(bytes.data(), body, digest);
  if (std::memcmp(digest, bytes.data() + body, kDigest) != 0) {
    return bad("digest mismatch (truncated or corrupted)");
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[8 + i];
  if (n > body - 16) return bad("metadata length beyond the file");
  Checkpoint c;
  try {
    const auto meta = json::parse(bytes.begin() + 16, bytes.begin() + 16 + n);
    std::vector<uint64_t> sizes;
    if (auto st = parse_meta(meta, c, sizes); !st) return st.error();
    if (auto st = parse_data(bytes, 16 + n, body, sizes, c); !st) return st.error();
  } catch (const std::exception& e) {
    return bad(e.what());
  }
  return c;
}

base::Status write_checkpoint(const std::filesystem::path& file, const Checkpoint& c) {
  return write_file_atomic(file, serialize_checkpoint(c));
}

base::Result<Checkpoint> read_checkpoint(const std::filesystem::path& file) {
  auto bytes = read_file(file);
  if (!bytes) return bytes.error();
  auto c = parse_checkpoint(bytes.value());
  if (!c) return make_error(c.error().code, file.string(), ": ", c.error().message);
  return c;
}

}  // namespace coordinator
