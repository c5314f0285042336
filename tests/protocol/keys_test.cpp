// CURVE key pairs: generation, Z85 parsing with clear errors, key files and their permissions.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "protocol/keys.h"
#include "test_support/temp_dir.h"

namespace {

using protocol::ErrorCode;
using protocol::KeyPair;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write(const std::string& path, const std::string& text, mode_t mode) {
  { std::ofstream(path, std::ios::binary) << text; }
  ::chmod(path.c_str(), mode);
}

TEST(Keys, GeneratedPairsAreDistinctAndConsistent) {
  auto a = KeyPair::generate(), b = KeyPair::generate();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a.value().public_key, b.value().public_key);
  auto again = KeyPair::from_secret(a.value().secret_key);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value().public_key, a.value().public_key);
  EXPECT_EQ(a.value().public_key.z85().size(), 40u);
  auto parsed = protocol::parse_public_key("  " + a.value().public_key.z85() + "\r\n");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed.value(), a.value().public_key);
}

TEST(Keys, Z85ParsingSaysWhatIsWrong) {
  // The test vector of ZeroMQ RFC 32: 0x86 0x4F 0xD2 0x6F 0xB5 0x59 0xF7 0x5B is "HelloWorld".
  const std::string valid = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
  EXPECT_TRUE(protocol::parse_public_key(valid).ok());

  auto short_key = protocol::parse_public_key(valid.substr(0, 39));
  ASSERT_FALSE(short_key.ok());
  EXPECT_EQ(short_key.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(short_key.error().message, "public key: expected 40 Z85 characters, found 39");

  auto bad_char = protocol::parse_public_key(valid.substr(0, 10) + "~" + valid.substr(11));
  ASSERT_FALSE(bad_char.ok());
  EXPECT_EQ(bad_char.error().message, "public key: character 11 is not in the Z85 alphabet");

  auto spaced = protocol::parse_secret_key(valid.substr(0, 20) + " " + valid.substr(21));
  ASSERT_FALSE(spaced.ok());
  EXPECT_NE(spaced.error().message.find("secret key: character 21"), std::string::npos);

  // "#####" is 85^5 - 1 > 2^32 - 1: the right characters, but not an encoding of 4 bytes.
  auto overflow = protocol::parse_public_key("#####" + valid.substr(5));
  ASSERT_FALSE(overflow.ok());
  EXPECT_NE(overflow.error().message.find("not a valid Z85 encoding"), std::string::npos);

  EXPECT_FALSE(protocol::parse_public_key("").ok());
  EXPECT_FALSE(protocol::parse_public_key(valid + valid).ok());
}

TEST(Keys, KeyFilesRoundTripWithPrivateSecret) {
  test_support::TempDir dir;
  auto pair = KeyPair::generate().value();
  ASSERT_TRUE(protocol::write_key_pair(pair, dir / "w", false).ok());
  struct stat st;
  ASSERT_EQ(::stat((dir / "w.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(slurp(dir / "w.key"), pair.secret_key.z85() + "\n");
  EXPECT_EQ(slurp(dir / "w.pub"), pair.public_key.z85() + "\n");

  auto loaded = protocol::load_key_pair(dir / "w.key");
  ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
  EXPECT_EQ(loaded.value().public_key, pair.public_key);
  EXPECT_EQ(loaded.value().secret_key.bytes(), pair.secret_key.bytes());
  auto pub = protocol::load_public_key(dir / "w.pub");
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(pub.value(), pair.public_key);
}

TEST(Keys, ExistingFilesAreKeptUnlessForced) {
  test_support::TempDir dir;
  auto first = KeyPair::generate().value(), second = KeyPair::generate().value();
  ASSERT_TRUE(protocol::write_key_pair(first, dir / "k", false).ok());
  auto again = protocol::write_key_pair(second, dir / "k", false);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(again.error().message.find("exists"), std::string::npos);
  EXPECT_EQ(protocol::load_key_pair(dir / "k.key").value().public_key, first.public_key);

  // Only the .pub present still counts as existing.
  std::filesystem::remove(dir / "k.key");
  EXPECT_FALSE(protocol::write_key_pair(second, dir / "k", false).ok());
  EXPECT_FALSE(std::filesystem::exists(dir / "k.key"));

  ::chmod((dir / "k.pub").c_str(), 0666);
  ASSERT_TRUE(protocol::write_key_pair(second, dir / "k", true).ok());
  EXPECT_EQ(protocol::load_key_pair(dir / "k.key").value().public_key, second.public_key);
  EXPECT_EQ(protocol::load_public_key(dir / "k.pub").value(), second.public_key);
  struct stat st;
  ASSERT_EQ(::stat((dir / "k.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(std::filesystem::exists(dir / "k.key.tmp"));
}

TEST(Keys, LoadersRefuseBadFiles) {
  test_support::TempDir dir;
  auto pair = KeyPair::generate().value();
  ASSERT_TRUE(protocol::write_key_pair(pair, dir / "p", false).ok());

  ::chmod((dir / "p.key").c_str(), 0640);
  auto open = protocol::load_key_pair(dir / "p.key");
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.error().message.find("mode 0640"), std::string::npos);
  EXPECT_NE(open.error().message.find("chmod 600"), std::string::npos);

  write(dir / "short.key", "abc\n", 0600);
  auto short_key = protocol::load_key_pair(dir / "short.key");
  ASSERT_FALSE(short_key.ok());
  EXPECT_EQ(short_key.error().message,
            "secret key file " + (dir / "short.key") + ": expected 40 Z85 characters, found 3");

  write(dir / "big.pub", std::string(10000, 'a'), 0644);
  auto big = protocol::load_public_key(dir / "big.pub");
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.error().message.find("too large"), std::string::npos);

  auto missing = protocol::load_public_key(dir / "missing.pub");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kIo);
  EXPECT_NE(missing.error().message.find("No such file"), std::string::npos);

  auto not_file = protocol::load_public_key(dir.path().string());
  ASSERT_FALSE(not_file.ok());

  auto nowhere = protocol::write_key_pair(pair, dir / "no/such/dir/x", false);
  ASSERT_FALSE(nowhere.ok());
  EXPECT_EQ(nowhere.error().code, ErrorCode::kIo);
}

TEST(Keys, AKeyFileOfTheWrongKindIsRefusedNamingTheOneExpected) {
  test_support::TempDir dir;
  auto pair = KeyPair::generate().value();
  ASSERT_TRUE(protocol::write_key_pair(pair, dir / "w", false).ok());
  auto pub_as_secret = protocol::load_key_pair(dir / "w.pub");
  ASSERT_FALSE(pub_as_secret.ok());
  EXPECT_EQ(pub_as_secret.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(pub_as_secret.error().message.find("is a public key file"), std::string::npos)
      << pub_as_secret.error().message;
  auto secret_as_pub = protocol::load_public_key(dir / "w.key");
  ASSERT_FALSE(secret_as_pub.ok());
  EXPECT_NE(secret_as_pub.error().message.find("is a secret key file"), std::string::npos)
      << secret_as_pub.error().message;
  // The public key copied under a secret key's name, next to its .pub.
  write(dir / "v.key", pair.public_key.z85() + "\n", 0600);
  write(dir / "v.pub", pair.public_key.z85() + "\n", 0644);
  auto copied = protocol::load_key_pair(dir / "v.key");
  ASSERT_FALSE(copied.ok());
  EXPECT_NE(copied.error().message.find("holds the public key of"), std::string::npos)
      << copied.error().message;
}

}  // namespace
