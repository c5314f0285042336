// The validation rules both schemas share (internal to the library): bounded text without
// control characters, ids, wire errors, the blob descriptions of a message and the rule that a
// body refers to each blob exactly once. Each schema's validate() (worker/messages.cpp,
// coordinator/messages.cpp) runs validate_body with its own per-message checks.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "protocol/blob.h"
#include "protocol/result.h"

// Returns the error of a Status-like expression that failed.
#define PROTOCOL_TRY(expr)       \
  do {                           \
    if (auto s_ = (expr); !s_) { \
      return s_.error();         \
    }                            \
  } while (false)

namespace protocol::core {

// At most `max` bytes, none a control character (< 0x20 or 0x7f); empty only if allow_empty.
Status check_text(const std::string& s, size_t max, bool allow_empty, std::string_view what);

// A model, sender or tensor id: 1..kMaxIdBytes bytes, no control character.
Status check_id(const std::string& id, std::string_view what);

// An error that may travel: a wire code and a message check_text accepts (kMaxErrorBytes).
Status check_wire_error(const Error& e);

// Every description is self-consistent (BlobDesc::check), the error naming the blob.
Status check_blob_descs(std::span<const BlobDesc> blobs);

// Tracks which blobs a body refers to: each exactly once.
class BlobUse {
 public:
  explicit BlobUse(std::span<const BlobDesc> blobs);

  // The description of blob `index`; an error if it is out of range or already taken.
  Result<const BlobDesc*> take(uint32_t index, std::string_view what);

  // An error naming the first blob nothing referred to.
  Status all_used() const;

 private:
  std::span<const BlobDesc> blobs_;
  std::vector<bool> used_;
};

// The blob descriptions, then `check(message, use)` on the body's alternative, then that every
// blob was referred to.
template <typename Body, typename Check>
Status validate_body(const Body& body, std::span<const BlobDesc> blobs, Check&& check) {
  PROTOCOL_TRY(check_blob_descs(blobs));
  BlobUse use(blobs);
  PROTOCOL_TRY(std::visit([&](const auto& m) { return check(m, use); }, body));
  return use.all_used();
}

}  // namespace protocol::core
