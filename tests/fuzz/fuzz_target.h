// The two lives of a fuzz target body (fuzz_*.cpp): under the fuzz preset each file is its own
// libFuzzer executable (build-fuzz/bin/fuzz_NAME), and in every other build all of them are
// linked into fuzz_corpus_tests, which runs each body over its seed corpus
// (tests/fuzz/corpus/NAME/), so an input added there after a crash stays a regression test.
//
// A body returns 0 for an input that was accepted or refused the documented way (the parser's
// error type, one line) and calls fuzz::finding() for anything else; a crash, a sanitizer report,
// an uncaught exception or a hang is a finding too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

namespace fuzz {

using Body = int (*)(const uint8_t* data, size_t size);

inline std::map<std::string, Body>& registry() {
  static std::map<std::string, Body> targets;
  return targets;
}

inline bool register_target(const char* name, Body body) {
  registry()[name] = body;
  return true;
}

// Aborts with a message: libFuzzer saves the input as a crash; the corpus test dies.
[[noreturn]] inline void finding(std::string_view what) {
  std::fprintf(stderr, "fuzz finding: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

// An error message the tools can print as their one line: not empty, no newline.
inline void expect_one_line(std::string_view message) {
  if (message.empty()) finding("empty error message");
  if (message.find('\n') != std::string_view::npos) finding(message);
}

}  // namespace fuzz

#ifdef FEDLORA_FUZZ_REPLAY
#define FEDLORA_FUZZ_TARGET(name, body) \
  static const bool fuzz_registered_##name = ::fuzz::register_target(#name, body);
#else
#define FEDLORA_FUZZ_TARGET(name, body)                                     \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { \
    return body(data, size);                                                \
  }
#endif
