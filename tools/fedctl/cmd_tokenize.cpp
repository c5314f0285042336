// fedctl tokenize: text -> ids and ids -> text with a model directory's tokenizer (library:
// model). The tokenizer is the one load_tokenizer picks (tokenizer.model, tokenizer.json, or
// bytes); the model's config.json, when there is one, bounds its ids.
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli.h"
#include "model/byte_tokenizer.h"
#include "model/hf_tokenizer.h"
#include "model/llama_config.h"
#include "model/tokenizer.h"

namespace fedctl {
namespace {

// Ids separated by spaces and/or commas.
std::vector<int32_t> parse_ids(const std::string& text) {
  std::string s = text;
  for (char& c : s) {
    if (c == ',') c = ' ';
  }
  std::istringstream in(s);
  std::vector<int32_t> ids;
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || v < std::numeric_limits<int32_t>::min() ||
        v > std::numeric_limits<int32_t>::max()) {
      throw std::invalid_argument("--decode: '" + word + "' is not an id");
    }
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

}  // namespace

int cmd_tokenize(int argc, char** argv) {
  std::string dir, text, decode;
  bool bos = false, eos = false;
  po::options_description options("tokenize options");
  options.add_options()("model", po::value(&dir)->required(),
                        "model directory (tokenizer.model, tokenizer.json, or none: bytes)")(
      "text", po::value(&text), "text to encode")(
      "decode", po::value(&decode), "ids to decode instead, separated by spaces or commas")(
      "bos", po::bool_switch(&bos), "prepend the BOS id")("eos", po::bool_switch(&eos),
                                                          "append the EOS id");
  return run_command(
      "tokenize", "--model DIR (--text TEXT [--bos] [--eos] | --decode IDS)", options, argc, argv,
      [&](const po::variables_map& vm) {
        if (vm.count("text") == vm.count("decode")) {
          throw std::invalid_argument("give exactly one of --text and --decode");
        }
        const std::filesystem::path path(dir);
        const std::string kind = model::tokenizer_kind(path);
        std::error_code ec;
        int64_t vocab = kind == std::string("byte") ? model::ByteTokenizer::kMinVocabSize
                                                    : model::kMaxTokenizerId;
        if (std::filesystem::exists(path / model::kConfigFile, ec)) {
          vocab = model::load_llama_config(path).vocab_size;
        }
        const auto tokenizer = model::load_tokenizer(path, vocab);
        nlohmann::json out = {{"tokenizer", kind}};
        if (vm.count("text")) {
          std::vector<int32_t> ids;
          if (bos) ids.push_back(tokenizer->bos_id());
          const auto body = tokenizer->encode(text);
          ids.insert(ids.end(), body.begin(), body.end());
          if (eos) ids.push_back(tokenizer->eos_id());
          out["ids"] = ids;
          out["count"] = ids.size();
        } else {
          out["text"] = tokenizer->decode(parse_ids(decode));
        }
        // Invalid UTF-8 (a decode that splits a character) is shown as U+FFFD.
        std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
        return 0;
      });
}

}  // namespace fedctl
