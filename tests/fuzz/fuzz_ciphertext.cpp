// The ciphertext file format (.ct, docs/file-formats.md; fhe/serialize.h): deserialize either
// returns a matrix that serializes to bytes deserializing to the same matrix, or throws
// fhe::FheError with one line. No allocation may exceed what the input's size justifies (libFuzzer's
// -rss_limit_mb and -malloc_limit_mb catch one).
#include "fhe/context.h"
#include "fhe/params.h"
#include "fhe/serialize.h"
#include "fuzz_target.h"

namespace {

int one_input(const uint8_t* data, size_t size) {
  static const auto ctx = fhe::Context::create();
  try {
    const fhe::CiphertextMatrix ct = fhe::deserialize(*ctx, data, size);
    const auto bytes = fhe::serialize(*ctx, ct);
    const auto again = fhe::serialize(*ctx, fhe::deserialize(*ctx, bytes.data(), bytes.size()));
    if (again != bytes) fuzz::finding("a deserialized ciphertext does not round-trip");
  } catch (const fhe::FheError& e) {
    fuzz::expect_one_line(e.what());
  }
  return 0;
}

}  // namespace

FEDLORA_FUZZ_TARGET(ciphertext, one_input)
