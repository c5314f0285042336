// Boost.Program_options' what() replaces %placeholders% until none is left, so an option name or
// value holding one looped forever (found by tests/fuzz/fuzz_ini.cpp). Every program's parser
// now goes through protocol::option_error_message: one line, '%' shown as '?', and exit 2.
#include "protocol/option_error.h"

#include <gtest/gtest.h>

#include <boost/program_options.hpp>
#include <sstream>

#include "test_support/run.h"

namespace {

namespace po = boost::program_options;

std::string message_of(const std::string& ini) {
  po::options_description o;
  int threads = 0;
  o.add_options()("threads", po::value(&threads));
  std::istringstream in(ini);
  po::variables_map vm;
  try {
    po::store(po::parse_config_file(in, o), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return protocol::option_error_message(e);
  }
  return "";
}

TEST(OptionError, PlaceholdersInNamesAndValuesDoNotLoop) {
  EXPECT_EQ(message_of("threads = x\n"), "the argument ('x') for option 'threads' is invalid");
  const std::string value = message_of("threads = %value%\n");
  EXPECT_NE(value.find("'?value?'"), std::string::npos) << value;
  const std::string name = message_of("%canonical_option% = 1\n");
  EXPECT_NE(name.find("?canonical_option?"), std::string::npos) << name;
  const std::string line = message_of("%invalid_line%\n");
  EXPECT_NE(line.find("?invalid_line?"), std::string::npos) << line;
}

TEST(OptionError, FedctlAnswersWithExitStatus2) {
  // `timeout` turns a regression (a hang) into a failure instead of a stuck test.
  for (const std::string args :
       {"fhe-keygen --%canonical_option%", "fhe-encrypt --log2-delta %value%"}) {
    const auto r = test_support::run("timeout 20 " + std::string(FEDCTL_PATH) + " " + args);
    EXPECT_EQ(r.status, 2) << args << ": " << r.err;
    EXPECT_TRUE(r.err.starts_with("fedctl fhe-")) << r.err;
    EXPECT_NE(r.err.find('?'), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  }
}

}  // namespace
