// Unicode character classes for the Llama-3 pre-tokenizer, over code points.
//
// is_letter and is_number come from the generated unicode_tables.cpp (see
// make_unicode_tables.py). is_space is the regex class \s as Oniguruma (the regex engine of
// Hugging Face tokenizers) reads it for Unicode text: U+0009-U+000D, U+0085 and the categories
// Zs, Zl and Zp.
#pragma once

namespace model::unicode {

struct CodePointRange {
  char32_t first, last;
};

extern const char kUnicodeVersion[];

// General category L: Lu, Ll, Lt, Lm, Lo (\p{L}).
bool is_letter(char32_t cp);
// General category N: Nd, Nl, No (\p{N}).
bool is_number(char32_t cp);

inline bool is_space(char32_t cp) {
  if (cp >= 0x09 && cp <= 0x0D) return true;
  switch (cp) {
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

}  // namespace model::unicode
