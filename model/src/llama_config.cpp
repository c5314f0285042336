#include "model/llama_config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "model/error.h"

namespace model {
namespace {

using nlohmann::json;

[[noreturn]] void fail(std::string_view source, const std::string& what) {
  throw ModelError(std::string(source) + ": " + what);
}

// A field that is absent or JSON null counts as absent, as in transformers.
const json* field(const json& j, const char* key) {
  const auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

int64_t get_int(const json& j, const char* key, std::string_view source,
                std::optional<int64_t> fallback) {
  const json* v = field(j, key);
  if (v == nullptr) {
    if (!fallback) fail(source, std::string("missing \"") + key + "\"");
    return *fallback;
  }
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX))
      fail(source, std::string("\"") + key + "\" is absurd");
    return static_cast<int64_t>(u);
  }
  if (v->is_number_integer()) return v->get<int64_t>();
  fail(source, std::string("\"") + key + "\" is not an integer");
}

double get_double(const json& j, const char* key, std::string_view source, double fallback) {
  const json* v = field(j, key);
  if (v == nullptr) return fallback;
  if (!v->is_number()) fail(source, std::string("\"") + key + "\" is not a number");
  return v->get<double>();
}

bool get_bool(const json& j, const char* key, std::string_view source, bool fallback) {
  const json* v = field(j, key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) fail(source, std::string("\"") + key + "\" is not a boolean");
  return v->get<bool>();
}

std::string get_string(const json& j, const char* key, std::string_view source) {
  const json* v = field(j, key);
  if (v == nullptr) return "";
  if (!v->is_string()) fail(source, std::string("\"") + key + "\" is not a string");
  return v->get<std::string>();
}

void check_identity(const json& j, std::string_view source) {
  const json* type = field(j, "model_type");
  if (type == nullptr) fail(source, "missing \"model_type\" (expected \"llama\")");
  if (!type->is_string() || type->get<std::string>() != "llama") {
    fail(source, "model_type " + type->dump() + " is not supported (expected \"llama\")");
  }
  if (const json* archs = field(j, "architectures")) {
    bool found = false;
    if (archs->is_array()) {
      for (const json& a : *archs) found = found || (a.is_string() && a == "LlamaForCausalLM");
    }
    if (!found) fail(source, "architectures " + archs->dump() + " lack \"LlamaForCausalLM\"");
  }
  const std::string act = get_string(j, "hidden_act", source);
  if (!act.empty() && act != "silu") {
    fail(source, "hidden_act \"" + act + "\" is not supported (expected \"silu\")");
  }
  if (get_bool(j, "attention_bias", source, false)) fail(source, "attention_bias is not supported");
  if (get_bool(j, "mlp_bias", source, false)) fail(source, "mlp_bias is not supported");
}

std::optional<RopeScaling> parse_rope_scaling(const json& j, std::string_view source) {
  const json* v = field(j, "rope_scaling");
  if (v == nullptr) return std::nullopt;
  if (!v->is_object()) fail(source, "\"rope_scaling\" is not an object");
  RopeScaling r;
  r.rope_type = get_string(*v, "rope_type", source);
  if (r.rope_type.empty()) r.rope_type = get_string(*v, "type", source);  // older spelling
  if (r.rope_type == "default") return std::nullopt;
  if (r.rope_type != "linear" && r.rope_type != "llama3") {
    fail(source, "rope_scaling type \"" + r.rope_type + "\" is not supported (linear, llama3)");
  }
  r.factor = get_double(*v, "factor", source, 1.0);
  if (r.rope_type == "llama3") {
    r.low_freq_factor = get_double(*v, "low_freq_factor", source, 1.0);
    r.high_freq_factor = get_double(*v, "high_freq_factor", source, 4.0);
    r.original_max_position_embeddings =
        get_int(*v, "original_max_position_embeddings", source, std::nullopt);
  }
  return r;
}

void check_size(int64_t value, const char* name, int64_t max, std::string_view source) {
  if (value <= 0)
    fail(source, std::string(name) + " must be positive, got " + std::to_string(value));
  if (value > max) {
    fail(source, std::string(name) + " " + std::to_string(value) + " is absurd (limit " +
                     std::to_string(max) + ")");
  }
}

void check_positive(double value, const char* name, std::string_view source) {
  if (!(value > 0) || !std::isfinite(value)) {
    fail(source, std::string(name) + " must be a positive finite number");
  }
}

}  // namespace

int64_t LlamaConfig::parameter_count() const {
  const int64_t h = hidden_size;
  const int64_t per_layer = 2 * h  // input and post-attention norms
                            + q_dim() * h + 2 * kv_dim() * h + h * q_dim()  // q, k, v, o
                            + 3 * h * intermediate_size;                    // gate, up, down
  const int64_t embeddings = vocab_size * h;
  return embeddings + num_hidden_layers * per_layer + h + (tie_word_embeddings ? 0 : embeddings);
}

void validate_llama_config(const LlamaConfig& c, std::string_view source) {
  check_size(c.hidden_size, "hidden_size", kMaxLlamaWidth, source);
  check_size(c.intermediate_size, "intermediate_size", kMaxLlamaWidth, source);
  check_size(c.num_hidden_layers, "num_hidden_layers", kMaxLlamaLayers, source);
  check_size(c.num_attention_heads, "num_attention_heads", kMaxLlamaWidth, source);
  check_size(c.num_key_value_heads, "num_key_value_heads", kMaxLlamaWidth, source);
  check_size(c.head_dim, "head_dim", kMaxLlamaWidth, source);
  check_size(c.vocab_size, "vocab_size", kMaxLlamaWidth, source);
  check_size(c.max_position_embeddings, "max_position_embeddings", INT64_MAX, source);
  check_size(c.q_dim(), "num_attention_heads * head_dim", kMaxLlamaWidth, source);
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    fail(source, "num_key_value_heads " + std::to_string(c.num_key_value_heads) +
                     " does not divide num_attention_heads " +
                     std::to_string(c.num_attention_heads));
  }
  check_positive(c.rms_norm_eps, "rms_norm_eps", source);
  check_positive(c.rope_theta, "rope_theta", source);
  if (c.head_dim % 2 != 0) {
    fail(source, "head_dim " + std::to_string(c.head_dim) + " must be even for RoPE");
  }
  if (c.rope_scaling) {
    check_positive(c.rope_scaling->factor, "rope_scaling.factor", source);
    if (c.rope_scaling->rope_type == "llama3") {
      check_positive(c.rope_scaling->low_freq_factor, "rope_scaling.low_freq_factor", source);
      check_positive(c.rope_scaling->high_freq_factor, "rope_scaling.high_freq_factor", source);
      check_size(c.rope_scaling->original_max_position_embeddings,
                 "rope_scaling.original_max_position_embeddings", INT64_MAX, source);
    }
  }
}

LlamaConfig parse_llama_config(const json& j, std::string_view source) {
  if (!j.is_object()) fail(source, "not a JSON object");
  check_identity(j, source);
  LlamaConfig c;
  c.hidden_size = get_int(j, "hidden_size", source, std::nullopt);
  c.intermediate_size = get_int(j, "intermediate_size", source, std::nullopt);
  c.num_hidden_layers = get_int(j, "num_hidden_layers", source, std::nullopt);
  c.num_attention_heads = get_int(j, "num_attention_heads", source, std::nullopt);
  c.vocab_size = get_int(j, "vocab_size", source, std::nullopt);
  c.num_key_value_heads = get_int(j, "num_key_value_heads", source, c.num_attention_heads);
  if (field(j, "head_dim") != nullptr) {
    c.head_dim = get_int(j, "head_dim", source, std::nullopt);
  } else {
    check_size(c.hidden_size, "hidden_size", kMaxLlamaWidth, source);
    check_size(c.num_attention_heads, "num_attention_heads", kMaxLlamaWidth, source);
    if (c.hidden_size % c.num_attention_heads != 0) {
      fail(source, "num_attention_heads " + std::to_string(c.num_attention_heads) +
                       " does not divide hidden_size " + std::to_string(c.hidden_size));
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  c.max_position_embeddings = get_int(j, "max_position_embeddings", source, 2048);
  c.rms_norm_eps = get_double(j, "rms_norm_eps", source, 1e-6);
  c.rope_theta = get_double(j, "rope_theta", source, 10000.0);
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", source, false);
  c.torch_dtype = get_string(j, "torch_dtype", source);
  c.rope_scaling = parse_rope_scaling(j, source);
  if (field(j, "bos_token_id") != nullptr) {
    c.bos_token_id = get_int(j, "bos_token_id", source, std::nullopt);
  }
  if (const json* eos = field(j, "eos_token_id")) {
    if (eos->is_array()) {
      if (eos->size() > 64) fail(source, "\"eos_token_id\" lists more than 64 ids");
      for (const json& e : *eos) {
        if (!e.is_number_integer()) fail(source, "\"eos_token_id\" holds a non-integer");
        c.eos_token_id.push_back(e.get<int64_t>());
      }
    } else {
      c.eos_token_id.push_back(get_int(j, "eos_token_id", source, std::nullopt));
    }
  }
  validate_llama_config(c, source);
  return c;
}

LlamaConfig load_llama_config(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / kConfigFile;
  const std::string source = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(source, "cannot open");
  std::stringstream text;
  text << in.rdbuf();
  const json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail(source, "not valid JSON");
  return parse_llama_config(j, source);
}

json llama_config_to_json(const LlamaConfig& c) {
  json j = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_act", "silu"},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_key_value_heads},
      {"head_dim", c.head_dim},
      {"vocab_size", c.vocab_size},
      {"max_position_embeddings", c.max_position_embeddings},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_theta", c.rope_theta},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"rope_scaling", nullptr},
  };
  if (!c.torch_dtype.empty()) j["torch_dtype"] = c.torch_dtype;
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (c.eos_token_id.size() == 1) j["eos_token_id"] = c.eos_token_id[0];
  if (c.eos_token_id.size() > 1) j["eos_token_id"] = c.eos_token_id;
  if (c.rope_scaling) {
    json r = {{"rope_type", c.rope_scaling->rope_type}, {"factor", c.rope_scaling->factor}};
    if (c.rope_scaling->rope_type == "llama3") {
      r["low_freq_factor"] = c.rope_scaling->low_freq_factor;
      r["high_freq_factor"] = c.rope_scaling->high_freq_factor;
      r["original_max_position_embeddings"] = c.rope_scaling->original_max_position_embeddings;
    }
    j["rope_scaling"] = r;
  }
  return j;
}

}  // namespace model
