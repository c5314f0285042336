#include "raw_header.h"

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstring>

namespace protocol_test {

std::vector<uint8_t> tweak_header(const std::vector<uint8_t>& header, const EnvelopeTweak& tweak) {
  auto words = kj::heapArray<capnp::word>(header.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), header.data(), header.size());
  capnp::FlatArrayMessageReader reader(words);
  capnp::MallocMessageBuilder builder;
  builder.setRoot(reader.getRoot<protocol::wire::Envelope>());
  tweak(builder.getRoot<protocol::wire::Envelope>());
  auto flat = capnp::messageToFlatArray(builder);
  auto bytes = flat.asBytes();
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

}  // namespace protocol_test
