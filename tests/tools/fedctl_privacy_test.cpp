// `fedctl privacy` end to end: the binary's output equals the library's figures, and bad input
// exits with status 2 and one line on stderr.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "fedctl_run.h"
#include "privacy/accountant.h"

namespace {

using fedctl_test::Result;

// Runs `fedctl privacy <args>` (args are passed through the shell as written).
Result fedctl(const std::string& args) {
  return fedctl_test::fedctl("privacy " + args);
}

nlohmann::json parse_line(const std::string& text) {
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find('\n'), text.size() - 1) << "more than one line: " << text;
  return nlohmann::json::parse(text);
}

TEST(Cli, EpsilonPrintsTheLibraryFigure) {
  const Result r = fedctl("epsilon --q 0.01 --sigma 1.1 --steps 1000 --delta 1e-5");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  const nlohmann::json j = parse_line(r.out);
  const privacy::PrivacySpent want = privacy::epsilon_for({0.01, 1.1, 1000}, 1e-5);
  // Printed with full precision: the value reads back exactly.
  EXPECT_EQ(j.at("epsilon").get<double>(), want.epsilon);
  EXPECT_EQ(j.at("order").get<double>(), want.order);
}

TEST(Cli, PhasesCompose) {
  const Result r = fedctl(
      "epsilon --phase 0.01,1.1,1000 --phase 0.05,2,300 --q 1 --sigma 8 --steps 3 "
      "--delta 1e-6");
  ASSERT_EQ(r.status, 0) << r.err;
  privacy::RdpAccountant acc;
  acc.add({1.0, 8.0, 3});
  acc.add({0.01, 1.1, 1000});
  acc.add({0.05, 2.0, 300});
  const nlohmann::json j = parse_line(r.out);
  EXPECT_EQ(j.at("epsilon").get<double>(), acc.spent(1e-6).epsilon);
  EXPECT_EQ(j.at("order").get<double>(), acc.spent(1e-6).order);
  // Scientific notation for an integer step count is accepted.
  const Result sci = fedctl("epsilon --phase 0.001,1,1e5 --delta 1e-5");
  ASSERT_EQ(sci.status, 0) << sci.err;
  EXPECT_EQ(parse_line(sci.out).at("epsilon").get<double>(),
            privacy::epsilon_for({0.001, 1.0, 100000}, 1e-5).epsilon);
}

TEST(Cli, SigmaPrintsTheLibraryFigure) {
  const Result r = fedctl("sigma --q 0.01 --steps 1000 --epsilon 2 --delta 1e-5");
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json j = parse_line(r.out);
  const double sigma = j.at("sigma").get<double>();
  EXPECT_EQ(sigma, privacy::sigma_for_epsilon(0.01, 1000, 2.0, 1e-5));
  EXPECT_LE(privacy::epsilon_for({0.01, sigma, 1000}, 1e-5).epsilon, 2.0);
}

TEST(Cli, OverwhelmingNoiseCostsOnlyTheConversion) {
  const Result r = fedctl("epsilon --q 0.5 --sigma 1e300 --steps 5 --delta 1e-5");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(parse_line(r.out).at("epsilon").get<double>(),
            privacy::epsilon_for({0.5, 1e300, 0}, 1e-5).epsilon);
}

TEST(Cli, HelpExitsZero) {
  for (const char* args : {"--help", "epsilon --help", "sigma --help"}) {
    const Result r = fedctl(args);
    EXPECT_EQ(r.status, 0) << args;
    EXPECT_NE(r.out.find("usage: fedctl privacy"), std::string::npos) << args << ": " << r.out;
  }
}

TEST(Cli, BadInputExitsTwoWithOneLine) {
  const char* cases[] = {
      "",  // no subcommand
      "frobnicate --q 0.1",
      "epsilon --q 0 --sigma 1 --steps 10 --delta 1e-5",
      "epsilon --q 1.5 --sigma 1 --steps 10 --delta 1e-5",
      "epsilon --q -0.1 --sigma 1 --steps 10 --delta 1e-5",
      "epsilon --q abc --sigma 1 --steps 10 --delta 1e-5",
      "epsilon --q 0.1x --sigma 1 --steps 10 --delta 1e-5",
      "epsilon --q nan --sigma 1 --steps 10 --delta 1e-5",
      "epsilon --q 0.1 --sigma 0 --steps 10 --delta 1e-5",
      "epsilon --q 0.1 --sigma -2 --steps 10 --delta 1e-5",
      "epsilon --q 0.1 --sigma inf --steps 10 --delta 1e-5",
      "epsilon --q 0.5 --sigma 1e-300 --steps 5 --delta 1e-5",  // no privacy: epsilon infinite
      "epsilon --phase 0.5,1,9223372036854775807 --phase 0.4,1,9223372036854775807 --delta 1e-5",
      "epsilon --q 0.1 --sigma 1 --steps -5 --delta 1e-5",
      "epsilon --q 0.1 --sigma 1 --steps 2.5 --delta 1e-5",
      "epsilon --q 0.1 --sigma 1 --steps 99999999999999999999999 --delta 1e-5",
      "epsilon --q 0.1 --sigma 1 --steps 10 --delta 0",
      "epsilon --q 0.1 --sigma 1 --steps 10 --delta 1",
      "epsilon --q 0.1 --sigma 1 --steps 10 --delta 2e-1x",
      "epsilon --q 0.1 --sigma 1 --steps 10",     // missing --delta
      "epsilon --q 0.1 --steps 10 --delta 1e-5",  // missing --sigma
      "epsilon --delta 1e-5",                     // no phase at all
      "epsilon --q 0.1 --sigma 1 --steps 10 --delta 1e-5 --bogus 3",
      "epsilon --q 0.1 --sigma 1 --steps 10 --delta 1e-5 stray",
      "epsilon --q 0.1 --q 0.2 --sigma 1 --steps 10 --delta 1e-5",
      "epsilon --q --sigma 1 --steps 10 --delta 1e-5",
      "epsilon --phase 0.1,1 --delta 1e-5",
      "epsilon --phase 0.1,1,10, --delta 1e-5",
      "epsilon --phase 0.1,1,10,4 --delta 1e-5",
      "epsilon --phase 2,1,10 --delta 1e-5",
      "epsilon --phase 0.1,0,10 --delta 1e-5",
      "epsilon --phase ,, --delta 1e-5",
      "sigma --q 0.01 --steps 100 --epsilon 0.01 --delta 1e-5",  // unreachable
      "sigma --q 0.01 --steps 100 --epsilon -1 --delta 1e-5",
      "sigma --q 0.01 --steps 100 --delta 1e-5",
      "sigma --q 0 --steps 100 --epsilon 1 --delta 1e-5",
      "sigma --q 0.01 --steps x --epsilon 1 --delta 1e-5",
  };
  for (const char* args : cases) {
    const Result r = fedctl(args);
    EXPECT_EQ(r.status, 2) << "args: " << args << "\nstdout: " << r.out << "\nstderr: " << r.err;
    EXPECT_TRUE(r.out.empty()) << args << ": " << r.out;
    if (std::string(args).empty()) continue;  // bare `fedctl privacy` prints the usage
    EXPECT_EQ(r.err.rfind("fedctl privacy: ", 0), 0u) << args << ": " << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << args << ": " << r.err;
  }
}

TEST(Cli, ErrorsSayWhatIsWrong) {
  EXPECT_NE(fedctl("epsilon --q 1.5 --sigma 1 --steps 10 --delta 1e-5").err.find("(0, 1]"),
            std::string::npos);
  EXPECT_NE(fedctl("epsilon --q 0.1 --sigma 1 --steps 10").err.find("--delta"), std::string::npos);
  EXPECT_NE(fedctl("frobnicate").err.find("unknown subcommand"), std::string::npos);
  EXPECT_NE(
      fedctl("sigma --q 0.01 --steps 100 --epsilon 0.01 --delta 1e-5").err.find("unreachable"),
      std::string::npos);
}

}  // namespace
