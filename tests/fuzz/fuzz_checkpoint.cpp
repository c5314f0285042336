// The coordinator's checkpoint (coordinator/checkpoint.h). The input is parsed twice: as it is
// (magic, length, digest checks), and with its SHA-256 appended, so that the fuzzer reaches the
// JSON metadata and the data behind a valid digest. An accepted checkpoint must serialize to
// bytes that parse to a checkpoint serializing to the same bytes; a refusal is a one-line typed
// error.
#include <openssl/sha.h>

#include <vector>

#include "coordinator/checkpoint.h"
#include "fuzz_target.h"

namespace {

void parse(std::span<const uint8_t> bytes) {
  auto c = coordinator::parse_checkpoint(bytes);
  if (!c) {
    fuzz::expect_one_line(c.error().message);
    return;
  }
  const auto again = coordinator::serialize_checkpoint(c.value());
  auto c2 = coordinator::parse_checkpoint(again);
  // Compared as bytes: a float NaN in the data is never equal to itself.
  if (!c2 || coordinator::serialize_checkpoint(c2.value()) != again) {
    fuzz::finding("a parsed checkpoint does not round-trip");
  }
}

int one_input(const uint8_t* data, size_t size) {
  parse({data, size});
  std::vector<uint8_t> signed_bytes(data, data + size);
  signed_bytes.resize(size + SHA256_DIGEST_LENGTH);
  SHA256(data, size, signed_bytes.data() + size);
  parse(signed_bytes);
  return 0;
}

}  // namespace

FEDLORA_FUZZ_TARGET(checkpoint, one_input)
