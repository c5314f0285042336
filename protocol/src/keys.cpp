#include "protocol/keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <string.h>  // explicit_bzero
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/atomic_file.h"
#include "base/error.h"

namespace protocol {
namespace {

constexpr std::string_view kZ85Alphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

std::string encode_z85(const std::array<uint8_t, kCurveKeyBytes>& bytes) {
  char text[kCurveKeyZ85Chars + 1];
  zmq_z85_encode(text, bytes.data(), bytes.size());
  return std::string(text, kCurveKeyZ85Chars);
}

std::string_view trim(std::string_view s) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

Result<std::array<uint8_t, kCurveKeyBytes>> decode_key(std::string_view text,
                                                       std::string_view what) {
  text = trim(text);
  if (text.size() != kCurveKeyZ85Chars) {
    return make_error(ErrorCode::kInvalidArgument, what, ": expected ", kCurveKeyZ85Chars,
                      " Z85 characters, found ", text.size());
  }
  for (size_t i = 0; i < text.size(); ++i) {
    if (kZ85Alphabet.find(text[i]) == std::string_view::npos) {
      return make_error(ErrorCode::kInvalidArgument, what, ": character ", i + 1,
                        " is not in the Z85 alphabet");
    }
  }
  const std::string z(text);
  std::array<uint8_t, kCurveKeyBytes> bytes{};
  // Groups above 2^32 - 1 are not canonical Z85; re-encoding catches them.
  if (zmq_z85_decode(bytes.data(), z.c_str()) == nullptr || encode_z85(bytes) != z) {
    return make_error(ErrorCode::kInvalidArgument, what, ": not a valid Z85 encoding of ",
                      kCurveKeyBytes, " bytes");
  }
  return bytes;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// PREFIX.pub for PREFIX.key (or for a name without either suffix: NAME.pub), "" when absent.
std::string public_sibling(const std::string& secret_path) {
  std::string pub = ends_with(secret_path, ".key")
                        ? secret_path.substr(0, secret_path.size() - 4) + ".pub"
                        : secret_path + ".pub";
  struct stat st;
  return ::stat(pub.c_str(), &st) == 0 && S_ISREG(st.st_mode) ? pub : "";
}

std::string errno_text() {
  return std::strerror(errno);
}

// Reads a small text file (a key is 41 bytes; more than 4 KiB is not a key file).
Result<std::string> read_small_file(const std::string& path, struct stat* st) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(ErrorCode::kIo, "cannot open ", path, ": ", errno_text());
  std::string text;
  Status status;
  if (::fstat(fd, st) != 0) {
    status = make_error(ErrorCode::kIo, "cannot stat ", path, ": ", errno_text());
  } else if (!S_ISREG(st->st_mode)) {
    status = make_error(ErrorCode::kInvalidArgument, path, " is not a regular file");
  } else if (st->st_size > 4096) {
    status = make_error(ErrorCode::kInvalidArgument, path, " is too large to be a key file (",
                        static_cast<uint64_t>(st->st_size), " bytes)");
  } else {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0 && text.size() <= 4096) text.append(buf, n);
    if (n < 0) status = make_error(ErrorCode::kIo, "cannot read ", path, ": ", errno_text());
    explicit_bzero(buf, sizeof buf);
  }
  ::close(fd);
  if (!status) return status.error();
  return text;
}

// Writes `text` to `path` with exactly mode `mode` through base::AtomicFile (`path`.tmp, fsync,
// rename, fsync of the directory), so the final file never has other permissions than `mode`,
// whatever an old file had. Without `force` an existing `path`, a link included, is never
// replaced: the new file is put in place with link(2), which refuses an existing name.
Status write_file(const std::string& path, const std::string& text, mode_t mode, bool force) {
  try {
    base::AtomicFile out(path, mode);
    out.append(text);
    if (force) {
      out.commit();
    } else if (!out.commit_if_absent()) {
      return make_error(ErrorCode::kInvalidArgument, path, " exists (use --force to replace it)");
    }
    return {};
  } catch (const base::IoError& e) {
    return make_error(ErrorCode::kIo, e.what());
  }
}

}  // namespace

std::string PublicKey::z85() const {
  return encode_z85(bytes);
}

SecretKey::~SecretKey() {
  explicit_bzero(bytes_.data(), bytes_.size());
}

std::string SecretKey::z85() const {
  return encode_z85(bytes_);
}

Result<KeyPair> KeyPair::generate() {
  char pub[kCurveKeyZ85Chars + 1], sec[kCurveKeyZ85Chars + 1];
  if (zmq_curve_keypair(pub, sec) != 0) {
    return make_error(ErrorCode::kInternal,
                      "cannot make a CURVE key pair: ", zmq_strerror(zmq_errno()));
  }
  auto secret = parse_secret_key(sec);
  explicit_bzero(sec, sizeof sec);
  if (!secret) return secret.error();
  return from_secret(secret.value());
}

Result<KeyPair> KeyPair::from_secret(const SecretKey& secret) {
  char pub[kCurveKeyZ85Chars + 1];
  std::string sec = secret.z85();
  const int rc = zmq_curve_public(pub, sec.c_str());
  explicit_bzero(sec.data(), sec.size());
  if (rc != 0) {
    return make_error(ErrorCode::kInternal,
                      "cannot derive a CURVE public key: ", zmq_strerror(zmq_errno()));
  }
  auto pk = parse_public_key(pub);
  if (!pk) return pk.error();
  return KeyPair{pk.value(), secret};
}

Result<PublicKey> parse_public_key(std::string_view text, std::string_view what) {
  auto bytes = decode_key(text, what);
  if (!bytes) return bytes.error();
  return PublicKey{bytes.value()};
}

Result<SecretKey> parse_secret_key(std::string_view text, std::string_view what) {
  auto bytes = decode_key(text, what);
  if (!bytes) return bytes.error();
  SecretKey key(bytes.value());
  explicit_bzero(bytes.value().data(), bytes.value().size());
  return key;
}

Result<PublicKey> load_public_key(const std::string& path) {
  if (ends_with(path, ".key")) {
    return make_error(ErrorCode::kInvalidArgument, path,
                      " is a secret key file (PREFIX.key of `fedctl keygen`) where a public key "
                      "is expected: give the peer's PREFIX.pub (a .key never leaves its machine)");
  }
  struct stat st;
  auto text = read_small_file(path, &st);
  if (!text) return text.error();
  return parse_public_key(text.value(), "public key file " + path);
}

Result<KeyPair> load_key_pair(const std::string& secret_key_path) {
  if (ends_with(secret_key_path, ".pub")) {
    return make_error(ErrorCode::kInvalidArgument, secret_key_path,
                      " is a public key file (PREFIX.pub of `fedctl keygen`) where this party's "
                      "secret key is expected: give PREFIX.key");
  }
  struct stat st;
  auto text = read_small_file(secret_key_path, &st);
  if (!text) return text.error();
  if ((st.st_mode & 077) != 0) {
    explicit_bzero(text.value().data(), text.value().size());
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return make_error(ErrorCode::kInvalidArgument, "secret key file ", secret_key_path,
                      " is accessible by group or others (mode ", mode, "); run chmod 600 ",
                      secret_key_path);
  }
  auto secret = parse_secret_key(text.value(), "secret key file " + secret_key_path);
  explicit_bzero(text.value().data(), text.value().size());
  if (!secret) return secret.error();
  auto pair = KeyPair::from_secret(secret.value());
  if (!pair) return pair.error();
  // A public key under another name: its text is the .pub that `fedctl keygen` wrote next to it.
  if (const std::string pub = public_sibling(secret_key_path); !pub.empty()) {
    struct stat pub_st;
    auto pub_text = read_small_file(pub, &pub_st);
    if (pub_text) {
      auto pub_key = parse_public_key(pub_text.value(), pub);
      if (pub_key && pub_key.value().bytes == secret.value().bytes()) {
        return make_error(ErrorCode::kInvalidArgument, secret_key_path, " holds the public key of ",
                          pub, ", not a secret key: give the PREFIX.key of `fedctl keygen`");
      }
    }
  }
  return pair;
}

Status write_key_pair(const KeyPair& pair, const std::string& prefix, bool force) {
  if (prefix.empty()) return make_error(ErrorCode::kInvalidArgument, "empty key file prefix");
  const std::string key_path = prefix + ".key", pub_path = prefix + ".pub";
  if (!force) {
    for (const auto& path : {key_path, pub_path}) {
      struct stat st;
      if (::lstat(path.c_str(), &st) == 0) {
        return make_error(ErrorCode::kInvalidArgument, path, " exists (use --force to replace it)");
      }
    }
  }
  std::string secret_text = pair.secret_key.z85() + "\n";
  Status s = write_file(key_path, secret_text, 0600, force);
  explicit_bzero(secret_text.data(), secret_text.size());
  if (!s) return s;
  s = write_file(pub_path, pair.public_key.z85() + "\n", 0644, force);
  if (!s && !force) ::unlink(key_path.c_str());  // no half-made pair left behind
  return s;
}

}  // namespace protocol
