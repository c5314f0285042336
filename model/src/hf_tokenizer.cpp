#include "model/hf_tokenizer.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>

#include "model/error.h"
#include "unicode_tables.h"

namespace model {
namespace {

using nlohmann::json;

// Llama 3's Split pattern, exactly as its tokenizer.json spells it.
constexpr std::string_view kLlama3Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// ---- UTF-8 ----------------------------------------------------------------------------------

void append_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Decodes the code point at text[i], setting `len` to its byte length. A byte that does not
// start a valid, shortest-form sequence is one "code point" of its own, U+FFFD, of length 1
// (tokenizers only ever sees valid UTF-8; this keeps any byte string encodable).
char32_t decode_utf8(std::string_view text, size_t i, size_t& len) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = b(i);
  len = 1;
  if (c < 0x80) return c;
  size_t n;
  char32_t cp;
  if ((c & 0xE0) == 0xC0) {
    n = 2, cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3, cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4, cp = c & 0x07;
  } else {
    return 0xFFFD;
  }
  if (i + n > text.size()) return 0xFFFD;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0xFFFD;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  const char32_t min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0xFFFD;
  len = n;
  return cp;
}

// ---- GPT-2's byte <-> unicode map (ByteLevel) -----------------------------------------------

struct ByteLevelMap {
  std::array<std::string, 256> to_char;  // byte -> UTF-8 of its printable stand-in
  std::array<int, 324> to_byte;          // stand-in code point -> byte, -1 for none

  ByteLevelMap() {
    to_byte.fill(-1);
    char32_t next = 256;
    for (int byte = 0; byte < 256; ++byte) {
      const bool printable =
          (byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || byte >= 174;
      const char32_t cp = printable ? static_cast<char32_t>(byte) : next++;
      append_utf8(cp, to_char[byte]);
      to_byte[cp] = byte;
    }
  }
};

const ByteLevelMap& byte_level() {
  static const ByteLevelMap map;
  return map;
}

// ---- the Llama-3 split ----------------------------------------------------------------------

enum class Cls : unsigned char { kLetter, kNumber, kSpace, kOther };

Cls classify(char32_t cp) {
  if (unicode::is_letter(cp)) return Cls::kLetter;
  if (unicode::is_number(cp)) return Cls::kNumber;
  if (unicode::is_space(cp)) return Cls::kSpace;
  return Cls::kOther;
}

// Case-insensitive match of one ASCII letter, as (?i:...) matches it (U+017F, long s, folds to
// s; no other code point folds to the letters of the contractions).
bool folds_to(char32_t cp, char lower) {
  if (cp < 0x80) return static_cast<char32_t>(lower) == (cp | 0x20) && cp >= 'A';
  return lower == 's' && cp == 0x17F;
}

// The length in code points of the match starting at i (every position starts one).
size_t match_at(const std::vector<char32_t>& cp, const std::vector<Cls>& cls, size_t i) {
  const size_t n = cp.size();
  const auto is_nl = [&](size_t k) { return cp[k] == '\r' || cp[k] == '\n'; };
  const auto run = [&](size_t k, Cls c) {
    while (k < n && cls[k] == c) ++k;
    return k;
  };
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (cp[i] == '\'' && i + 1 < n) {
    const char32_t a = cp[i + 1];
    if (folds_to(a, 's') || folds_to(a, 't') || folds_to(a, 'm') || folds_to(a, 'd')) return 2;
    if (i + 2 < n) {
      const char32_t b = cp[i + 2];
      if ((folds_to(a, 'r') && folds_to(b, 'e')) || (folds_to(a, 'v') && folds_to(b, 'e')) ||
          (folds_to(a, 'l') && folds_to(b, 'l'))) {
        return 3;
      }
    }
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (cls[i] == Cls::kLetter) return run(i, Cls::kLetter) - i;
  if (!is_nl(i) && cls[i] != Cls::kNumber && i + 1 < n && cls[i + 1] == Cls::kLetter) {
    return run(i + 1, Cls::kLetter) - i;
  }
  // \p{N}{1,3}
  if (cls[i] == Cls::kNumber) return std::min(run(i, Cls::kNumber), i + 3) - i;
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  {
    const size_t start = cp[i] == ' ' && i + 1 < n && cls[i + 1] == Cls::kOther ? i + 1 : i;
    if (cls[start] == Cls::kOther) {
      size_t j = run(start, Cls::kOther);
      while (j < n && is_nl(j)) ++j;
      return j - i;
    }
  }
  // Only whitespace is left: \s*[\r\n]+ | \s+(?!\S) | \s+
  const size_t end = run(i, Cls::kSpace);
  for (size_t k = end; k > i; --k) {
    if (is_nl(k - 1)) return k - i;  // the last line break of the run ends the match
  }
  if (end == n || end - i == 1) return end - i;
  return end - 1 - i;  // leave the last space to the word after it
}

// ---- JSON helpers ---------------------------------------------------------------------------

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what) {
  throw ModelError(path.string() + ": " + what);
}

json read_json(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) fail(path, "cannot open: " + ec.message());
  if (size > kMaxTokenizerJsonBytes) {
    fail(path, std::to_string(size) + " bytes is over the " +
                   std::to_string(kMaxTokenizerJsonBytes) + "-byte limit");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  std::stringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail(path, "not valid JSON");
  return j;
}

bool truthy(const json& obj, const char* key) {
  const auto it = obj.find(key);
  return it != obj.end() && it->is_boolean() && it->get<bool>();
}

bool is_null_or_absent(const json& obj, const char* key) {
  const auto it = obj.find(key);
  return it == obj.end() || it->is_null();
}

std::string type_of(const json& obj) {
  const auto it = obj.find("type");
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string("?");
}

int32_t get_id(const json& v, const std::filesystem::path& path, const std::string& what) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= kMaxTokenizerId) {
    fail(path, what + " has id " + v.dump() + ", not an integer in [0, " +
                   std::to_string(kMaxTokenizerId) + ")");
  }
  return static_cast<int32_t>(v.get<int64_t>());
}

void check_byte_level(const json& p, const std::filesystem::path& path) {
  if (truthy(p, "add_prefix_space")) fail(path, "ByteLevel add_prefix_space is not supported");
  if (truthy(p, "use_regex")) {
    fail(path, "ByteLevel use_regex (the GPT-2 split) is not supported; Llama-3's Split is");
  }
}

// The content of a tokenizer_config.json token entry: "text" or {"content": "text", ...}.
std::string token_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  return "";
}

}  // namespace

std::vector<std::string_view> llama3_pretokenize(std::string_view text) {
  std::vector<char32_t> cp;
  std::vector<size_t> offset;
  for (size_t i = 0; i < text.size();) {
    size_t len;
    cp.push_back(decode_utf8(text, i, len));
    offset.push_back(i);
    i += len;
  }
  offset.push_back(text.size());
  std::vector<Cls> cls(cp.size());
  for (size_t i = 0; i < cp.size(); ++i) cls[i] = classify(cp[i]);
  std::vector<std::string_view> pieces;
  for (size_t i = 0; i < cp.size();) {
    const size_t len = match_at(cp, cls, i);
    pieces.push_back(text.substr(offset[i], offset[i + len] - offset[i]));
    i += len;
  }
  return pieces;
}

HfTokenizer::HfTokenizer(const std::filesystem::path& path) : path_(path) {
  const json j = read_json(path);
  if (!j.is_object()) fail(path, "not a JSON object");

  // model type first: the most telling refusal for another kind of tokenizer
  const auto m = j.find("model");
  if (m == j.end() || !m->is_object()) fail(path, "no \"model\" object");
  if (type_of(*m) != "BPE" && !(m->find("type") == m->end() && m->contains("merges"))) {
    fail(path, "model type " + type_of(*m) + " is not supported (only BPE)");
  }
  // normalizer
  if (!is_null_or_absent(j, "normalizer")) {
    fail(path, "normalizer " + type_of(j["normalizer"]) + " is not supported (only null)");
  }
  // pre_tokenizer
  {
    const auto it = j.find("pre_tokenizer");
    if (it == j.end() || it->is_null() || !it->is_object()) {
      fail(path, "no pre_tokenizer (expected Llama-3's Sequence [Split, ByteLevel])");
    }
    std::vector<json> steps;
    if (type_of(*it) == "Sequence" && it->contains("pretokenizers") &&
        (*it)["pretokenizers"].is_array()) {
      for (const json& p : (*it)["pretokenizers"]) steps.push_back(p);
    } else {
      steps.push_back(*it);
    }
    bool byte_level_seen = false;
    for (size_t s = 0; s < steps.size(); ++s) {
      const json& p = steps[s];
      const std::string type = p.is_object() ? type_of(p) : "?";
      if (type == "Split" && s == 0 && steps.size() == 2) {
        const auto pattern = p.find("pattern");
        const bool regex = pattern != p.end() && pattern->is_object() &&
                           pattern->contains("Regex") && (*pattern)["Regex"].is_string();
        if (!regex || (*pattern)["Regex"].get<std::string>() != kLlama3Pattern) {
          fail(path, "Split pattern " +
                         (pattern == p.end() ? std::string("(none)") : pattern->dump()) +
                         " is not supported (only Llama-3's regex)");
        }
        if (!p.contains("behavior") || p["behavior"] != "Isolated" || truthy(p, "invert")) {
          fail(path, "Split must have behavior Isolated and invert false");
        }
        split_ = true;
      } else if (type == "ByteLevel" && s + 1 == steps.size()) {
        check_byte_level(p, path);
        byte_level_seen = true;
      } else {
        fail(path, "pre_tokenizer " + type +
                       " is not supported (expected Llama-3's Sequence [Split, ByteLevel])");
      }
    }
    if (!byte_level_seen) fail(path, "pre_tokenizer lacks ByteLevel");
  }
  // decoder
  if (!is_null_or_absent(j, "decoder") &&
      (!j["decoder"].is_object() || type_of(j["decoder"]) != "ByteLevel")) {
    fail(path, "decoder " + type_of(j["decoder"]) + " is not supported (only ByteLevel)");
  }

  if (!is_null_or_absent(*m, "dropout")) fail(path, "BPE dropout is not supported");
  if (truthy(*m, "byte_fallback")) fail(path, "BPE byte_fallback is not supported");
  if (truthy(*m, "fuse_unk")) fail(path, "BPE fuse_unk is not supported");
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto a = m->find(affix);
    if (a != m->end() && !a->is_null() && !(a->is_string() && a->get<std::string>().empty())) {
      fail(path, std::string("BPE ") + affix + " is not supported");
    }
  }
  ignore_merges_ = truthy(*m, "ignore_merges");
  const auto vocab = m->find("vocab");
  if (vocab == m->end() || !vocab->is_object()) fail(path, "model has no \"vocab\" object");
  int64_t max_id = -1;
  std::unordered_map<int32_t, std::string> by_id;
  for (const auto& [token, v] : vocab->items()) {
    const int32_t id = get_id(v, path, "vocab token '" + token + "'");
    if (!by_id.emplace(id, token).second) {
      fail(path, "vocab id " + std::to_string(id) + " belongs to '" + by_id[id] + "' and '" +
                     token + "'");
    }
    vocab_.emplace(token, id);
    max_id = std::max<int64_t>(max_id, id);
  }
  // added_tokens
  if (const auto at = j.find("added_tokens"); at != j.end() && !at->is_null()) {
    if (!at->is_array()) fail(path, "\"added_tokens\" is not an array");
    for (const json& t : *at) {
      if (!t.is_object() || !t.contains("content") || !t["content"].is_string() ||
          !t.contains("id")) {
        fail(path, "an added token lacks \"id\" or a string \"content\"");
      }
      const std::string content = t["content"].get<std::string>();
      if (content.empty()) fail(path, "an added token has empty content");
      const int32_t id = get_id(t["id"], path, "added token '" + content + "'");
      for (const char* flag : {"lstrip", "rstrip", "single_word"}) {
        if (truthy(t, flag))
          fail(path, "added token '" + content + "': " + flag + " is not supported");
      }
      const auto known = vocab_.find(content);
      if (known != vocab_.end() && known->second != id) {
        fail(path, "added token '" + content + "' has id " + std::to_string(id) +
                       " but the vocab gives it " + std::to_string(known->second));
      }
      const auto other = by_id.find(id);
      if (other != by_id.end() && other->second != content) {
        fail(path, "added token '" + content + "' takes id " + std::to_string(id) + " of '" +
                       other->second + "'");
      }
      by_id[id] = content;
      vocab_[content] = id;
      added_.push_back({content, id, truthy(t, "special")});
      max_id = std::max<int64_t>(max_id, id);
    }
  }
  if (max_id < 0) fail(path, "the vocabulary is empty");
  vocab_size_ = max_id + 1;
  id_to_token_.assign(static_cast<size_t>(vocab_size_), "");
  special_.assign(static_cast<size_t>(vocab_size_), false);
  for (const auto& [id, token] : by_id) id_to_token_[id] = token;
  for (const AddedToken& a : added_) {
    special_[a.id] = a.special;
    starts_added_[static_cast<unsigned char>(a.content[0])] = true;
  }
  std::stable_sort(added_.begin(), added_.end(), [](const AddedToken& a, const AddedToken& b) {
    return a.content.size() > b.content.size();
  });
  // unk
  if (const auto unk = m->find("unk_token"); unk != m->end() && !unk->is_null()) {
    if (!unk->is_string()) fail(path, "BPE unk_token is not a string");
    unk_id_ = token_to_id(unk->get<std::string>());
    if (unk_id_ < 0) fail(path, "BPE unk_token '" + unk->get<std::string>() + "' is not in vocab");
  }
  // merges
  const auto merges = m->find("merges");
  if (merges == m->end() || !merges->is_array()) fail(path, "model has no \"merges\" array");
  uint32_t rank = 0;
  for (const json& mg : *merges) {
    std::string left, right;
    if (mg.is_string()) {
      const std::string s = mg.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        fail(path, "merge \"" + s + "\" is not two tokens separated by one space");
      }
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
      left = mg[0].get<std::string>();
      right = mg[1].get<std::string>();
    } else {
      fail(path, "merge " + mg.dump() + " is neither \"a b\" nor [\"a\", \"b\"]");
    }
    const auto l = vocab_.find(left), r = vocab_.find(right), lr = vocab_.find(left + right);
    if (l == vocab_.end() || r == vocab_.end() || lr == vocab_.end()) {
      fail(path, "merge #" + std::to_string(rank) + " (" + left + " " + right +
                     "): a part or the result is not in the vocab");
    }
    const uint64_t key =
        (static_cast<uint64_t>(l->second) << 32) | static_cast<uint32_t>(r->second);
    merges_.emplace(key, MergeResult{rank, lr->second});  // the first (lowest rank) wins
    ++rank;
  }

  // BOS / EOS
  std::string bos, eos;
  const auto config = path.parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (std::filesystem::exists(config, ec)) {
    const json c = read_json(config);
    if (c.is_object()) {
      if (c.contains("bos_token")) bos = token_text(c["bos_token"]);
      if (c.contains("eos_token")) eos = token_text(c["eos_token"]);
    }
  }
  for (const auto& [b, e] :
       {std::pair<const char*, const char*>{"<|begin_of_text|>", "<|end_of_text|>"},
        {"<s>", "</s>"}}) {
    if (bos.empty() && token_to_id(b) >= 0) bos = b;
    if (eos.empty() && token_to_id(e) >= 0) eos = e;
  }
  bos_id_ = bos.empty() ? -1 : token_to_id(bos);
  eos_id_ = eos.empty() ? -1 : token_to_id(eos);
  if (bos_id_ < 0 || eos_id_ < 0) {
    fail(path,
         "no BOS or EOS token (tokenizer_config.json bos_token / eos_token, "
         "<|begin_of_text|> / <|end_of_text|> or <s> / </s>)");
  }
}

int32_t HfTokenizer::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(std::string(token));
  return it == vocab_.end() ? -1 : it->second;
}

void HfTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  const ByteLevelMap& map = byte_level();
  std::string word;
  for (unsigned char c : piece) word += map.to_char[c];
  if (ignore_merges_) {
    if (const int32_t id = token_to_id(word); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  // The symbols of the word as a linked list; a heap of candidate merges, lowest rank first
  // and leftmost among equals, as tokenizers' Word::merge_all.
  struct Symbol {
    int32_t id;
    int prev, next;
    bool alive;
  };
  std::vector<Symbol> sym;
  for (size_t i = 0; i < word.size();) {
    size_t len;
    decode_utf8(word, i, len);
    const int32_t id = token_to_id(std::string_view(word).substr(i, len));
    i += len;
    const int32_t use = id >= 0 ? id : unk_id_;
    if (use < 0) continue;  // unknown character and no unk_token: dropped, as tokenizers does
    sym.push_back({use, static_cast<int>(sym.size()) - 1, static_cast<int>(sym.size()) + 1, true});
  }
  if (sym.empty()) return;
  sym.back().next = -1;
  struct Candidate {
    uint32_t rank;
    int pos;
    int32_t id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  const auto lookup = [&](int a, int b) -> const MergeResult* {
    const uint64_t key =
        (static_cast<uint64_t>(sym[a].id) << 32) | static_cast<uint32_t>(sym[b].id);
    const auto it = merges_.find(key);
    return it == merges_.end() ? nullptr : &it->second;
  };
  const auto push = [&](int a) {
    if (a < 0 || sym[a].next < 0) return;
    if (const MergeResult* r = lookup(a, sym[a].next)) heap.push({r->rank, a, r->id});
  };
  for (int i = 0; i + 1 < static_cast<int>(sym.size()); ++i) push(i);
  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    Symbol& left = sym[top.pos];
    if (!left.alive || left.next < 0) continue;
    const MergeResult* r = lookup(top.pos, left.next);
    if (r == nullptr || r->id != top.id) continue;  // stale: a neighbour changed
    Symbol& right = sym[left.next];
    left.id = top.id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) sym[right.next].prev = top.pos;
    push(left.prev);
    push(top.pos);
  }
  for (int i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

void HfTokenizer::encode_ordinary(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  if (!split_) {
    encode_piece(text, out);
    return;
  }
  for (std::string_view piece : llama3_pretokenize(text)) encode_piece(piece, out);
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  size_t plain = 0;  // start of the text not yet encoded
  for (size_t i = 0; i < text.size();) {
    const AddedToken* hit = nullptr;
    if (!starts_added_[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    for (const AddedToken& a : added_) {  // longest first
      if (text.compare(i, a.content.size(), a.content) == 0) {
        hit = &a;
        break;
      }
    }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    encode_ordinary(text.substr(plain, i - plain), out);
    out.push_back(hit->id);
    i += hit->content.size();
    plain = i;
  }
  encode_ordinary(text.substr(plain), out);
  return out;
}

std::string HfTokenizer::decode(std::span<const int32_t> ids) const {
  const ByteLevelMap& map = byte_level();
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size_) {
      fail(path_, "id " + std::to_string(id) + " outside the vocabulary of " +
                      std::to_string(vocab_size_));
    }
    if (special_[id]) continue;
    const std::string& token = id_to_token_[id];
    std::string bytes;
    bool byte_level_token = true;
    for (size_t i = 0; i < token.size() && byte_level_token;) {
      size_t len;
      const char32_t cp = decode_utf8(token, i, len);
      i += len;
      if (cp >= map.to_byte.size() || map.to_byte[cp] < 0) {
        byte_level_token = false;
      } else {
        bytes += static_cast<char>(map.to_byte[cp]);
      }
    }
    out += byte_level_token ? bytes : token;
  }
  return out;
}

}  // namespace model
