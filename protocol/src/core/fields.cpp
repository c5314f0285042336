#include "core/fields.h"

namespace protocol::core {
namespace {

constexpr ErrorCode kMalformed = ErrorCode::kMalformedRequest;

BlobDesc read_blob(wire::BlobDesc::Reader r) {
  BlobDesc d;
  d.dtype = read_enum<DType>(r.getDtype(), 4, "blob dtype");
  d.bits = r.getBits();
  auto shape = r.getShape();
  if (shape.size() == 0 || shape.size() > kMaxBlobRank) {
    refuse(make_error(kMalformed, "blob has ", shape.size(), " dimensions (1 to ", kMaxBlobRank,
                      " allowed)"));
  }
  for (const uint64_t dim : shape) d.shape.push_back(dim);
  d.count = r.getCount();
  d.byte_length = r.getByteLength();
  return d;
}

}  // namespace

void refuse(Error e) {
  throw FieldError{std::move(e)};
}

void check_version(uint16_t version, std::string_view what) {
  if (version != kProtocolVersion) {
    refuse(make_error(ErrorCode::kUnsupportedVersion, what, " has protocol version ", version,
                      ", this build speaks ", kProtocolVersion));
  }
}

std::string read_text(capnp::Text::Reader text, size_t max, std::string_view what) {
  if (text.size() > max) {
    refuse(make_error(kMalformed, what, " has ", text.size(), " bytes (at most ", max, ")"));
  }
  return std::string(text.cStr(), text.size());
}

Error read_error(wire::Error::Reader r) {
  Error e;
  e.code = read_enum<ErrorCode>(r.getCode(), static_cast<uint16_t>(ErrorCode::kUnsupportedVersion),
                                "error code");
  e.message = read_text(r.getMessage(), kMaxErrorBytes, "error message");
  return e;
}

std::vector<BlobDesc> read_blobs(capnp::List<wire::BlobDesc>::Reader blobs, const Limits& limits) {
  if (blobs.size() > limits.max_blobs) {
    refuse(make_error(kMalformed, "header announces ", blobs.size(), " blobs (at most ",
                      limits.max_blobs, ")"));
  }
  std::vector<BlobDesc> out;
  for (auto b : blobs) out.push_back(read_blob(b));
  return out;
}

capnp::Text::Reader text(const std::string& s) {
  return capnp::Text::Reader(s.data(), s.size());
}

void write_error(wire::Error::Builder b, const Error& e) {
  b.setCode(static_cast<wire::ErrorCode>(e.code));
  b.setMessage(text(e.message));
}

void write_blobs(capnp::List<wire::BlobDesc>::Builder list, std::span<const BlobDesc> blobs) {
  for (size_t i = 0; i < blobs.size(); ++i) {
    auto b = list[i];
    b.setDtype(static_cast<wire::DType>(blobs[i].dtype));
    b.setBits(static_cast<uint8_t>(blobs[i].bits));
    auto shape = b.initShape(blobs[i].shape.size());
    for (size_t d = 0; d < blobs[i].shape.size(); ++d) shape.set(d, blobs[i].shape[d]);
    b.setCount(blobs[i].count);
    b.setByteLength(blobs[i].byte_length);
  }
}

}  // namespace protocol::core
