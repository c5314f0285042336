// `fedctl keygen` as a user runs it: the real binary, real files.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "protocol/keys.h"
#include "test_support/files.h"
#include "test_support/run.h"
#include "test_support/temp_dir.h"

namespace {

using test_support::run;
using test_support::slurp;
using test_support::TempDir;

const std::string kFedctl = FEDCTL_PATH;

bool one_line_error(const test_support::RunResult& r, const std::string& needle) {
  const auto nl = r.err.find('\n');
  return r.status == 2 && nl != std::string::npos && nl + 1 == r.err.size() &&
         r.err.rfind("fedctl keygen: ", 0) == 0 && r.err.find(needle) != std::string::npos;
}

TEST(FedctlKeygen, WritesAPrivateSecretAndAMatchingPublicKey) {
  TempDir dir;
  const auto r = run(kFedctl + " keygen --out " + dir / "site1");
  ASSERT_EQ(r.status, 0) << r.err;
  struct stat st;
  ASSERT_EQ(::stat((dir / "site1.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto pair = protocol::load_key_pair(dir / "site1.key");
  ASSERT_TRUE(pair.ok()) << pair.error().to_string();
  auto pub = protocol::load_public_key(dir / "site1.pub");
  ASSERT_TRUE(pub.ok()) << pub.error().to_string();
  EXPECT_EQ(pub.value(), pair.value().public_key);
  EXPECT_NE(r.out.find("\"public_key\": \"" + pub.value().z85() + "\""), std::string::npos);
}

TEST(FedctlKeygen, RefusesToOverwriteWithoutForce) {
  TempDir dir;
  ASSERT_EQ(run(kFedctl + " keygen --out " + dir / "k").status, 0);
  const auto key = slurp(dir / "k.key"), pub = slurp(dir / "k.pub");
  EXPECT_TRUE(one_line_error(run(kFedctl + " keygen --out " + dir / "k"), "exists (use --force"));
  EXPECT_EQ(slurp(dir / "k.key"), key);
  EXPECT_EQ(slurp(dir / "k.pub"), pub);
  ASSERT_EQ(run(kFedctl + " keygen --force --out " + dir / "k").status, 0);
  EXPECT_NE(slurp(dir / "k.key"), key);
  EXPECT_NE(slurp(dir / "k.pub"), pub);
  struct stat st;
  ASSERT_EQ(::stat((dir / "k.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(FedctlKeygen, BadInvocationsExitWithStatus2) {
  TempDir dir;
  EXPECT_TRUE(one_line_error(run(kFedctl + " keygen"), "out"));
  EXPECT_TRUE(one_line_error(run(kFedctl + " keygen --out " + dir / "none/k"), "cannot"));
  EXPECT_TRUE(one_line_error(run(kFedctl + " keygen --out x --bogus"), "bogus"));
  const auto help = run(kFedctl + " keygen --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("--force"), std::string::npos);
}

}  // namespace
