#include "core/checks.h"

#include "protocol/limits.h"

namespace protocol::core {
namespace {

constexpr ErrorCode kMalformed = ErrorCode::kMalformedRequest;

}  // namespace

Status check_text(const std::string& s, size_t max, bool allow_empty, std::string_view what) {
  if (s.empty() && !allow_empty) return make_error(kMalformed, what, " is empty");
  if (s.size() > max) {
    return make_error(kMalformed, what, " has ", s.size(), " bytes (at most ", max, ")");
  }
  for (const char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return make_error(kMalformed, what, " contains a control character");
    }
  }
  return ok_status();
}

Status check_id(const std::string& id, std::string_view what) {
  return check_text(id, kMaxIdBytes, false, what);
}

Status check_wire_error(const Error& e) {
  if (!is_wire_code(e.code)) {
    return make_error(kMalformed, "error code ", static_cast<unsigned>(e.code),
                      " is not a wire code");
  }
  return check_text(e.message, kMaxErrorBytes, true, "error message");
}

Status check_blob_descs(std::span<const BlobDesc> blobs) {
  for (size_t i = 0; i < blobs.size(); ++i) {
    if (auto s = blobs[i].check(); !s) {
      return Error{s.error().code, "blob " + std::to_string(i) + ": " + s.error().message};
    }
  }
  return ok_status();
}

BlobUse::BlobUse(std::span<const BlobDesc> blobs) : blobs_(blobs), used_(blobs.size(), false) {}

Result<const BlobDesc*> BlobUse::take(uint32_t index, std::string_view what) {
  if (index >= blobs_.size()) {
    return make_error(kMalformed, what, " refers to blob ", index, " of ", blobs_.size());
  }
  if (used_[index]) return make_error(kMalformed, "blob ", index, " is referred to twice");
  used_[index] = true;
  return &blobs_[index];
}

Status BlobUse::all_used() const {
  for (size_t i = 0; i < used_.size(); ++i) {
    if (!used_[i]) return make_error(kMalformed, "blob ", i, " is not referred to");
  }
  return ok_status();
}

}  // namespace protocol::core
