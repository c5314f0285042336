// WorkerDirectory: flag lists and directory files, with and without server keys.
#include <gtest/gtest.h>

#include <fstream>

#include "participant/worker_directory.h"
#include "test_support/temp_dir.h"

namespace {

using participant::WorkerDirectory;
using protocol::ErrorCode;

TEST(WorkerDirectory, ParsesAListWithOneKeyForAllOrOneEach) {
  const auto k1 = protocol::KeyPair::generate().value().public_key;
  const auto k2 = protocol::KeyPair::generate().value().public_key;
  auto d = WorkerDirectory::parse_list("tcp://127.0.0.1:5000, tcp://127.0.0.1:5001", {k1});
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  ASSERT_EQ(d.value().size(), 2u);
  EXPECT_EQ(d.value().workers()[1].endpoint, "tcp://127.0.0.1:5001");
  EXPECT_EQ(d.value().workers()[1].server_key, k1);
  d = WorkerDirectory::parse_list("tcp://a:1,tcp://b:2", {k1, k2});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d.value().workers()[1].server_key, k2);
  d = WorkerDirectory::parse_list("tcp://a:1", {});
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d.value().workers()[0].server_key.has_value());
}

TEST(WorkerDirectory, RefusesEmptyRepeatedOrMiscountedEntries) {
  const auto k = protocol::KeyPair::generate().value().public_key;
  for (const auto* list : {"", "tcp://a:1,,tcp://b:2", "tcp://a:1,tcp://a:1"}) {
    auto d = WorkerDirectory::parse_list(list, {});
    ASSERT_FALSE(d.ok()) << list;
    EXPECT_EQ(d.error().code, ErrorCode::kInvalidArgument);
  }
  auto d = WorkerDirectory::parse_list("tcp://a:1,tcp://b:2,tcp://c:3", {k, k});
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("2 server keys for 3 workers"), std::string::npos);
}

TEST(WorkerDirectory, ReadsAFileWithZ85KeysPubFilesAndComments) {
  test_support::TempDir dir;
  const auto pair = protocol::KeyPair::generate().value();
  ASSERT_TRUE(protocol::write_key_pair(pair, dir / "w2", false).ok());
  {
    std::ofstream f(dir / "workers.txt");
    f << "# the pool\n\ntcp://127.0.0.1:7001 " << pair.public_key.z85()
      << "\n  tcp://127.0.0.1:7002   w2.pub  \n";
  }
  auto d = WorkerDirectory::load_file(dir / "workers.txt");
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  ASSERT_EQ(d.value().size(), 2u);
  EXPECT_EQ(d.value().workers()[0].server_key, pair.public_key);
  EXPECT_EQ(d.value().workers()[1].server_key, pair.public_key);

  {
    std::ofstream f(dir / "bad.txt");
    f << "tcp://127.0.0.1:7001\ntcp://127.0.0.1:7002 missing.pub\n";
  }
  d = WorkerDirectory::load_file(dir / "bad.txt");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("bad.txt:2"), std::string::npos) << d.error().message;
  d = WorkerDirectory::load_file(dir / "absent.txt");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, ErrorCode::kIo);
}

}  // namespace
